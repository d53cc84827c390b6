//! The desktop workbench: an eframe app over the engine. Panels draw state and send
//! `AppCommand`s; the app applies them once per frame; everything heavy (opening, running,
//! exporting, saving) runs as a job of the engine's job service (`jobs.rs` for experiments,
//! `tasks.rs` for the rest), so the window never waits on computation.

mod app;
mod commands;
mod compare;
mod dataset_panel;
mod experiments_panel;
mod frame_bench;
mod heatmap;
mod jobs;
mod layers_view;
mod model_panel;
mod settings_panel;
mod tasks;
#[cfg(test)]
mod tests;
mod toolbar;
mod tradeoff;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Result};

pub use app::{CentralView, SetupTab, WorkbenchApp};
pub use commands::AppCommand;
pub use frame_bench::FrameBenchPlan;

/// What the window opens with.
#[derive(Clone, Debug, Default)]
pub struct Startup {
    /// A model (`.onnx`) or a saved session (`.ron`); `None`: the bundled MNIST sample.
    pub open: Option<PathBuf>,
    /// Headless screenshot mode: run what the session lacks, save this PNG, close.
    pub screenshot: Option<ScreenshotPlan>,
    /// `bench-gui`: a scripted run that times every frame, then closes.
    pub frame_bench: Option<FrameBenchPlan>,
    pub started: Option<Instant>,
}

#[derive(Clone, Debug)]
pub struct ScreenshotPlan {
    pub out: PathBuf,
    pub view: CentralView,
    /// The left panel's tab to show.
    pub tab: SetupTab,
    /// Also write the session (with what was run) here.
    pub session_out: Option<PathBuf>,
    /// Open the calibration inspector on this tensor first.
    pub inspect: Option<String>,
}

/// The bundled sample, found next to the executable's project or the working directory.
pub fn sample_dir() -> Option<PathBuf> {
    // Relative first: sessions saved from the project folder then stay portable.
    let candidates = [
        PathBuf::from("sample_data/mnist"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample_data/mnist"),
    ];
    candidates
        .into_iter()
        .find(|p| p.join("model.onnx").is_file())
}

/// The window icon, `assets/icon.png` (built into the binary).
fn window_icon() -> eframe::egui::IconData {
    let png = include_bytes!("../../assets/icon.png");
    let rgba = image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .expect("assets/icon.png is a PNG (checked by a test)")
        .into_rgba8();
    eframe::egui::IconData {
        width: rgba.width(),
        height: rgba.height(),
        rgba: rgba.into_raw(),
    }
}

pub fn run(startup: Startup) -> Result<()> {
    let size = [1280.0, 800.0];
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_inner_size(size)
            .with_min_inner_size([900.0, 600.0])
            .with_title("quantbench")
            .with_icon(window_icon())
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Glow,
        ..Default::default()
    };
    eframe::run_native(
        "quantbench",
        options,
        Box::new(move |cc| Ok(Box::new(WorkbenchApp::new(cc, startup)))),
    )
    .map_err(|e| {
        anyhow!("cannot open the window: {e} (is a display available? set DISPLAY, or use the CLI)")
    })
}

#[cfg(test)]
mod icon_tests {
    #[test]
    fn the_window_icon_decodes() {
        let icon = super::window_icon();
        assert_eq!((icon.width, icon.height), (256, 256));
        assert_eq!(icon.rgba.len(), 256 * 256 * 4);
        // Transparent corners, an opaque middle.
        assert_eq!(icon.rgba[3], 0);
        assert_eq!(icon.rgba[(128 * 256 + 128) * 4 + 3], 255);
    }
}
