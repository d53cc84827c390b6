//! The `quantbench` binary: its command-line contract (bad input: tests/bad_input.rs).
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use common::*;
use quantbench::onnx;

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

#[test]
fn inspect_reports_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    let m = mnist_model();
    let out = run(&["inspect", m.to_str().unwrap()], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("IR 3, opset 8"), "{text}");
    assert!(text.contains("Input3 FLOAT [1, 1, 28, 28]"), "{text}");
    assert!(text.contains("Conv 2"), "{text}");
    let json = stdout_json(&run(
        &["inspect", m.to_str().unwrap(), "--json"],
        dir.path(),
    ));
    // 8·1·5·5 + 8 + 16·8·5·5 + 16 + 256·10 + 10 float weights (shape constants excluded).
    assert_eq!(json["parameters"], 5994);
    assert_eq!(json["op_histogram"]["MaxPool"], 2);
    assert_eq!(json["nodes"].as_array().unwrap().len(), 12);
    assert_eq!(json["file_bytes"], 26454);
    // Unknown dimensions are reported as symbols.
    let r = rapid_model();
    let json = stdout_json(&run(
        &["inspect", r.to_str().unwrap(), "--json"],
        dir.path(),
    ));
    assert_eq!(
        json["inputs"][0]["shape"],
        serde_json::json!(["DynamicDimension.0", 3, 224, 224])
    );
    assert_eq!(json["op_histogram"]["BatchNormalization"], 27);
}

#[test]
fn quantize_json_reports_what_it_did_and_flags_override_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cfg.ron"),
        "(mode: Int8Weights, per_channel: false, samples: 100)",
    )
    .unwrap();
    let (m, d) = (mnist_model(), mnist_data());
    let args = [
        "quantize",
        m.to_str().unwrap(),
        "--out",
        "q.onnx",
        "--config",
        "cfg.ron",
        "--mode",
        "int8",
        "--per-channel",
        "--data",
        d.to_str().unwrap(),
        "--calibration",
        "percentile=99.9",
        "--json",
    ];
    let json = stdout_json(&run(&args, dir.path()));
    assert_eq!(json["output"], "q.onnx");
    assert_eq!(json["mode"], "int8");
    assert_eq!(json["settings"]["per_channel"], true);
    assert_eq!(json["settings"]["samples"], 100); // from the file
    assert_eq!(json["settings"]["calibration"]["Percentile"], 99.9);
    assert_eq!(json["calibration_samples"], 100);
    assert_eq!(
        (json["opset_before"].as_i64(), json["opset"].as_i64()),
        (Some(8), Some(13))
    );
    assert!(json["size_after"].as_u64().unwrap() < json["size_before"].as_u64().unwrap());
    assert!(json["calibration_seconds"].as_f64().unwrap() > 0.0);
    assert!(json["write_seconds"].as_f64().is_some());
    let written = std::fs::metadata(dir.path().join("q.onnx")).unwrap().len();
    assert_eq!(written, json["size_after"].as_u64().unwrap());
    // Nothing else was left in the directory (no temp files).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn eval_json_has_the_contract_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (m, d) = (mnist_model(), mnist_data());
    let json = stdout_json(&run(
        &[
            "eval",
            m.to_str().unwrap(),
            "--data",
            d.to_str().unwrap(),
            "--reference",
            m.to_str().unwrap(),
            "--limit",
            "300",
            "--backend",
            "tract",
            "--json",
        ],
        dir.path(),
    ));
    assert_eq!(json["samples"], 300);
    assert_eq!(json["agreement"], 1.0);
    assert_eq!(json["backend"], "tract");
    assert!(json["top1"].as_f64().unwrap() > 0.97);
    assert!(json["top5"].as_f64().is_some());
    assert!(json["cosine"].as_f64().unwrap() > 0.9999);
    // A model compared with itself has no noise: SQNR is infinite, written as "inf" (a
    // script tells it from "nan", a broken model, and from null, not measured).
    assert_eq!(json["sqnr_db"], "inf");
    assert_eq!(json["broken"], false);
}

/// A model whose outputs are NaN is told apart from a lossless one in `eval --json`: its SQNR
/// is "nan" (not null, not "inf") and `broken` is true.
#[test]
fn eval_json_tells_a_broken_model_from_a_lossless_one() {
    let dir = tempfile::tempdir().unwrap();
    let m = mnist_model();
    let mut broken = onnx::read_model(&m).unwrap();
    let graph = onnx::graph_mut(&mut broken);
    let out = graph.output[0].name.clone();
    // sqrt(logits − 1e9): NaN for every sample.
    graph
        .initializer
        .push(onnx::f32_tensor("qb_test_offset", &[], &[1e9]));
    graph.node.push(onnx::node(
        "Sub",
        "qb_test_sub",
        &[&out, "qb_test_offset"],
        &["qb_test_negative"],
    ));
    graph.node.push(onnx::node(
        "Sqrt",
        "qb_test_sqrt",
        &["qb_test_negative"],
        &["qb_test_nan"],
    ));
    graph.output[0].name = "qb_test_nan".into();
    let path = dir.path().join("broken.onnx");
    onnx::write_model(&path, &broken, onnx::SINGLE_FILE_LIMIT).unwrap();
    let json = stdout_json(&run(
        &[
            "eval",
            path.to_str().unwrap(),
            "--data",
            mnist_data().to_str().unwrap(),
            "--reference",
            m.to_str().unwrap(),
            "--limit",
            "20",
            "--backend",
            "tract",
            "--json",
        ],
        dir.path(),
    ));
    assert_eq!(json["sqnr_db"], "nan", "{json}");
    assert_eq!(json["broken"], true);
    assert_eq!(json["non_finite_samples"], 20);
}
