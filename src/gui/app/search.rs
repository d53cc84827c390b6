//! The search in the window: `tune` as a job on a copy of the session. The window's session
//! is the search's while it runs (nothing else may add or remove experiments then): each
//! candidate that finishes comes back as the search's session, so it appears on the plot and
//! in the table at once, and the steps come back in words.

use std::time::Instant;

use anyhow::{anyhow, Result};

use quantbench::quant::Target;
use quantbench::runtime::Backend;
use quantbench::session::{ExperimentId, Session};
use quantbench::tune::{Goal, TuneSettings};

use super::super::background::{TaskKind, TaskMessage, TaskOutput};
use super::WorkbenchApp;

/// What the user asked the search for.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneRequest {
    pub goal: Goal,
    pub target: Target,
    /// Minutes after which no new candidate starts (`None`: no limit).
    pub minutes: Option<f64>,
    /// Layers it may keep float (`None`: half of those it quantizes).
    pub max_float_layers: Option<usize>,
}

/// The search as the window shows it.
#[derive(Default)]
pub struct SearchState {
    /// The last request (Resume asks it again).
    pub request: Option<TuneRequest>,
    /// Its steps, in words.
    pub log: Vec<String>,
    pub started: Option<Instant>,
    /// The candidate chosen, and why it won.
    pub chosen: Option<(ExperimentId, String)>,
    /// Why the search ended without a choice.
    pub error: Option<String>,
    /// The candidates measured in this search (the plot marks them).
    pub candidates: Vec<ExperimentId>,
}

impl WorkbenchApp {
    pub(super) fn start_tune(&mut self, request: TuneRequest) -> Result<()> {
        if self.tasks.run().is_some() || self.tasks.is_running(TaskKind::Tune) {
            return Err(anyhow!("experiments are running: search once they end"));
        }
        let session = self
            .session
            .clone()
            .ok_or_else(|| anyhow!("open a model first"))?;
        let source = self.workbench_source()?;
        let mut run = quantbench::runner::RunSettings {
            models_dir: self.models_dir(),
            layer_samples: 0,
            ..self.run_settings.clone()
        };
        let profile = quantbench::profile::Profile::Standard.settings();
        let samples = self.settings.config.samples;
        self.search = SearchState {
            request: Some(request.clone()),
            started: Some(Instant::now()),
            ..Default::default()
        };
        let label = format!("Searching: {}", request.goal.describe());
        self.tasks.spawn(TaskKind::Tune, label, move |cx| {
            run.backends = vec![backend_for(request.target)];
            let settings = TuneSettings {
                goal: request.goal,
                target: request.target,
                samples,
                max_float_layers: request.max_float_layers,
                layer_samples: profile.layer_samples,
                model: session.model.clone(),
                time_budget: request
                    .minutes
                    .filter(|m| *m > 0.0)
                    .map(|m| std::time::Duration::from_secs_f64(m * 60.0)),
                run,
            };
            let mut session = session;
            let outcome = source.with(|workbench| {
                quantbench::tune::tune(
                    &mut session,
                    workbench,
                    &settings,
                    &cx.progress,
                    |s| {
                        cx.send(TaskMessage::TuneSession(Box::new(s.clone())));
                        Ok(())
                    },
                    |line| cx.send(TaskMessage::TuneSays(line.to_string())),
                )
            })?;
            Ok(TaskOutput::Tuned(Box::new(session), outcome.chosen))
        })
    }

    /// The search's session after a candidate: the window's, with the candidate in it.
    pub(super) fn searched(&mut self, session: Session) {
        let known: Vec<ExperimentId> = self
            .session
            .as_ref()
            .map(|s| s.experiments.iter().map(|e| e.id).collect())
            .unwrap_or_default();
        for e in &session.experiments {
            if !known.contains(&e.id) && !self.search.candidates.contains(&e.id) {
                self.search.candidates.push(e.id);
            }
        }
        if let Some(s) = self.session.as_mut() {
            s.experiments = session.experiments;
            s.last_id = s.last_id.max(session.last_id);
            self.autosave_due = true;
        }
    }

    /// The search ended with a choice: selected, with why it won.
    pub(super) fn tuned(&mut self, session: Session, chosen: ExperimentId) {
        self.searched(session);
        let why = self
            .search
            .log
            .iter()
            .rev()
            .find(|l| l.starts_with("chosen:"))
            .cloned()
            .unwrap_or_default();
        self.search.chosen = Some((chosen, why));
        self.selected = Some(chosen);
    }

    /// Screenshot mode's `--view tune`: the search with the view's default goal.
    /// The search the window offers by default (top-1 within 0.01 of float on labelled data,
    /// else 20 dB of output SQNR), shown in the Tune view: the screenshot's and bench-gui's.
    pub(crate) fn start_default_tune(&mut self, minutes: f64) {
        let labelled = self
            .dataset
            .as_ref()
            .is_some_and(|d| d.dataset.has_labels());
        let request = TuneRequest {
            goal: if labelled {
                Goal::MaxDrop(0.01)
            } else {
                Goal::MinSqnr(20.0)
            },
            target: Target::DEFAULT,
            minutes: Some(minutes),
            max_float_layers: None,
        };
        self.persisted.view = super::CentralView::Tune;
        self.apply(super::super::AppCommand::StartTune(request));
    }

    /// Whether the search runs (the session is its own until it ends).
    pub fn searching(&self) -> bool {
        self.tasks.is_running(TaskKind::Tune)
    }
}

/// The runtime a target is measured on: ONNX Runtime for ort-cpu where it is found, tract
/// otherwise (and for the other targets).
fn backend_for(target: Target) -> Backend {
    match target {
        Target::OrtCpu if quantbench::runtime::ort::version().is_ok() => {
            Backend::Ort(quantbench::runtime::ort::OrtOptions::default())
        }
        _ => Backend::Tract,
    }
}
