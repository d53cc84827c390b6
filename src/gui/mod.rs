//! The desktop workbench: an eframe app over the engine. Panels draw what [`context::AppCtx`]
//! lends them and send `AppCommand`s; the app applies them once per frame; everything heavy
//! (opening, running, exporting, saving) is a background task ([`background`]: the work itself
//! in `tasks.rs` and the engine's runner), so the window never waits on computation. The
//! command line starts it through [`launch`].

mod app;
mod background;
mod commands;
mod compare;
mod context;
mod dataset_panel;
mod dialogs;
mod experiments_panel;
mod frame_bench;
mod heatmap;
mod layers_view;
mod model_panel;
mod sensitivity_bar;
mod settings_panel;
mod speedup_view;
mod table;
mod tasks;
#[cfg(test)]
mod tests;
mod toolbar;
mod tradeoff;
mod tune_view;
mod words;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Result};

use app::{CentralView, SetupTab, WorkbenchApp};
use commands::AppCommand;
use frame_bench::FrameBenchPlan;

/// How the command line starts the window.
#[derive(Clone, Debug)]
pub enum Launch {
    /// The workbench on a model (`.onnx`), a saved session (`.ron`) or a plan folder; `None`:
    /// the bundled MNIST sample.
    Open(Option<PathBuf>),
    /// Open `path` (default: the sample with the standard preset), run what its session lacks,
    /// save a PNG of `view` (see `CentralView`'s names) with `tab` (model, dataset or
    /// settings) on the left, and close; also write the session to `session_out`, open the
    /// calibration inspector on `inspect` first, and scroll to and highlight layer `focus`.
    Screenshot {
        path: Option<PathBuf>,
        out: PathBuf,
        view: String,
        tab: String,
        session_out: Option<PathBuf>,
        inspect: Option<String>,
        focus: Option<String>,
    },
    /// `bench-gui`: open `model`, run an int8-weights experiment on `data`, export it to
    /// `export`, timing every frame of the UI thread.
    FrameBench {
        model: PathBuf,
        data: PathBuf,
        export: PathBuf,
    },
}

/// Opens the window as `launch` says; returns when it closes. `started`: when the process began
/// (the time to the first frame is measured from it).
pub fn launch(launch: Launch, started: Instant) -> Result<()> {
    let startup = match launch {
        Launch::Open(open) => Startup {
            open,
            ..Default::default()
        },
        Launch::Screenshot {
            path,
            out,
            view,
            tab,
            session_out,
            inspect,
            focus,
        } => {
            // "sensitivity": the Layers view, once the layers are ranked; "tune": the search
            // to its end, "tune-running": while it runs.
            let rank = view == "sensitivity";
            let tune = match view.as_str() {
                "tune" => Some(TuneShot::Finished),
                "tune-running" => Some(TuneShot::MidSearch),
                _ => None,
            };
            let view: CentralView = match view.as_str() {
                "sensitivity" => "layers",
                "tune-running" => "tune",
                other => other,
            }
            .parse()
            .map_err(|e: String| anyhow!("--view: {e}"))?;
            let tab: SetupTab = tab.parse().map_err(|e: String| anyhow!("--tab: {e}"))?;
            Startup {
                open: path,
                screenshot: Some(ScreenshotPlan {
                    out,
                    view,
                    tab,
                    session_out,
                    inspect,
                    rank,
                    tune,
                    focus,
                }),
                ..Default::default()
            }
        }
        Launch::FrameBench {
            model,
            data,
            export,
        } => Startup {
            frame_bench: Some(FrameBenchPlan {
                model,
                data,
                export,
            }),
            ..Default::default()
        },
    };
    run(Startup {
        started: Some(started),
        ..startup
    })
}

/// What the window opens with.
#[derive(Clone, Debug, Default)]
struct Startup {
    /// A model (`.onnx`) or a saved session (`.ron`); `None`: the bundled MNIST sample.
    pub open: Option<PathBuf>,
    /// Headless screenshot mode: run what the session lacks, save this PNG, close.
    pub screenshot: Option<ScreenshotPlan>,
    /// `bench-gui`: a scripted run that times every frame, then closes.
    pub frame_bench: Option<FrameBenchPlan>,
    pub started: Option<Instant>,
}

#[derive(Clone, Debug)]
struct ScreenshotPlan {
    pub out: PathBuf,
    pub view: CentralView,
    /// The left panel's tab to show.
    pub tab: SetupTab,
    /// Also write the session (with what was run) here.
    pub session_out: Option<PathBuf>,
    /// Open the calibration inspector on this tensor first.
    pub inspect: Option<String>,
    /// Rank the layers of the experiment shown by sensitivity first (unless it has a ranking).
    pub rank: bool,
    /// Run the search first, and take the picture once it ends or while it runs.
    pub tune: Option<TuneShot>,
    /// The layer (node name) scrolled to and highlighted in the heatmap and Layers view.
    pub focus: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TuneShot {
    Finished,
    MidSearch,
}

/// The bundled sample: in the working directory, beside an installed executable
/// (`/usr/share/quantbench/sample_data` from the .deb), or in the source it was built from.
pub fn sample_dir() -> Option<PathBuf> {
    // Relative first: sessions saved from the project folder then stay portable.
    let installed = std::env::current_exe().ok().and_then(|exe| {
        let prefix = exe.parent()?.parent()?;
        Some(prefix.join("share/quantbench/sample_data/mnist"))
    });
    let candidates = [
        Some(PathBuf::from("sample_data/mnist")),
        installed,
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample_data/mnist")),
    ];
    candidates
        .into_iter()
        .flatten()
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

fn run(startup: Startup) -> Result<()> {
    let size = [1280.0, 800.0];
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_inner_size(size)
            .with_min_inner_size([900.0, 600.0])
            .with_title("quantbench")
            // The window's class, which the installed .desktop entry names (StartupWMClass).
            .with_app_id("quantbench")
            .with_icon(window_icon())
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Glow,
        // The window's own state (panel sizes, recent files) lives in the data folder too
        // (eframe's own choice of file unless QUANTBENCH_DATA_DIR moves it).
        persistence_path: app::data_dir().map(|d| d.join("app.ron")),
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
