//! `quantbench layers`: which layers cause the drop. Per quantized tensor, its error against
//! float two ways (cumulative: the whole model quantized; isolated: only that layer, float
//! inputs); with `--sensitivity`, the task metric with each layer alone kept in float, ranked by
//! what it recovers per millisecond of latency it costs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use quantbench::eval::layers::{LayerMetrics, LayerReport};
use quantbench::jobs::Progress;
use quantbench::onnx;
use quantbench::quant::{self, Mode, QuantConfig, Ranges};
use quantbench::runner::{RunSettings, Workbench};
use quantbench::session::Experiment;

use super::args::{open_data, BackendArgs, InferArgs};
use super::quantize::ConfigArgs;

#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Isolated,
    Cumulative,
}

/// `--mode` takes both the error view (isolated, cumulative) and the quantization mode (fp16,
/// int8, ...), as `quantize --mode` does.
#[derive(Clone, Copy)]
enum ModeArg {
    View(View),
    Quant(Mode),
}

impl std::str::FromStr for ModeArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "isolated" => Ok(ModeArg::View(View::Isolated)),
            "cumulative" => Ok(ModeArg::View(View::Cumulative)),
            _ => s
                .parse()
                .map(ModeArg::Quant)
                .map_err(|e| format!("{e}; or the error view: isolated or cumulative")),
        }
    }
}

#[derive(clap::Args)]
pub struct LayersArgs {
    model: PathBuf,
    /// Calibration and evaluation data (as for quantize and eval).
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    infer: InferArgs,
    /// isolated or cumulative (default: both), and/or the quantization mode (default int8);
    /// may be given twice (`--mode int8 --mode isolated`).
    #[arg(long)]
    mode: Vec<ModeArg>,
    #[command(flatten)]
    settings: ConfigArgs,
    /// Evaluation samples compared per layer.
    #[arg(long, default_value_t = 32)]
    layer_samples: usize,
    /// Sort by the shown view's SQNR, worst first (default: graph order).
    #[arg(long)]
    sort: bool,
    /// Also rank the layers by the task metric each recovers when kept in float alone, per
    /// millisecond of latency it costs (one quantization, evaluation and benchmark per layer;
    /// calibration reused).
    #[arg(long)]
    sensitivity: bool,
    /// Benchmark runs per candidate in the sensitivity ranking.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    #[command(flatten)]
    backend: BackendArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Sensitivity {
    layer: String,
    op_type: String,
    /// The task metric with this layer kept in float, and the whole-model figure it improves on.
    metric: f64,
    recovered: f64,
    /// Output SQNR against float with this layer kept float, and what it gains (the tiebreak
    /// where the task metric cannot tell layers apart).
    sqnr_db: Option<f64>,
    sqnr_gained_db: Option<f64>,
    p50_ms: f64,
    latency_cost_ms: f64,
    /// `recovered / max(latency_cost_ms, 0.01)`.
    score: f64,
}

#[derive(Serialize)]
struct LayersOutput {
    config: QuantConfig,
    metric_name: String,
    layers: Vec<LayerReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sensitivity: Option<SensitivityReport>,
}

#[derive(Serialize)]
struct SensitivityReport {
    backend: String,
    /// The whole model quantized: metric and p50.
    metric: f64,
    p50_ms: f64,
    float_metric: f64,
    float_p50_ms: f64,
    ranking: Vec<Sensitivity>,
}

pub fn layers(args: LayersArgs) -> Result<ExitCode> {
    let mut view = None;
    let mut mode = None;
    for m in &args.mode {
        match *m {
            ModeArg::View(v) => view = Some(v),
            ModeArg::Quant(q) => mode = Some(q),
        }
    }
    let (config, why) = args.settings.config(mode)?;
    let model = onnx::read_model(&args.model)?;
    let dataset = Arc::new(open_data(&args.data, &model, &args.infer)?);
    let inputs = quantbench::tensor::model_inputs(&model)
        .with_context(|| args.model.display().to_string())?;
    dataset.check_fits(&inputs)?;
    let progress = Progress::new();
    let data = config.needs_data().then_some(&*dataset);
    let (quantized, report, ranges) =
        quant::quantize_keeping_ranges(&model, &config, data.map(Ranges::Calibrate), &progress)
            .with_context(|| format!("{}: quantization failed", args.model.display()))?;
    let prepared = quant::prepare_float(&model, &config)?.model;
    let started = std::time::Instant::now();
    let layers = quantbench::eval::layers::analyse(
        &quantized,
        &prepared,
        &dataset,
        args.layer_samples,
        &progress,
    )?;
    let layer_seconds = started.elapsed().as_secs_f64();
    let sensitivity = if args.sensitivity {
        Some(sensitivity(
            &args,
            &model,
            &config,
            &ranges,
            dataset.clone(),
            &progress,
        )?)
    } else {
        None
    };
    let labelled = dataset.has_labels();
    let metric_name = if labelled { "top-1" } else { "agreement" }.to_string();
    if args.json {
        let out = LayersOutput {
            config,
            metric_name,
            layers,
            sensitivity,
        };
        println!("{}", serde_json::to_string(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    for n in why.iter().chain(&report.notes) {
        println!("note: {n}");
    }
    println!(
        "{} ({}): {} quantized tensors, {} evaluation samples compared in {layer_seconds:.2} s (float, cumulative and isolated in one graph)",
        args.model.display(),
        config.label(),
        layers.len(),
        args.layer_samples.min(dataset.indices(quantbench::data::Purpose::Evaluation)?.len()),
    );
    let mut order: Vec<usize> = (0..layers.len()).collect();
    let shown = |l: &LayerReport| match view {
        Some(View::Cumulative) => l.cumulative.sqnr_db,
        _ => l.isolated.sqnr_db,
    };
    if args.sort {
        order.sort_by(|&a, &b| shown(&layers[a]).total_cmp(&shown(&layers[b])));
    }
    let views: Vec<(View, &str)> = match view {
        Some(View::Isolated) => vec![(View::Isolated, "isolated")],
        Some(View::Cumulative) => vec![(View::Cumulative, "cumulative")],
        None => vec![
            (View::Isolated, "isolated"),
            (View::Cumulative, "cumulative"),
        ],
    };
    let mut header = format!("{:<44} {:<18}", "tensor", "op");
    for (_, name) in &views {
        header += &format!(
            " | {name:<10} {:>7} {:>8} {:>8} {:>9} {:>7}",
            "SQNR dB", "cosine", "rel RMSE", "max |err|", "rmse/q"
        );
    }
    println!("{header}");
    for &i in &order {
        let l = &layers[i];
        let mut line = format!("{:<44} {:<18}", clip(&l.tensor, 44), l.op_type);
        for (v, _) in &views {
            let m: &LayerMetrics = match v {
                View::Isolated => &l.isolated,
                View::Cumulative => &l.cumulative,
            };
            line += &format!(
                " | {:<10} {:>7.2} {:>8.5} {:>8.4} {:>9.4} {:>7}",
                "",
                m.sqnr_db,
                m.cosine,
                m.relative_rmse,
                m.max_abs_error,
                m.rmse_over_scale
                    .map_or("-".to_string(), |r| format!("{r:.3}"))
            );
        }
        println!("{line}");
    }
    println!("rmse/q: RMS error over the tensor's quantization step; about 0.289 where rounding is the only error");
    if let Some(s) = &sensitivity {
        println!();
        println!(
            "sensitivity on {} ({metric_name}): whole model quantized {:.4} at p50 {:.3} ms; float {:.4} at {:.3} ms",
            s.backend, s.metric, s.p50_ms, s.float_metric, s.float_p50_ms
        );
        println!(
            "{:<4} {:<44} {:<18} {:>9} {:>10} {:>9} {:>9} {:>10} {:>10}",
            "rank",
            "kept float",
            "op",
            metric_name,
            "recovered",
            "SQNR +dB",
            "p50 ms",
            "cost ms",
            "per ms"
        );
        for (k, r) in s.ranking.iter().enumerate() {
            println!(
                "{:<4} {:<44} {:<18} {:>9.4} {:>+10.4} {:>9} {:>9.3} {:>+10.3} {:>10.3}",
                k + 1,
                clip(&r.layer, 44),
                r.op_type,
                r.metric,
                r.recovered,
                r.sqnr_gained_db.map_or("-".into(), |g| format!("{g:+.2}")),
                r.p50_ms,
                r.latency_cost_ms,
                r.score
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(n - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

/// The candidate layers: nodes of a quantized op type that the config does not keep float.
fn candidates(model: &onnx::pb::ModelProto, config: &QuantConfig) -> Vec<(String, String)> {
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

fn sensitivity(
    args: &LayersArgs,
    model: &onnx::pb::ModelProto,
    config: &QuantConfig,
    base_ranges: &quant::ActivationRanges,
    dataset: Arc<quantbench::data::Dataset>,
    progress: &Progress,
) -> Result<SensitivityReport> {
    let backend = args.backend.backend()?;
    let settings = RunSettings {
        backends: vec![backend],
        bench: quantbench::bench::BenchSettings {
            runs: args.runs.max(1),
            warmup: 3,
            threads: 1,
        },
        layer_samples: 0,
        ..Default::default()
    };
    let size = onnx::encode_model(model).len() as u64;
    let mut bench = Workbench::new(model.clone(), size, dataset.clone())?;
    // Top-1 where labelled, agreement with float otherwise (the float model agrees fully).
    let figure = |e: &Experiment| -> Option<(f64, f64)> {
        let r = &e.result.evals.first()?.report;
        let metric = match (r.top1, r.agreement, &e.config) {
            (Some(t), _, _) => t,
            (None, Some(a), _) => a,
            (None, None, None) => 1.0,
            (None, None, Some(_)) => return None,
        };
        Some((metric, e.result.benches.first()?.p50_ms))
    };
    let mut float = Experiment::float();
    bench.run(&mut float, &settings, progress)?;
    let float_fig = figure(&float).unwrap_or((1.0, 0.0));
    let mut whole = Experiment::quantized(config.clone());
    bench.run(&mut whole, &settings, progress)?;
    let Some(whole_fig) = figure(&whole) else {
        bail!(
            "the quantized model could not be measured: {}",
            whole.result.error.unwrap_or_default()
        );
    };
    let sqnr = |e: &Experiment| e.result.evals.first().and_then(|r| r.report.sqnr_db);
    let candidates = candidates(&bench.float, config);
    let mut ranking = vec![];
    for (k, (layer, op_type)) in candidates.iter().enumerate() {
        progress.check()?;
        eprint!(
            "\rsensitivity: {}/{} {}",
            k + 1,
            candidates.len(),
            clip(layer, 40)
        );
        let mut variant = config.clone();
        variant.keep_float.push(layer.clone());
        // The float activations do not change when a layer stays float: the ranges do not.
        let ranges = if config.mode.needs_calibration() {
            Some(Ranges::Known(base_ranges, Some(&dataset)))
        } else {
            config.needs_data().then_some(Ranges::Calibrate(&dataset))
        };
        let (q, _) = match quant::quantize_with(&bench.float, &variant, ranges, progress) {
            Ok(q) => q,
            Err(e) if quantbench::jobs::is_cancelled(&e) => return Err(e),
            Err(e) => {
                eprintln!("\n{layer}: {e:#}");
                continue;
            }
        };
        let mut e = Experiment::quantized(variant);
        bench.run_model(&mut e, q, &settings, progress)?;
        let Some((metric, p50)) = figure(&e) else {
            continue;
        };
        let recovered = metric - whole_fig.0;
        let cost = p50 - whole_fig.1;
        let sqnr_db = sqnr(&e);
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
    eprintln!();
    let gained = |s: &Sensitivity| s.sqnr_gained_db.unwrap_or(0.0);
    ranking.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(gained(b).total_cmp(&gained(a)))
    });
    Ok(SensitivityReport {
        backend: backend.name().to_string(),
        metric: whole_fig.0,
        p50_ms: whole_fig.1,
        float_metric: float_fig.0,
        float_p50_ms: float_fig.1,
        ranking,
    })
}
