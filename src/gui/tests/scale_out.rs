//! Beyond this window: plans for schedulers, latency on another device.

use super::*;

#[test]
fn pending_experiments_go_out_as_a_plan_and_come_back_merged() {
    let dir = tempfile::tempdir().unwrap();
    let plan_dir = dir.path().join("plan");
    let mut h = harness();
    click(&mut h, "Add experiment");
    h.run();
    choose_path(&mut h, "Export plan (2)…", &plan_dir);
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
        Some(plan_dir.join(crate::gui::tasks::MERGED_SESSION).as_path())
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
    assert_eq!(h.state().run_settings.remote, None);
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
    let remote = h.state().run_settings.remote.clone().expect("a device");
    assert_eq!(
        (remote.destination.as_str(), remote.port),
        ("pi@board.local", Some(2222))
    );
    assert_eq!(h.state().persisted.bench_device, "pi@board.local:2222");
    h.state_mut().apply(AppCommand::SetBenchDevice(" ".into()));
    assert_eq!(h.state().run_settings.remote, None);
}
