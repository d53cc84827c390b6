//! The window's background work as one typed set: every task is a job of the engine's job
//! service, keyed by what it is for ([`TaskKind`]), and polled in one place. Opening something
//! new stops the opening in flight; a task that is no longer wanted is cancelled and kept until
//! its thread ends, so that dropping it never waits on the UI thread.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use quantbench::jobs::{Job, JobContext, JobEnd, JobEvent, Progress};
use quantbench::quant::inspect::Inspection;
use quantbench::runner::RunEvent;
use quantbench::session::ExperimentId;

use super::tasks::{Interrupted, Loaded};

/// What a background task is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// Opening a model, a session or a dataset: one at a time.
    Open,
    /// Running experiments: one run at a time.
    Experiments,
    /// The calibration inspector's figures for an experiment's settings (`None`: the Settings
    /// tab's): one at a time.
    Inspect(Option<ExperimentId>),
    /// Ranking an experiment's layers by sensitivity: one at a time.
    Sensitivity(ExperimentId),
    /// Why an experiment's model is not faster: one at a time.
    Explain(ExperimentId),
    /// The search (tune): one at a time.
    Tune,
    /// Saving the session after a change: one at a time.
    Autosave,
    /// Looking for a session that a window which is gone was working on, at start-up.
    RecoveryCheck,
    /// A file the user asked for (an export, a save, a screenshot, a table): any number.
    Write,
}

impl TaskKind {
    /// Whether a second task of this kind replaces the first (which is cancelled).
    fn replaces(self) -> bool {
        matches!(
            self,
            TaskKind::Open | TaskKind::Inspect(_) | TaskKind::Sensitivity(_) | TaskKind::Explain(_)
        )
    }

    /// Whether a second task of this kind may run beside the first.
    fn many(self) -> bool {
        self == TaskKind::Write
    }
}

/// What a task hands back when it is done.
pub enum TaskOutput {
    Opened(Box<Loaded>),
    /// The experiments were reported one by one while the run went on; what the runner said
    /// of the run as a whole (a runtime not found).
    Ran(Vec<String>),
    Inspected(Box<Inspection>),
    Ranked(Box<quantbench::sensitivity::SensitivityReport>),
    Explained(Box<quantbench::bench::explain::SpeedExplanation>),
    /// The search's session at its end, and the candidate it chose.
    Tuned(Box<quantbench::session::Session>, ExperimentId),
    /// A file was written; what to say (empty: nothing).
    Wrote(String),
    Recovery(Option<Box<Interrupted>>),
}

/// What a task's thread reports while it works: a run, its experiments as they start and
/// finish; the search, the session as it grows and its steps in words.
#[derive(Debug)]
pub enum TaskMessage {
    Run(RunEvent),
    /// The search's session after a candidate finished.
    TuneSession(Box<quantbench::session::Session>),
    /// A step of the search, in words.
    TuneSays(String),
}

/// A task's thread reports experiments as they start and finish (only runs do).
pub type TaskEvent = JobEvent<TaskMessage, TaskOutput>;

struct Task {
    kind: TaskKind,
    /// What it is doing, in words (empty: nothing worth showing).
    label: String,
    job: Job<TaskMessage, TaskOutput>,
}

/// The experiments a run has not finished yet.
#[derive(Default)]
struct RunQueue {
    current: Option<ExperimentId>,
    queued: Vec<ExperimentId>,
    /// Those it will time (the run's and those compared with them) and has not yet.
    untimed: Vec<ExperimentId>,
}

/// What the experiments panel shows of a run.
pub struct RunStatus<'a> {
    pub progress: &'a Progress,
    pub started: Instant,
    pub current: Option<ExperimentId>,
    pub queued: &'a [ExperimentId],
    pub untimed: &'a [ExperimentId],
}

impl RunStatus<'_> {
    /// Whether experiment `id` is running or waiting its turn.
    pub fn includes(&self, id: ExperimentId) -> bool {
        self.current == Some(id) || self.queued.contains(&id)
    }
}

pub struct BackgroundTasks {
    tasks: Vec<Task>,
    /// Cancelled jobs whose threads have not ended: dropped (joined) once they have.
    retired: Vec<Job<TaskMessage, TaskOutput>>,
    run: RunQueue,
    repaint: std::sync::Arc<dyn Fn() + Send + Sync>,
}

impl BackgroundTasks {
    /// `repaint` is called after each message and progress update of every task.
    pub fn new(repaint: impl Fn() + Send + Sync + 'static) -> Self {
        BackgroundTasks {
            tasks: vec![],
            retired: vec![],
            run: RunQueue::default(),
            repaint: std::sync::Arc::new(repaint),
        }
    }

    /// Starts `work` as a task of `kind`. A task of a kind that replaces stops the one in
    /// flight; a second run of experiments is refused.
    pub fn spawn(
        &mut self,
        kind: TaskKind,
        label: String,
        work: impl FnOnce(&JobContext<TaskMessage, TaskOutput>) -> Result<TaskOutput> + Send + 'static,
    ) -> Result<()> {
        if kind.replaces() {
            self.cancel_where(|k| std::mem::discriminant(&k) == std::mem::discriminant(&kind));
        } else if !kind.many() && self.is_running(kind) {
            return Err(anyhow!("{label}: already running"));
        }
        let repaint = self.repaint.clone();
        let name = match kind {
            TaskKind::Open => "open",
            TaskKind::Experiments => "experiments",
            TaskKind::Inspect(_) => "inspect",
            TaskKind::Sensitivity(_) => "sensitivity",
            TaskKind::Explain(_) => "explain",
            TaskKind::Tune => "tune",
            TaskKind::Autosave => "autosave",
            TaskKind::RecoveryCheck => "recovery-check",
            TaskKind::Write => "write",
        };
        let job = Job::spawn(name, move || repaint(), work)?;
        self.tasks.push(Task { kind, label, job });
        Ok(())
    }

    /// Starts a run of `experiments` (their ids, in order) that times `retimed` with them.
    pub fn spawn_run(
        &mut self,
        experiments: Vec<ExperimentId>,
        retimed: Vec<ExperimentId>,
        work: impl FnOnce(&JobContext<TaskMessage, TaskOutput>) -> Result<TaskOutput> + Send + 'static,
    ) -> Result<()> {
        let label = if experiments.is_empty() {
            "Timing the experiments again…"
        } else {
            "Running experiments…"
        };
        self.spawn(TaskKind::Experiments, label.into(), work)?;
        let mut untimed = experiments.clone();
        untimed.extend(retimed);
        self.run = RunQueue {
            current: None,
            queued: experiments,
            untimed,
        };
        Ok(())
    }

    fn cancel_where(&mut self, matches: impl Fn(TaskKind) -> bool) -> Vec<String> {
        let mut labels = vec![];
        let mut kept = vec![];
        for task in std::mem::take(&mut self.tasks) {
            if matches(task.kind) {
                task.job.cancel();
                labels.push(task.label);
                self.retired.push(task.job);
            } else {
                kept.push(task);
            }
        }
        self.tasks = kept;
        if matches(TaskKind::Experiments) {
            self.run = RunQueue::default();
        }
        labels
    }

    /// Stops the tasks of `kind`; their labels.
    pub fn cancel(&mut self, kind: TaskKind) -> Vec<String> {
        self.cancel_where(|k| k == kind)
    }

    /// Asks the run to stop after the experiment it is on: what it finished comes in as usual,
    /// then its end.
    pub fn stop_run(&self) {
        for t in self
            .tasks
            .iter()
            .filter(|t| t.kind == TaskKind::Experiments)
        {
            t.job.cancel();
        }
    }

    pub fn is_running(&self, kind: TaskKind) -> bool {
        self.tasks.iter().any(|t| t.kind == kind)
    }

    /// The label of the running task of `kind`.
    pub fn label(&self, kind: TaskKind) -> Option<&str> {
        self.tasks
            .iter()
            .find(|t| t.kind == kind)
            .map(|t| t.label.as_str())
    }

    /// The experiment whose layers are being ranked, if any.
    pub fn ranking(&self) -> Option<ExperimentId> {
        self.tasks.iter().find_map(|t| match t.kind {
            TaskKind::Sensitivity(e) => Some(e),
            _ => None,
        })
    }

    /// The experiment being explained, if any.
    pub fn explaining(&self) -> Option<ExperimentId> {
        self.tasks.iter().find_map(|t| match t.kind {
            TaskKind::Explain(e) => Some(e),
            _ => None,
        })
    }

    /// The inspector's task, if one runs: for which experiment.
    pub fn inspecting(&self) -> Option<Option<ExperimentId>> {
        self.tasks.iter().find_map(|t| match t.kind {
            TaskKind::Inspect(e) => Some(e),
            _ => None,
        })
    }

    pub fn is_idle(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The run of experiments, if one is going.
    pub fn run(&self) -> Option<RunStatus<'_>> {
        let task = self
            .tasks
            .iter()
            .find(|t| t.kind == TaskKind::Experiments)?;
        Some(RunStatus {
            progress: task.job.progress(),
            started: task.job.started(),
            current: self.run.current,
            queued: &self.run.queued,
            untimed: &self.run.untimed,
        })
    }

    /// What runs besides experiments, in words, and whether the user can stop it.
    pub fn activity(&self) -> Vec<(String, bool)> {
        self.tasks
            .iter()
            .filter(|t| t.kind != TaskKind::Experiments && !t.label.is_empty())
            .map(|t| (t.label.clone(), t.kind == TaskKind::Open))
            .collect()
    }

    /// The events that arrived, at most `budget` per task, each with the kind of its task; a
    /// task whose end is among them is gone from the set.
    pub fn poll(&mut self, budget: usize) -> Vec<(TaskKind, TaskEvent)> {
        self.retired.retain(|j| !j.is_finished());
        let mut out = vec![];
        let mut ended = vec![];
        for (i, task) in self.tasks.iter_mut().enumerate() {
            for event in task.job.poll(budget) {
                match &event {
                    JobEvent::Message(TaskMessage::Run(RunEvent::Started(id))) => {
                        self.run.current = Some(*id);
                        self.run.queued.retain(|q| q != id);
                    }
                    JobEvent::Message(TaskMessage::Run(RunEvent::Timed(id, _))) => {
                        self.run.untimed.retain(|q| q != id);
                    }
                    JobEvent::Message(TaskMessage::Run(RunEvent::Failed(id, _))) => {
                        self.run.current = None;
                        self.run.untimed.retain(|q| q != id);
                    }
                    JobEvent::Message(TaskMessage::Run(_)) => self.run.current = None,
                    JobEvent::Message(_) => {}
                    JobEvent::End(_) => ended.push(i),
                }
                out.push((task.kind, event));
            }
        }
        for i in ended.into_iter().rev() {
            let task = self.tasks.remove(i);
            if task.kind == TaskKind::Experiments {
                self.run = RunQueue::default();
            }
            self.retired.push(task.job);
        }
        out
    }

    /// Waits for the next event of some task and keeps it for `poll` (tests step the window in
    /// between: a headless harness has no frame clock to wait on); joins cancelled jobs.
    #[cfg(test)]
    pub fn wait_for_any(&mut self, timeout: Duration) {
        self.retired.clear();
        // Writes and opens first: they are short, and what a run waits on.
        let first = self
            .tasks
            .iter()
            .position(|t| t.kind != TaskKind::Experiments)
            .or(if self.tasks.is_empty() { None } else { Some(0) });
        if let Some(i) = first {
            self.tasks[i].job.wait_and_keep(timeout);
        }
    }

    /// Closing the window: the run and the opening stop; writes finish (a save in flight is
    /// not cut off: it is waited for, looked at every `tick`). Returns the failures of the
    /// writes, to be said.
    pub fn shut_down(&mut self, tick: Duration) -> Vec<String> {
        self.cancel_where(|k| !matches!(k, TaskKind::Write | TaskKind::Autosave));
        self.retired.clear();
        let mut failures = vec![];
        for task in std::mem::take(&mut self.tasks) {
            let label = task.label;
            if let JobEnd::Failed(e) = task.job.run_to_end(tick, |_| {}, |_| {}) {
                failures.push(format!("{label}: {e:#}"));
            }
        }
        failures
    }
}
