//! Sensitivity: which layers to keep float. Each quantized layer is kept float alone and the
//! model measured (task metric and latency, on one runtime), then the layers are ranked by what
//! keeping each recovers per millisecond of latency it costs. Every variant is an experiment run
//! by the runner on the whole model's calibration (a layer kept float does not change the float
//! activations, so the ranges do not change either), and timed in rounds together with the
//! whole model: its latency cost is the difference of two medians of the same rounds.

use anyhow::{bail, Result};

use crate::jobs::Progress;
use crate::onnx::{self, pb};
use crate::quant::QuantConfig;
use crate::runner::{RunSettings, Workbench};
use crate::session::{Experiment, ExperimentResult};

pub use crate::session::ranking::{Sensitivity, SensitivityReport};

/// The candidate layers: nodes of a quantized op type that the config does not keep float.
pub fn candidates(model: &pb::ModelProto, config: &QuantConfig) -> Vec<(String, String)> {
    // Nodes the defaults already leave float (inside a LayerNorm spelled out, say) are not
    // offered: keeping them float changes nothing.
    let (config, _) = crate::quant::effective_config(onnx::graph(model), config);
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

/// Runs `variant` and times it in rounds with `whole` (already measured): the variant's
/// result, and the whole model's p50 in those rounds.
fn paired(
    bench: &mut Workbench,
    variant: QuantConfig,
    whole: &Experiment,
    settings: &RunSettings,
    progress: &Progress,
) -> Result<(ExperimentResult, Option<f64>)> {
    let mut session = crate::session::Session::new(Default::default(), None);
    let id = session.add(Experiment::quantized(variant));
    let whole_id = session.add(whole.clone());
    let experiments: Vec<Experiment> = session.get(id).cloned().into_iter().collect();
    let reference: Vec<Experiment> = session.get(whole_id).cloned().into_iter().collect();
    bench.run_and_retime(experiments, reference, settings, progress, &mut |event| {
        event.record(&mut session);
        Ok(())
    })?;
    let whole_p50 = session
        .get(whole_id)
        .and_then(|w| w.result.benches.first())
        .map(|b| b.p50_ms);
    let result = session.remove(id).map(|e| e.result).unwrap_or_default();
    Ok((result, whole_p50))
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
    let mut whole = Experiment::quantized(config.clone());
    whole.result = bench.run_single(whole.clone(), &settings, progress)?;
    let Some(whole_fig) = figure(&whole.result, false) else {
        bail!(
            "the quantized model could not be measured: {}",
            whole.result.error.unwrap_or_default()
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
        let (result, whole_now) = paired(bench, variant, &whole, &settings, progress)?;
        let Some((metric, p50)) = figure(&result, false) else {
            skipped.push(format!(
                "{layer}: {}",
                result.error.as_deref().unwrap_or("no figure")
            ));
            continue;
        };
        let recovered = metric - whole_fig.0;
        // Against the whole model's p50 of the same rounds: the cost is a difference of two
        // medians timed together, not of two timed at different moments.
        let cost = p50 - whole_now.unwrap_or(whole_fig.1);
        let sqnr_db = sqnr(&result);
        ranking.push(Sensitivity {
            layer: layer.clone(),
            op_type: op_type.clone(),
            metric,
            recovered,
            sqnr_db,
            sqnr_gained_db: sqnr_db.zip(sqnr(&whole.result)).map(|(a, b)| a - b),
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
