//! Sessions in the window: saving, reopening, recovery after a crash, earlier results, moved folders, corrupt files.

use super::*;

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

/// Saved by "Save session…" with no file-dialog service (the harness has none): the window
/// asks for the path itself, and the file reopens with identical results.
#[test]
fn save_and_reload_a_session_with_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness();
    add_and_run(&mut h);
    let path = dir.path().join("s.ron");
    choose_path(&mut h, "Save session…", &path);
    run_until_idle(&mut h);
    assert!(path.is_file(), "Save session… wrote nothing");
    let before = h.state().session.clone().unwrap();
    let mut h2 = harness();
    type_into(&mut h2, "Path", path.to_str().unwrap());
    click(&mut h2, "Open path");
    run_until_idle(&mut h2);
    assert_eq!(h2.state().session.as_ref().unwrap(), &before);
    assert_eq!(h2.state().session_path.as_deref(), Some(path.as_path()));
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
    let marker = crate::gui::tasks::RunningMarker {
        pid: dead,
        session: Some(autosave.display().to_string()),
    };
    let marker_path = crate::gui::tasks::marker_path(&data_dir, dead);
    std::fs::write(&marker_path, ron::to_string(&marker).unwrap()).unwrap();
    let mut h2 = empty_harness();
    h2.state_mut().data_dir = Some(data_dir.clone());
    h2.state_mut().start(crate::gui::Startup::default());
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
        experiment: ExperimentId(2),
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
