//! The background job that runs experiments: a named thread that owns its inputs (model,
//! dataset description, experiment configs), reports over a bounded channel, asks for a repaint
//! after each message, and stops at the cancel flag, also when dropped.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;
use std::time::Instant;

use quantbench::data::{Dataset, DatasetDesc};
use quantbench::jobs::{self, Progress};
use quantbench::onnx::pb;
use quantbench::runtime::Backend;
use quantbench::session::Experiment;
use quantbench::sweep::{SweepSettings, Workbench};

/// What the job thread reports; experiments are named by id, never by position.
pub enum JobEvent {
    Started(u64),
    Done(u64, Box<Experiment>),
    /// The job ended, after the last experiment or early.
    Finished(JobEnd),
}

pub enum JobEnd {
    Completed,
    /// Stopped at the user's request; finished experiments were reported.
    Cancelled,
    /// Could not go on (the dataset does not open, the thread died...).
    Failed(anyhow::Error),
}

pub struct JobInput {
    pub model: pb::ModelProto,
    pub model_bytes: u64,
    pub dataset_desc: DatasetDesc,
    pub dataset_base: PathBuf,
    pub dataset_path: PathBuf,
    /// The experiments to run, in order (each carries its id).
    pub experiments: Vec<Experiment>,
    pub settings: SweepSettings,
}

pub struct RunningJob {
    pub progress: Progress,
    events: Receiver<JobEvent>,
    thread: Option<JoinHandle<()>>,
    pub started: Instant,
    /// Ids of the running and the queued experiments.
    pub current: Option<u64>,
    pub queued: Vec<u64>,
    /// The thread's end was reported (or found: a dead thread).
    ended: bool,
    /// Events received while waiting (tests), handed out first by `poll`.
    waited: std::collections::VecDeque<JobEvent>,
}

impl RunningJob {
    pub fn spawn(
        input: JobInput,
        repaint: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<RunningJob> {
        let repaint = std::sync::Arc::new(repaint);
        let notify = repaint.clone();
        let progress = Progress::new().with_notify(move || notify());
        let (tx, events) = sync_channel(64);
        let queued = input.experiments.iter().map(|e| e.id).collect();
        let job_progress = progress.clone();
        let thread = std::thread::Builder::new()
            .name("quantbench-experiments".into())
            .spawn(move || {
                // A full channel means the UI is behind: wait for room (bounded memory); once the
                // UI is gone, sending fails and the event is dropped.
                let send = |event: JobEvent| {
                    if tx.send(event).is_ok() {
                        repaint();
                    }
                };
                // A panic outside any one experiment (opening the dataset) ends the job as a
                // failure instead of leaving the window on "running".
                let end = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(input, &job_progress, &send)
                }))
                .unwrap_or_else(|panic| {
                    JobEnd::Failed(anyhow::anyhow!(
                        "internal error: {} (please report it)",
                        panic_text(&panic)
                    ))
                });
                send(JobEvent::Finished(end));
            })?;
        Ok(RunningJob {
            progress,
            events,
            thread: Some(thread),
            started: Instant::now(),
            current: None,
            queued,
            ended: false,
            waited: Default::default(),
        })
    }

    /// Messages that arrived since the last call, at most `budget` of them.
    /// A thread that is gone without saying how it ended is reported as failed.
    pub fn poll(&mut self, budget: usize) -> Vec<JobEvent> {
        let mut out: Vec<JobEvent> = self.waited.drain(..).collect();
        while out.len() < budget {
            match self.events.try_recv() {
                Ok(e) => out.push(e),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    let reported = out.iter().any(|e| matches!(e, JobEvent::Finished(_)));
                    if !self.ended && !reported {
                        out.push(JobEvent::Finished(JobEnd::Failed(anyhow::anyhow!(
                            "the job thread stopped without a result"
                        ))));
                    }
                    break;
                }
            }
        }
        if out.iter().any(|e| matches!(e, JobEvent::Finished(_))) {
            self.ended = true;
        }
        out
    }

    pub fn cancel(&self) {
        self.progress.cancel();
    }

    /// Cancels and waits for the thread to stop (it checks the flag within one sample),
    /// draining the channel meanwhile so that a send blocked on a full channel can finish.
    pub fn stop(mut self) {
        self.progress.cancel();
        if let Some(t) = self.thread.take() {
            while !t.is_finished() {
                let _ = self
                    .events
                    .recv_timeout(std::time::Duration::from_millis(10));
            }
            let _ = t.join();
        }
    }

    /// Blocks until the next event arrives and keeps it for `poll` (tests only: a headless
    /// harness has no frame clock to wait on).
    #[cfg(test)]
    pub fn wait_event(&mut self, timeout: std::time::Duration) {
        if let Ok(e) = self.events.recv_timeout(timeout) {
            self.waited.push_back(e);
        }
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        self.progress.cancel();
    }
}

fn run(input: JobInput, progress: &Progress, send: &dyn Fn(JobEvent)) -> JobEnd {
    let JobInput {
        model,
        model_bytes,
        dataset_desc,
        dataset_base,
        dataset_path,
        experiments,
        mut settings,
    } = input;
    if settings.backends.is_empty() {
        settings.backends = match quantbench::runtime::ort::version() {
            Ok(_) => vec![Backend::Tract, Backend::Ort(Default::default())],
            Err(_) => vec![Backend::Tract],
        };
    }
    let workbench = Dataset::from_desc(dataset_desc, &dataset_base, &dataset_path)
        .and_then(|dataset| Workbench::new(model, model_bytes, dataset));
    let mut workbench = match workbench {
        Ok(w) => w,
        Err(e) => return JobEnd::Failed(e),
    };
    run_each(experiments, send, |experiment| {
        workbench.run(experiment, &settings, progress)
    })
}

/// Runs each experiment with `run_one` and reports it by id. A panic inside one experiment is
/// that experiment's failure (recorded in its result), and the others go on.
fn run_each(
    experiments: Vec<Experiment>,
    send: &dyn Fn(JobEvent),
    mut run_one: impl FnMut(&mut Experiment) -> anyhow::Result<()>,
) -> JobEnd {
    for mut experiment in experiments {
        let id = experiment.id;
        send(JobEvent::Started(id));
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_one(&mut experiment)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) if jobs::is_cancelled(&e) => return JobEnd::Cancelled,
            Ok(Err(e)) => return JobEnd::Failed(e),
            Err(panic) => {
                experiment.result = Default::default();
                experiment.result.error = Some(format!(
                    "internal error: {} (please report it)",
                    panic_text(&panic)
                ));
            }
        }
        send(JobEvent::Done(id, Box::new(experiment)));
    }
    JobEnd::Completed
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
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
        let send = |e: JobEvent| events.lock().unwrap().push(e);
        let end = run_each(experiments, &send, |e| {
            if e.id == 20 {
                panic!("index out of bounds in the rewrite");
            }
            e.result.size_bytes = e.id;
            Ok(())
        });
        assert!(matches!(end, JobEnd::Completed));
        let done: Vec<(u64, Option<String>, u64)> = events
            .into_inner()
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                JobEvent::Done(id, e) => Some((id, e.result.error.clone(), e.result.size_bytes)),
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
    fn cancellation_is_a_type_not_a_string() {
        let experiments = vec![Experiment::float()];
        let end = run_each(experiments, &|_| {}, |_| Err(jobs::Cancelled.into()));
        assert!(matches!(end, JobEnd::Cancelled));
        let end = run_each(vec![Experiment::float()], &|_| {}, |_| {
            Err(anyhow::anyhow!("cancelled"))
        });
        assert!(matches!(end, JobEnd::Failed(_)));
    }
}
