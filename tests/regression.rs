//! One test per crash the fuzzers found (fuzz/): the input that crashed, kept in
//! tests/regression/, now gets an answer from every command that reads it: a result, or one
//! `error:` line — never a panic.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

/// Runs `quantbench ARGS`; returns (succeeded, the one error line if it failed).
fn answer(args: &[&str]) -> (bool, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let out = run(args, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{args:?}: a panic: {stderr}");
    if out.status.success() {
        return (true, None);
    }
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{args:?}: not one error line: {stderr}");
    (false, Some(errors[0].to_string()))
}

/// Every command on the model at `name`: none panics; returns the error lines by command.
fn every_command(name: &str) -> Vec<(String, Option<String>)> {
    let model = root().join("tests/regression").join(name);
    let m = model.to_str().unwrap();
    let mut answers = vec![];
    let (_, e) = answer(&["inspect", m]);
    answers.push(("inspect".to_string(), e));
    for mode in [
        "int8",
        "fp16",
        "int8-weights",
        "int4-weights",
        "int8-dynamic",
    ] {
        let (_, e) = answer(&[
            "quantize",
            m,
            "--mode",
            mode,
            "--data",
            "synthetic",
            "--out",
            "q.onnx",
        ]);
        answers.push((format!("quantize {mode}"), e));
    }
    for backend in ["tract", "ort"] {
        let (_, e) = answer(&["eval", m, "--data", "synthetic", "--backend", backend]);
        answers.push((format!("eval {backend}"), e));
    }
    let (_, e) = answer(&["bench", m, "--runs", "2", "--warmup", "0"]);
    answers.push(("bench".to_string(), e));
    answers
}

/// fuzz/quantize_graph: a Resize whose scales are an empty float tensor and whose roi is int64
/// made tract's shape inference unwrap a `None` (tract-onnx 0.23.9, ops/resize.rs:183): the
/// quantizer's type inference and every tract load panicked.
#[test]
fn resize_that_tract_inference_panics_on() {
    let answers = every_command("resize_inference_panic.onnx");
    let eval = answers.iter().find(|(c, _)| c == "eval tract").unwrap();
    assert!(
        eval.1
            .as_deref()
            .is_some_and(|e| e.contains("loading the model failed inside tract")),
        "{answers:?}"
    );
    let int8 = answers.iter().find(|(c, _)| c == "quantize int8").unwrap();
    assert!(
        int8.1
            .as_deref()
            .is_some_and(|e| e.contains("no activation to quantize")),
        "{answers:?}"
    );
}

/// The quantizer in every mode on the model at `name`, with activation ranges given (the path
/// the rewrite fuzzer takes: no model is run): each mode quantizes or refuses, never panics,
/// and what it writes passes quantbench's own validation.
fn rewrite_in_every_mode(name: &str) -> Vec<(String, Result<(), String>)> {
    use quantbench::quant::{self, Mode, QuantConfig, Ranges};
    let model = read(&root().join("tests/regression").join(name));
    let given = |_: &str| (-1.0f32, 2.0f32);
    let mut out = vec![];
    for per_channel in [false, true] {
        for mode in [
            Mode::Fp16,
            Mode::Int8Weights,
            Mode::Int4Weights,
            Mode::Int8Dynamic,
            Mode::Int8,
        ] {
            let config = QuantConfig {
                mode,
                per_channel,
                ..Default::default()
            };
            let result = quant::quantize_with(
                &model,
                &config,
                Some(Ranges::Given(&given)),
                &quantbench::jobs::Progress::new(),
            );
            if let Ok((q, _)) = &result {
                quantbench::onnx::decode_model(&quantbench::onnx::encode_model(q))
                    .expect("a quantized model passes validation");
            }
            out.push((
                format!("{mode:?} per-channel {per_channel}"),
                result.map(|_| ()).map_err(|e| format!("{e:#}")),
            ));
        }
    }
    out
}

/// fuzz/quantize_graph: a ConvTranspose whose bias is an empty float tensor ([1, 1, 1, 1, 0])
/// reached `scales[..1]` on an empty list in the int32 bias rewrite (index out of range).
#[test]
fn conv_transpose_with_an_empty_bias() {
    let results = rewrite_in_every_mode("empty_bias.onnx");
    let int8 = results
        .iter()
        .find(|(m, _)| m == "Int8 per-channel false")
        .unwrap();
    assert!(int8.1.is_ok(), "{results:?}");
    every_command("empty_bias.onnx");
}

/// fuzz/quantize_graph's first find, on the rewrite path too.
#[test]
fn resize_that_tract_inference_panics_on_quantizes_with_given_ranges() {
    let results = rewrite_in_every_mode("resize_inference_panic.onnx");
    assert!(results.iter().any(|(_, r)| r.is_ok()), "{results:?}");
}

/// fuzz/dataset_desc: `letterbox: Some((0, 8))` reached `clamp(1, 0)` (min > max) when the
/// first image was decoded; a zero size is now refused when the description is read.
#[test]
fn description_with_a_zero_sized_letterbox() {
    let dir = tempfile::tempdir().unwrap();
    let photos = root().join("sample_data/photos");
    let desc = dir.path().join("d.ron");
    std::fs::write(
        &desc,
        format!(
            "(source: ImageFolder(path: \"{}\", labels: None), preprocess: (letterbox: Some((0, 8)), pad_value: 114.0, color: Bgr, layout: Nhwc))",
            photos.display()
        ),
    )
    .unwrap();
    let m = rapid_model();
    let (ok, error) = answer(&[
        "eval",
        m.to_str().unwrap(),
        "--data",
        desc.to_str().unwrap(),
    ]);
    assert!(!ok);
    let error = error.unwrap();
    assert!(
        error.contains("d.ron")
            && error.contains("letterbox (0, 8): sizes must be at least 1 pixel"),
        "{error}"
    );
}

/// fuzz/npy: a `.npy` header whose type code starts with a two-byte character ('ٕ') was split
/// at byte 1, inside the character (a panic in the header parser).
#[test]
fn npy_header_whose_type_starts_with_a_multibyte_character() {
    let file = root().join("tests/regression/npy_header_multibyte.npy");
    let e = quantbench::data::npy::read(&file).expect_err("refused");
    assert!(
        format!("{e:#}").contains("only little-endian arrays are supported"),
        "{e:#}"
    );
    let m = mnist_model();
    let (ok, error) = answer(&[
        "eval",
        m.to_str().unwrap(),
        "--data",
        file.to_str().unwrap(),
    ]);
    assert!(!ok && error.unwrap().contains("npy_header_multibyte.npy"));
}

/// fuzz/quantize_graph: a BatchNormalization after a ConvTranspose whose bias is empty: the
/// fold indexed the bias by output channel (index out of bounds).
#[test]
fn batchnorm_fold_onto_a_conv_with_an_empty_bias() {
    let results = rewrite_in_every_mode("batchnorm_fold_short_bias.onnx");
    let int8 = results
        .iter()
        .find(|(m, _)| m == "Int8 per-channel false")
        .unwrap();
    assert!(
        int8.1.as_ref().is_err_and(|e| e
            .contains("node 'n0' (ConvTranspose): its bias holds 0 values for 1 output channels")),
        "{results:?}"
    );
    every_command("batchnorm_fold_short_bias.onnx");
}
