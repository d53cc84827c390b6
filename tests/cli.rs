//! The `quantbench` binary: its command-line contract and its answers to bad input.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use common::*;

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
    // A model compared with itself has no noise: SQNR is infinite, serialized as null.
    assert!(json["sqnr_db"].is_null());
}

struct Bad {
    dir: tempfile::TempDir,
}

impl Bad {
    fn new() -> Self {
        Bad {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.dir.path().join(name), bytes).unwrap();
        self.path(name)
    }

    /// A dataset description over a CSV written here, two calibration rows.
    fn csv_dataset(&self, name: &str, csv: &str) -> String {
        let csv_path = self.write(&format!("{name}.csv"), csv.as_bytes());
        let desc = format!(
            "(source: Csv(path: \"{csv_path}\", image: (channels: 1, height: 28, width: 28), label_column: Some(Last), header: false), calibration: (start: 0, count: Some(2)), evaluation: (start: 0, count: None))"
        );
        self.write(&format!("{name}.ron"), desc.as_bytes())
    }

    /// Runs quantize into `out.onnx`; asserts failure with one error line naming `names_file`
    /// and containing `problem`, and that no output (or temp) file was left.
    fn expect_error(&self, args: &[&str], names_file: &str, problem: &str) {
        let out_path = self.path("out.onnx");
        let before: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut full = vec!["quantize"];
        full.extend_from_slice(args);
        if !args.contains(&"--out") {
            full.extend(["--out", &out_path]);
        }
        let out = run(&full, self.dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "not one line: {stderr}"
        );
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(
            stderr.contains(names_file),
            "{stderr} does not name {names_file}"
        );
        assert!(
            stderr.contains(problem),
            "{stderr} does not say '{problem}'"
        );
        let after: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(before, after, "files were left behind");
        assert!(
            !out.stdout.iter().any(|_| true),
            "printed to stdout on failure"
        );
    }
}

fn mnist_bytes() -> Vec<u8> {
    std::fs::read(mnist_model()).unwrap()
}

#[test]
fn not_onnx_and_truncated_files() {
    let bad = Bad::new();
    let f = bad.write("text.onnx", b"this is not a model\n");
    bad.expect_error(
        &[&f, "--mode", "fp16"],
        "text.onnx",
        "truncated or not ONNX",
    );
    let bytes = mnist_bytes();
    let f = bad.write("half.onnx", &bytes[..bytes.len() / 2]);
    bad.expect_error(
        &[&f, "--mode", "fp16"],
        "half.onnx",
        "truncated or not ONNX",
    );
    let f = bad.write("empty.onnx", b"");
    bad.expect_error(&[&f, "--mode", "fp16"], "empty.onnx", "empty");
    bad.expect_error(
        &[&bad.path("missing.onnx"), "--mode", "fp16"],
        "missing.onnx",
        "cannot read",
    );
}

#[test]
fn operator_tract_does_not_support() {
    use prost::Message;
    let bad = Bad::new();
    let mut model = quantbench::onnx::decode_model(&mnist_bytes()).unwrap();
    let relu = model
        .graph
        .as_mut()
        .unwrap()
        .node
        .iter_mut()
        .find(|n| n.op_type == "Relu")
        .unwrap();
    relu.op_type = "FancyRelu".into();
    let f = bad.write("fancy.onnx", &model.encode_to_vec());
    let d = mnist_data();
    bad.expect_error(
        &[&f, "--data", d.to_str().unwrap()],
        "fancy.onnx",
        "node 'ReLU32' uses operator FancyRelu",
    );
}

#[test]
fn dataset_that_does_not_fit_the_model() {
    let bad = Bad::new();
    let (r, d) = (rapid_model(), mnist_data());
    bad.expect_error(
        &[r.to_str().unwrap(), "--data", d.to_str().unwrap()],
        "dataset.ron",
        "but the model input 'x' expects [DynamicDimension.0, 3, 224, 224]",
    );
}

#[test]
fn empty_dataset_and_bad_csv_rows() {
    let bad = Bad::new();
    let m = mnist_model();
    let m = m.to_str().unwrap();
    let empty = bad.csv_dataset("empty", "");
    bad.expect_error(&[m, "--data", &empty], "empty.ron", "the dataset is empty");
    let short = bad.csv_dataset("short", &format!("{}\n1,2,3\n", vec!["0"; 785].join(",")));
    bad.expect_error(
        &[m, "--data", &short],
        "short.csv",
        "line 2 has 3 columns, expected 785",
    );
}

#[test]
fn non_finite_calibration_data_and_weights() {
    let bad = Bad::new();
    let m = mnist_model();
    let row = |first: &str| format!("{first},{},7", vec!["0"; 783].join(","));
    let nan = bad.csv_dataset("nan", &format!("{}\n{}\n", row("0"), row("nan")));
    bad.expect_error(
        &[m.to_str().unwrap(), "--data", &nan],
        "nan.ron",
        "sample 1 holds a non-finite value",
    );
    let inf = bad.csv_dataset("inf", &format!("{}\n", row("inf")));
    bad.expect_error(
        &[m.to_str().unwrap(), "--data", &inf],
        "inf.ron",
        "non-finite",
    );

    use prost::Message;
    let mut model = quantbench::onnx::decode_model(&mnist_bytes()).unwrap();
    let w = model
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name == "Parameter5")
        .unwrap();
    let mut values = quantbench::onnx::tensor_to_f32(w).unwrap();
    values[3] = f32::NAN;
    *w = quantbench::onnx::f32_tensor("Parameter5", &w.dims.clone(), &values);
    let f = bad.write("nan_weights.onnx", &model.encode_to_vec());
    for mode in ["int8-weights", "fp16", "int4-weights"] {
        bad.expect_error(
            &[&f, "--mode", mode],
            "nan_weights.onnx",
            "weight 'Parameter5' holds NaN",
        );
    }
}

#[test]
fn output_in_a_missing_directory() {
    let bad = Bad::new();
    let m = mnist_model();
    let out = bad.path("no/such/dir/q.onnx");
    bad.expect_error(
        &[m.to_str().unwrap(), "--mode", "fp16", "--out", &out],
        "no/such/dir/q.onnx",
        "does not exist",
    );
}

#[test]
fn invalid_settings_name_the_field() {
    let bad = Bad::new();
    let (m, d) = (mnist_model(), mnist_data());
    bad.expect_error(
        &[
            m.to_str().unwrap(),
            "--data",
            d.to_str().unwrap(),
            "--calibration",
            "percentile=20",
        ],
        "",
        "calibration: percentile must be in (50, 100]",
    );
    bad.expect_error(
        &[
            m.to_str().unwrap(),
            "--data",
            d.to_str().unwrap(),
            "--keep-float",
            "NoSuchNode",
        ],
        "model.onnx",
        "keep_float: 'NoSuchNode' is neither a node name nor an op type",
    );
    bad.expect_error(&[m.to_str().unwrap()], "", "int8 needs calibration data");
}
