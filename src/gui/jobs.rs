//! The job that runs experiments, on the engine's job service ([`quantbench::jobs::Job`]): it
//! owns its inputs (model, dataset reference, experiment configs), reports each experiment by
//! id as it starts and finishes, and stops at cancel.

use std::sync::Arc;
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

use anyhow::Result;

use quantbench::data::Dataset;
use quantbench::jobs::{self, Job, JobContext, JobEvent, Progress};
use quantbench::onnx::pb;
use quantbench::runner::{RunSettings, Workbench};
use quantbench::runtime::Backend;
use quantbench::session::Experiment;

/// What the experiments job reports; experiments are named by id, never by position.
pub enum ExperimentEvent {
    Started(u64),
    Done(u64, Box<Experiment>),
}

pub type ExperimentsEvent = JobEvent<ExperimentEvent, ()>;

pub struct JobInput {
    pub model: Arc<pb::ModelProto>,
    pub model_bytes: u64,
    pub dataset: Arc<Dataset>,
    /// The experiments to run, in order (each carries its id).
    pub experiments: Vec<Experiment>,
    pub settings: RunSettings,
    /// The window's workbench for this model and dataset, kept between jobs: float outputs
    /// and calibrations computed once serve every later run (a layer toggled to float
    /// re-quantizes without calibrating again). Built by the first job that needs it.
    pub workbench: SharedWorkbench,
}

pub type SharedWorkbench = Arc<std::sync::Mutex<Option<Workbench>>>;

pub struct ExperimentsJob {
    job: Job<ExperimentEvent, ()>,
    /// Ids of the running and the queued experiments.
    pub current: Option<u64>,
    pub queued: Vec<u64>,
}

impl ExperimentsJob {
    pub fn spawn(input: JobInput, notify: impl Fn() + Send + Sync + 'static) -> Result<Self> {
        let queued = input.experiments.iter().map(|e| e.id).collect();
        let job = Job::spawn("experiments", notify, move |cx| run(input, cx))?;
        Ok(ExperimentsJob {
            job,
            current: None,
            queued,
        })
    }

    pub fn progress(&self) -> &Progress {
        self.job.progress()
    }

    pub fn started(&self) -> Instant {
        self.job.started()
    }

    pub fn cancel(&self) {
        self.job.cancel();
    }

    /// Reads up to `budget` events, keeping `current` and `queued` up to date.
    pub fn poll(&mut self, budget: usize) -> Vec<ExperimentsEvent> {
        let events = self.job.poll(budget);
        for e in &events {
            match e {
                JobEvent::Message(ExperimentEvent::Started(id)) => {
                    self.current = Some(*id);
                    self.queued.retain(|q| q != id);
                }
                JobEvent::Message(ExperimentEvent::Done(..)) => self.current = None,
                JobEvent::End(_) => {}
            }
        }
        events
    }

    /// Waits for the next event and keeps it for `poll` (tests: a headless harness has no frame
    /// clock to wait on).
    #[cfg(test)]
    pub fn wait_and_keep(&mut self, timeout: Duration) {
        self.job.wait_and_keep(timeout);
    }

    /// The job itself, to be dropped (cancelled and joined) once its thread has finished.
    pub fn into_job(self) -> Job<ExperimentEvent, ()> {
        self.job
    }
}

fn run(input: JobInput, cx: &JobContext<ExperimentEvent, ()>) -> Result<()> {
    let JobInput {
        model,
        model_bytes,
        dataset,
        experiments,
        mut settings,
        workbench: shared,
    } = input;
    if settings.backends.is_empty() {
        settings.backends = Backend::available(Default::default());
    }
    // The window never locks it: only jobs, one after another.
    let mut slot = shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let workbench = match slot.as_mut() {
        Some(w) => w,
        None => slot.insert(Workbench::new(
            model.as_ref().clone(),
            model_bytes,
            dataset,
        )?),
    };
    run_each(experiments, &|e| cx.send(e), |experiment| {
        workbench.run(experiment, &settings, &cx.progress)
    })
}

/// Runs each experiment with `run_one` and reports it by id. A panic inside one experiment is
/// that experiment's failure (recorded in its result), and the others go on; cancellation ends
/// the job (finished experiments were reported).
fn run_each(
    experiments: Vec<Experiment>,
    send: &dyn Fn(ExperimentEvent),
    mut run_one: impl FnMut(&mut Experiment) -> Result<()>,
) -> Result<()> {
    for mut experiment in experiments {
        let id = experiment.id;
        send(ExperimentEvent::Started(id));
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_one(&mut experiment)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(panic) => {
                experiment.result = Default::default();
                experiment.result.error = Some(format!(
                    "internal error: {} (please report it)",
                    jobs::panic_text(panic.as_ref())
                ));
            }
        }
        send(ExperimentEvent::Done(id, Box::new(experiment)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A panic in the second of three experiments: it is reported as that experiment's
    /// failure, by id; the third still runs; the job completes.
    #[test]
    fn a_panic_fails_its_experiment_and_the_job_goes_on() {
        let experiments: Vec<Experiment> = (1..=3)
            .map(|id| Experiment {
                id: id * 10,
                ..Experiment::float()
            })
            .collect();
        let events = Mutex::new(vec![]);
        let send = |e: ExperimentEvent| events.lock().unwrap().push(e);
        let end = run_each(experiments, &send, |e| {
            if e.id == 20 {
                panic!("index out of bounds in the rewrite");
            }
            e.result.size_bytes = e.id;
            Ok(())
        });
        assert!(end.is_ok());
        let done: Vec<(u64, Option<String>, u64)> = events
            .into_inner()
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                ExperimentEvent::Done(id, e) => {
                    Some((id, e.result.error.clone(), e.result.size_bytes))
                }
                _ => None,
            })
            .collect();
        assert_eq!(done.len(), 3);
        assert_eq!(done[0], (10, None, 10));
        assert_eq!(done[1].0, 20);
        assert!(done[1]
            .1
            .as_deref()
            .is_some_and(|e| e.contains("internal error: index out of bounds")));
        assert_eq!(done[2], (30, None, 30));
    }

    #[test]
    fn cancellation_ends_the_job_after_the_experiments_that_finished() {
        let experiments: Vec<Experiment> = (1..=3)
            .map(|id| Experiment {
                id,
                ..Experiment::float()
            })
            .collect();
        let done = Mutex::new(vec![]);
        let send = |e: ExperimentEvent| {
            if let ExperimentEvent::Done(id, _) = e {
                done.lock().unwrap().push(id)
            }
        };
        let end = run_each(experiments, &send, |e| {
            if e.id == 2 {
                return Err(jobs::Cancelled.into());
            }
            Ok(())
        });
        assert!(end.is_err_and(|e| jobs::is_cancelled(&e)));
        assert_eq!(done.into_inner().unwrap(), vec![1]);
    }
}
