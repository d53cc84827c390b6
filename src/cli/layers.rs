//! `quantbench layers`: which layers cause the drop. Per quantized tensor, its error against
//! float two ways (cumulative: the whole model quantized; isolated: only that layer, float
//! inputs); with `--sensitivity`, the task metric with each layer alone kept in float, ranked by
//! what it recovers per millisecond of latency it costs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;

use quantbench::eval::layers::{LayerMetrics, LayerReport};
use quantbench::jobs::Progress;
use quantbench::onnx;
use quantbench::quant::{self, Mode, QuantConfig};
use quantbench::runner::{RunSettings, Workbench};
use quantbench::sensitivity::SensitivityReport;

use super::args::{open_data, BackendArgs, InferArgs, ProfileArgs};
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
    /// Evaluation samples compared per layer (default: the profile's).
    #[arg(long)]
    layer_samples: Option<usize>,
    /// Sort by the shown view's SQNR, worst first (default: graph order).
    #[arg(long)]
    sort: bool,
    /// Also rank the layers by the task metric each recovers when kept in float alone, per
    /// millisecond of latency it costs (one quantization, evaluation and benchmark per layer;
    /// calibration reused).
    #[arg(long)]
    sensitivity: bool,
    /// Benchmark runs per candidate in the sensitivity ranking (default: the profile's).
    #[arg(long)]
    runs: Option<usize>,
    #[command(flatten)]
    profile: ProfileArgs,
    #[command(flatten)]
    backend: BackendArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct LayersOutput {
    config: QuantConfig,
    metric_name: String,
    layers: Vec<LayerReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sensitivity: Option<SensitivityReport>,
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
    let (quantized, report) = quant::quantize(&model, &config, data, &progress)
        .with_context(|| format!("{}: quantization failed", args.model.display()))?;
    let prepared = quant::prepare_float(&model, &config)?.model;
    let started = std::time::Instant::now();
    let layer_samples = args
        .layer_samples
        .unwrap_or(args.profile.profile.settings().layer_samples);
    let layers = quantbench::eval::layers::analyse(
        &quantized,
        &prepared,
        &dataset,
        layer_samples,
        &progress,
    )?;
    let layer_seconds = started.elapsed().as_secs_f64();
    let sensitivity = if args.sensitivity {
        Some(sensitivity(
            &args,
            &model,
            &config,
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
        layer_samples.min(dataset.indices(quantbench::data::Purpose::Evaluation)?.len()),
    );
    print_layers(&layers, view, args.sort);
    if let Some(s) = &sensitivity {
        print_sensitivity(s);
    }
    Ok(ExitCode::SUCCESS)
}

/// The per-layer table, in graph order or worst first, one view or both.
fn print_layers(layers: &[LayerReport], view: Option<View>, sort: bool) {
    let mut order: Vec<usize> = (0..layers.len()).collect();
    let shown = |l: &LayerReport| match view {
        Some(View::Cumulative) => l.cumulative.sqnr_db,
        _ => l.isolated.sqnr_db,
    };
    if sort {
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
}

fn print_sensitivity(s: &SensitivityReport) {
    let metric_name = &s.metric_name;
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

/// The layers ranked by what keeping each float recovers per millisecond
/// ([`quantbench::sensitivity`]), with a line of progress on stderr.
fn sensitivity(
    args: &LayersArgs,
    model: &onnx::pb::ModelProto,
    config: &QuantConfig,
    dataset: Arc<quantbench::data::Dataset>,
    progress: &Progress,
) -> Result<SensitivityReport> {
    let profile = args.profile.profile.settings();
    let settings = RunSettings {
        bench: quantbench::bench::BenchSettings {
            runs: args.runs.unwrap_or(profile.runs).max(1),
            warmup: profile.warmup,
            threads: 1,
        },
        ..RunSettings::of(args.profile.profile, vec![args.backend.backend()?])
    };
    let size = onnx::encode_model(model).len() as u64;
    let mut bench = Workbench::new(model.clone(), size, dataset)?;
    let report = quantbench::sensitivity::rank(
        &mut bench,
        config,
        &settings,
        progress,
        &mut |k, n, layer| eprint!("\rsensitivity: {}/{n} {}", k + 1, clip(layer, 40)),
    )?;
    eprintln!();
    for s in &report.skipped {
        eprintln!("not ranked: {s}");
    }
    Ok(report)
}
