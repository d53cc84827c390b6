//! Applying commands: each panel's requests, once per frame, on the UI thread. Anything heavy
//! becomes a background task; an error is shown, never raised.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

use quantbench::session::{Experiment, ExperimentId};

use super::super::background::{TaskKind, TaskMessage, TaskOutput};
use super::super::commands::Variation;
use super::super::context::{LoadedDataset, LoadedModel, Offer};
use super::super::tasks::{self, ExportSource, Loaded};
use super::{file_name, FrameMark, WorkbenchApp};
use crate::gui::AppCommand;

impl WorkbenchApp {
    pub fn apply(&mut self, command: AppCommand) {
        let _frame = FrameMark::enter();
        if let Err(e) = self.try_apply(command) {
            self.error(&e);
        }
    }

    fn try_apply(&mut self, command: AppCommand) -> Result<()> {
        match command {
            AppCommand::OpenPath(_)
            | AppCommand::OpenDataset(_)
            | AppCommand::ApplyDatasetDesc(_)
            | AppCommand::SaveDatasetDesc(_)
            | AppCommand::CancelLoading => self.apply_open(command),
            AppCommand::AddExperiment
            | AppCommand::AddPreset
            | AppCommand::RemoveExperiment(_)
            | AppCommand::Select(_)
            | AppCommand::Run
            | AppCommand::Remeasure
            | AppCommand::Cancel
            | AppCommand::RankSensitivity(_)
            | AppCommand::StartTune(_)
            | AppCommand::StopTune
            | AppCommand::Explain(_)
            | AppCommand::StopSensitivity
            | AppCommand::Vary { .. } => self.apply_experiments(command),
            AppCommand::ExportModel { experiment, path } => self.export_model(experiment, path),
            AppCommand::AskPath(purpose) => {
                self.ask_path(purpose);
                Ok(())
            }
            AppCommand::PromptDone(path) => {
                if let (Some(prompt), Some(path)) = (self.prompt.take(), path) {
                    self.apply(prompt.purpose.command(path));
                }
                Ok(())
            }
            AppCommand::SaveSession(_)
            | AppCommand::SaveScreenshot(_)
            | AppCommand::ExportPlan(_)
            | AppCommand::ExportTable(_) => self.apply_write(command),
            AppCommand::InspectCalibration { experiment, tensor } => {
                self.inspect_calibration(experiment, tensor)
            }
            AppCommand::CloseInspector => {
                self.inspection = None;
                let running = self.tasks.inspecting();
                if let Some(e) = running {
                    self.tasks.cancel(TaskKind::Inspect(e));
                }
                Ok(())
            }
            other => self.apply_setting(other),
        }
    }

    /// A path for `purpose` from the desktop's dialog; where none opens, from a prompt of the
    /// window's own (saying so), prefilled beside the session.
    fn ask_path(&mut self, purpose: super::super::dialogs::PathPurpose) {
        match super::super::dialogs::ask(&self.dialogs, &purpose) {
            Ok(Some(path)) => self.apply(purpose.command(path)),
            Ok(None) => {}
            Err(why) => {
                let folder = self
                    .session_path
                    .as_deref()
                    .and_then(|p| p.parent())
                    .map(Path::to_path_buf)
                    .or_else(|| std::env::current_dir().ok())
                    .unwrap_or_default();
                let name = purpose.default_name();
                let text = if name.is_empty() {
                    format!("{}/", folder.display())
                } else {
                    folder.join(name).display().to_string()
                };
                self.prompt = Some(super::super::dialogs::PathPrompt { purpose, text, why });
            }
        }
    }

    /// Writes a file as a background task: its message is shown when it is done.
    pub(super) fn write(
        &mut self,
        label: String,
        work: impl FnOnce() -> Result<String> + Send + 'static,
    ) -> Result<()> {
        self.tasks.spawn(TaskKind::Write, label, move |_| {
            work().map(TaskOutput::Wrote)
        })
    }

    /// Starts opening something (a model, a session, a dataset); a newer request stops the one
    /// in flight.
    fn load(
        &mut self,
        label: String,
        work: impl FnOnce() -> Result<Loaded> + Send + 'static,
    ) -> Result<()> {
        self.tasks.spawn(TaskKind::Open, label, move |_| {
            work().map(|l| TaskOutput::Opened(Box::new(l)))
        })
    }

    fn apply_open(&mut self, command: AppCommand) -> Result<()> {
        let opening = self.tasks.is_running(TaskKind::Open);
        match command {
            AppCommand::OpenPath(path) => self.open_path(path)?,
            AppCommand::OpenDataset(_) | AppCommand::ApplyDatasetDesc(_) if opening => {
                self.deferred.push(command);
            }
            AppCommand::OpenDataset(path) => {
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
                for label in self.tasks.cancel(TaskKind::Open) {
                    self.deferred.clear();
                    self.info(format!("stopped: {}", label.trim_end_matches('…')));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn open_path(&mut self, path: PathBuf) -> Result<()> {
        self.remember(&path);
        let sessions = self.sessions_dir();
        if path.extension().is_some_and(|e| e == "ron") {
            let label = format!("Opening the session {}…", file_name(&path));
            return self.load(label, move || {
                tasks::open_session(&path, sessions.as_deref())
                    .map(|s| Loaded::Session(Box::new(s)))
            });
        }
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
        })
    }

    fn apply_experiments(&mut self, command: AppCommand) -> Result<()> {
        let changes_session = matches!(
            command,
            AppCommand::AddExperiment
                | AppCommand::AddPreset
                | AppCommand::RemoveExperiment(_)
                | AppCommand::Run
                | AppCommand::Remeasure
                | AppCommand::RankSensitivity(_)
                | AppCommand::Vary { .. }
        );
        if changes_session && self.searching() {
            return Err(anyhow!(
                "the search is running and adds its candidates to the session: stop it first"
            ));
        }
        match command {
            AppCommand::AddExperiment => {
                let config = self.settings.config.clone();
                config.validate()?;
                let session = self
                    .session
                    .as_mut()
                    .ok_or_else(|| anyhow!("open a model first"))?;
                if session.float().is_none() {
                    session.add(Experiment::float());
                }
                self.selected = Some(session.add(Experiment::quantized(config)));
            }
            AppCommand::AddPreset => {
                let samples = self.settings.config.samples;
                let machine = self.settings.machine.clone();
                let session = self
                    .session
                    .as_mut()
                    .ok_or_else(|| anyhow!("open a model first"))?;
                let preset = quantbench::session::standard_preset(samples, &machine);
                let total = preset.len();
                let mut added = 0;
                for e in preset {
                    if !session.experiments.iter().any(|x| x.name == e.name) {
                        session.add(e);
                        added += 1;
                    }
                }
                let pending = session.experiments.iter().filter(|e| !e.is_done()).count();
                self.info(match added {
                    0 => format!(
                        "the standard preset's {total} experiments are in the session already \
                         ({pending} not run yet): nothing added"
                    ),
                    n => format!("added {n} experiments of the standard preset: Run measures them"),
                });
            }
            AppCommand::RemoveExperiment(id) => self.remove_experiment(id)?,
            AppCommand::Select(id) => self.selected = id,
            AppCommand::Run => self.start_run()?,
            AppCommand::Remeasure => self.start_remeasure()?,
            AppCommand::RankSensitivity(id) => self.start_sensitivity(id)?,
            AppCommand::StartTune(request) => self.start_tune(request)?,
            AppCommand::StopTune if !self.tasks.cancel(TaskKind::Tune).is_empty() => {
                self.info(format!(
                    "search stopped: its {} candidates are kept; Resume goes on from them",
                    self.search.candidates.len()
                ));
            }
            AppCommand::Explain(id) => self.start_explain(id)?,
            AppCommand::StopSensitivity => {
                if let Some(id) = self.tasks.ranking() {
                    self.tasks.cancel(TaskKind::Sensitivity(id));
                }
            }
            AppCommand::Cancel => self.tasks.stop_run(),
            AppCommand::Vary { experiment, change } => self.vary(experiment, change)?,
            _ => {}
        }
        Ok(())
    }

    fn remove_experiment(&mut self, id: ExperimentId) -> Result<()> {
        if self.tasks.run().is_some_and(|r| r.includes(id)) {
            return Err(anyhow!(
                "experiment {id} is queued or running: cancel first"
            ));
        }
        if let Some(s) = self.session.as_mut() {
            if s.remove(id).is_some() {
                if self.selected == Some(id) {
                    self.selected = None;
                }
                self.autosave_due = true;
            }
        }
        Ok(())
    }

    fn apply_write(&mut self, command: AppCommand) -> Result<()> {
        match command {
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
                let tx = self.screenshots.tx.clone();
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
            AppCommand::ExportPlan(dir) => self.export_plan(dir)?,
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
            _ => {}
        }
        Ok(())
    }

    fn export_plan(&mut self, dir: PathBuf) -> Result<()> {
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
        let settings = self.run_settings.clone();
        self.write(
            format!("Writing the plan {}…", file_name(&dir)),
            move || tasks::export_plan(&dir, &model, &data, pending, &settings),
        )
    }

    fn apply_setting(&mut self, command: AppCommand) -> Result<()> {
        match command {
            AppCommand::SetScoredOutput(name) => self.run_settings.output = name,
            AppCommand::ToggleKeepFloat(name) => {
                let keep = &mut self.settings.config.keep_float;
                if let Some(i) = keep.iter().position(|k| *k == name) {
                    keep.remove(i);
                } else {
                    keep.push(name);
                }
                self.settings.sync_text();
            }
            AppCommand::SetBenchDevice(text) => {
                let text = text.trim().to_string();
                self.run_settings.remote = if text.is_empty() {
                    None
                } else {
                    let remote: quantbench::bench::remote::Remote = text.parse()?;
                    Some(remote)
                };
                self.persisted.bench_device = text;
            }
            AppCommand::SetView(v) => self.persisted.view = v,
            AppCommand::ShowFrameTimes(on) => self.persisted.frame_times = on,
            AppCommand::ShowLayer(id, node) => {
                self.persisted.view = super::CentralView::Layers;
                self.selected = Some(id);
                self.layer_focus = Some(node);
            }
            AppCommand::DismissAllMessages => self.messages.clear(),
            AppCommand::DismissMessage(i) if i < self.messages.len() => {
                self.messages.remove(i);
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
            _ => {}
        }
        Ok(())
    }

    /// Adds a variant of experiment `id` (a layer toggled between int8 and float, a range
    /// pinned) and runs it: the workbench reuses the parent's calibration and float outputs.
    /// The selection stays where it is.
    fn vary(&mut self, id: ExperimentId, change: Variation) -> Result<()> {
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| anyhow!("open a model first"))?;
        let parent = session
            .get(id)
            .ok_or_else(|| anyhow!("experiment {id} is no longer in the session"))?;
        let mut config = parent.config.clone().ok_or_else(|| {
            anyhow!("the float model has nothing to vary: choose a quantized experiment")
        })?;
        let what = change.apply(&mut config);
        config.validate()?;
        if let Some(same) = session
            .experiments
            .iter()
            .find(|e| e.config.as_ref() == Some(&config))
        {
            let same = same.id;
            self.info(format!("experiment {same} already has these settings"));
            return Ok(());
        }
        let mut child = Experiment::quantized(config);
        child.parent = Some(parent.id);
        child.name = format!("{id} · {what}");
        // The view stays on the experiment varied: the variant is a new row and a new point.
        session.add(child);
        self.autosave_due = true;
        if self.tasks.run().is_some() {
            self.info("variant added: it runs with the next Run, once these experiments end");
            return Ok(());
        }
        self.start_run()
    }

    fn inspect_calibration(
        &mut self,
        experiment: Option<ExperimentId>,
        tensor: String,
    ) -> Result<()> {
        let config = experiment
            .and_then(|id| self.session.as_ref()?.get(id))
            .and_then(|e| e.config.clone())
            .unwrap_or_else(|| self.settings.config.clone());
        let (Some(model), Some(dataset)) = (&self.model, &self.dataset) else {
            return Err(anyhow!("open a model and a dataset first"));
        };
        let (proto, data) = (model.proto.clone(), dataset.dataset.clone());
        let label = format!("Calibrating {tensor}…");
        self.tasks
            .spawn(TaskKind::Inspect(experiment), label, move |cx| {
                quantbench::quant::inspect::inspect(&proto, &config, &data, &tensor, &cx.progress)
                    .map(|found| TaskOutput::Inspected(Box::new(found)))
            })
    }

    pub(super) fn remove_markers(&mut self, markers: Vec<PathBuf>) {
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
    pub(super) fn update_marker(&mut self) {
        let (Some(dir), None) = (self.data_dir.clone(), &self.screenshots.plan) else {
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

    /// The open model and a dataset that fits it: what running or planning experiments needs.
    pub(super) fn model_and_fitting_data(&self) -> Result<(&LoadedModel, &LoadedDataset)> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| anyhow!("open a model first"))?;
        let dataset = self
            .dataset
            .as_ref()
            .ok_or_else(|| anyhow!("open a dataset first (the Dataset section)"))?;
        if let Some(m) = &dataset.mismatch {
            return Err(anyhow!("the dataset does not fit the model: {m:#}"));
        }
        Ok((model, dataset))
    }

    /// The shared workbench for a job, with the model and the data that fits it.
    pub(super) fn workbench_source(&self) -> Result<super::WorkbenchSource> {
        let (model, dataset) = self.model_and_fitting_data()?;
        Ok(super::WorkbenchSource {
            shared: self.workbench.clone(),
            proto: model.proto.clone(),
            bytes: model.bytes,
            data: dataset.dataset.clone(),
        })
    }

    /// Runs the session's pending experiments on the runner, each reported back by id.
    pub(super) fn start_run(&mut self) -> Result<()> {
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
        // What the new results are compared with is timed in the same rounds: float, and the
        // experiments the variants were made from.
        let compared: Vec<Experiment> = session
            .experiments
            .iter()
            .filter(|e| e.has_figures())
            .filter(|e| e.config.is_none() || experiments.iter().any(|x| x.parent == Some(e.id)))
            .cloned()
            .collect();
        self.spawn_experiments(experiments, compared)
    }

    /// "Re-measure": the latencies of every finished experiment again, together in rounds.
    fn start_remeasure(&mut self) -> Result<()> {
        let session = self
            .session
            .as_ref()
            .ok_or_else(|| anyhow!("open a model first"))?;
        let finished: Vec<Experiment> = session
            .experiments
            .iter()
            .filter(|e| e.has_figures())
            .cloned()
            .collect();
        if finished.is_empty() {
            return Err(anyhow!(
                "no finished experiment to time again: run some first"
            ));
        }
        self.spawn_experiments(vec![], finished)
    }

    /// Runs `experiments` in the background and times `retimed` with them.
    fn spawn_experiments(
        &mut self,
        experiments: Vec<Experiment>,
        retimed: Vec<Experiment>,
    ) -> Result<()> {
        if self.tasks.run().is_some() {
            return Err(anyhow!("experiments are already running"));
        }
        if let Some(label) = self.tasks.label(TaskKind::Open) {
            return Err(anyhow!("wait: {label}"));
        }
        let source = self.workbench_source()?;
        let ids = experiments.iter().map(|e| e.id).collect();
        let retimed_ids = retimed.iter().map(|e| e.id).collect();
        let settings = quantbench::runner::RunSettings {
            // Quantized models are kept beside the session, so export copies a file
            // instead of calibrating again.
            models_dir: self.models_dir(),
            ..self.run_settings.clone()
        };
        self.tasks
            .spawn_run(ids, retimed_ids, move |cx| {
                // The window never locks it: only runs, one after another.
                source.with(|workbench| {
                    workbench.run_and_retime(
                        experiments,
                        retimed,
                        &settings,
                        &cx.progress,
                        &mut |event| {
                            cx.send(TaskMessage::Run(event));
                            Ok(())
                        },
                    )?;
                    Ok(TaskOutput::Ran(workbench.take_notes()))
                })
            })
            .context("starting the experiments")
    }

    fn export_model(&mut self, id: ExperimentId, path: PathBuf) -> Result<()> {
        let session = self.session.as_ref().ok_or_else(|| anyhow!("no session"))?;
        let e = session
            .get(id)
            .ok_or_else(|| anyhow!("experiment {id} is no longer in the session"))?;
        let model = self.model.as_ref().ok_or_else(|| anyhow!("no model"))?;
        if let Some(error) = &e.result.error {
            return Err(anyhow!(
                "experiment {id} ({}) failed, there is no model to export: {error}",
                e.name
            ));
        }
        let source = match (&e.config, &e.result.model_path) {
            (None, _) => ExportSource::Float(model.proto.clone()),
            (Some(_), Some(kept)) => ExportSource::Kept(PathBuf::from(kept)),
            (Some(_), None) if !e.is_done() => {
                return Err(anyhow!(
                    "experiment {id} ({}) has not run yet: run it, then export",
                    e.name
                ))
            }
            (Some(_), None) => {
                return Err(anyhow!(
                    "experiment {id} ({}) kept no model file (it ran without a session folder): run it again to export it",
                    e.name
                ))
            }
        };
        quantbench::fileio::check_output_dir(&path)?;
        let name = e.name.clone();
        self.write(format!("Exporting {name}…"), move || {
            tasks::export(source, &path)?;
            Ok(format!("{name} exported to {}", path.display()))
        })
    }
}
