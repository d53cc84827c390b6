//! Background work shared by the CLI and the GUI: progress counters, a stage label and a cancel
//! flag that the engine's loops check, all cheap to read from another thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
        self.state.done.fetch_add(1, Ordering::Relaxed);
        self.notify();
    }

    fn notify(&self) {
        if let Some(f) = &self.on_change {
            f();
        }
    }

    pub fn cancel(&self) {
        self.state.cancel.store(true, Ordering::Relaxed);
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
