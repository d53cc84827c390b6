//! `--data` without a hand-written description: folders of photos, ONNX test data, `.npz`,
//! synthetic inputs, `dataset new`/`dataset show`, and the errors of each, through the binary.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use common::*;

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One error line on stderr containing every fragment, exit code 1, nothing on stdout.
fn one_error(out: &Output, fragments: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    for f in fragments {
        assert!(errors[0].contains(f), "'{}' lacks '{f}'", errors[0]);
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("one JSON object")
}

#[test]
fn a_folder_of_photos_feeds_a_model_directly_and_as_a_saved_description() {
    let dir = tempfile::tempdir().unwrap();
    let model = rapid_model();
    let photos = root().join("sample_data/photos");
    let (m, p) = (model.to_str().unwrap(), photos.to_str().unwrap());
    let direct = json(&run(
        &["eval", m, "--data", p, "--reference", m, "--json"],
        dir.path(),
    ));
    assert_eq!(direct["samples"], 7);
    assert_eq!(direct["agreement"], 1.0);
    // Saved as a description, with the choice of preset, then used from another folder.
    let desc = dir.path().join("photos.ron");
    let out = ok(&run(
        &[
            "dataset",
            "new",
            p,
            "--model",
            m,
            "--out",
            "photos.ron",
            "--preset",
            "pm1",
        ],
        dir.path(),
    ));
    assert!(out.contains("7 samples"), "{out}");
    let text = std::fs::read_to_string(&desc).unwrap();
    assert!(
        text.contains("path: \"../") || text.contains("path: \"sample_data"),
        "paths stay relative: {text}"
    );
    let show = ok(&run(
        &["dataset", "show", desc.to_str().unwrap(), "--model", m],
        &root(),
    ));
    assert!(
        show.contains("preset pm1") && show.contains("x: float32 [1, 3, 224, 224]"),
        "{show}"
    );
    // pm1 maps 0..255 to -1..1: sample 0's values stay within it.
    let line = show.lines().find(|l| l.starts_with("input")).unwrap();
    let lo: f32 = line
        .split("from ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((-1.0..-0.5).contains(&lo), "{line}");
}

#[test]
fn onnx_test_data_supplies_inputs_and_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let m = mnist_model();
    let r = json(&run(
        &[
            "eval",
            m.to_str().unwrap(),
            "--data",
            root().join("sample_data/mnist").to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    ));
    // No reference model: the zoo's stored output is the reference; float matches it.
    assert_eq!(r["samples"], 1);
    assert!(r["sqnr_db"].as_f64().unwrap() > 60.0, "{r}");
    assert!(
        r["notes"].to_string().contains("stored with the data"),
        "{r}"
    );
}

#[test]
fn an_npz_feeds_a_multi_input_model_and_every_output_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let encoder = root().join("tests/zoo/encoder.onnx");
    let e = encoder.to_str().unwrap();
    // Synthetic inputs exported as .npz (int64 ids within the embedding table, mask of ones).
    ok(&run(
        &[
            "dataset",
            "show",
            "synthetic",
            "--model",
            e,
            "--export",
            "x.npz",
            "--synthetic-samples",
            "12",
        ],
        dir.path(),
    ));
    let q = dir.path().join("q.onnx");
    let out = json(&run(
        &[
            "quantize",
            e,
            "--data",
            "x.npz",
            "--out",
            "q.onnx",
            "--per-channel",
            "--json",
        ],
        dir.path(),
    ));
    assert_eq!(out["calibration_samples"], 12);
    for backend in ["tract", "ort"] {
        let r = json(&run(
            &[
                "eval",
                q.to_str().unwrap(),
                "--data",
                "x.npz",
                "--reference",
                e,
                "--backend",
                backend,
                "--output",
                "last_hidden_state",
                "--json",
            ],
            dir.path(),
        ));
        assert_eq!(r["output"], "last_hidden_state");
        assert_eq!(r["outputs"].as_array().unwrap().len(), 2);
        assert!(r["sqnr_db"].as_f64().unwrap() > 15.0, "{backend}: {r}");
        let b = json(&run(
            &[
                "bench",
                q.to_str().unwrap(),
                "--data",
                "x.npz",
                "--backend",
                backend,
                "--runs",
                "5",
                "--warmup",
                "1",
                "--json",
            ],
            dir.path(),
        ));
        assert!(
            b["inputs"]
                .as_str()
                .unwrap()
                .contains("input_ids: int64 [1, 16]"),
            "{b}"
        );
    }
    // Synthetic data says so.
    let r = json(&run(
        &["eval", e, "--data", "synthetic", "--json"],
        dir.path(),
    ));
    assert_eq!(r["synthetic"], true);
    assert_eq!(r["top1"], serde_json::Value::Null);
}

#[test]
fn bad_data_gets_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = mnist_model();
    let m = m.to_str().unwrap();
    let encoder = root().join("tests/zoo/encoder.onnx");
    // A folder with nothing usable in it.
    std::fs::create_dir(d.join("empty")).unwrap();
    one_error(
        &run(&["eval", m, "--data", "empty"], d),
        &["empty", "holds no images"],
    );
    // A CSV whose rows do not match the model's input.
    std::fs::write(d.join("short.csv"), "1,2,3\n4,5,6\n").unwrap();
    one_error(
        &run(&["eval", m, "--data", "short.csv"], d),
        &["short.csv", "rows have 3 columns", "784"],
    );
    // A label column out of range.
    let row = format!("{},3", vec!["0"; 784].join(","));
    std::fs::write(d.join("d.csv"), format!("{row}\n")).unwrap();
    one_error(
        &run(&["eval", m, "--data", "d.csv", "--label-column", "900"], d),
        &["d.csv", "label column 900 is out of range"],
    );
    // Mean/std of the wrong length.
    one_error(
        &run(&["eval", m, "--data", "d.csv", "--mean", "1,2"], d),
        &["mean has 2 values"],
    );
    // A corrupt .npz, and an .npz for the wrong model.
    std::fs::write(d.join("bad.npz"), b"PK\x03\x04 not really").unwrap();
    one_error(
        &run(&["eval", m, "--data", "bad.npz"], d),
        &["bad.npz", "not a readable .npz"],
    );
    ok(&run(
        &[
            "dataset",
            "show",
            "synthetic",
            "--model",
            encoder.to_str().unwrap(),
            "--export",
            "enc.npz",
        ],
        d,
    ));
    one_error(
        &run(&["eval", m, "--data", "enc.npz"], d),
        &["enc.npz", "not a model input", "Input3"],
    );
    // Images for a model with several inputs.
    one_error(
        &run(
            &[
                "eval",
                encoder.to_str().unwrap(),
                "--data",
                root().join("sample_data/photos").to_str().unwrap(),
            ],
            d,
        ),
        &["images feed one input", "input_ids, attention_mask"],
    );
    // An unknown output.
    one_error(
        &run(&["eval", m, "--data", "synthetic", "--output", "nope"], d),
        &["no output 'nope'", "Plus214_Output_0"],
    );
    one_error(
        &run(&["eval", m, "--data", "missing_dir"], d),
        &["missing_dir", "no such file"],
    );
}

/// A WordLevel tokenizer.json over the words of the test sentences: `[PAD]` 0, `[UNK]` 1,
/// then one id per word (the encoder's embedding table has 64 rows).
fn word_level_tokenizer(words: &[&str]) -> String {
    let mut vocab = vec!["\"[PAD]\": 0".to_string(), "\"[UNK]\": 1".to_string()];
    vocab.extend(
        words
            .iter()
            .enumerate()
            .map(|(i, w)| format!("\"{w}\": {}", i + 2)),
    );
    format!(
        r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
  "normalizer": {{"type": "Lowercase"}}, "pre_tokenizer": {{"type": "Whitespace"}},
  "post_processor": null, "decoder": null,
  "model": {{"type": "WordLevel", "vocab": {{{}}}, "unk_token": "[UNK]"}}}}"#,
        vocab.join(", ")
    )
}

#[test]
fn sentences_in_a_csv_are_tokenized_into_the_models_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let words = [
        "the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "away", "good", "bad",
    ];
    std::fs::write(d.join("tokenizer.json"), word_level_tokenizer(&words)).unwrap();
    let mut csv = String::from("text,label\n");
    let sentences = [
        ("The cat sat on the mat", "calm"),
        ("\"A dog, a cat\"", "calm"),
        ("The dog ran far away", "busy"),
        ("good dog", "calm"),
        ("bad cat ran", "busy"),
        ("a zebra sat", "odd"),
    ];
    for (t, l) in sentences {
        csv.push_str(&format!("{t},{l}\n"));
    }
    std::fs::write(d.join("sentences.csv"), csv).unwrap();
    let encoder = root().join("tests/zoo/encoder.onnx");
    let e = encoder.to_str().unwrap();
    let text_args = [
        "--data",
        "sentences.csv",
        "--tokenizer",
        "tokenizer.json",
        "--label-column",
        "label",
        "--max-length",
        "8",
    ];
    // What the model sees: int64 ids and mask, padded to 8; a quoted comma stays in the text.
    let mut show = vec![
        "dataset",
        "show",
        "sentences.csv",
        "--model",
        e,
        "--export",
        "tokens.npz",
    ];
    show.extend(&text_args[2..]);
    ok(&run(&show, d));
    let npz = quantbench::data::npy::read_npz(&d.join("tokens.npz")).unwrap();
    let ids = &npz.iter().find(|(n, _)| n == "input_ids").unwrap().1;
    assert_eq!(ids.shape, vec![6, 8]);
    // "the cat sat on the mat": the=2 cat=3 sat=4 on=5 mat=6, then padding.
    assert_eq!(
        ids.data().unwrap().to_f32()[..8],
        [2.0, 3.0, 4.0, 5.0, 2.0, 6.0, 0.0, 0.0]
    );
    // "a dog, a cat": the comma is its own (unknown) token.
    assert_eq!(
        ids.data().unwrap().to_f32()[8..14],
        [7.0, 8.0, 1.0, 7.0, 3.0, 0.0]
    );
    let mask = &npz.iter().find(|(n, _)| n == "attention_mask").unwrap().1;
    assert_eq!(
        mask.data().unwrap().to_f32()[..8],
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    );
    // Evaluated, quantized and compared, labels from class names (busy, calm, odd).
    let mut eval = vec!["eval", e, "--reference", e, "--json"];
    eval.extend(&text_args);
    let r = json(&run(&eval, d));
    assert_eq!(r["samples"], 6);
    assert_eq!(r["agreement"], 1.0);
    assert!(r["top1"].as_f64().is_some(), "{r}");
    let mut quantize = vec![
        "quantize",
        e,
        "--out",
        "q.onnx",
        "--mode",
        "int8",
        "--per-channel",
        // 7-bit weights: exact in ONNX Runtime's default kernels on every x86 CPU (without
        // VNNI they saturate: 9.2 dB instead of 32.6 on an AVX2 EPYC).
        "--reduce-range",
    ];
    quantize.extend(&text_args);
    ok(&run(&quantize, d));
    let mut eval_q = vec![
        "eval",
        "q.onnx",
        "--reference",
        e,
        "--backend",
        "ort",
        "--json",
    ];
    eval_q.extend(&text_args);
    let r = json(&run(&eval_q, d));
    assert!(r["sqnr_db"].as_f64().unwrap() > 15.0, "{r}");
    // A missing column is one clear error.
    let mut bad = vec!["eval", e, "--text-column", "sentence"];
    bad.extend(&text_args);
    one_error(
        &run(&bad, d),
        &["sentences.csv", "no column 'sentence'", "text, label"],
    );
}

/// Whether calibration and evaluation read the same samples, and the note that says so:
/// MNIST's description keeps them apart, a folder of photos opened as it is shares all 7
/// (its calibration variants count as the photo they come from).
#[test]
fn shared_calibration_and_evaluation_samples_are_counted_and_said() {
    use quantbench::data::Dataset;
    let mnist = Dataset::open(&mnist_data()).unwrap();
    assert_eq!(mnist.shared_samples(), 0);
    assert!(mnist.overlap_note().is_none());
    let photos = Dataset::open(&rapid_data()).unwrap();
    assert_eq!(photos.shared_samples(), 7);
    let note = photos.overlap_note().unwrap();
    assert!(
        note.starts_with("calibration and evaluation share 7 of the 7"),
        "{note}"
    );
    let mut augmented = photos.desc.clone();
    augmented.augment = 8;
    let augmented = Dataset::from_desc(augmented, &photos.base, &photos.path).unwrap();
    assert_eq!(augmented.shared_samples(), 7);
    let out = run(
        &[
            "eval",
            rapid_model().to_str().unwrap(),
            "--data",
            rapid_data().to_str().unwrap(),
            "--backend",
            "tract",
            "--limit",
            "1",
            "--no-checkpoint",
        ],
        &root(),
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("share 7 of the 7 evaluation samples"),
        "{said}"
    );
}
