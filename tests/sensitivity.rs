//! The sensitivity ranking: each layer kept float alone, measured and timed with the whole
//! model, ranked by what it recovers per millisecond it costs.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use quantbench::bench::BenchSettings;
use quantbench::data::Dataset;
use quantbench::jobs::Progress;
use quantbench::quant::QuantConfig;
use quantbench::runner::{RunSettings, Workbench};
use quantbench::runtime::Backend;
use quantbench::session::Experiment;

/// On MNIST with int8 per-tensor: one entry per quantized layer, each figure the one a plain
/// run of that variant gives (the same samples, so the same top-1), the score what the
/// figures say, and the ranking best first.
#[test]
fn every_layer_is_ranked_by_what_keeping_it_float_recovers_per_millisecond() {
    let data = Dataset::open(&mnist_data()).unwrap();
    let model = read(&mnist_model());
    let bytes = std::fs::metadata(mnist_model()).unwrap().len();
    let mut bench = Workbench::new(model.clone(), bytes, data).unwrap();
    let config = QuantConfig {
        per_channel: false,
        samples: 32,
        ..Default::default()
    };
    let settings = RunSettings {
        backends: vec![Backend::Tract],
        bench: BenchSettings {
            runs: 12,
            warmup: 2,
            threads: 1,
        },
        eval_limit: Some(300),
        layer_samples: 0,
        models_dir: None,
        output: None,
        remote: None,
    };
    let mut told = vec![];
    let report = quantbench::sensitivity::rank(
        &mut bench,
        &config,
        &settings,
        &Progress::new(),
        &mut |k, n, layer| told.push((k, n, layer.to_string())),
    )
    .unwrap();
    let candidates = quantbench::sensitivity::candidates(&model, &config);
    assert!(candidates.len() >= 3, "{candidates:?}");
    assert_eq!(told.len(), candidates.len());
    assert_eq!(
        report.ranking.len() + report.skipped.len(),
        candidates.len(),
        "{:?}",
        report.skipped
    );
    assert_eq!(report.metric_name, "top-1");
    for pair in report.ranking.windows(2) {
        assert!(pair[0].score >= pair[1].score, "{:?}", report.ranking);
    }
    for s in &report.ranking {
        assert!(
            (s.recovered - (s.metric - report.metric)).abs() < 1e-12,
            "{s:?}"
        );
        assert!(
            (s.score - s.recovered / s.latency_cost_ms.max(0.01)).abs() < 1e-9,
            "{s:?}"
        );
        assert!(s.p50_ms > 0.0 && s.p50_ms.is_finite(), "{s:?}");
    }
    // The best layer's figure is what a run of that variant alone measures.
    let best = &report.ranking[0];
    let mut variant = config.clone();
    variant.keep_float.push(best.layer.clone());
    let alone = bench
        .run_single(Experiment::quantized(variant), &settings, &Progress::new())
        .unwrap();
    assert_eq!(alone.evals[0].report.top1, Some(best.metric));
}
