//! The workbench driven by labels with egui_kittest, headless (no window, no GPU), on the
//! bundled MNIST sample: the harness and its helpers here, the tests by topic beside it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;

use super::app::WorkbenchApp;
use super::context::Level;
use super::AppCommand;
use quantbench::session::{Experiment, ExperimentId};

mod data;
mod experiments;
mod export;
mod layers;
mod layout;
mod scale_out;
mod sessions;
mod settings;
mod tune;
mod walk;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample_data/mnist/model.onnx")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Engine calls made inside a frame of a test's window, by test thread: each harness installs
/// a tap that records them, and `run_until_idle` asserts there were none.
static ENGINE_CALLS_IN_FRAMES: Mutex<Vec<(String, &'static str)>> = Mutex::new(Vec::new());

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

/// A tap that records engine work done inside a frame (on the UI thread), and passes the
/// rest to `other` (on job threads).
fn watch_frames(other: impl Fn(&'static str) + Send + Sync + 'static) {
    quantbench::jobs::set_tap(Some(Arc::new(move |what| {
        if super::app::in_frame() {
            ENGINE_CALLS_IN_FRAMES
                .lock()
                .unwrap()
                .push((thread_name(), what));
        } else {
            other(what);
        }
    })));
}

fn engine_calls_in_frames() -> Vec<&'static str> {
    let me = thread_name();
    ENGINE_CALLS_IN_FRAMES
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t == me)
        .map(|(_, w)| *w)
        .collect()
}

/// An empty headless app with quick settings (few samples, few runs) and a data folder of its
/// own (autosaves, kept models), watched for engine work on its thread.
fn empty_harness() -> Harness<'static, WorkbenchApp> {
    empty_harness_of(egui::vec2(1280.0, 800.0))
}

/// [`empty_harness`] in a window of `size`.
fn empty_harness_of(size: egui::Vec2) -> Harness<'static, WorkbenchApp> {
    watch_frames(|_| {});
    Harness::builder().with_size(size).build_eframe(|cc| {
        let mut app = WorkbenchApp::empty(Some(cc.egui_ctx.clone()), Instant::now());
        app.is_test = true;
        // No session bus, no zenity: the window must ask for paths itself.
        app.dialogs = crate::gui::dialogs::DialogService::detect(|_| None);
        app.run_settings.eval_limit = Some(300);
        app.run_settings.bench.runs = 5;
        app.run_settings.bench.warmup = 1;
        app.run_settings.layer_samples = 4;
        let temp = tempfile::tempdir().unwrap();
        app.data_dir = Some(temp.path().to_path_buf());
        app.temp = Some(temp);
        app
    })
}

/// The app on the MNIST sample, opened and ready.
fn harness() -> Harness<'static, WorkbenchApp> {
    let mut h = empty_harness();
    open(&mut h, sample());
    h
}

/// Opens a model or session the way the toolbar does and waits until it is open.
fn open(h: &mut Harness<'static, WorkbenchApp>, path: PathBuf) {
    h.state_mut().apply(AppCommand::OpenPath(path));
    run_until_idle(h);
}

/// The open session's experiments.
fn experiments<'h>(h: &'h Harness<'static, WorkbenchApp>) -> &'h [Experiment] {
    &h.state()
        .session
        .as_ref()
        .expect("a model is open")
        .experiments
}

/// Steps the UI until no background work is left, blocking on the work's messages in between
/// (the harness has no frame clock; this waits on the jobs, it does not sleep). Fails when a
/// frame did engine work.
fn run_until_idle(h: &mut Harness<'static, WorkbenchApp>) {
    let deadline = Instant::now() + Duration::from_secs(180);
    h.run_steps(2);
    while !h.state().is_idle() {
        assert!(
            Instant::now() < deadline,
            "the background work did not finish"
        );
        h.state_mut().wait_for_work(Duration::from_secs(5));
        h.run_steps(1);
    }
    h.run_steps(2);
    let calls = engine_calls_in_frames();
    assert!(
        calls.is_empty(),
        "engine work inside a frame (on the UI thread): {calls:?}"
    );
}

/// Moves the pointer onto the widget labelled `label`, then clicks it (egui needs the pointer
/// over a widget a frame before the press, as with a real mouse).
fn click(h: &mut Harness<'static, WorkbenchApp>, label: &str) {
    h.get_by_label(label).hover();
    h.run_steps(1);
    h.get_by_label(label).click();
    h.run_steps(1);
}

fn click_contains(h: &mut Harness<'static, WorkbenchApp>, label: &str) {
    h.get_by_label_contains(label).hover();
    h.run_steps(1);
    h.get_by_label_contains(label).click();
    h.run_steps(1);
}

/// Focuses the text field labelled `label` and types `text` into it.
fn type_into(h: &mut Harness<'static, WorkbenchApp>, label: &str, text: &str) {
    h.get_by_label(label).focus();
    h.run_steps(1);
    h.get_by_label(label).type_text(text);
    h.run_steps(1);
}

/// Clicks `button`, which asks for a path: with no dialog service the window's own prompt
/// opens, saying why; types `path` over what it offers and presses Enter.
fn choose_path(h: &mut Harness<'static, WorkbenchApp>, button: &str, path: &std::path::Path) {
    click(h, button);
    h.run();
    h.get_by_label_contains("no file dialog service");
    h.get_by_label("Location").focus();
    h.run_steps(1);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.run_steps(1);
    h.get_by_label("Location").type_text(path.to_str().unwrap());
    h.run_steps(1);
    h.key_press(egui::Key::Enter);
    h.run_steps(2);
    assert!(
        h.state().prompt.is_none(),
        "Enter did not apply the typed path"
    );
}

/// Adds the current settings as an experiment (with the float baseline) and runs both.
fn add_and_run(h: &mut Harness<'static, WorkbenchApp>) {
    click(h, "Add experiment");
    // Not `run`: the autosave the new experiment starts repaints the window when it ends.
    h.run_steps(2);
    click_contains(h, "Run (2 pending)");
    run_until_idle(h);
}

/// Opens the Settings tab and picks percentile calibration from its combo box.
/// Steps, not `run`: an autosave or an opening still in flight repaints the window when it
/// ends, which `run` would count against its step limit.
fn choose_percentile_calibration(h: &mut Harness<'static, WorkbenchApp>) {
    click(h, "Settings");
    h.run_steps(3);
    click(h, "Calibration");
    h.run_steps(3);
    click(h, "percentile");
    h.run_steps(3);
}

/// Holds job threads at the engine's checkpoints while closed: the engine made slow, without
/// a sleep (the test decides when it goes on).
#[derive(Default)]
struct Gate {
    /// (open, checkpoints held now)
    state: Mutex<(bool, Vec<&'static str>)>,
    changed: std::sync::Condvar,
}

impl Gate {
    /// Called by a job thread at a checkpoint: waits while the gate is closed.
    fn pass(&self, what: &'static str) {
        let mut s = self.state.lock().unwrap();
        s.1.push(what);
        self.changed.notify_all();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !s.0 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "held at '{what}' for two minutes");
            s = self.changed.wait_timeout(s, left).unwrap().0;
        }
        if let Some(i) = s.1.iter().position(|w| *w == what) {
            s.1.remove(i);
        }
    }

    fn set_open(&self, open: bool) {
        self.state.lock().unwrap().0 = open;
        self.changed.notify_all();
    }

    /// Waits until a job thread is held; returns where.
    fn held_at(&self) -> &'static str {
        let mut s = self.state.lock().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while s.1.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no job reached the engine within a minute (was the work done on the UI thread?)"
            );
            s = self.changed.wait_timeout(s, left).unwrap().0;
        }
        s.1[0]
    }
}
