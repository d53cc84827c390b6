//! The app: state in one place, commands applied once per frame, job messages read in
//! `logic()`, everything drawn in `ui()`.
//!
//! The UI thread never does engine work. Opening a model, a session or a dataset (previews
//! included), running experiments, exporting, saving, autosaving and writing screenshots each
//! run as a job of the engine's job service ([`quantbench::jobs`]); the app keeps what it shows
//! until the job's result arrives, then applies it. A job that is no longer wanted (a model
//! opened while experiments ran on the previous one) is cancelled and kept until its thread
//! ends, so that dropping it never waits on the UI thread.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use eframe::egui;
use serde::{Deserialize, Serialize};

use quantbench::data::Dataset;
use quantbench::jobs::{Job, JobEnd, JobEvent};
use quantbench::onnx::{inspect::ModelSummary, pb};
use quantbench::quant::inspect::Inspection;
use quantbench::runner::RunSettings;
use quantbench::session::{DatasetRef, Experiment, Session};

use super::commands::{Commands, Variation};
use super::jobs::{ExperimentEvent, ExperimentsJob, JobInput};
use super::tasks::{self, EarlierWork, ExportSource, Interrupted, Loaded, OpenedDataset};
use super::{AppCommand, ScreenshotPlan, Startup};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CentralView {
    /// Trade-off plot and heatmap side by side, the comparison below.
    #[default]
    Overview,
    Tradeoff,
    Heatmap,
    Compare,
    /// One experiment's per-layer table.
    Layers,
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
            _ => Err(format!(
                "unknown view '{s}' (expected tradeoff, heatmap, compare, layers or all)"
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
}

pub struct LoadedModel {
    pub path: PathBuf,
    pub proto: Arc<pb::ModelProto>,
    pub summary: ModelSummary,
    pub bytes: u64,
}

pub struct LoadedDataset {
    pub path: PathBuf,
    /// Shared with the jobs that read it (experiments, a fit check for another model).
    pub dataset: Arc<Dataset>,
    /// Why the dataset does not fit the model, if it does not.
    pub mismatch: Option<String>,
    /// What had to be guessed to read it (a folder or file opened without a description).
    pub notes: Vec<String>,
    pub previews: Vec<(egui::TextureHandle, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Level {
    Info,
    Error,
}

/// Work from an earlier run the user can take up.
pub enum Offer {
    /// A window that is gone was working on this session.
    Interrupted(Interrupted),
    /// The model just opened has results autosaved by an earlier run.
    Earlier(EarlierWork),
}

/// What panels see of the app during one frame.
pub struct AppCtx<'a> {
    pub model: Option<&'a LoadedModel>,
    pub dataset: Option<&'a LoadedDataset>,
    pub session: Option<&'a Session>,
    pub job: Option<&'a ExperimentsJob>,
    /// A model, session or dataset is being opened.
    pub loading: bool,
    /// What runs in the background besides experiments (label, whether it can be stopped).
    pub activity: Vec<(String, bool)>,
    pub offer: Option<&'a Offer>,
    pub messages: &'a [(Level, String)],
    pub recent: &'a [String],
    pub selected: Option<usize>,
    pub keep_float: &'a [String],
    /// The output accuracy is scored on (`None`: the first).
    pub scored_output: Option<&'a str>,
    /// p95 of frame CPU time so far (not shown in tests).
    pub frame_p95_ms: Option<f64>,
    /// Why the current settings cannot become an experiment, if they cannot.
    pub settings_error: Option<String>,
    /// Where benchmarks run (`[user@]host[:port]`; empty: this machine).
    pub bench_device: &'a str,
    pub commands: &'a Commands,
    /// Hide clocks and durations so test snapshots are stable.
    pub is_test: bool,
}

/// One background job of the window with what it is doing, in words.
struct Task<T> {
    label: String,
    job: Job<(), T>,
}

/// A cancelled job whose thread has not ended yet: dropped (and so joined) once it has.
trait Retiring {
    fn is_finished(&self) -> bool;
}

impl<M, T> Retiring for Job<M, T> {
    fn is_finished(&self) -> bool {
        Job::is_finished(self)
    }
}

pub struct WorkbenchApp {
    pub persisted: Persisted,
    pub model: Option<LoadedModel>,
    pub dataset: Option<LoadedDataset>,
    pub session: Option<Session>,
    /// The session's file: where it is saved after each finished experiment (the file the
    /// user saved or opened, or an autosave in the data folder); `None`: nowhere.
    pub session_path: Option<PathBuf>,
    pub job: Option<ExperimentsJob>,
    /// Float outputs and calibrations of the open model and dataset, kept between runs.
    workbench: super::jobs::SharedWorkbench,
    pub selected: Option<usize>,
    pub messages: Vec<(Level, String)>,
    pub is_test: bool,
    pub sweep_settings: RunSettings,
    pub settings: super::settings_panel::SettingsPanel,
    /// Autosaves, kept models of unsaved sessions and the running-window marker live here;
    /// `None`: nothing is written outside the files the user names.
    pub data_dir: Option<PathBuf>,
    pub offer: Option<Offer>,
    /// Keeps a test's data folder alive as long as the app.
    #[cfg(test)]
    pub temp: Option<tempfile::TempDir>,
    loading: Option<Task<Loaded>>,
    /// Dataset commands given while a model was opening: applied once it is open.
    deferred: Vec<AppCommand>,
    writes: Vec<Task<String>>,
    autosave: Option<Task<String>>,
    autosave_due: bool,
    interrupted_check: Option<Job<(), Option<Interrupted>>>,
    retired: Vec<Box<dyn Retiring>>,
    /// The first model load of a window started on a model: add the standard preset to an
    /// empty session, and run it in screenshot mode.
    startup_pending: bool,
    toolbar: super::toolbar::Toolbar,
    model_panel: super::model_panel::ModelPanel,
    dataset_panel: super::dataset_panel::DatasetPanel,
    experiments_panel: super::experiments_panel::ExperimentsPanel,
    tradeoff: super::tradeoff::TradeoffView,
    heatmap: super::heatmap::HeatmapView,
    compare: super::compare::CompareView,
    layers_view: super::layers_view::LayersView,
    /// The calibration inspector: being computed (for an experiment), or shown.
    inspecting: Option<(usize, Task<Inspection>)>,
    pub inspection: Option<(usize, Inspection)>,
    commands: Commands,
    frame_cpu: Vec<f32>,
    pub first_frame: Option<Duration>,
    started: Instant,
    screenshot_plan: Option<ScreenshotPlan>,
    screenshot_tx: SyncSender<(PathBuf, Arc<egui::ColorImage>)>,
    screenshot_rx: Receiver<(PathBuf, Arc<egui::ColorImage>)>,
    screenshot_pending: bool,
    settled_frames: usize,
    ctx: Option<egui::Context>,
    frame_bench: Option<super::frame_bench::FrameBench>,
    /// When this frame's `logic()` began (the UI thread's work in a frame: logic + ui).
    frame_began: Option<Instant>,
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

fn repaint_fn(ctx: &Option<egui::Context>) -> impl Fn() + Send + Sync + 'static {
    let ctx = ctx.clone();
    move || {
        if let Some(c) = &ctx {
            c.request_repaint();
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
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
        app.sweep_settings.remote = persisted.bench_device.parse().ok();
        app.persisted = persisted;
        app.data_dir = eframe::storage_dir("quantbench");
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
        self.screenshot_plan = startup.screenshot;
        self.frame_bench = startup.frame_bench.map(super::frame_bench::FrameBench::new);
        if let (Some(dir), None, None) = (&self.data_dir, &self.screenshot_plan, &self.frame_bench)
        {
            let dir = dir.clone();
            self.interrupted_check =
                Job::spawn("recovery-check", repaint_fn(&self.ctx), move |_| {
                    let found = tasks::find_interrupted(&dir)?;
                    tasks::write_marker(&dir, None)?;
                    Ok(found)
                })
                .map_err(|e| self.error(&e))
                .ok();
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
        let (screenshot_tx, screenshot_rx) = sync_channel(4);
        let mut sweep_settings = RunSettings::default();
        sweep_settings.bench.runs = 50;
        sweep_settings.bench.warmup = 5;
        // No runtimes named: the job picks tract, and ONNX Runtime when it finds the library
        // (looking for it runs python3, which start-up should not wait for).
        sweep_settings.backends = vec![];
        WorkbenchApp {
            persisted: Persisted::default(),
            model: None,
            dataset: None,
            session: None,
            session_path: None,
            job: None,
            selected: None,
            messages: vec![],
            is_test: false,
            sweep_settings,
            settings: Default::default(),
            data_dir: None,
            offer: None,
            #[cfg(test)]
            temp: None,
            loading: None,
            workbench: Default::default(),
            deferred: vec![],
            writes: vec![],
            autosave: None,
            autosave_due: false,
            interrupted_check: None,
            retired: vec![],
            startup_pending: false,
            toolbar: Default::default(),
            model_panel: Default::default(),
            dataset_panel: Default::default(),
            experiments_panel: Default::default(),
            tradeoff: Default::default(),
            heatmap: Default::default(),
            compare: Default::default(),
            layers_view: Default::default(),
            inspecting: None,
            inspection: None,
            commands: Commands::default(),
            frame_cpu: vec![],
            first_frame: None,
            started,
            screenshot_plan: None,
            screenshot_tx,
            screenshot_rx,
            screenshot_pending: false,
            settled_frames: 0,
            ctx,
            frame_bench: None,
            frame_began: None,
        }
    }

    fn info(&mut self, text: impl Into<String>) {
        self.messages.push((Level::Info, text.into()));
    }

    fn error(&mut self, e: &anyhow::Error) {
        self.messages.push((Level::Error, format!("{e:#}")));
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

    /// Runs `work` as a write of the window: its message is shown when it is done.
    fn write(
        &mut self,
        label: String,
        work: impl FnOnce() -> Result<String> + Send + 'static,
    ) -> Result<()> {
        let job = Job::spawn("write", repaint_fn(&self.ctx), move |_| work())?;
        self.writes.push(Task { label, job });
        Ok(())
    }

    /// Starts opening something (a model, a session, a dataset); one at a time: a newer
    /// request stops the one in flight.
    fn load(
        &mut self,
        label: String,
        work: impl FnOnce() -> Result<Loaded> + Send + 'static,
    ) -> Result<()> {
        if let Some(old) = self.loading.take() {
            old.job.cancel();
            self.retired.push(Box::new(old.job));
        }
        let job = Job::spawn("open", repaint_fn(&self.ctx), move |_| work())?;
        self.loading = Some(Task { label, job });
        Ok(())
    }

    pub fn apply(&mut self, command: AppCommand) {
        let _frame = FrameMark::enter();
        if let Err(e) = self.try_apply(command) {
            self.error(&e);
        }
    }

    fn try_apply(&mut self, command: AppCommand) -> Result<()> {
        match command {
            AppCommand::OpenPath(path) => {
                self.remember(&path);
                let sessions = self.sessions_dir();
                if path.extension().is_some_and(|e| e == "ron") {
                    let label = format!("Opening the session {}…", file_name(&path));
                    self.load(label, move || {
                        tasks::open_session(&path, sessions.as_deref())
                            .map(|s| Loaded::Session(Box::new(s)))
                    })?;
                } else {
                    let label = format!("Opening {}…", file_name(&path));
                    let current = self.dataset.as_ref().map(|d| d.dataset.clone());
                    self.load(label, move || {
                        // A plan folder (`quantbench plan`, or Export plan here): merged.
                        if path.join(quantbench::plan::PLAN_FILE).is_file() {
                            return tasks::open_plan(&path, sessions.as_deref())
                                .map(|s| Loaded::Session(Box::new(s)));
                        }
                        tasks::open_model(&path, current, sessions.as_deref())
                            .map(|m| Loaded::Model(Box::new(m)))
                    })?;
                }
            }
            AppCommand::OpenDataset(path) => {
                if self.loading.is_some() {
                    self.deferred.push(AppCommand::OpenDataset(path));
                    return Ok(());
                }
                let model = match &self.model {
                    Some(m) => m.proto.clone(),
                    None => {
                        return Err(anyhow!(
                            "open a model first: a folder or file is read for the model's inputs"
                        ))
                    }
                };
                let label = format!("Opening the data {}…", file_name(&path));
                self.load(label, move || {
                    tasks::open_dataset(&path, &model).map(|d| Loaded::Dataset(Box::new(d)))
                })?;
            }
            AppCommand::ApplyDatasetDesc(desc) => {
                if self.loading.is_some() {
                    self.deferred.push(AppCommand::ApplyDatasetDesc(desc));
                    return Ok(());
                }
                let (d, m) = match (&self.dataset, &self.model) {
                    (Some(d), Some(m)) => (d, m),
                    _ => return Err(anyhow!("no dataset is open")),
                };
                let (path, base, model) = (d.path.clone(), d.dataset.base.clone(), m.proto.clone());
                self.load("Applying the preprocessing…".into(), move || {
                    tasks::apply_description(*desc, &base, &path, &model)
                        .map(|d| Loaded::Dataset(Box::new(d)))
                })?;
            }
            AppCommand::SaveDatasetDesc(path) => {
                let d = self
                    .dataset
                    .as_ref()
                    .ok_or_else(|| anyhow!("no dataset is open"))?;
                let (desc, base) = (d.dataset.desc.clone(), d.dataset.base.clone());
                self.write(format!("Saving {}…", file_name(&path)), move || {
                    quantbench::data::infer::save_description(&desc, &base, &path)?;
                    Ok(format!("dataset description saved to {}", path.display()))
                })?;
            }
            AppCommand::CancelLoading => {
                if let Some(task) = self.loading.take() {
                    task.job.cancel();
                    self.retired.push(Box::new(task.job));
                    self.deferred.clear();
                    self.info(format!("stopped: {}", task.label.trim_end_matches('…')));
                }
            }
            AppCommand::SetScoredOutput(name) => {
                self.sweep_settings.output = name;
            }
            AppCommand::ToggleKeepFloat(name) => {
                let keep = &mut self.settings.config.keep_float;
                if let Some(i) = keep.iter().position(|k| *k == name) {
                    keep.remove(i);
                } else {
                    keep.push(name);
                }
                self.settings.sync_text();
            }
            AppCommand::AddExperiment => {
                let config = self.settings.config.clone();
                config.validate()?;
                let session = self
                    .session
                    .as_mut()
                    .ok_or_else(|| anyhow!("open a model first"))?;
                if !session.experiments.iter().any(|e| e.config.is_none()) {
                    session.add(Experiment::float());
                }
                session.add(Experiment::quantized(config));
                self.selected = Some(session.experiments.len() - 1);
            }
            AppCommand::AddPreset => {
                let samples = self.settings.config.samples;
                let session = self
                    .session
                    .as_mut()
                    .ok_or_else(|| anyhow!("open a model first"))?;
                for e in quantbench::session::standard_preset(samples) {
                    if !session.experiments.iter().any(|x| x.name == e.name) {
                        session.add(e);
                    }
                }
            }
            AppCommand::RemoveExperiment(i) => {
                let id = self
                    .session
                    .as_ref()
                    .and_then(|s| s.experiments.get(i))
                    .map(|e| e.id);
                if let (Some(id), Some(job)) = (id, self.job.as_ref()) {
                    if job.current == Some(id) || job.queued.contains(&id) {
                        return Err(anyhow!(
                            "experiment {} is queued or running: cancel first",
                            i + 1
                        ));
                    }
                }
                if let Some(s) = self.session.as_mut() {
                    if i < s.experiments.len() {
                        s.experiments.remove(i);
                        self.selected = None;
                        self.autosave_due = true;
                    }
                }
            }
            AppCommand::Select(i) => self.selected = i,
            AppCommand::Run => self.start_job()?,
            AppCommand::Cancel => {
                if let Some(job) = &self.job {
                    job.cancel();
                }
            }
            AppCommand::ExportModel { experiment, path } => self.export_model(experiment, path)?,
            AppCommand::SaveSession(path) => {
                let session = self
                    .session
                    .clone()
                    .ok_or_else(|| anyhow!("nothing to save"))?;
                quantbench::fileio::check_output_dir(&path)?;
                self.session_path = Some(path.clone());
                self.update_marker();
                self.write(format!("Saving {}…", file_name(&path)), move || {
                    session.save(&path)?;
                    Ok(format!("session saved to {}", path.display()))
                })?;
            }
            AppCommand::SaveScreenshot(path) => {
                quantbench::fileio::check_output_dir(&path)?;
                let tx = self.screenshot_tx.clone();
                let ctx = self.ctx.clone();
                if let Some(c) = &self.ctx {
                    c.request_screenshot(move |image| {
                        let _ = tx.try_send((path, image));
                        if let Some(c) = ctx {
                            c.request_repaint();
                        }
                    });
                }
            }
            AppCommand::ExportPlan(dir) => {
                let (model, dataset) = self.model_and_fitting_data()?;
                let pending: Vec<Experiment> = self
                    .session
                    .iter()
                    .flat_map(|s| &s.experiments)
                    .filter(|e| !e.is_done())
                    .cloned()
                    .collect();
                if pending.is_empty() {
                    return Err(anyhow!(
                        "no pending experiments to export as a plan: add some first"
                    ));
                }
                let (model, data) = (model.path.clone(), dataset.dataset.clone());
                let settings = self.sweep_settings.clone();
                self.write(
                    format!("Writing the plan {}…", file_name(&dir)),
                    move || tasks::export_plan(&dir, &model, &data, pending, &settings),
                )?;
            }
            AppCommand::SetBenchDevice(text) => {
                let text = text.trim().to_string();
                self.sweep_settings.remote = if text.is_empty() {
                    None
                } else {
                    let remote: quantbench::bench::remote::Remote = text.parse()?;
                    Some(remote)
                };
                self.persisted.bench_device = text;
            }
            AppCommand::ExportTable(path) => {
                let session = self
                    .session
                    .clone()
                    .ok_or_else(|| anyhow!("nothing to export"))?;
                self.write(format!("Writing {}…", file_name(&path)), move || {
                    tasks::export_table(&session, &path)?;
                    Ok(format!("table written to {}", path.display()))
                })?;
            }
            AppCommand::SetView(v) => self.persisted.view = v,
            AppCommand::DismissMessage(i) => {
                if i < self.messages.len() {
                    self.messages.remove(i);
                }
            }
            AppCommand::AcceptOffer => match self.offer.take() {
                Some(Offer::Interrupted(i)) => {
                    self.remove_markers(i.markers);
                    self.apply(AppCommand::OpenPath(i.session));
                }
                Some(Offer::Earlier(e)) => self.apply(AppCommand::OpenPath(e.path)),
                None => {}
            },
            AppCommand::DismissOffer => {
                if let Some(Offer::Interrupted(i)) = self.offer.take() {
                    self.remove_markers(i.markers);
                }
            }
            AppCommand::Vary { experiment, change } => self.vary(experiment, change)?,
            AppCommand::InspectCalibration { experiment, tensor } => {
                self.inspect_calibration(experiment, tensor)?
            }
            AppCommand::CloseInspector => {
                self.inspection = None;
                if let Some((_, task)) = self.inspecting.take() {
                    task.job.cancel();
                    self.retired.push(Box::new(task.job));
                }
            }
        }
        Ok(())
    }

    /// Adds a variant of experiment `index` (a layer toggled between int8 and float, a range
    /// pinned) and runs it: the workbench reuses the parent's calibration and float outputs.
    fn vary(&mut self, index: usize, change: Variation) -> Result<()> {
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| anyhow!("open a model first"))?;
        let parent = session
            .experiments
            .get(index)
            .ok_or_else(|| anyhow!("no experiment {}", index + 1))?;
        let mut config = parent.config.clone().ok_or_else(|| {
            anyhow!("the float model has nothing to vary: choose a quantized experiment")
        })?;
        let what = match &change {
            Variation::ToggleFloat(node) => {
                if let Some(i) = config.keep_float.iter().position(|k| k == node) {
                    config.keep_float.remove(i);
                    format!("{node} int8")
                } else {
                    config.keep_float.push(node.clone());
                    format!("{node} float")
                }
            }
            Variation::Pin(tensor, range) => {
                config.pinned_ranges.insert(tensor.clone(), *range);
                format!("{tensor} pinned [{:.4}, {:.4}]", range.0, range.1)
            }
            Variation::ToggleInt16(tensor) => {
                let wide = &mut config.int16_activations;
                if let Some(i) = wide.iter().position(|t| t == tensor) {
                    wide.remove(i);
                    format!("{tensor} 8-bit")
                } else {
                    wide.push(tensor.clone());
                    format!("{tensor} 16-bit")
                }
            }
            Variation::Unpin(tensor) => {
                config.pinned_ranges.remove(tensor);
                format!("{tensor} unpinned")
            }
        };
        config.validate()?;
        if let Some(i) = session
            .experiments
            .iter()
            .position(|e| e.config.as_ref() == Some(&config))
        {
            self.selected = Some(i);
            self.info(format!("experiment {} already has these settings", i + 1));
            return Ok(());
        }
        let mut child = Experiment::quantized(config);
        child.parent = Some(parent.id);
        child.name = format!("{} · {what}", index + 1);
        session.add(child);
        self.selected = Some(session.experiments.len() - 1);
        self.autosave_due = true;
        if self.job.is_some() {
            self.info("variant added: it runs with the next Run, once these experiments end");
            return Ok(());
        }
        self.start_job()
    }

    fn inspect_calibration(&mut self, index: usize, tensor: String) -> Result<()> {
        let config = self
            .session
            .as_ref()
            .and_then(|s| s.experiments.get(index))
            .and_then(|e| e.config.clone())
            .unwrap_or_else(|| self.settings.config.clone());
        let (Some(model), Some(dataset)) = (&self.model, &self.dataset) else {
            return Err(anyhow!("open a model and a dataset first"));
        };
        let (proto, data) = (model.proto.clone(), dataset.dataset.clone());
        let label = format!("Calibrating {tensor}…");
        let job = Job::spawn("inspect", repaint_fn(&self.ctx), move |cx| {
            quantbench::quant::inspect::inspect(&proto, &config, &data, &tensor, &cx.progress)
        })?;
        if let Some((_, old)) = self.inspecting.replace((index, Task { label, job })) {
            old.job.cancel();
            self.retired.push(Box::new(old.job));
        }
        Ok(())
    }

    fn poll_inspecting(&mut self) {
        let Some((_, task)) = self.inspecting.as_mut() else {
            return;
        };
        let ended = task.job.poll(4).into_iter().find_map(|e| match e {
            JobEvent::End(end) => Some(end),
            JobEvent::Message(()) => None,
        });
        let Some(end) = ended else { return };
        let Some((index, _)) = self.inspecting.take() else {
            return;
        };
        match end {
            JobEnd::Done(found) => self.inspection = Some((index, found)),
            JobEnd::Cancelled => {}
            JobEnd::Failed(e) => self.error(&e.context("calibration inspector")),
        }
    }

    fn remove_markers(&mut self, markers: Vec<PathBuf>) {
        let result = self.write(String::new(), move || {
            for m in markers {
                let _ = std::fs::remove_file(m);
            }
            Ok(String::new())
        });
        if let Err(e) = result {
            self.error(&e);
        }
    }

    /// Tells the data folder which session this window works on (what to recover if it dies).
    fn update_marker(&mut self) {
        let (Some(dir), None) = (self.data_dir.clone(), &self.screenshot_plan) else {
            return;
        };
        let session = self.session_path.clone();
        let result = self.write(String::new(), move || {
            tasks::write_marker(&dir, session.as_deref())?;
            Ok(String::new())
        });
        if let Err(e) = result {
            self.error(&e);
        }
    }

    /// What an open finished with, applied on the UI thread (no engine work: the job did it).
    fn apply_loaded(&mut self, loaded: Loaded) {
        match loaded {
            Loaded::Model(m) => {
                let m = *m;
                // The new session first: what follows (its dataset) belongs to it.
                self.session = Some(m.session);
                self.session_path = m.autosave;
                self.install_model(m.path, m.proto, m.summary, m.model_ref.bytes, m.dataset);
                if let (Some(fit), Some(d)) = (m.current_fit, self.dataset.as_mut()) {
                    d.mismatch = fit;
                }
                // An interrupted session stays offered until answered.
                if !matches!(self.offer, Some(Offer::Interrupted(_))) {
                    self.offer = m.earlier.map(Offer::Earlier);
                }
                self.sync_session_dataset();
                self.update_marker();
            }
            Loaded::Session(s) => {
                let s = *s;
                let m = s.model;
                self.session = Some(s.session);
                self.session_path = Some(s.path);
                self.install_model(m.path, m.proto, m.summary, m.model_ref.bytes, m.dataset);
                if let Some(changed) = s.changed {
                    self.messages.push((Level::Error, changed));
                }
                for note in s.notes {
                    self.messages.push((Level::Info, note));
                }
                if matches!(self.offer, Some(Offer::Earlier(_))) {
                    self.offer = None;
                }
                self.update_marker();
            }
            Loaded::Dataset(d) => self.install_dataset(*d),
        }
    }

    fn install_model(
        &mut self,
        path: PathBuf,
        proto: Arc<pb::ModelProto>,
        summary: ModelSummary,
        bytes: u64,
        dataset: Option<std::result::Result<OpenedDataset, String>>,
    ) {
        // Experiments of the previous model stop; what they finished was saved.
        if let Some(job) = self.job.take() {
            job.cancel();
            self.retired.push(Box::new(job.into_job()));
        }
        self.selected = None;
        self.workbench = Default::default();
        self.model = Some(LoadedModel {
            path,
            proto,
            summary,
            bytes,
        });
        self.settings.config.keep_float.clear();
        self.settings.sync_text();
        match dataset {
            Some(Ok(d)) => self.install_dataset(d),
            Some(Err(e)) => {
                self.messages.push((Level::Error, e.clone()));
                if let Some(d) = self.dataset.as_mut() {
                    d.mismatch = Some(e);
                }
            }
            None => {}
        }
    }

    fn install_dataset(&mut self, d: OpenedDataset) {
        let previews = match &self.ctx {
            Some(ctx) => d
                .previews
                .into_iter()
                .enumerate()
                .map(|(i, (image, caption))| {
                    let name = format!("sample{i}");
                    (
                        ctx.load_texture(name, image, egui::TextureOptions::NEAREST),
                        caption,
                    )
                })
                .collect(),
            None => vec![],
        };
        self.dataset_panel.edit(&d.dataset.desc);
        self.workbench = Default::default();
        self.dataset = Some(LoadedDataset {
            path: d.path,
            dataset: d.dataset,
            mismatch: d.mismatch,
            notes: d.notes,
            previews,
        });
        self.sync_session_dataset();
    }

    fn sync_session_dataset(&mut self) {
        if let (Some(s), Some(d)) = (self.session.as_mut(), self.dataset.as_ref()) {
            let now = DatasetRef::of(&d.dataset);
            if s.dataset.as_ref() != Some(&now) {
                s.dataset = Some(now);
                self.autosave_due = true;
            }
        }
    }

    /// The open model and a dataset that fits it: what running or planning experiments needs.
    fn model_and_fitting_data(&self) -> Result<(&LoadedModel, &LoadedDataset)> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| anyhow!("open a model first"))?;
        let dataset = self
            .dataset
            .as_ref()
            .ok_or_else(|| anyhow!("open a dataset first (the Dataset section)"))?;
        if let Some(m) = &dataset.mismatch {
            return Err(anyhow!("the dataset does not fit the model: {m}"));
        }
        Ok((model, dataset))
    }

    fn start_job(&mut self) -> Result<()> {
        if self.job.is_some() {
            return Err(anyhow!("experiments are already running"));
        }
        if let Some(task) = &self.loading {
            return Err(anyhow!("wait: {}", task.label));
        }
        let (model, dataset) = self.model_and_fitting_data()?;
        let session = self
            .session
            .as_ref()
            .ok_or_else(|| anyhow!("open a model first"))?;
        let experiments: Vec<Experiment> = session
            .experiments
            .iter()
            .filter(|e| !e.is_done())
            .cloned()
            .collect();
        if experiments.is_empty() {
            return Err(anyhow!("every experiment has results: add one first"));
        }
        let input = JobInput {
            model: model.proto.clone(),
            model_bytes: model.bytes,
            dataset: dataset.dataset.clone(),
            experiments,
            settings: RunSettings {
                // Quantized models are kept beside the session, so export copies a file
                // instead of calibrating again.
                models_dir: self.models_dir(),
                ..self.sweep_settings.clone()
            },
            workbench: self.workbench.clone(),
        };
        self.job = Some(
            ExperimentsJob::spawn(input, repaint_fn(&self.ctx))
                .context("starting the experiments")?,
        );
        Ok(())
    }

    fn export_model(&mut self, index: usize, path: PathBuf) -> Result<()> {
        let session = self.session.as_ref().ok_or_else(|| anyhow!("no session"))?;
        let e = session
            .experiments
            .get(index)
            .ok_or_else(|| anyhow!("no experiment {}", index + 1))?;
        let model = self.model.as_ref().ok_or_else(|| anyhow!("no model"))?;
        if let Some(error) = &e.result.error {
            return Err(anyhow!(
                "experiment {} ({}) failed, there is no model to export: {error}",
                index + 1,
                e.name
            ));
        }
        let source = match (&e.config, &e.result.model_path) {
            (None, _) => ExportSource::Float(model.proto.clone()),
            (Some(_), Some(kept)) => ExportSource::Kept(PathBuf::from(kept)),
            (Some(_), None) if !e.is_done() => {
                return Err(anyhow!(
                    "experiment {} ({}) has not run yet: run it, then export",
                    index + 1,
                    e.name
                ))
            }
            (Some(_), None) => {
                return Err(anyhow!(
                    "experiment {} ({}) kept no model file (it ran without a session folder): run it again to export it",
                    index + 1,
                    e.name
                ))
            }
        };
        quantbench::fileio::check_output_dir(&path)?;
        let name = e.name.clone();
        self.write(format!("Exporting {name}…"), move || {
            tasks::export(source, &path)?;
            Ok(format!("{name} exported to {}", path.display()))
        })?;
        Ok(())
    }

    /// Reads job messages within a per-frame budget, applies finished work, saves the session
    /// after each result.
    pub fn logic(&mut self) {
        let _frame = FrameMark::enter();
        self.retired.retain(|j| !j.is_finished());
        for (path, image) in self.screenshot_rx.try_iter().collect::<Vec<_>>() {
            let closing = self.screenshot_plan.is_some();
            let ctx = self.ctx.clone();
            let result = self.write(format!("Saving {}…", file_name(&path)), move || {
                tasks::save_png(&path, &image)?;
                if closing {
                    if let Some(c) = ctx {
                        c.send_viewport_cmd(egui::ViewportCommand::Close);
                    }
                }
                Ok(format!("screenshot saved to {}", path.display()))
            });
            if let Err(e) = result {
                self.error(&e);
            }
            self.screenshot_pending = false;
        }
        self.poll_interrupted_check();
        self.poll_loading();
        self.poll_writes();
        self.poll_inspecting();
        self.poll_experiments();
        if self.autosave_due && self.autosave.is_none() && self.job.is_none() {
            self.start_autosave();
        }
    }

    fn poll_interrupted_check(&mut self) {
        let Some(job) = self.interrupted_check.as_mut() else {
            return;
        };
        for event in job.poll(4) {
            if let JobEvent::End(end) = event {
                match end {
                    JobEnd::Done(Some(found)) => self.offer = Some(Offer::Interrupted(found)),
                    JobEnd::Done(None) | JobEnd::Cancelled => {}
                    JobEnd::Failed(e) => self.messages.push((
                        Level::Error,
                        format!("looking for an interrupted session: {e:#}"),
                    )),
                }
                self.interrupted_check = None;
                break;
            }
        }
    }

    fn poll_loading(&mut self) {
        let Some(task) = self.loading.as_mut() else {
            return;
        };
        let mut end = None;
        for event in task.job.poll(4) {
            if let JobEvent::End(e) = event {
                end = Some(e);
            }
        }
        let Some(end) = end else { return };
        self.loading = None;
        let opened_model = match end {
            JobEnd::Done(loaded) => {
                let model = !matches!(loaded, Loaded::Dataset(_));
                self.apply_loaded(loaded);
                model
            }
            JobEnd::Cancelled => false,
            JobEnd::Failed(e) => {
                self.error(&e);
                false
            }
        };
        if opened_model && std::mem::take(&mut self.startup_pending) {
            // A model opened without a session comes with the standard preset, ready to run.
            if self
                .session
                .as_ref()
                .is_some_and(|s| s.experiments.is_empty())
            {
                self.apply(AppCommand::AddPreset);
            }
            let pending = self
                .session
                .as_ref()
                .is_some_and(|s| s.experiments.iter().any(|e| !e.is_done()));
            if self.screenshot_plan.is_some() && pending {
                self.apply(AppCommand::Run);
            }
        }
        for c in std::mem::take(&mut self.deferred) {
            self.apply(c);
        }
    }

    fn poll_writes(&mut self) {
        let mut finished = vec![];
        for (i, task) in self.writes.iter_mut().enumerate() {
            for event in task.job.poll(4) {
                if let JobEvent::End(end) = event {
                    finished.push((i, end));
                }
            }
        }
        for (i, end) in finished.into_iter().rev() {
            self.writes.remove(i);
            match end {
                JobEnd::Done(m) if m.is_empty() => {}
                JobEnd::Done(m) => self.info(m),
                JobEnd::Cancelled => {}
                JobEnd::Failed(e) => self.error(&e),
            }
        }
        if let Some(task) = self.autosave.as_mut() {
            let ended = task.job.poll(4).into_iter().find_map(|e| match e {
                JobEvent::End(end) => Some(end),
                JobEvent::Message(()) => None,
            });
            if let Some(end) = ended {
                self.autosave = None;
                if let JobEnd::Failed(e) = end {
                    self.messages
                        .push((Level::Error, format!("autosave: {e:#}")));
                }
            }
        }
    }

    fn start_autosave(&mut self) {
        self.autosave_due = false;
        let (Some(path), Some(session)) = (self.session_path.clone(), self.session.clone()) else {
            return;
        };
        if !worth_saving(&session, &path) {
            return;
        }
        let label = format!("Saving {}…", file_name(&path));
        match Job::spawn("autosave", repaint_fn(&self.ctx), move |_| {
            session.save(&path)?;
            Ok(String::new())
        }) {
            Ok(job) => self.autosave = Some(Task { label, job }),
            Err(e) => self.error(&e),
        }
    }

    fn poll_experiments(&mut self) {
        let Some(job) = self.job.as_mut() else { return };
        let mut finished = None;
        for event in job.poll(16) {
            match event {
                JobEvent::Message(ExperimentEvent::Started(_)) => {}
                JobEvent::Message(ExperimentEvent::Done(id, experiment)) => {
                    // By id: rows removed meanwhile do not move the result onto another one.
                    if let Some(s) = self.session.as_mut() {
                        if let Some(slot) = s.position(id).map(|i| &mut s.experiments[i]) {
                            *slot = *experiment;
                            self.autosave_due = true;
                        }
                    }
                }
                JobEvent::End(end) => finished = Some(end),
            }
        }
        // Saved after each result, while later experiments run.
        if self.autosave_due && self.autosave.is_none() {
            self.start_autosave();
        }
        if let Some(end) = finished {
            if let Some(job) = self.job.take() {
                self.retired.push(Box::new(job.into_job()));
            }
            match end {
                JobEnd::Done(()) => {}
                JobEnd::Cancelled => self.info("cancelled; finished experiments are kept"),
                JobEnd::Failed(e) => self.messages.push((Level::Error, format!("{e:#}"))),
            }
        }
    }

    /// Nothing runs in the background.
    pub fn is_idle(&self) -> bool {
        self.job.is_none()
            && self.loading.is_none()
            && self.writes.is_empty()
            && self.autosave.is_none()
            && !self.autosave_due
            && self.interrupted_check.is_none()
            && self.inspecting.is_none()
    }

    /// Waits for the next event of background work (tests step the UI in between; a headless
    /// harness has no frame clock to wait on) and joins cancelled jobs.
    #[cfg(test)]
    pub fn wait_for_work(&mut self, timeout: Duration) {
        self.retired.clear();
        if let Some(t) = self.loading.as_mut() {
            t.job.wait_and_keep(timeout);
        } else if let Some(t) = self.writes.first_mut() {
            t.job.wait_and_keep(timeout);
        } else if let Some(t) = self.autosave.as_mut() {
            t.job.wait_and_keep(timeout);
        } else if let Some(j) = self.interrupted_check.as_mut() {
            j.wait_and_keep(timeout);
        } else if let Some((_, t)) = self.inspecting.as_mut() {
            t.job.wait_and_keep(timeout);
        } else if let Some(j) = self.job.as_mut() {
            j.wait_and_keep(timeout);
        }
    }

    #[cfg(test)]
    pub fn job_mut(&mut self) -> Option<&mut ExperimentsJob> {
        self.job.as_mut()
    }

    /// p95 of the frames' CPU time so far, in milliseconds.
    pub fn frame_p95_ms(&self) -> Option<f64> {
        if self.frame_cpu.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.frame_cpu.iter().map(|&s| s as f64 * 1000.0).collect();
        v.sort_by(f64::total_cmp);
        Some(quantbench::bench::quantile(&v, 0.95))
    }

    /// Screenshot mode: once every experiment has run and a few frames have settled, grab it.
    fn drive_screenshot(&mut self, ctx: &egui::Context) {
        let Some(plan) = self.screenshot_plan.clone() else {
            return;
        };
        if !self.is_idle() || self.screenshot_pending {
            return;
        }
        let inspect = self.screenshot_plan.as_mut().and_then(|p| p.inspect.take());
        if let Some(tensor) = inspect {
            let last = self.session.as_ref().and_then(|s| {
                s.experiments
                    .iter()
                    .rposition(|e| e.config.is_some() && e.is_done())
            });
            self.selected = self.selected.or(last);
            let experiment = self.selected.unwrap_or(0);
            self.apply(AppCommand::InspectCalibration { experiment, tensor });
            return;
        }
        self.settled_frames += 1;
        ctx.request_repaint();
        if self.settled_frames == 5 {
            if let (Some(out), Some(s)) = (&plan.session_out, &self.session) {
                let (out, s) = (out.clone(), s.clone());
                let result = self.write(format!("Saving {}…", file_name(&out)), move || {
                    s.save(&out)?;
                    Ok(String::new())
                });
                if let Err(e) = result {
                    self.error(&e);
                }
            }
            self.screenshot_pending = true;
            self.apply(AppCommand::SaveScreenshot(plan.out.clone()));
            if let Some(p95) = self.frame_p95_ms() {
                eprintln!(
                    "frames: {} , CPU time p95 {p95:.1} ms; first frame {:.0} ms after start",
                    self.frame_cpu.len(),
                    self.first_frame
                        .map(|d| d.as_secs_f64() * 1000.0)
                        .unwrap_or(0.0)
                );
            }
        }
    }

    fn activity(&self) -> Vec<(String, bool)> {
        let mut out = vec![];
        if let Some(t) = &self.loading {
            out.push((t.label.clone(), true));
        }
        if let Some((_, t)) = &self.inspecting {
            out.push((t.label.clone(), false));
        }
        for t in self.writes.iter().chain(&self.autosave) {
            if !t.label.is_empty() {
                out.push((t.label.clone(), false));
            }
        }
        out
    }

    pub fn draw(&mut self, ui: &mut egui::Ui) {
        let _frame = FrameMark::enter();
        let ctx = ui.ctx().clone();
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        for p in dropped {
            self.commands.send(AppCommand::OpenPath(p));
        }
        let keep_float = self.settings.config.keep_float.clone();
        let settings_error = self.settings.first_error();
        let activity = self.activity();
        let app_ctx = AppCtx {
            model: self.model.as_ref(),
            dataset: self.dataset.as_ref(),
            session: self.session.as_ref(),
            job: self.job.as_ref(),
            loading: self.loading.is_some(),
            activity,
            offer: self.offer.as_ref(),
            messages: &self.messages,
            recent: &self.persisted.recent,
            selected: self.selected,
            keep_float: &keep_float,
            scored_output: self.sweep_settings.output.as_deref(),
            settings_error,
            bench_device: &self.persisted.bench_device,
            frame_p95_ms: if self.is_test {
                None
            } else {
                self.frame_p95_ms()
            },
            commands: &self.commands,
            is_test: self.is_test,
        };
        let (toolbar, view) = (&mut self.toolbar, self.persisted.view);
        egui::Panel::top("toolbar").show(ui, |ui| toolbar.ui(ui, &app_ctx, view));
        let (model_panel, dataset_panel, settings, experiments_panel) = (
            &mut self.model_panel,
            &mut self.dataset_panel,
            &mut self.settings,
            &mut self.experiments_panel,
        );
        let tab = &mut self.persisted.setup_tab;
        egui::Panel::left("setup")
            .default_size(340.0)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.selectable_value(tab, SetupTab::Model, "Model");
                    ui.selectable_value(tab, SetupTab::Dataset, "Dataset");
                    ui.selectable_value(tab, SetupTab::Settings, "Settings");
                });
                ui.separator();
                egui::ScrollArea::vertical().show(ui, |ui| match tab {
                    SetupTab::Model => model_panel.ui(ui, &app_ctx),
                    SetupTab::Dataset => dataset_panel.ui(ui, &app_ctx),
                    SetupTab::Settings => settings.ui(ui, &app_ctx),
                });
            });
        egui::Panel::bottom("experiments")
            .resizable(true)
            .default_size(210.0)
            .show(ui, |ui| {
                experiments_panel.ui(ui, &app_ctx);
            });
        let (tradeoff, heatmap, compare, layers_view) = (
            &mut self.tradeoff,
            &mut self.heatmap,
            &mut self.compare,
            &mut self.layers_view,
        );
        egui::CentralPanel::default().show(ui, |ui| match view {
            CentralView::Overview => {
                let full = ui.available_size();
                let top = (full.y * 0.6).max(220.0);
                let half = (full.x - 16.0) / 2.0;
                ui.horizontal_top(|ui| {
                    for side in 0..2 {
                        let layout = egui::Layout::top_down(egui::Align::Min);
                        ui.allocate_ui_with_layout(egui::vec2(half, top), layout, |ui| {
                            ui.set_min_size(egui::vec2(half, top));
                            if side == 0 {
                                tradeoff.ui(ui, &app_ctx);
                            } else {
                                heatmap.ui(ui, &app_ctx);
                            }
                        });
                        if side == 0 {
                            ui.add_sized([8.0, top], egui::Separator::default().vertical());
                        }
                    }
                });
                ui.separator();
                compare.ui(ui, &app_ctx);
            }
            CentralView::Tradeoff => tradeoff.ui(ui, &app_ctx),
            CentralView::Heatmap => heatmap.ui(ui, &app_ctx),
            CentralView::Compare => compare.ui(ui, &app_ctx),
            CentralView::Layers => layers_view.ui(ui, &app_ctx),
        });
        if let Some((experiment, found)) = &self.inspection {
            super::layers_view::inspector_window(&ctx, &app_ctx, *experiment, found);
        }
        for c in self.commands.take() {
            self.apply(c);
        }
        self.drive_screenshot(&ctx);
        if !self.is_idle() {
            // Progress bars, spinners and elapsed time move: keep drawing while work is in
            // flight.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    /// Closing the window: experiments stop (what finished is kept), writes in flight finish,
    /// unsaved changes to the session are saved, and the running-window marker goes.
    pub fn shut_down(&mut self) {
        if let Some(job) = self.job.take() {
            job.cancel();
            drop(job.into_job());
        }
        self.loading = None;
        self.retired.clear();
        for task in std::mem::take(&mut self.writes)
            .into_iter()
            .chain(self.autosave.take())
        {
            let label = task.label;
            let end = task
                .job
                .run_to_end(Duration::from_secs(600), |_| {}, |_| {});
            if let JobEnd::Failed(e) = end {
                eprintln!("{label}: {e:#}");
            }
        }
        let unsaved = match (&self.session_path, &self.session) {
            (Some(path), Some(s)) if self.autosave_due && worth_saving(s, path) => {
                Some((path.clone(), s.clone()))
            }
            _ => None,
        };
        if let Some((path, s)) = unsaved {
            let saved = Job::<(), ()>::spawn("final-save", || {}, move |_| s.save(&path))
                .map(|job| job.run_to_end(Duration::from_secs(600), |_| {}, |_| {}));
            match saved {
                Ok(JobEnd::Failed(e)) | Err(e) => eprintln!("saving the session: {e:#}"),
                Ok(_) => {}
            }
        }
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_file(tasks::marker_path(dir, std::process::id()));
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
        self.frame_began = Some(Instant::now());
        WorkbenchApp::logic(self);
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        if let Some(cpu) = frame.info().cpu_usage {
            self.frame_cpu.push(cpu);
            if self.frame_cpu.len() > 100_000 {
                self.frame_cpu.drain(..50_000);
            }
        }
        self.draw(ui);
        if let Some(mut bench) = self.frame_bench.take() {
            // The script's command is part of the frame's work (applied after drawing, as
            // panel commands are); the frame counts in the phase the command starts.
            let done = bench.drive(self);
            if let Some(began) = self.frame_began {
                bench.record(began.elapsed().as_secs_f64() * 1000.0);
            }
            if done {
                ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
            } else {
                ui.ctx().request_repaint();
            }
            self.frame_bench = Some(bench);
        }
        if self.first_frame.is_none() {
            self.first_frame = Some(self.started.elapsed());
        }
    }

    /// A screenshot shows the window as it is, not where the display's pointer happens to rest
    /// (the centre of Xvfb's screen: plot crosshairs and hover highlights otherwise).
    fn raw_input_hook(&mut self, _ctx: &egui::Context, raw_input: &mut egui::RawInput) {
        if self.screenshot_plan.is_some() {
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
