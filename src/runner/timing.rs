//! The timing phase of a run: every experiment measured in it (and any finished one it is
//! compared with) timed together on each runtime, in rounds, so that a busy moment falls on
//! all of them and their medians compare. On a device over SSH each model is timed there in
//! turn (the device's quantbench times one model per call), and the notes say so.

use anyhow::Result;

use super::{RunEvent, RunSettings, Workbench};
use crate::bench::{self, BenchReport, Timed};
use crate::jobs::{self, Progress};
use crate::onnx::{self, pb};
use crate::runtime::Backend;
use crate::session::{Experiment, ExperimentId, ExperimentResult, Timing};

/// A model to time, and the runtimes its evaluation ran on (the others cannot load it).
pub(super) struct Entry {
    id: ExperimentId,
    model: pb::ModelProto,
    backends: Vec<String>,
}

impl Entry {
    pub(super) fn of(id: ExperimentId, model: pb::ModelProto, result: &ExperimentResult) -> Self {
        Entry {
            id,
            model,
            backends: result.evals.iter().map(|e| e.backend.clone()).collect(),
        }
    }
}

impl Workbench {
    /// The model a finished experiment measured: the float model, its kept file, or its config
    /// quantized again (the calibration is cached).
    pub fn model_of(
        &mut self,
        experiment: &Experiment,
        progress: &Progress,
    ) -> Result<pb::ModelProto> {
        let Some(config) = &experiment.config else {
            return Ok(self.float.clone());
        };
        if let Some(kept) = experiment
            .result
            .model_path
            .as_deref()
            .map(std::path::Path::new)
            .filter(|p| p.is_file())
        {
            return onnx::read_model(kept);
        }
        if let Some((c, model)) = &self.last_model {
            if c == config {
                return Ok(model.clone());
            }
        }
        let model = self.quantize(config, progress)?.0;
        self.last_model = Some((config.clone(), model.clone()));
        Ok(model)
    }

    /// Times `entries` together on every runtime of `settings`; one [`RunEvent::Timed`] each.
    pub(super) fn time(
        &mut self,
        entries: Vec<Entry>,
        settings: &RunSettings,
        progress: &Progress,
        on_event: &mut dyn FnMut(RunEvent) -> Result<()>,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut timings: Vec<Timing> = entries.iter().map(|_| Timing::default()).collect();
        for &backend in &settings.backends {
            progress.check()?;
            let on: Vec<usize> = (0..entries.len())
                .filter(|&k| entries[k].backends.iter().any(|b| b == backend.name()))
                .collect();
            if on.is_empty() {
                continue;
            }
            let models: Vec<&pb::ModelProto> = on.iter().map(|&k| &entries[k].model).collect();
            let timed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.time_on(&models, backend, settings, progress)
            }))
            .unwrap_or_else(|panic| {
                Err(anyhow::anyhow!(
                    "internal error: {} (please report it)",
                    jobs::panic_text(panic.as_ref())
                ))
            });
            match timed {
                Ok(reports) => {
                    for (&k, report) in on.iter().zip(reports) {
                        match report {
                            Ok(r) => timings[k].benches.push(r),
                            Err(e) => timings[k]
                                .notes
                                .push(format!("{} latency: {e:#}", backend.name())),
                        }
                    }
                }
                Err(e) if jobs::is_cancelled(&e) => return Err(e),
                // The accuracy stands without a latency (a device out of reach).
                Err(e) => {
                    for &k in &on {
                        timings[k]
                            .notes
                            .push(format!("{} latency: {e:#}", backend.name()));
                    }
                }
            }
        }
        for (entry, timing) in entries.iter().zip(timings) {
            on_event(RunEvent::Timed(entry.id, Box::new(timing)))?;
        }
        Ok(())
    }

    /// Each of `models`' latency on `backend`: here, in rounds; on a device, one after another.
    fn time_on(
        &self,
        models: &[&pb::ModelProto],
        backend: Backend,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<Vec<Result<BenchReport>>> {
        if let Some(remote) = &settings.remote {
            progress.stage(&format!("timing on {remote}"), models.len() as u64);
            return Ok(models
                .iter()
                .map(|m| {
                    let report = bench::remote::benchmark_model(
                        remote,
                        m,
                        &self.example,
                        backend,
                        &settings.bench,
                    );
                    progress.step();
                    report.map(|mut r| {
                        if models.len() > 1 {
                            r.warnings.push(
                                "timed on the device one model after another, not in rounds with the others"
                                    .into(),
                            );
                        }
                        r
                    })
                })
                .collect());
        }
        let sizes: Vec<u64> = models
            .iter()
            .map(|m| prost::Message::encoded_len(*m) as u64)
            .collect();
        let timed: Vec<Timed> = models
            .iter()
            .zip(&sizes)
            .map(|(model, &size_bytes)| Timed { model, size_bytes })
            .collect();
        let together =
            bench::benchmark_together(&timed, backend, &self.example, &settings.bench, progress)?;
        Ok(together.reports.into_iter().map(Ok).collect())
    }
}
