//! The app: its state in one place, wired together. Commands are applied once per frame
//! (`handle.rs`), the background tasks' events read in `logic()` (`logic.rs`), everything
//! drawn in `ui()` (`ui.rs`).
//!
//! The UI thread never does engine work. Opening a model, a session or a dataset (previews
//! included), running experiments, exporting, saving, autosaving and writing screenshots each
//! run as a background task ([`super::background`]); the app keeps what it shows until the
//! task's result arrives, then applies it.

mod analysis;
mod search;
pub use analysis::RankProgress;
pub use search::{SearchState, TuneRequest};
mod handle;
mod logic;
mod ui;

use std::collections::HashMap;

use quantbench::bench::explain::SpeedExplanation;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;
use serde::{Deserialize, Serialize};

use quantbench::quant::inspect::Inspection;
use quantbench::runner::{RunSettings, Workbench};
use quantbench::session::{ExperimentId, Session};

use super::background::{BackgroundTasks, TaskKind, TaskOutput};
use super::commands::Commands;
use super::context::{Level, LoadedDataset, LoadedModel, Offer};
use super::{AppCommand, ScreenshotPlan, Startup};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CentralView {
    /// Trade-off plot and heatmap side by side.
    #[default]
    Overview,
    Tradeoff,
    Heatmap,
    Compare,
    /// One experiment's per-layer table.
    Layers,
    /// Why the selected experiment's model is not faster than float.
    SpeedUp,
    /// The search: the fastest model that meets a goal.
    Tune,
}

impl std::str::FromStr for SetupTab {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "model" => Ok(SetupTab::Model),
            "dataset" => Ok(SetupTab::Dataset),
            "settings" => Ok(SetupTab::Settings),
            _ => Err(format!(
                "unknown tab '{s}' (expected model, dataset or settings)"
            )),
        }
    }
}

impl std::str::FromStr for CentralView {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" | "overview" => Ok(CentralView::Overview),
            "tradeoff" => Ok(CentralView::Tradeoff),
            "heatmap" => Ok(CentralView::Heatmap),
            "compare" => Ok(CentralView::Compare),
            "layers" => Ok(CentralView::Layers),
            "explain" | "speed-up" => Ok(CentralView::SpeedUp),
            "tune" => Ok(CentralView::Tune),
            _ => Err(format!(
                "unknown view '{s}' (expected all, tradeoff, heatmap, compare, layers, sensitivity, speed-up, explain, tune or tune-running)"
            )),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SetupTab {
    #[default]
    Model,
    Dataset,
    Settings,
}

/// The small part of the UI state that survives restarts (eframe storage).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Persisted {
    pub recent: Vec<String>,
    pub view: CentralView,
    pub setup_tab: SetupTab,
    /// Where benchmarks run: `[user@]host[:port]` over SSH; empty: this machine.
    pub bench_device: String,
    /// The developer's frame-time gauge is shown.
    pub frame_times: bool,
}

/// The window's workbench for the open model and dataset, kept between runs: float outputs and
/// calibrations computed once serve every later run (a layer toggled to float re-quantizes
/// without calibrating again). Only runs lock it, one after another; the window never does.
pub type SharedWorkbench = Arc<std::sync::Mutex<Option<Workbench>>>;

/// What a job needs to reach the shared workbench, creating it on first use.
pub(super) struct WorkbenchSource {
    shared: SharedWorkbench,
    proto: Arc<quantbench::onnx::pb::ModelProto>,
    bytes: u64,
    pub data: Arc<quantbench::data::Dataset>,
}

impl WorkbenchSource {
    /// Runs `f` on the workbench, which is created from the model and data the first time.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&mut Workbench) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let mut slot = self
            .shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let workbench = match slot.as_mut() {
            Some(w) => w,
            None => slot.insert(Workbench::new(
                self.proto.as_ref().clone(),
                self.bytes,
                self.data.clone(),
            )?),
        };
        f(workbench)
    }
}

/// The panels and views, each owning only its widgets' state.
#[derive(Default)]
struct Panels {
    /// The experiments panel's height as the user dragged it (`None`: the default).
    experiments_height: Option<f32>,
    toolbar: super::toolbar::Toolbar,
    model: super::model_panel::ModelPanel,
    dataset: super::dataset_panel::DatasetPanel,
    experiments: super::experiments_panel::ExperimentsPanel,
    tradeoff: super::tradeoff::TradeoffView,
    heatmap: super::heatmap::HeatmapView,
    compare: super::compare::CompareView,
    layers: super::layers_view::LayersView,
    speedup: super::speedup_view::SpeedUpView,
    tune: super::tune_view::TuneView,
}

/// Screenshot mode (`quantbench screenshot`): what to grab, and how far it is.
struct Screenshots {
    plan: Option<ScreenshotPlan>,
    tx: SyncSender<(PathBuf, Arc<egui::ColorImage>)>,
    rx: Receiver<(PathBuf, Arc<egui::ColorImage>)>,
    pending: bool,
    settled_frames: usize,
}

/// The UI thread's time per frame, and how long the first one took to come.
struct FrameTimes {
    cpu: Vec<f32>,
    first: Option<Duration>,
    started: Instant,
    /// When this frame's `logic()` began (the UI thread's work in a frame: logic + ui).
    began: Option<Instant>,
}

pub struct WorkbenchApp {
    pub persisted: Persisted,
    pub model: Option<LoadedModel>,
    pub dataset: Option<LoadedDataset>,
    pub session: Option<Session>,
    /// The session's file: where it is saved after each finished experiment (the file the
    /// user saved or opened, or an autosave in the data folder); `None`: nowhere.
    pub session_path: Option<PathBuf>,
    tasks: BackgroundTasks,
    workbench: SharedWorkbench,
    pub selected: Option<ExperimentId>,
    pub messages: Vec<(Level, String)>,
    pub is_test: bool,
    pub run_settings: RunSettings,
    pub settings: super::settings_panel::SettingsPanel,
    /// Autosaves, kept models of unsaved sessions and the running-window marker live here;
    /// `None`: nothing is written outside the files the user names.
    pub data_dir: Option<PathBuf>,
    pub offer: Option<Offer>,
    /// Keeps a test's data folder alive as long as the app.
    #[cfg(test)]
    pub temp: Option<tempfile::TempDir>,
    /// Dataset commands given while a model was opening: applied once it is open.
    deferred: Vec<AppCommand>,
    autosave_due: bool,
    /// The first model load of a window started on a model: add the standard preset to an
    /// empty session, and run it in screenshot mode.
    startup_pending: bool,
    panels: Panels,
    /// The calibration inspector's figures, for an experiment (`None`: the Settings tab's).
    pub inspection: Option<(Option<ExperimentId>, Inspection)>,
    commands: Commands,
    frames: FrameTimes,
    screenshots: Screenshots,
    ctx: Option<egui::Context>,
    frame_bench: Option<super::frame_bench::FrameBench>,
    /// Where file dialogs come from (tests: an environment without any).
    pub dialogs: super::dialogs::DialogService,
    /// A path asked for in the window, a dialog having failed to open.
    pub prompt: Option<super::dialogs::PathPrompt>,
    /// The sensitivity ranking going on: for which experiment, how far.
    rank_progress: Option<(ExperimentId, Arc<std::sync::Mutex<analysis::RankProgress>>)>,
    /// Why each experiment explained is not faster (or why it could not be found out).
    pub explanations: HashMap<ExperimentId, Result<SpeedExplanation, String>>,
    /// The layer the Speed-up view asked the Layers view to show.
    pub layer_focus: Option<String>,
    /// The search: its steps, its choice.
    pub search: SearchState,
}

thread_local! {
    /// Set while this thread runs a frame of the window (or applies a command): engine work
    /// then would freeze the window (tests check that none happens).
    static IN_FRAME: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside a frame of the window.
#[cfg(test)]
pub fn in_frame() -> bool {
    IN_FRAME.with(|f| f.get())
}

/// Marks the time a frame (or a command) runs; nests.
struct FrameMark(bool);

impl FrameMark {
    fn enter() -> Self {
        FrameMark(IN_FRAME.with(|f| f.replace(true)))
    }
}

impl Drop for FrameMark {
    fn drop(&mut self) {
        let was = self.0;
        IN_FRAME.with(|f| f.set(was));
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The window's data folder: `QUANTBENCH_DATA_DIR` when set (tests and scripts keep the user's
/// own folder untouched), else the platform's (`~/.local/share/quantbench` on Linux).
pub fn data_dir() -> Option<PathBuf> {
    match std::env::var_os("QUANTBENCH_DATA_DIR") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => eframe::storage_dir("quantbench"),
    }
}

impl WorkbenchApp {
    pub fn new(cc: &eframe::CreationContext<'_>, startup: Startup) -> Self {
        let persisted: Persisted = cc
            .storage
            .and_then(|s| s.get_string("quantbench"))
            .and_then(|text| ron::from_str(&text).ok())
            .unwrap_or_default();
        let mut app = WorkbenchApp::empty(
            Some(cc.egui_ctx.clone()),
            startup.started.unwrap_or_else(Instant::now),
        );
        app.run_settings.remote = persisted.bench_device.parse().ok();
        app.persisted = persisted;
        app.data_dir = data_dir();
        app.start(startup);
        app
    }

    /// Applies what the window opens with; looks for an interrupted session.
    pub fn start(&mut self, startup: Startup) {
        let _frame = FrameMark::enter();
        if let Some(plan) = &startup.screenshot {
            self.persisted.view = plan.view;
            self.persisted.setup_tab = plan.tab;
        }
        self.screenshots.plan = startup.screenshot;
        self.frame_bench = startup.frame_bench.map(super::frame_bench::FrameBench::new);
        if let (Some(dir), None, None) = (&self.data_dir, &self.screenshots.plan, &self.frame_bench)
        {
            let dir = dir.clone();
            let checked = self
                .tasks
                .spawn(TaskKind::RecoveryCheck, String::new(), move |_| {
                    let found = super::tasks::find_interrupted(&dir)?;
                    super::tasks::write_marker(&dir, None)?;
                    Ok(TaskOutput::Recovery(found.map(Box::new)))
                });
            if let Err(e) = checked {
                self.error(&e);
            }
        }
        let target = startup
            .open
            .clone()
            .or_else(|| super::sample_dir().map(|d| d.join("model.onnx")));
        if let Some(path) = target {
            self.startup_pending = true;
            self.apply(AppCommand::OpenPath(path));
        }
    }

    /// An app with nothing open (tests build on it).
    pub fn empty(ctx: Option<egui::Context>, started: Instant) -> Self {
        let (tx, rx) = sync_channel(4);
        let repaint_ctx = ctx.clone();
        let repaint = move || {
            if let Some(c) = &repaint_ctx {
                c.request_repaint();
            }
        };
        // No runtimes named: the run detects tract, and ONNX Runtime when it finds the library
        // (looking for it runs python3, which start-up should not wait for).
        let run_settings = RunSettings::of(quantbench::profile::Profile::Standard, vec![]);
        WorkbenchApp {
            persisted: Persisted::default(),
            model: None,
            dataset: None,
            session: None,
            session_path: None,
            tasks: BackgroundTasks::new(repaint),
            workbench: Default::default(),
            selected: None,
            messages: vec![],
            is_test: false,
            run_settings,
            settings: Default::default(),
            data_dir: None,
            offer: None,
            #[cfg(test)]
            temp: None,
            deferred: vec![],
            autosave_due: false,
            startup_pending: false,
            panels: Panels::default(),
            inspection: None,
            commands: Commands::default(),
            frames: FrameTimes {
                cpu: vec![],
                first: None,
                started,
                began: None,
            },
            screenshots: Screenshots {
                plan: None,
                tx,
                rx,
                pending: false,
                settled_frames: 0,
            },
            ctx,
            frame_bench: None,
            dialogs: super::dialogs::DialogService::of_process(),
            prompt: None,
            rank_progress: None,
            explanations: HashMap::new(),
            layer_focus: None,
            search: SearchState::default(),
        }
    }

    fn info(&mut self, text: impl Into<String>) {
        self.say(Level::Info, text.into());
    }

    fn error(&mut self, e: &anyhow::Error) {
        self.say(Level::Error, format!("{e:#}"));
    }

    /// Adds a message; one said again moves to the end instead of showing twice.
    fn say(&mut self, level: Level, text: String) {
        self.messages.retain(|(l, t)| !(*l == level && *t == text));
        self.messages.push((level, text));
    }

    /// Where autosaves of sessions without a file of their own go.
    fn sessions_dir(&self) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|d| d.join("sessions"))
    }

    /// `SESSION.models/` beside the session's file, where its quantized models are kept.
    fn models_dir(&self) -> Option<PathBuf> {
        self.session_path
            .as_ref()
            .map(|s| s.with_extension("models"))
    }

    fn remember(&mut self, path: &Path) {
        let p = quantbench::paths::absolute(path).display().to_string();
        self.persisted.recent.retain(|r| *r != p);
        self.persisted.recent.insert(0, p);
        self.persisted.recent.truncate(8);
    }

    /// Nothing runs in the background.
    pub fn is_idle(&self) -> bool {
        self.tasks.is_idle() && !self.autosave_due
    }

    /// Waits for the next event of background work (tests step the UI in between; a headless
    /// harness has no frame clock to wait on) and joins cancelled jobs.
    #[cfg(test)]
    pub fn wait_for_work(&mut self, timeout: Duration) {
        self.tasks.wait_for_any(timeout);
    }

    /// The run of experiments, if one is going (tests).
    #[cfg(test)]
    pub fn run_status(&self) -> Option<super::background::RunStatus<'_>> {
        self.tasks.run()
    }

    /// p95 of the frames' CPU time so far, in milliseconds.
    pub fn frame_p95_ms(&self) -> Option<f64> {
        if self.frames.cpu.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.frames.cpu.iter().map(|&s| s as f64 * 1000.0).collect();
        v.sort_by(f64::total_cmp);
        Some(quantbench::bench::quantile(&v, 0.95))
    }

    /// Closing the window: experiments stop (what finished is kept), writes in flight finish,
    /// unsaved changes to the session are saved, and the running-window marker goes.
    pub fn shut_down(&mut self) {
        for failure in self.tasks.shut_down(Duration::from_millis(100)) {
            eprintln!("{failure}");
        }
        let unsaved = match (&self.session_path, &self.session) {
            (Some(path), Some(s)) if self.autosave_due && worth_saving(s, path) => {
                Some((path.clone(), s.clone()))
            }
            _ => None,
        };
        if let Some((path, s)) = unsaved {
            let saved =
                quantbench::jobs::Job::<(), ()>::spawn("final-save", || {}, move |_| s.save(&path))
                    .map(|job| job.run_to_end(Duration::from_secs(600), |_| {}, |_| {}));
            match saved {
                Ok(quantbench::jobs::JobEnd::Failed(e)) | Err(e) => {
                    eprintln!("saving the session: {e:#}")
                }
                Ok(_) => {}
            }
        }
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_file(super::tasks::marker_path(dir, std::process::id()));
        }
    }
}

/// A session has something to lose once an experiment has a result or its file exists (an
/// autosave per window start otherwise).
fn worth_saving(session: &Session, path: &Path) -> bool {
    session.experiments.iter().any(|e| e.is_done()) || path.exists()
}

impl eframe::App for WorkbenchApp {
    fn logic(&mut self, _ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.frames.began = Some(Instant::now());
        WorkbenchApp::logic(self);
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        if let Some(cpu) = frame.info().cpu_usage {
            self.frames.cpu.push(cpu);
            if self.frames.cpu.len() > 100_000 {
                self.frames.cpu.drain(..50_000);
            }
        }
        self.draw(ui);
        if let Some(mut bench) = self.frame_bench.take() {
            // The script's command is part of the frame's work (applied after drawing, as
            // panel commands are); the frame counts in the phase the command starts.
            let done = bench.drive(self);
            if let Some(began) = self.frames.began {
                bench.record(began.elapsed().as_secs_f64() * 1000.0);
            }
            if done {
                ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
            } else {
                ui.ctx().request_repaint();
            }
            self.frame_bench = Some(bench);
        }
        if self.frames.first.is_none() {
            self.frames.first = Some(self.frames.started.elapsed());
        }
    }

    /// A screenshot shows the window as it is, not where the display's pointer happens to rest
    /// (the centre of Xvfb's screen: plot crosshairs and hover highlights otherwise).
    fn raw_input_hook(&mut self, _ctx: &egui::Context, raw_input: &mut egui::RawInput) {
        if self.screenshots.plan.is_some() {
            raw_input.events.retain(|e| {
                !matches!(
                    e,
                    egui::Event::PointerMoved(_)
                        | egui::Event::MouseMoved(_)
                        | egui::Event::PointerButton { .. }
                )
            });
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if let Ok(text) = ron::to_string(&self.persisted) {
            storage.set_string("quantbench", text);
        }
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.shut_down();
    }
}
