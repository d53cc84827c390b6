//! The window's analysis jobs on an experiment: which layers to keep float (sensitivity).
//! They run on the window's workbench, like runs, so they wait for nothing the window does
//! and reuse its calibrations.

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};

use quantbench::sensitivity::SensitivityReport;
use quantbench::session::ExperimentId;

use super::super::background::{TaskKind, TaskOutput};
use super::WorkbenchApp;

/// How far a sensitivity ranking is: layers done, layers in all, the layer being measured.
#[derive(Clone, Debug, Default)]
pub struct RankProgress {
    pub done: usize,
    pub total: usize,
    pub layer: String,
}

impl WorkbenchApp {
    /// Ranks experiment `id`'s layers in the background, on the runtime its results were
    /// measured on first (the deployment runtime where it was measured).
    pub(super) fn start_sensitivity(&mut self, id: ExperimentId) -> Result<()> {
        if self.tasks.run().is_some() {
            return Err(anyhow!(
                "experiments are running: rank the layers once they end"
            ));
        }
        let session = self
            .session
            .as_ref()
            .ok_or_else(|| anyhow!("open a model first"))?;
        let e = session
            .get(id)
            .ok_or_else(|| anyhow!("experiment {id} is no longer in the session"))?;
        let config = e
            .config
            .clone()
            .ok_or_else(|| anyhow!("the float model has no quantized layers to rank"))?;
        if quantbench::sensitivity::candidates(self.model_proto()?.as_ref(), &config).is_empty() {
            return Err(anyhow!(
                "{}: every quantized layer is kept float already",
                e.name
            ));
        }
        let primary = quantbench::report::primary_backend(session);
        let measured: Vec<quantbench::runtime::Backend> = e
            .result
            .measured
            .as_ref()
            .map(|m| m.backends.clone())
            .unwrap_or_default();
        let backend = measured
            .iter()
            .find(|b| b.name() == primary)
            .or(measured.first())
            .copied();
        let source = self.workbench_source()?;
        let settings = quantbench::runner::RunSettings {
            backends: backend.into_iter().collect(),
            models_dir: None,
            ..self.run_settings.clone()
        };
        let progress = Arc::new(Mutex::new(RankProgress::default()));
        let shown = progress.clone();
        let label = format!("Ranking the layers of {}…", e.name);
        self.tasks
            .spawn(TaskKind::Sensitivity(id), label, move |cx| {
                let report = source.with(|workbench| {
                    quantbench::sensitivity::rank(
                        workbench,
                        &config,
                        &settings,
                        &cx.progress,
                        &mut |done, total, layer| {
                            if let Ok(mut p) = shown.lock() {
                                *p = RankProgress {
                                    done,
                                    total,
                                    layer: layer.to_string(),
                                };
                            }
                        },
                    )
                })?;
                Ok(TaskOutput::Ranked(Box::new(report)))
            })?;
        self.rank_progress = Some((id, progress));
        Ok(())
    }

    /// Screenshot mode's `--view sensitivity`: the selected experiment (or the last int8 one
    /// with results) shown in the Layers view, ranked unless it has a ranking.
    pub(super) fn rank_for_screenshot(&mut self) {
        let Some(session) = &self.session else { return };
        let chosen = self
            .selected
            .and_then(|id| session.get(id))
            .filter(|e| e.config.is_some() && e.has_figures())
            .or_else(|| {
                session.experiments.iter().rfind(|e| {
                    e.has_figures()
                        && e.config
                            .as_ref()
                            .is_some_and(|c| c.mode == quantbench::quant::Mode::Int8)
                })
            })
            .map(|e| (e.id, e.result.sensitivity.is_some()));
        let Some((id, ranked)) = chosen else {
            self.info("nothing to rank: no quantized experiment has results");
            return;
        };
        self.selected = Some(id);
        if !ranked {
            self.apply(super::super::AppCommand::RankSensitivity(id));
        }
    }

    /// Finds out in the background why experiment `id`'s model is not faster: its kept file
    /// read, or its config quantized again on the window's workbench.
    pub(super) fn start_explain(&mut self, id: ExperimentId) -> Result<()> {
        let session = self
            .session
            .as_ref()
            .ok_or_else(|| anyhow!("open a model first"))?;
        let e = session
            .get(id)
            .ok_or_else(|| anyhow!("experiment {id} is no longer in the session"))?
            .clone();
        if e.config.is_none() {
            return Err(anyhow!(
                "the float model is the reference: choose a quantized experiment"
            ));
        }
        let source = self.workbench_source()?;
        let label = format!("Looking at why {} is not faster…", e.name);
        self.explanations.remove(&id);
        self.tasks.spawn(TaskKind::Explain(id), label, move |cx| {
            let kept = e
                .result
                .model_path
                .as_deref()
                .map(std::path::Path::new)
                .filter(|p| p.is_file());
            let quantized = match kept {
                Some(path) => quantbench::onnx::read_model(path)?,
                None => source.with(|workbench| workbench.model_of(&e, &cx.progress))?,
            };
            let inputs = quantbench::tensor::model_inputs(&quantized)?;
            let example = source.data.bound(0, &inputs)?.inputs;
            let machine = quantbench::host::detect();
            let found = quantbench::bench::explain::explain(
                &quantized,
                &example,
                &machine.int8_features,
                machine.has_vnni(),
            )?;
            Ok(TaskOutput::Explained(Box::new(found)))
        })
    }

    /// A ranking arrived: kept with the experiment it ranks (saved with the session).
    pub(super) fn ranked(&mut self, id: ExperimentId, report: SensitivityReport) {
        let Some(e) = self.session.as_mut().and_then(|s| s.get_mut(id)) else {
            return;
        };
        let said = format!(
            "ranked {} layers of {}: the Layers view sorts by what each recovers per ms",
            report.ranking.len(),
            e.name
        );
        e.result.sensitivity = Some(report);
        self.autosave_due = true;
        self.info(said);
    }

    fn model_proto(&self) -> Result<Arc<quantbench::onnx::pb::ModelProto>> {
        self.model
            .as_ref()
            .map(|m| m.proto.clone())
            .ok_or_else(|| anyhow!("open a model first"))
    }

    /// The ranking going on, for the Layers view: which experiment, how far.
    pub fn rank_status(&self) -> Option<(ExperimentId, RankProgress)> {
        let (id, p) = self.rank_progress.as_ref()?;
        if self.tasks.ranking() != Some(*id) {
            return None;
        }
        Some((*id, p.lock().map(|p| p.clone()).unwrap_or_default()))
    }
}
