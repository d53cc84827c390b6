//! The app: state in one place, commands applied once per frame, job messages read in
//! `logic()`, everything drawn in `ui()`.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use eframe::egui;
use serde::{Deserialize, Serialize};

use quantbench::data::Dataset;
use quantbench::onnx::{self, inspect::ModelSummary, pb};
use quantbench::session::{DatasetRef, Experiment, ModelRef, Session};
use quantbench::sweep::SweepSettings;

use super::jobs::{JobEnd, JobEvent, JobInput, RunningJob};
use super::{AppCommand, ScreenshotPlan, Startup};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CentralView {
    /// Trade-off plot and heatmap side by side, the comparison below.
    #[default]
    Overview,
    Tradeoff,
    Heatmap,
    Compare,
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
            _ => Err(format!(
                "unknown view '{s}' (expected tradeoff, heatmap, compare or all)"
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
}

pub struct LoadedModel {
    pub path: PathBuf,
    pub proto: pb::ModelProto,
    pub summary: ModelSummary,
    pub bytes: u64,
}

pub struct LoadedDataset {
    pub path: PathBuf,
    pub dataset: Dataset,
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

/// Sends commands from panels that only borrow the app's state.
#[derive(Default)]
pub struct Commands(RefCell<Vec<AppCommand>>);

impl Commands {
    pub fn send(&self, c: AppCommand) {
        self.0.borrow_mut().push(c);
    }
    fn take(&self) -> Vec<AppCommand> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

/// What panels see of the app during one frame.
pub struct AppCtx<'a> {
    pub model: Option<&'a LoadedModel>,
    pub dataset: Option<&'a LoadedDataset>,
    pub session: Option<&'a Session>,
    pub job: Option<&'a RunningJob>,
    pub selected: Option<usize>,
    pub keep_float: &'a [String],
    /// The output accuracy is scored on (`None`: the first).
    pub scored_output: Option<&'a str>,
    /// p95 of frame CPU time so far (not shown in tests).
    pub frame_p95_ms: Option<f64>,
    /// Why the current settings cannot become an experiment, if they cannot.
    pub settings_error: Option<String>,
    pub commands: &'a Commands,
    /// Hide clocks and durations so test snapshots are stable.
    pub is_test: bool,
}

pub struct WorkbenchApp {
    pub persisted: Persisted,
    pub model: Option<LoadedModel>,
    pub dataset: Option<LoadedDataset>,
    pub session: Option<Session>,
    /// Where the session is saved after each finished experiment.
    pub session_path: Option<PathBuf>,
    pub job: Option<RunningJob>,
    pub selected: Option<usize>,
    pub messages: Vec<(Level, String)>,
    pub is_test: bool,
    pub sweep_settings: SweepSettings,
    pub typed_path: String,
    pub settings: super::settings_panel::SettingsPanel,
    model_panel: super::model_panel::ModelPanel,
    dataset_panel: super::dataset_panel::DatasetPanel,
    experiments_panel: super::experiments_panel::ExperimentsPanel,
    tradeoff: super::tradeoff::TradeoffView,
    heatmap: super::heatmap::HeatmapView,
    compare: super::compare::CompareView,
    commands: Commands,
    frame_cpu: Vec<f32>,
    pub first_frame: Option<Duration>,
    started: Instant,
    screenshot_plan: Option<ScreenshotPlan>,
    screenshot_tx: Sender<(PathBuf, Arc<egui::ColorImage>)>,
    screenshot_rx: Receiver<(PathBuf, Arc<egui::ColorImage>)>,
    screenshot_pending: bool,
    settled_frames: usize,
    ctx: Option<egui::Context>,
}

fn repaint_fn(ctx: &Option<egui::Context>) -> impl Fn() + Send + Sync + 'static {
    let ctx = ctx.clone();
    move || {
        if let Some(c) = &ctx {
            c.request_repaint();
        }
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
        app.persisted = persisted;
        if let Some(plan) = &startup.screenshot {
            app.persisted.view = plan.view;
            app.persisted.setup_tab = plan.tab;
        }
        app.screenshot_plan = startup.screenshot;
        let target = startup
            .open
            .clone()
            .or_else(|| super::sample_dir().map(|d| d.join("model.onnx")));
        if let Some(path) = target {
            app.apply(AppCommand::OpenPath(path));
        }
        // A model opened without a session comes with the standard preset, ready to run.
        if app
            .session
            .as_ref()
            .is_some_and(|s| s.experiments.is_empty())
        {
            app.apply(AppCommand::AddPreset);
        }
        let pending = app
            .session
            .as_ref()
            .is_some_and(|s| s.experiments.iter().any(|e| !e.is_done()));
        if app.screenshot_plan.is_some() && pending {
            app.apply(AppCommand::Run);
        }
        app
    }

    /// An app with nothing open (tests build on it).
    pub fn empty(ctx: Option<egui::Context>, started: Instant) -> Self {
        let (screenshot_tx, screenshot_rx) = channel();
        let mut sweep_settings = SweepSettings::default();
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
            typed_path: String::new(),
            settings: Default::default(),
            model_panel: Default::default(),
            dataset_panel: Default::default(),
            experiments_panel: Default::default(),
            tradeoff: Default::default(),
            heatmap: Default::default(),
            compare: Default::default(),
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
        }
    }

    fn info(&mut self, text: impl Into<String>) {
        self.messages.push((Level::Info, text.into()));
    }

    fn error(&mut self, e: &anyhow::Error) {
        self.messages.push((Level::Error, format!("{e:#}")));
    }

    /// The autosave file: the session's own file, or one in the app's data folder.
    fn autosave_path(&self) -> Option<PathBuf> {
        self.session_path.clone().or_else(|| {
            if self.is_test {
                return None;
            }
            let dir = eframe::storage_dir("quantbench")?;
            std::fs::create_dir_all(&dir).ok()?;
            Some(dir.join("autosave.ron"))
        })
    }

    /// `SESSION.models/` beside the session file or the autosave, created; `None` when the
    /// session has no file (tests).
    fn models_dir(&self) -> Result<Option<PathBuf>> {
        let Some(session) = self.autosave_path() else {
            return Ok(None);
        };
        let dir = session.with_extension("models");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        Ok(Some(dir))
    }

    fn remember(&mut self, path: &Path) {
        let p = path.display().to_string();
        self.persisted.recent.retain(|r| *r != p);
        self.persisted.recent.insert(0, p);
        self.persisted.recent.truncate(8);
    }

    pub fn apply(&mut self, command: AppCommand) {
        if let Err(e) = self.try_apply(command) {
            self.error(&e);
        }
    }

    fn try_apply(&mut self, command: AppCommand) -> Result<()> {
        match command {
            AppCommand::OpenPath(path) => {
                if path.extension().is_some_and(|e| e == "ron") {
                    self.open_session(&path)?;
                } else {
                    self.open_model(&path)?;
                }
                self.remember(&path);
            }
            AppCommand::OpenDataset(path) => {
                let (dataset, notes) = match &self.model {
                    Some(m) => Dataset::open_for(&path, &m.proto, &Default::default())?,
                    None if path.extension().is_some_and(|e| e == "ron") => {
                        (Dataset::open(&path)?, vec![])
                    }
                    None => {
                        return Err(anyhow!(
                            "open a model first: a folder or file is read for the model's inputs"
                        ))
                    }
                };
                self.set_dataset(path, dataset);
                if let Some(d) = self.dataset.as_mut() {
                    d.notes = notes;
                }
            }
            AppCommand::ApplyDatasetDesc(desc) => {
                let path = self
                    .dataset
                    .as_ref()
                    .map(|d| d.path.clone())
                    .ok_or_else(|| anyhow!("no dataset is open"))?;
                let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
                let dataset = Dataset::from_desc(*desc, &base, &path)?;
                self.set_dataset(path, dataset);
            }
            AppCommand::SaveDatasetDesc(path) => {
                let d = self
                    .dataset
                    .as_ref()
                    .ok_or_else(|| anyhow!("no dataset is open"))?;
                let base = d.path.parent().unwrap_or(Path::new("."));
                quantbench::data::infer::save_description(&d.dataset.desc, base, &path)?;
                self.info(format!("dataset description saved to {}", path.display()));
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
            AppCommand::ExportModel { experiment, path } => self.export_model(experiment, &path)?,
            AppCommand::SaveSession(path) => {
                let session = self
                    .session
                    .as_ref()
                    .ok_or_else(|| anyhow!("nothing to save"))?;
                session.save(&path)?;
                self.session_path = Some(path.clone());
                self.info(format!("session saved to {}", path.display()));
            }
            AppCommand::SaveScreenshot(path) => {
                onnx::check_output_dir(&path)?;
                let tx = self.screenshot_tx.clone();
                let ctx = self.ctx.clone();
                if let Some(c) = &self.ctx {
                    c.request_screenshot(move |image| {
                        let _ = tx.send((path, image));
                        if let Some(c) = ctx {
                            c.request_repaint();
                        }
                    });
                }
            }
            AppCommand::ExportTable(path) => {
                let session = self
                    .session
                    .as_ref()
                    .ok_or_else(|| anyhow!("nothing to export"))?;
                let text = if path.extension().is_some_and(|e| e == "md") {
                    quantbench::report::to_markdown(session)
                } else {
                    quantbench::report::to_csv(session)
                };
                onnx::write_atomic(&path, text.as_bytes())?;
                self.info(format!("table written to {}", path.display()));
            }
            AppCommand::SetView(v) => self.persisted.view = v,
        }
        Ok(())
    }

    fn open_model(&mut self, path: &Path) -> Result<()> {
        let proto = onnx::read_model(path)?;
        let summary = onnx::inspect::summarize(&proto, path)?;
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if let Some(job) = self.job.take() {
            job.stop();
        }
        self.session = Some(Session::new(ModelRef::of_file(path)?, None));
        self.session_path = None;
        self.selected = None;
        self.model = Some(LoadedModel {
            path: path.to_path_buf(),
            proto,
            summary,
            bytes,
        });
        self.settings.config.keep_float.clear();
        self.settings.sync_text();
        // A dataset description beside the model is opened with it.
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Some(ds) = ["dataset.ron", "photos.ron"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
        {
            match Dataset::open(&ds) {
                Ok(d) => self.set_dataset(ds, d),
                Err(e) => self.error(&e),
            }
        } else if let Some(d) = &self.dataset {
            let check = self.check_fit(&d.dataset);
            if let Some(d) = self.dataset.as_mut() {
                d.mismatch = check.err().map(|e| format!("{e:#}"));
            }
        }
        self.sync_session_dataset();
        Ok(())
    }

    fn open_session(&mut self, path: &Path) -> Result<()> {
        let session = Session::load(path)?;
        let model_path = session.model_file(path);
        self.open_model(&model_path)
            .with_context(|| format!("{}: the session's model", path.display()))?;
        if let Some(changed) = session.model_changed(&model_path)? {
            self.messages.push((Level::Error, changed));
        }
        if let Some(d) = &session.dataset {
            let base = Path::new(&d.path)
                .parent()
                .unwrap_or(Path::new("."))
                .to_path_buf();
            match Dataset::from_desc(d.desc.clone(), &base, Path::new(&d.path)) {
                Ok(ds) => self.set_dataset(PathBuf::from(&d.path), ds),
                Err(e) => self.error(&e),
            }
        }
        self.session = Some(session);
        self.session_path = Some(path.to_path_buf());
        Ok(())
    }

    fn check_fit(&self, dataset: &Dataset) -> Result<()> {
        if let Some(m) = &self.model {
            dataset.check_fits(&quantbench::tensor::model_inputs(&m.proto)?)?;
        }
        Ok(())
    }

    fn set_dataset(&mut self, path: PathBuf, dataset: Dataset) {
        let mismatch = self.check_fit(&dataset).err().map(|e| format!("{e:#}"));
        let previews = match &self.ctx {
            Some(ctx) => super::dataset_panel::previews(ctx, &dataset, 4),
            None => vec![],
        };
        self.dataset_panel.edit(&dataset.desc);
        self.dataset = Some(LoadedDataset {
            path,
            dataset,
            mismatch,
            notes: vec![],
            previews,
        });
        self.sync_session_dataset();
    }

    fn sync_session_dataset(&mut self) {
        if let (Some(s), Some(d)) = (self.session.as_mut(), self.dataset.as_ref()) {
            s.dataset = Some(DatasetRef {
                path: d.path.display().to_string(),
                desc: d.dataset.desc.clone(),
            });
        }
    }

    fn start_job(&mut self) -> Result<()> {
        if self.job.is_some() {
            return Err(anyhow!("experiments are already running"));
        }
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
            dataset_desc: dataset.dataset.desc.clone(),
            dataset_base: dataset
                .path
                .parent()
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            dataset_path: dataset.path.clone(),
            experiments,
            settings: SweepSettings {
                // Quantized models are kept beside the session (or its autosave), so export
                // copies a file instead of calibrating again.
                models_dir: self.models_dir()?,
                ..self.sweep_settings.clone()
            },
        };
        self.job = Some(
            RunningJob::spawn(input, repaint_fn(&self.ctx)).context("starting the job thread")?,
        );
        Ok(())
    }

    fn export_model(&mut self, index: usize, path: &Path) -> Result<()> {
        let session = self.session.as_ref().ok_or_else(|| anyhow!("no session"))?;
        let e = session
            .experiments
            .get(index)
            .ok_or_else(|| anyhow!("no experiment {}", index + 1))?;
        let model = self.model.as_ref().ok_or_else(|| anyhow!("no model"))?;
        let proto = match (&e.config, &e.result.model_path) {
            (None, _) => model.proto.clone(),
            (Some(_), Some(p)) if Path::new(p).is_file() => onnx::read_model(Path::new(p))?,
            (Some(config), _) => {
                // Not kept on disk: quantize again (deterministic) from the same config.
                let dataset = self.dataset.as_ref().map(|d| &d.dataset);
                let (q, _) = quantbench::quant::quantize(
                    &model.proto,
                    config,
                    dataset,
                    &Default::default(),
                )?;
                q
            }
        };
        onnx::write_model(path, &proto, onnx::SINGLE_FILE_LIMIT)?;
        self.info(format!("{} exported to {}", e.name, path.display()));
        Ok(())
    }

    /// Reads job messages within a per-frame budget; saves the session after each result.
    pub fn logic(&mut self) {
        for (path, image) in self.screenshot_rx.try_iter().collect::<Vec<_>>() {
            match save_png(&path, &image) {
                Ok(()) => self.info(format!("screenshot saved to {}", path.display())),
                Err(e) => self.error(&e),
            }
            self.screenshot_pending = false;
            if self.screenshot_plan.is_some() {
                if let Some(c) = &self.ctx {
                    c.send_viewport_cmd(egui::ViewportCommand::Close);
                }
            }
        }
        let Some(job) = self.job.as_mut() else { return };
        let mut finished = None;
        let mut changed = false;
        for event in job.poll(16) {
            match event {
                JobEvent::Started(id) => {
                    job.current = Some(id);
                    job.queued.retain(|q| *q != id);
                }
                JobEvent::Done(id, experiment) => {
                    // By id: rows removed meanwhile do not move the result onto another one.
                    if let Some(s) = self.session.as_mut() {
                        if let Some(slot) = s.position(id).map(|i| &mut s.experiments[i]) {
                            *slot = *experiment;
                            changed = true;
                        }
                    }
                    job.current = None;
                }
                JobEvent::Finished(result) => finished = Some(result),
            }
        }
        if changed {
            if let (Some(path), Some(s)) = (self.autosave_path(), self.session.as_ref()) {
                if let Err(e) = s.save(&path) {
                    self.messages
                        .push((Level::Error, format!("autosave: {e:#}")));
                }
            }
        }
        if let Some(result) = finished {
            if let Some(job) = self.job.take() {
                job.stop();
            }
            match result {
                JobEnd::Completed => {}
                JobEnd::Cancelled => self.info("cancelled; finished experiments are kept"),
                JobEnd::Failed(e) => self.messages.push((Level::Error, format!("{e:#}"))),
            }
        }
    }

    pub fn is_idle(&self) -> bool {
        self.job.is_none()
    }

    #[cfg(test)]
    pub fn job_mut(&mut self) -> Option<&mut RunningJob> {
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

    fn toolbar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            if ui
                .button("Open…")
                .on_hover_text("Open a model (.onnx) or a session (.ron)")
                .clicked()
            {
                if let Some(p) = rfd::FileDialog::new()
                    .add_filter("model or session", &["onnx", "ron"])
                    .pick_file()
                {
                    self.commands.send(AppCommand::OpenPath(p));
                }
            }
            let edit = ui.add(
                egui::TextEdit::singleline(&mut self.typed_path)
                    .hint_text("or type a path: model.onnx, session.ron")
                    .desired_width(260.0),
            );
            let edit = edit.labelled_by(ui.label("Path").id);
            let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.button("Open path").clicked() || enter) && !self.typed_path.trim().is_empty() {
                self.commands
                    .send(AppCommand::OpenPath(PathBuf::from(self.typed_path.trim())));
            }
            ui.menu_button("Recent", |ui| {
                if self.persisted.recent.is_empty() {
                    ui.label("nothing yet");
                }
                for r in self.persisted.recent.clone() {
                    if ui.button(&r).clicked() {
                        self.commands.send(AppCommand::OpenPath(PathBuf::from(&r)));
                        ui.close();
                    }
                }
            });
            ui.separator();
            if ui.button("Save session…").clicked() {
                if let Some(p) = rfd::FileDialog::new()
                    .add_filter("session", &["ron"])
                    .set_file_name("session.ron")
                    .save_file()
                {
                    self.commands.send(AppCommand::SaveSession(p));
                }
            }
            if ui.button("Save screenshot…").clicked() {
                if let Some(p) = rfd::FileDialog::new()
                    .add_filter("PNG", &["png"])
                    .set_file_name("quantbench.png")
                    .save_file()
                {
                    self.commands.send(AppCommand::SaveScreenshot(p));
                }
            }
            if ui
                .button("Export table…")
                .on_hover_text("CSV, or Markdown with a .md name")
                .clicked()
            {
                if let Some(p) = rfd::FileDialog::new()
                    .add_filter("CSV or Markdown", &["csv", "md"])
                    .set_file_name("results.csv")
                    .save_file()
                {
                    self.commands.send(AppCommand::ExportTable(p));
                }
            }
            ui.separator();
            for (view, name) in [
                (CentralView::Overview, "Overview"),
                (CentralView::Tradeoff, "Trade-off"),
                (CentralView::Heatmap, "Heatmap"),
                (CentralView::Compare, "Compare"),
            ] {
                if ui
                    .selectable_label(self.persisted.view == view, name)
                    .clicked()
                {
                    self.commands.send(AppCommand::SetView(view));
                }
            }
        });
    }

    fn message_bar(&mut self, ui: &mut egui::Ui) {
        let mut dismiss = None;
        for (i, (level, text)) in self.messages.iter().enumerate().rev().take(3) {
            ui.horizontal(|ui| {
                let color = match level {
                    Level::Error => ui.visuals().error_fg_color,
                    Level::Info => ui.visuals().weak_text_color(),
                };
                if ui.small_button("dismiss").clicked() {
                    dismiss = Some(i);
                }
                ui.colored_label(color, text);
            });
        }
        if let Some(i) = dismiss {
            self.messages.remove(i);
        }
    }

    /// Screenshot mode: once every experiment has run and a few frames have settled, grab it.
    fn drive_screenshot(&mut self, ctx: &egui::Context) {
        let Some(plan) = self.screenshot_plan.clone() else {
            return;
        };
        if !self.is_idle() || self.screenshot_pending {
            return;
        }
        self.settled_frames += 1;
        ctx.request_repaint();
        if self.settled_frames == 5 {
            if let (Some(out), Some(s)) = (&plan.session_out, &self.session) {
                if let Err(e) = s.save(out) {
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

    pub fn draw(&mut self, ui: &mut egui::Ui) {
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
        egui::Panel::top("toolbar").show(ui, |ui| {
            self.toolbar(ui);
            self.message_bar(ui);
        });
        let keep_float = self.settings.config.keep_float.clone();
        let settings_error = self.settings.first_error();
        let app_ctx = AppCtx {
            model: self.model.as_ref(),
            dataset: self.dataset.as_ref(),
            session: self.session.as_ref(),
            job: self.job.as_ref(),
            selected: self.selected,
            keep_float: &keep_float,
            scored_output: self.sweep_settings.output.as_deref(),
            settings_error,
            frame_p95_ms: if self.is_test {
                None
            } else {
                self.frame_p95_ms()
            },
            commands: &self.commands,
            is_test: self.is_test,
        };
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
        let (tradeoff, heatmap, compare) =
            (&mut self.tradeoff, &mut self.heatmap, &mut self.compare);
        egui::CentralPanel::default().show(ui, |ui| match self.persisted.view {
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
        });
        for c in self.commands.take() {
            self.apply(c);
        }
        self.drive_screenshot(&ctx);
        if self.job.is_some() {
            // Progress bars and elapsed time move: keep drawing while work is in flight.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }
}

fn save_png(path: &Path, image: &egui::ColorImage) -> Result<()> {
    let [w, h] = image.size;
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let buffer = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
        .ok_or_else(|| anyhow!("screenshot of {w}x{h} has the wrong size"))?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    buffer
        .write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| anyhow!("{}: cannot encode PNG: {e}", path.display()))?;
    onnx::write_atomic(path, bytes.get_ref())
}

impl eframe::App for WorkbenchApp {
    fn logic(&mut self, _ctx: &egui::Context, _frame: &mut eframe::Frame) {
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
        if self.first_frame.is_none() {
            self.first_frame = Some(self.started.elapsed());
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if let Ok(text) = ron::to_string(&self.persisted) {
            storage.set_string("quantbench", text);
        }
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        // Closing the window while experiments run: stop them, keep what finished.
        if let Some(job) = self.job.take() {
            job.stop();
        }
        if let (Some(path), Some(s)) = (self.autosave_path(), self.session.as_ref()) {
            let _ = s.save(&path);
        }
    }
}
