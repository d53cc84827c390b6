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

pub enum JobEvent {
    Started(usize),
    Done(usize, Box<Experiment>),
    /// The job ended: `Ok` after the last experiment, `Err` with why it stopped.
    Finished(Result<(), String>),
}

pub struct JobInput {
    pub model: pb::ModelProto,
    pub model_bytes: u64,
    pub dataset_desc: DatasetDesc,
    pub dataset_base: PathBuf,
    pub dataset_path: PathBuf,
    /// (index in the session, experiment) to run, in order.
    pub experiments: Vec<(usize, Experiment)>,
    pub settings: SweepSettings,
}

pub struct RunningJob {
    pub progress: Progress,
    events: Receiver<JobEvent>,
    thread: Option<JoinHandle<()>>,
    pub started: Instant,
    pub current: Option<usize>,
    pub queued: Vec<usize>,
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
        let queued = input.experiments.iter().map(|(i, _)| *i).collect();
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
                let result = run(input, &job_progress, &send);
                send(JobEvent::Finished(result));
            })?;
        Ok(RunningJob {
            progress,
            events,
            thread: Some(thread),
            started: Instant::now(),
            current: None,
            queued,
            waited: Default::default(),
        })
    }

    /// Messages that arrived since the last call, at most `budget` of them.
    pub fn poll(&mut self, budget: usize) -> Vec<JobEvent> {
        let mut out: Vec<JobEvent> = self.waited.drain(..).collect();
        while out.len() < budget {
            match self.events.try_recv() {
                Ok(e) => out.push(e),
                Err(_) => break,
            }
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

fn run(input: JobInput, progress: &Progress, send: &dyn Fn(JobEvent)) -> Result<(), String> {
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
    let dataset = Dataset::from_desc(dataset_desc, &dataset_base, &dataset_path)
        .map_err(|e| format!("{e:#}"))?;
    let mut workbench =
        Workbench::new(model, model_bytes, dataset).map_err(|e| format!("{e:#}"))?;
    for (index, mut experiment) in experiments {
        send(JobEvent::Started(index));
        match workbench.run(&mut experiment, index, &settings, progress) {
            Ok(()) => send(JobEvent::Done(index, Box::new(experiment))),
            Err(e) if jobs::is_cancelled(&e) => return Err("cancelled".into()),
            Err(e) => return Err(format!("{e:#}")),
        }
    }
    Ok(())
}
