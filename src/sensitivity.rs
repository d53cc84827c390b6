//! Sensitivity: which layers to keep float. Each quantized layer is kept float alone and the
//! model measured (task metric and latency, on one runtime), then the layers are ranked by what
//! keeping each recovers per millisecond of latency it costs. Every variant is an experiment run
//! by the runner on the whole model's calibration (a layer kept float does not change the float
//! activations, so the ranges do not change either).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::jobs::Progress;
use crate::onnx::{self, pb};
use crate::quant::QuantConfig;
use crate::runner::{RunSettings, Workbench};
use crate::session::{Experiment, ExperimentResult};

/// One layer kept float.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sensitivity {
    pub layer: String,
    pub op_type: String,
    /// The task metric with this layer kept in float, and what it recovers over the whole model
    /// quantized.
    pub metric: f64,
    pub recovered: f64,
    /// Output SQNR against float with this layer kept float, and what it gains (the tiebreak
    /// where the task metric cannot tell layers apart).
    pub sqnr_db: Option<f64>,
    pub sqnr_gained_db: Option<f64>,
    pub p50_ms: f64,
    pub latency_cost_ms: f64,
    /// `recovered / max(latency_cost_ms, 0.01)`.
    pub score: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensitivityReport {
    pub backend: String,
    /// `top-1` with labels, `agreement` with float without.
    pub metric_name: String,
    /// The whole model quantized: metric and p50.
    pub metric: f64,
    pub p50_ms: f64,
    pub float_metric: f64,
    pub float_p50_ms: f64,
    /// Best first.
    pub ranking: Vec<Sensitivity>,
    /// Layers whose variant could not be measured, with why.
    pub skipped: Vec<String>,
}

/// The candidate layers: nodes of a quantized op type that the config does not keep float.
pub fn candidates(model: &pb::ModelProto, config: &QuantConfig) -> Vec<(String, String)> {
    onnx::graph(model)
        .node
        .iter()
        .filter(|n| config.ops.contains(&n.op_type) && !n.name.is_empty())
        .filter(|n| {
            !config
                .keep_float
                .iter()
                .any(|k| k == &n.name || k == &n.op_type)
        })
        .map(|n| (n.name.clone(), n.op_type.clone()))
        .collect()
}

/// Top-1 where labelled, agreement with float otherwise (the float model agrees fully), and p50.
fn figure(result: &ExperimentResult, is_float: bool) -> Option<(f64, f64)> {
    let r = &result.evals.first()?.report;
    let metric = match (r.top1, r.agreement, is_float) {
        (Some(t), _, _) => t,
        (None, Some(a), _) => a,
        (None, None, true) => 1.0,
        (None, None, false) => return None,
    };
    Some((metric, result.benches.first()?.p50_ms))
}

fn sqnr(result: &ExperimentResult) -> Option<f64> {
    result.evals.first().and_then(|r| r.report.sqnr_db)
}

/// Ranks the layers `config` quantizes on the first runtime of `settings`; `on_layer(k, n,
/// name)` is told before each of the `n` variants.
pub fn rank(
    bench: &mut Workbench,
    config: &QuantConfig,
    settings: &RunSettings,
    progress: &Progress,
    on_layer: &mut dyn FnMut(usize, usize, &str),
) -> Result<SensitivityReport> {
    let settings = RunSettings {
        backends: settings.backends.iter().take(1).copied().collect(),
        layer_samples: 0,
        ..settings.clone()
    };
    let backend = settings
        .backends
        .first()
        .map_or("tract", |b| b.name())
        .to_string();
    let float = bench.run_single(Experiment::float(), &settings, progress)?;
    let float_fig = figure(&float, true).unwrap_or((1.0, 0.0));
    let whole = bench.run_single(Experiment::quantized(config.clone()), &settings, progress)?;
    let Some(whole_fig) = figure(&whole, false) else {
        bail!(
            "the quantized model could not be measured: {}",
            whole.error.unwrap_or_default()
        );
    };
    let candidates = candidates(&bench.float, config);
    let mut ranking = vec![];
    let mut skipped = vec![];
    for (k, (layer, op_type)) in candidates.iter().enumerate() {
        progress.check()?;
        on_layer(k, candidates.len(), layer);
        let mut variant = config.clone();
        variant.keep_float.push(layer.clone());
        let result = bench.run_single(Experiment::quantized(variant), &settings, progress)?;
        let Some((metric, p50)) = figure(&result, false) else {
            skipped.push(format!(
                "{layer}: {}",
                result.error.as_deref().unwrap_or("no figure")
            ));
            continue;
        };
        let recovered = metric - whole_fig.0;
        let cost = p50 - whole_fig.1;
        let sqnr_db = sqnr(&result);
        ranking.push(Sensitivity {
            layer: layer.clone(),
            op_type: op_type.clone(),
            metric,
            recovered,
            sqnr_db,
            sqnr_gained_db: sqnr_db.zip(sqnr(&whole)).map(|(a, b)| a - b),
            p50_ms: p50,
            latency_cost_ms: cost,
            score: recovered / cost.max(0.01),
        });
    }
    let gained = |s: &Sensitivity| s.sqnr_gained_db.unwrap_or(0.0);
    ranking.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(gained(b).total_cmp(&gained(a)))
    });
    Ok(SensitivityReport {
        backend,
        metric_name: if bench.dataset.has_labels() {
            "top-1"
        } else {
            "agreement"
        }
        .into(),
        metric: whole_fig.0,
        p50_ms: whole_fig.1,
        float_metric: float_fig.0,
        float_p50_ms: float_fig.1,
        ranking,
        skipped,
    })
}
