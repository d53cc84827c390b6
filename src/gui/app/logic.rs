//! Reading the background tasks' events once per frame, within a budget, and applying what
//! they finished: opened models, sessions and datasets, experiment results (by id), written
//! files, the inspector's figures, the recovery check. No engine work happens here.

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;

use quantbench::jobs::{JobEnd, JobEvent};
use quantbench::onnx::{inspect::ModelSummary, pb};
use quantbench::runner::RunEvent;
use quantbench::session::DatasetRef;

use super::super::background::{TaskKind, TaskMessage, TaskOutput};
use super::super::context::{Level, LoadedDataset, LoadedModel, Offer};
use super::super::tasks::{self, Loaded, OpenedDataset};
use super::{file_name, worth_saving, FrameMark, WorkbenchApp};
use crate::gui::AppCommand;

/// Events read per task and frame: enough to keep up, few enough to keep a frame short.
const EVENTS_PER_FRAME: usize = 16;

impl WorkbenchApp {
    /// Reads the tasks' events, applies finished work, saves the session after each result.
    pub fn logic(&mut self) {
        let _frame = FrameMark::enter();
        self.save_screenshots();
        for (kind, event) in self.tasks.poll(EVENTS_PER_FRAME) {
            match event {
                JobEvent::Message(TaskMessage::Run(run)) => self.record(run),
                JobEvent::Message(TaskMessage::TuneSession(session)) => self.searched(*session),
                JobEvent::Message(TaskMessage::TuneSays(line)) => self.search.log.push(line),
                JobEvent::End(end) => self.finished(kind, end),
            }
        }
        // Saved after each change and each result, while later experiments run.
        if self.autosave_due && !self.tasks.is_running(TaskKind::Autosave) {
            self.start_autosave();
        }
    }

    fn save_screenshots(&mut self) {
        for (path, image) in self.screenshots.rx.try_iter().collect::<Vec<_>>() {
            let closing = self.screenshots.plan.is_some();
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
            self.screenshots.pending = false;
        }
    }

    /// An experiment's result, put on its own row by id: rows removed meanwhile never move it
    /// onto another.
    fn record(&mut self, event: RunEvent) {
        if let Some(s) = self.session.as_mut() {
            if event.record(s).is_some() {
                self.autosave_due = true;
            }
        }
    }

    fn finished(&mut self, kind: TaskKind, end: JobEnd<TaskOutput>) {
        match (kind, end) {
            (TaskKind::Open, end) => self.opened(end),
            (TaskKind::Experiments, JobEnd::Done(TaskOutput::Ran(notes))) => {
                for note in notes {
                    self.info(note);
                }
            }
            (TaskKind::Experiments, JobEnd::Cancelled) => {
                self.info("cancelled; finished experiments are kept")
            }
            (TaskKind::Inspect(e), JobEnd::Done(TaskOutput::Inspected(found))) => {
                self.inspection = Some((e, *found));
            }
            (TaskKind::Sensitivity(id), JobEnd::Done(TaskOutput::Ranked(report))) => {
                self.ranked(id, *report)
            }
            (TaskKind::Tune, JobEnd::Done(TaskOutput::Tuned(session, chosen))) => {
                self.tuned(*session, chosen)
            }
            (TaskKind::Tune, JobEnd::Failed(e)) => {
                self.search.error = Some(format!("{e:#}"));
                self.error(&e.context("the search"));
            }
            (TaskKind::Explain(id), JobEnd::Done(TaskOutput::Explained(found))) => {
                self.explanations.insert(id, Ok(*found));
            }
            (TaskKind::Explain(id), JobEnd::Failed(e)) => {
                self.explanations.insert(id, Err(format!("{e:#}")));
            }
            (TaskKind::Sensitivity(_), JobEnd::Cancelled) => {
                self.info("sensitivity ranking stopped")
            }
            (TaskKind::Inspect(_), JobEnd::Failed(e)) => {
                self.error(&e.context("calibration inspector"))
            }
            (TaskKind::Autosave, JobEnd::Failed(e)) => {
                self.say(Level::Error, format!("autosave: {e:#}"))
            }
            (TaskKind::RecoveryCheck, JobEnd::Done(TaskOutput::Recovery(Some(found)))) => {
                self.offer = Some(Offer::Interrupted(*found));
            }
            (TaskKind::RecoveryCheck, JobEnd::Failed(e)) => self.say(
                Level::Error,
                format!("looking for an interrupted session: {e:#}"),
            ),
            (TaskKind::Write, JobEnd::Done(TaskOutput::Wrote(m))) if !m.is_empty() => self.info(m),
            (_, JobEnd::Failed(e)) => self.error(&e),
            _ => {}
        }
    }

    fn opened(&mut self, end: JobEnd<TaskOutput>) {
        let opened_model = match end {
            JobEnd::Done(TaskOutput::Opened(loaded)) => {
                let model = !matches!(*loaded, Loaded::Dataset(_));
                self.apply_loaded(*loaded);
                model
            }
            JobEnd::Failed(e) => {
                self.error(&e);
                false
            }
            _ => false,
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
            if self.screenshots.plan.is_some() && pending {
                self.apply(AppCommand::Run);
            }
        }
        for c in std::mem::take(&mut self.deferred) {
            self.apply(c);
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
        let started = self.tasks.spawn(TaskKind::Autosave, label, move |_| {
            session.save(&path)?;
            Ok(TaskOutput::Wrote(String::new()))
        });
        if let Err(e) = started {
            self.error(&e);
        }
    }

    /// What an open finished with, applied on the UI thread (no engine work: the task did it).
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
                    self.say(Level::Error, changed);
                }
                for note in s.notes {
                    self.say(Level::Info, note);
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
        dataset: Option<anyhow::Result<OpenedDataset>>,
    ) {
        // Experiments of the previous model stop; what they finished was saved. Ids start
        // again in the new session: nothing may keep one of the old (the selection, the
        // inspector and its Pin, the compare picks).
        self.tasks.cancel(TaskKind::Experiments);
        self.selected = None;
        self.inspection = None;
        if let Some(e) = self.tasks.inspecting() {
            self.tasks.cancel(TaskKind::Inspect(e));
        }
        self.panels.compare = Default::default();
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
                self.error(&e);
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
        self.panels.dataset.edit(&d.dataset.desc);
        self.workbench = Default::default();
        self.dataset = Some(LoadedDataset {
            path: d.path,
            overlap: d.dataset.overlap_note(),
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
}
