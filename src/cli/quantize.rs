//! `quantbench quantize`: one model, one configuration, one standard ONNX file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};

use quantbench::jobs::Progress;
use quantbench::onnx;
use quantbench::quant::{
    self, ActivationType, BiasCorrection, Calibration, Mode, QuantConfig, Symmetry, Target,
};

use super::args::{open_data, InferArgs};

#[derive(clap::Args)]
pub struct QuantizeArgs {
    model: PathBuf,
    /// Where to write the quantized model (atomically: a temp file, then a rename).
    #[arg(long)]
    out: PathBuf,
    /// fp16, int8-weights, int8, int4-weights or int8-dynamic.
    #[arg(long)]
    mode: Option<Mode>,
    #[command(flatten)]
    pub settings: ConfigArgs,
    /// Calibration data: a description (.ron), a folder of images, .csv/.tsv(.gz), .npy,
    /// .npz, test_data_set_* folders, or 'synthetic'.
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    infer: InferArgs,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Every quantization setting as a flag (`quantize`, `layers`): a RON config, then the flags.
#[derive(clap::Args)]
pub struct ConfigArgs {
    /// A RON QuantConfig; the flags below override what it says.
    #[arg(long)]
    config: Option<PathBuf>,
    /// One scale per output channel of each weight.
    #[arg(long)]
    per_channel: bool,
    /// Weights and activations on symmetric grids (zero point at the middle).
    #[arg(long)]
    symmetric: bool,
    /// Weights and activations on asymmetric grids.
    #[arg(long, conflicts_with = "symmetric")]
    asymmetric: bool,
    /// Activation type: int8 or uint8.
    #[arg(long)]
    activations: Option<ActivationType>,
    /// minmax, percentile=99.99, entropy or mse.
    #[arg(long)]
    calibration: Option<Calibration>,
    /// Number of calibration samples.
    #[arg(long)]
    samples: Option<usize>,
    /// Node names or op types to leave in float, comma-separated.
    #[arg(long, value_delimiter = ',')]
    keep_float: Option<Vec<String>>,
    /// Op types to quantize, comma-separated.
    #[arg(long, value_delimiter = ',')]
    ops: Option<Vec<String>>,
    /// int4-weights: quantize in blocks of this many input elements (needs opset 21).
    #[arg(long)]
    block_size: Option<usize>,
    /// int8 weights on 7 bits (ONNX Runtime's reduce_range): exact on CPUs without VNNI.
    #[arg(long)]
    reduce_range: bool,
    /// Full 8-bit int8 weights, whatever the target would choose.
    #[arg(long, conflicts_with = "reduce_range")]
    no_reduce_range: bool,
    /// The runtime the model is for: ort-cpu, tract, tensorrt or generic. Sets the defaults
    /// that run exactly there on this machine's CPU (printed); the flags above override them.
    #[arg(long)]
    target: Option<Target>,
    /// Cross-layer equalization: rescale consecutive convolutions so that their per-channel
    /// weight ranges even out (the float model computes the same).
    #[arg(long)]
    cle: bool,
    /// Quantize every op of --ops wherever it is, the insides of LayerNorms, GELUs, softmaxes,
    /// SiLUs and HardSwishes spelled out in primitive ops included (by default they stay float,
    /// and an elementwise Add/Mul is quantized only where an int8 kernel reads it).
    #[arg(long)]
    quantize_patterns: bool,
    /// Shift each quantized layer's bias by its mean output error on the calibration data:
    /// fast (each layer alone, one pass) or full (inside the quantized model, repeated).
    #[arg(long)]
    bias_correction: Option<BiasCorrection>,
    /// AdaRound: round each weight up or down as minimizes its layer's output error on the
    /// calibration data (int8 and int4 weights; needs --data).
    #[arg(long)]
    adaround: bool,
    /// int8: an activation's range set by hand, TENSOR=MIN,MAX (repeatable); `quantbench calib`
    /// shows what each calibration method would choose.
    #[arg(long, value_name = "TENSOR=MIN,MAX", value_parser = parse_pin)]
    pin: Vec<(String, (f32, f32))>,
    /// int8: these activations on 16 bits (comma-separated tensor names, or '*' for all;
    /// opset 21, ONNX Runtime).
    #[arg(long, value_delimiter = ',')]
    int16: Option<Vec<String>>,
    /// Opset to write (raised automatically when a feature needs it).
    #[arg(long)]
    opset: Option<i64>,
}

impl ConfigArgs {
    /// The config the file, `mode` and the flags describe, and why the target set what it set.
    pub fn config(&self, mode: Option<Mode>) -> Result<(QuantConfig, Vec<String>)> {
        config_from_args(self, mode)
    }
}

fn parse_pin(s: &str) -> Result<(String, (f32, f32)), String> {
    let (tensor, range) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("'{s}': expected TENSOR=MIN,MAX"))?;
    let (lo, hi) = range
        .split_once(',')
        .ok_or_else(|| format!("'{range}': expected MIN,MAX"))?;
    let number = |v: &str| {
        v.trim()
            .parse::<f32>()
            .map_err(|e| format!("'{v}' in '{s}': {e}"))
    };
    Ok((tensor.to_string(), (number(lo)?, number(hi)?)))
}

fn config_from_args(args: &ConfigArgs, mode: Option<Mode>) -> Result<(QuantConfig, Vec<String>)> {
    let mut config = match &args.config {
        Some(p) => QuantConfig::load(p)?,
        None => QuantConfig::default(),
    };
    if let Some(m) = mode {
        config.mode = m;
    }
    let why = match args.target {
        Some(t) => config.apply_target(t, &quantbench::host::detect()),
        None => vec![],
    };
    if args.per_channel {
        config.per_channel = true;
    }
    if args.symmetric {
        config.symmetry = Symmetry::All;
    }
    if args.asymmetric {
        config.symmetry = Symmetry::None;
    }
    if let Some(a) = args.activations {
        config.activations = a;
    }
    if let Some(c) = args.calibration {
        config.calibration = c;
    }
    if let Some(n) = args.samples {
        config.samples = n;
    }
    if let Some(k) = &args.keep_float {
        config.keep_float = k.clone();
    }
    if let Some(o) = &args.ops {
        config.ops = o.clone();
    }
    if let Some(b) = args.block_size {
        config.int4_block_size = Some(b);
    }
    if let Some(o) = args.opset {
        config.opset = Some(o);
    }
    if args.reduce_range {
        config.reduce_range = true;
    }
    if args.no_reduce_range {
        config.reduce_range = false;
    }
    if args.cle {
        config.cle = true;
    }
    if args.quantize_patterns {
        config.float_patterns = false;
    }
    if let Some(b) = args.bias_correction {
        config.bias_correction = Some(b);
    }
    if args.adaround {
        config.adaround = true;
    }
    config.pinned_ranges.extend(args.pin.iter().cloned());
    if let Some(t) = &args.int16 {
        config.int16_activations = t.clone();
    }
    config.validate()?;
    Ok((config, why))
}

pub fn quantize(args: QuantizeArgs) -> Result<ExitCode> {
    let (config, why) = args.settings.config(args.mode)?;
    quantbench::fileio::check_output_dir(&args.out)?;
    let model = onnx::read_model(&args.model)?;
    let dataset = match (&args.data, config.needs_data()) {
        (Some(p), true) => Some(open_data(p, &model, &args.infer)?),
        (None, true) => anyhow::bail!(
            "{} needs calibration data: pass --data (a folder of images, .csv, .npy, .npz, a .ron description, or 'synthetic')",
            if config.mode.needs_calibration() { "int8" } else { "adaround" }
        ),
        _ => None,
    };
    if let Some(d) = &dataset {
        let inputs = quantbench::tensor::model_inputs(&model)
            .with_context(|| args.model.display().to_string())?;
        d.check_fits(&inputs)?;
    }
    let progress = Progress::new();
    let (quantized, mut report) = quant::quantize(&model, &config, dataset.as_ref(), &progress)
        .with_context(|| format!("{}: quantization failed", args.model.display()))?;
    report.notes.splice(0..0, why);
    let write_start = Instant::now();
    onnx::write_model(&args.out, &quantized, onnx::SINGLE_FILE_LIMIT)?;
    let write_seconds = write_start.elapsed().as_secs_f64();
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["output"] = serde_json::json!(args.out.display().to_string());
        value["write_seconds"] = serde_json::json!(write_seconds);
        value["settings"] = value["config"].take();
        if let Some(obj) = value.as_object_mut() {
            obj.remove("config");
        }
        println!("{}", serde_json::to_string(&value)?);
    } else {
        println!("wrote {} ({})", args.out.display(), config.label());
        println!(
            "size  {} -> {} ({:.2}x smaller)",
            onnx::inspect::human_bytes(report.size_before),
            onnx::inspect::human_bytes(report.size_after),
            report.size_before as f64 / report.size_after.max(1) as f64
        );
        println!("opset {} -> {}", report.opset_before, report.opset);
        let c = &report.counts;
        println!(
            "quantized {} nodes ({} kept float): {} weights, {} biases, {} activations",
            c.nodes_quantized, c.nodes_kept_float, c.weights, c.biases, c.activations
        );
        if report.calibration_samples > 0 {
            println!(
                "calibrated on {} samples ({}) in {:.2} s with {}",
                report.calibration_samples,
                config.calibration,
                report.calibration_seconds,
                report.calibration_runtime.as_deref().unwrap_or("-")
            );
        }
        for n in &report.notes {
            println!("note: {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
