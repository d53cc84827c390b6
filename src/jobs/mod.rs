//! Background work, shared by the CLI and the GUI: the one way the engine runs off the caller's
//! thread.
//!
//! [`Job::spawn`] runs a function on a named thread that owns its inputs. The function reports
//! typed messages of its own over a bounded channel and returns its result; the caller reads
//! [`JobEvent`]s, the last of which is always [`JobEvent::End`] with [`JobEnd::Done`],
//! [`JobEnd::Cancelled`] or [`JobEnd::Failed`] — also when the function panics (the panic
//! becomes a failure of that job) or its thread dies. Dropping a job cancels it and joins its
//! thread.
//!
//! Progress (stage, done/total) and cancellation go through [`Progress`], whose counters are
//! cheap to read from another thread. The job's `Progress` is also the *ambient* one of its
//! thread: [`checkpoint`], which the engine's entry points and long steps call (reading a
//! model, loading it into a runtime, opening data, quantizing...), returns [`Cancelled`] once
//! the job was asked to stop, so cancel is honoured inside model loading and session creation
//! too, not only between samples.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Returned (inside `anyhow::Error`) when a job stops because it was asked to.
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

pub fn is_cancelled(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Cancelled>().is_some()
}

#[derive(Default)]
struct State {
    done: AtomicU64,
    total: AtomicU64,
    cancel: AtomicBool,
    stage: Mutex<String>,
}

/// A handle on one job's progress; clones share the same counters.
#[derive(Clone, Default)]
pub struct Progress {
    state: Arc<State>,
    on_change: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `f` after each update (the GUI passes `request_repaint`).
    pub fn with_notify(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_change = Some(Arc::new(f));
        self
    }

    /// Starts a stage of `total` steps.
    pub fn stage(&self, name: &str, total: u64) {
        if let Ok(mut s) = self.state.stage.lock() {
            *s = name.to_string();
        }
        self.state.done.store(0, Ordering::Relaxed);
        self.state.total.store(total, Ordering::Relaxed);
        self.notify();
    }

    pub fn step(&self) {
        self.advance(1);
    }

    /// `n` steps at once (work resumed from a checkpoint).
    pub fn advance(&self, n: u64) {
        self.state.done.fetch_add(n, Ordering::Relaxed);
        self.notify();
    }

    fn notify(&self) {
        if let Some(f) = &self.on_change {
            f();
        }
    }

    pub fn cancel(&self) {
        self.state.cancel.store(true, Ordering::Relaxed);
        self.notify();
    }

    pub fn is_cancelled(&self) -> bool {
        self.state.cancel.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once cancel was asked for: call it inside loops.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.is_cancelled() {
            return Err(Cancelled.into());
        }
        Ok(())
    }

    /// (stage, done, total)
    pub fn snapshot(&self) -> (String, u64, u64) {
        let stage = self
            .state
            .stage
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        (
            stage,
            self.state.done.load(Ordering::Relaxed),
            self.state.total.load(Ordering::Relaxed),
        )
    }
}

/// Observes engine entry points on the thread it is installed on (see [`set_tap`]).
pub type Tap = Arc<dyn Fn(&'static str) + Send + Sync>;

thread_local! {
    /// The job this thread runs, if it is a job's thread.
    static AMBIENT: RefCell<Option<Progress>> = const { RefCell::new(None) };
    static TAP: RefCell<Option<Tap>> = const { RefCell::new(None) };
}

/// Called by the engine where work begins that a window must never wait on, and between the
/// long steps of such work. Returns `Err(Cancelled)` when this thread's job was cancelled.
/// `what` names the work for a [`Tap`].
pub fn checkpoint(what: &'static str) -> anyhow::Result<()> {
    let tap = TAP.with(|t| t.borrow().clone());
    if let Some(tap) = tap {
        tap(what);
    }
    AMBIENT.with(|a| match &*a.borrow() {
        Some(p) => p.check(),
        None => Ok(()),
    })
}

/// Installs `tap` on this thread: it sees every [`checkpoint`] made here and on the threads of
/// jobs spawned from here (tests use it to check that a window's thread never does engine work,
/// and to make the engine slow). `None` removes it.
pub fn set_tap(tap: Option<Tap>) {
    TAP.with(|t| *t.borrow_mut() = tap);
}

/// How a job ended.
pub enum JobEnd<T> {
    Done(T),
    /// Stopped at the caller's request.
    Cancelled,
    /// Returned an error, panicked, or its thread died.
    Failed(anyhow::Error),
}

impl<T> std::fmt::Debug for JobEnd<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobEnd::Done(_) => write!(f, "Done"),
            JobEnd::Cancelled => write!(f, "Cancelled"),
            JobEnd::Failed(e) => write!(f, "Failed({e:#})"),
        }
    }
}

/// What a job's thread sends: messages of the job's own type while it works, then its end.
pub enum JobEvent<M, T> {
    Message(M),
    End(JobEnd<T>),
}

/// What the job's function works with: its progress (stages, steps, cancel) and a way to
/// send messages back.
pub struct JobContext<M, T> {
    pub progress: Progress,
    tx: SyncSender<JobEvent<M, T>>,
    notify: Arc<dyn Fn() + Send + Sync>,
}

impl<M, T> JobContext<M, T> {
    /// Sends a message; waits while the channel is full (the reader is behind: memory stays
    /// bounded). Once the reader is gone the message is dropped.
    pub fn send(&self, message: M) {
        if self.tx.send(JobEvent::Message(message)).is_ok() {
            (self.notify)();
        }
    }
}

/// Room for this many unread events before the job's thread waits.
const CHANNEL_BOUND: usize = 64;

/// A job running on its own named thread.
pub struct Job<M, T> {
    name: String,
    progress: Progress,
    events: Receiver<JobEvent<M, T>>,
    thread: Option<JoinHandle<()>>,
    started: Instant,
    /// The end was handed out (or made up for a dead thread).
    ended: bool,
    /// Events read by `wait` and not yet handed out.
    waiting: std::collections::VecDeque<JobEvent<M, T>>,
}

impl<M: Send + 'static, T: Send + 'static> Job<M, T> {
    /// Runs `work` on a thread named `quantbench-{name}`. `notify` is called after each message
    /// and progress update (a window's `request_repaint`). An error `work` returns that is
    /// [`Cancelled`] ends the job as [`JobEnd::Cancelled`]; a panic ends it as a failure.
    pub fn spawn(
        name: &str,
        notify: impl Fn() + Send + Sync + 'static,
        work: impl FnOnce(&JobContext<M, T>) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<Self> {
        let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(notify);
        let repaint = notify.clone();
        let progress = Progress::new().with_notify(move || repaint());
        let (tx, events) = sync_channel(CHANNEL_BOUND);
        let context = JobContext {
            progress: progress.clone(),
            tx,
            notify,
        };
        let tap = TAP.with(|t| t.borrow().clone());
        let thread_name = format!("quantbench-{name}");
        let thread = std::thread::Builder::new()
            .name(thread_name.clone())
            .spawn(move || {
                set_tap(tap);
                AMBIENT.with(|a| *a.borrow_mut() = Some(context.progress.clone()));
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&context)));
                let end = match outcome {
                    Ok(Ok(value)) => JobEnd::Done(value),
                    Ok(Err(e)) if is_cancelled(&e) => JobEnd::Cancelled,
                    Ok(Err(e)) => JobEnd::Failed(e),
                    Err(panic) => JobEnd::Failed(anyhow::anyhow!(
                        "internal error: {} (please report it)",
                        panic_text(panic.as_ref())
                    )),
                };
                if context.tx.send(JobEvent::End(end)).is_ok() {
                    (context.notify)();
                }
            })
            .map_err(|e| anyhow::anyhow!("cannot start the thread {thread_name}: {e}"))?;
        Ok(Job {
            name: name.to_string(),
            progress,
            events,
            thread: Some(thread),
            started: Instant::now(),
            ended: false,
            waiting: Default::default(),
        })
    }
}

impl<M, T> Job<M, T> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn cancel(&self) {
        self.progress.cancel();
    }

    /// Whether the thread has finished (its events may still wait to be read).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Whether the end was handed out: nothing more will come.
    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// The events that arrived since the last call, at most `budget` of them, without waiting.
    pub fn poll(&mut self, budget: usize) -> Vec<JobEvent<M, T>> {
        let mut out = vec![];
        while out.len() < budget {
            match self.next(None) {
                Some(e) => out.push(e),
                None => break,
            }
        }
        out
    }

    /// The next event, waiting at most `timeout` for it (the CLI's loop; tests).
    pub fn wait(&mut self, timeout: Duration) -> Option<JobEvent<M, T>> {
        self.next(Some(timeout))
    }

    /// Waits for the next event and keeps it for `poll` (a test stepping a window waits here
    /// instead of sleeping).
    pub fn wait_and_keep(&mut self, timeout: Duration) {
        if let Some(e) = self.next(Some(timeout)) {
            self.waiting.push_back(e);
        }
    }

    fn next(&mut self, timeout: Option<Duration>) -> Option<JobEvent<M, T>> {
        if let Some(e) = self.waiting.pop_front() {
            return Some(e);
        }
        if self.ended {
            return None;
        }
        let received = match timeout {
            None => self.events.try_recv().map_err(|e| match e {
                TryRecvError::Empty => None,
                TryRecvError::Disconnected => Some(()),
            }),
            Some(t) => self.events.recv_timeout(t).map_err(|e| match e {
                RecvTimeoutError::Timeout => None,
                RecvTimeoutError::Disconnected => Some(()),
            }),
        };
        let event = match received {
            Ok(e) => e,
            Err(None) => return None,
            // Every sender is gone without an end: the thread died (it cannot, short of an
            // abort inside a dependency; said rather than left "running" forever).
            Err(Some(())) => JobEvent::End(JobEnd::Failed(anyhow::anyhow!(
                "the job '{}' stopped without a result",
                self.name
            ))),
        };
        if matches!(event, JobEvent::End(_)) {
            self.ended = true;
        }
        Some(event)
    }

    /// Runs the job to its end on this thread: `on_message` for each message, `on_tick` at
    /// least every `tick` (a progress bar). Returns how it ended.
    pub fn run_to_end(
        mut self,
        tick: Duration,
        mut on_message: impl FnMut(M),
        mut on_tick: impl FnMut(&Progress),
    ) -> JobEnd<T> {
        loop {
            match self.wait(tick) {
                Some(JobEvent::Message(m)) => on_message(m),
                Some(JobEvent::End(end)) => return end,
                None => on_tick(&self.progress),
            }
        }
    }
}

impl<M, T> Drop for Job<M, T> {
    /// Cancels, then joins: reads (and drops) events until the thread's sender is gone, so a
    /// send blocked on a full channel can finish; no polling loop.
    fn drop(&mut self) {
        self.progress.cancel();
        if let Some(t) = self.thread.take() {
            while self.events.recv().is_ok() {}
            let _ = t.join();
        }
    }
}

thread_local! {
    /// Inside [`catch_panics`] on this thread: a panic here becomes an error, said once by
    /// whoever handles it, not printed by the panic hook too.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, which calls into a dependency that can panic on malformed input (tract's shape
/// inference does on some graphs), and turns a panic into an error saying `what` failed.
pub fn catch_panics<T>(what: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let was = CATCHING.with(|c| c.replace(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was));
    outcome.unwrap_or_else(|panic| {
        Err(anyhow::anyhow!(
            "{what} failed inside tract ({})",
            panic_text(panic.as_ref())
        ))
    })
}

/// Keeps the panic hook quiet about panics [`catch_panics`] turns into errors; every other
/// panic goes to the hook installed before (the default one prints it). Called once at start.
pub fn install_panic_hook() {
    let next = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !CATCHING.with(|c| c.get()) {
            next(info);
        }
    }));
}

/// The message a panic carried.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_of<M, T>(job: Job<M, T>) -> JobEnd<T> {
        job.run_to_end(Duration::from_secs(60), |_| {}, |_| {})
    }

    #[test]
    fn messages_arrive_in_order_then_the_result() {
        let mut job = Job::spawn(
            "t",
            || {},
            |cx| {
                for i in 0..200u32 {
                    cx.send(i); // more than the channel holds: the sender waits for the reader
                }
                Ok("done")
            },
        )
        .unwrap();
        let mut got = vec![];
        let end = loop {
            match job.wait(Duration::from_secs(60)) {
                Some(JobEvent::Message(i)) => got.push(i),
                Some(JobEvent::End(end)) => break end,
                None => panic!("no event within a minute"),
            }
        };
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        assert!(matches!(end, JobEnd::Done("done")));
        assert!(job.has_ended());
        assert!(job.poll(10).is_empty(), "nothing after the end");
    }

    #[test]
    fn a_panic_is_a_failure_with_its_message_and_errors_keep_their_chain() {
        let job: Job<(), ()> = Job::spawn("t", || {}, |_| panic!("index 7 out of range")).unwrap();
        match end_of(job) {
            JobEnd::Failed(e) => assert!(
                e.to_string()
                    .contains("internal error: index 7 out of range"),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
        let job: Job<(), ()> = Job::spawn(
            "t",
            || {},
            |_| Err(anyhow::anyhow!("no such file").context("m.onnx: cannot read")),
        )
        .unwrap();
        match end_of(job) {
            JobEnd::Failed(e) => assert_eq!(format!("{e:#}"), "m.onnx: cannot read: no such file"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cancel_is_seen_at_checkpoints_inside_engine_calls_and_is_a_type() {
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let job: Job<(), u32> = Job::spawn(
            "t",
            || {},
            move |_| {
                let _ = started_tx.send(());
                let mut passed = 0;
                loop {
                    // What the engine does between the steps of loading a model.
                    checkpoint("step")?;
                    passed += 1;
                    if passed > 100_000_000 {
                        return Ok(passed);
                    }
                }
            },
        )
        .unwrap();
        started_rx.recv().unwrap();
        job.cancel();
        assert!(matches!(end_of(job), JobEnd::Cancelled));
        // An error that merely says "cancelled" is a failure, not a cancellation.
        let job: Job<(), ()> =
            Job::spawn("t", || {}, |_| Err(anyhow::anyhow!("cancelled"))).unwrap();
        assert!(matches!(end_of(job), JobEnd::Failed(_)));
        // Outside a job, a checkpoint never cancels.
        assert!(checkpoint("outside").is_ok());
    }

    #[test]
    fn dropping_a_job_cancels_and_joins_it_even_with_a_full_channel() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let job: Job<u32, ()> = Job::spawn(
            "t",
            || {},
            move |cx| {
                let mut i = 0;
                while cx.progress.check().is_ok() {
                    cx.send(i);
                    i += 1;
                }
                flag.store(true, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap();
        drop(job);
        assert!(finished.load(Ordering::SeqCst), "the thread ran to its end");
    }

    #[test]
    fn a_tap_follows_work_into_the_jobs_spawned_from_its_thread() {
        let seen = Arc::new(Mutex::new(vec![]));
        let log = seen.clone();
        set_tap(Some(Arc::new(move |what| {
            let thread = std::thread::current().name().unwrap_or("").to_string();
            log.lock().unwrap().push((what, thread));
        })));
        checkpoint("here").unwrap();
        let job: Job<(), ()> = Job::spawn("tapped", || {}, |_| checkpoint("there")).unwrap();
        assert!(matches!(end_of(job), JobEnd::Done(())));
        set_tap(None);
        checkpoint("untapped").unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].0, "here");
        assert_eq!(seen[1], ("there", "quantbench-tapped".to_string()));
    }
}
