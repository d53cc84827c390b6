//! Command-line parsing (clap derive) and the subcommands, each a thin caller of the engine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use quantbench::data::Dataset;
use quantbench::jobs::Progress;
use quantbench::onnx;
use quantbench::quant::{self, ActivationType, Calibration, Mode, QuantConfig, Symmetry};
use quantbench::runtime::{Backend, Runner};

#[derive(Parser)]
#[command(
    name = "quantbench",
    version,
    about = "Post-training quantization workbench for ONNX models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a model's inputs, outputs, opset, op histogram, nodes and weights.
    Inspect {
        model: PathBuf,
        /// One JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Quantize a model and write the result as a standard ONNX file.
    Quantize(QuantizeArgs),
    /// Evaluate a model on a dataset: accuracy, and fidelity against a reference model.
    Eval(EvalArgs),
    /// Describe a dataset, or write its preprocessed samples to a .npy file.
    Dataset {
        data: PathBuf,
        /// Write the split's preprocessed inputs, stacked, to this .npy file.
        #[arg(long)]
        npy: Option<PathBuf>,
        /// calibration or evaluation
        #[arg(long, default_value = "calibration")]
        split: String,
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(clap::Args)]
struct QuantizeArgs {
    model: PathBuf,
    /// Where to write the quantized model (atomically: a temp file, then a rename).
    #[arg(long)]
    out: PathBuf,
    /// A RON QuantConfig; the flags below override what it says.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    mode: Option<Mode>,
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
    /// Dataset description (RON) for calibration.
    #[arg(long)]
    data: Option<PathBuf>,
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
    /// Opset to write (raised automatically when a feature needs it).
    #[arg(long)]
    opset: Option<i64>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct EvalArgs {
    model: PathBuf,
    #[arg(long)]
    data: PathBuf,
    /// The float model to compare against (agreement, SQNR, cosine).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Evaluate at most this many samples of the evaluation split.
    #[arg(long)]
    limit: Option<usize>,
    /// Also print the SQNR of every quantized activation against the reference (tract).
    #[arg(long, requires = "reference")]
    layers: bool,
    #[command(flatten)]
    backend: BackendArgs,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Clone)]
struct BackendArgs {
    /// tract (embedded) or ort (ONNX Runtime, loaded from ORT_DYLIB_PATH or the Python package).
    #[arg(long, default_value = "tract")]
    backend: String,
    /// ONNX Runtime graph optimization level: disabled, basic, extended, all.
    #[arg(long, default_value = "all")]
    ort_opt: quantbench::runtime::ort::OptLevel,
    /// ONNX Runtime: exact int8 kernels on CPUs without VNNI (session.x64quantprecision=1).
    #[arg(long)]
    x64_quant_precision: bool,
}

impl BackendArgs {
    fn backend(&self) -> Result<Backend> {
        match self.backend.as_str() {
            "tract" => Ok(Backend::Tract),
            "ort" => Ok(Backend::Ort(quantbench::runtime::ort::OrtOptions {
                optimization: self.ort_opt,
                x64_quant_precision: self.x64_quant_precision,
            })),
            other => anyhow::bail!("unknown backend '{other}' (expected tract or ort)"),
        }
    }
}

pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect { model, json } => inspect(&model, json),
        Command::Quantize(args) => quantize(args),
        Command::Eval(args) => eval(args),
        Command::Dataset {
            data,
            npy,
            split,
            limit,
        } => dataset(&data, npy.as_deref(), &split, limit),
    }
}

fn inspect(path: &Path, json: bool) -> Result<ExitCode> {
    let model = onnx::read_model(path)?;
    let summary = onnx::inspect::summarize(&model, path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(ExitCode::SUCCESS)
}

fn config_from_args(args: &QuantizeArgs) -> Result<QuantConfig> {
    let mut config = match &args.config {
        Some(p) => QuantConfig::load(p)?,
        None => QuantConfig::default(),
    };
    if let Some(m) = args.mode {
        config.mode = m;
    }
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

    config.validate()?;
    Ok(config)
}

fn quantize(args: QuantizeArgs) -> Result<ExitCode> {
    let config = config_from_args(&args)?;
    let out_dir = args
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !out_dir.is_dir() {
        anyhow::bail!(
            "{}: the output directory {} does not exist",
            args.out.display(),
            out_dir.display()
        );
    }
    let model = onnx::read_model(&args.model)?;
    let dataset = match (&args.data, config.mode.needs_calibration()) {
        (Some(p), true) => Some(Dataset::open(p)?),
        (None, true) => anyhow::bail!("int8 needs calibration data: pass --data DATASET.ron"),
        _ => None,
    };
    if let Some(d) = &dataset {
        let spec = quantbench::runtime::input_spec(&model)
            .with_context(|| args.model.display().to_string())?;
        d.check_shape(&spec.name, &spec.dims)?;
    }
    let progress = Progress::new();
    let (quantized, report) = quant::quantize(&model, &config, dataset.as_ref(), &progress)
        .with_context(|| format!("{}: quantization failed", args.model.display()))?;
    let write_start = Instant::now();
    onnx::write_atomic(&args.out, &onnx::encode_model(&quantized))?;
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

fn eval(args: EvalArgs) -> Result<ExitCode> {
    let backend = args.backend.backend()?;
    let dataset = Dataset::open(&args.data)?;
    let workers = rayon::current_num_threads();
    let load = |path: &Path| -> Result<Box<dyn Runner>> {
        let model = onnx::read_model(path)?;
        let spec =
            quantbench::runtime::input_spec(&model).with_context(|| path.display().to_string())?;
        dataset.check_shape(&spec.name, &spec.dims)?;
        let shape = dataset.sample(0)?.shape;
        backend
            .load(&model, &shape, workers)
            .with_context(|| path.display().to_string())
    };
    let candidate = load(&args.model)?;
    let reference = args.reference.as_deref().map(load).transpose()?;
    let progress = Progress::new();
    let report = quantbench::eval::evaluate(
        candidate.as_ref(),
        reference.as_deref(),
        &dataset,
        args.limit,
        &progress,
    )?;
    let layers = match (&args.reference, args.layers) {
        (Some(reference), true) => Some(quantbench::eval::layers::per_layer_sqnr(
            &onnx::read_model(&args.model)?,
            &onnx::read_model(reference)?,
            &dataset,
            args.limit.unwrap_or(usize::MAX),
            &progress,
        )?),
        _ => None,
    };
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["backend"] = serde_json::json!(backend.name());
        value["runtime"] = serde_json::json!(candidate.describe());
        if let Some(layers) = &layers {
            value["layers"] = serde_json::to_value(layers)?;
        }
        println!("{}", serde_json::to_string(&value)?);
    } else {
        print_eval(&report, candidate.describe());
        for l in layers.iter().flatten() {
            println!("  {:>8.2} dB  {:<18} {}", l.sqnr_db, l.op_type, l.tensor);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_eval(r: &quantbench::eval::EvalReport, runtime: String) {
    let opt = |v: Option<f64>, digits: usize| {
        v.map(|v| format!("{v:.digits$}"))
            .unwrap_or_else(|| "-".into())
    };
    println!("runtime    {runtime}");
    println!("samples    {} in {:.2} s", r.samples, r.seconds);
    println!("top-1      {}   top-5 {}", opt(r.top1, 4), opt(r.top5, 4));
    println!(
        "agreement  {}   SQNR {} dB   cosine {}",
        opt(r.agreement, 4),
        opt(r.sqnr_db, 2),
        opt(r.cosine, 5)
    );
    println!(
        "abs error  max {}   mean {}",
        opt(r.max_abs_error, 4),
        opt(r.mean_abs_error, 4)
    );
    for n in &r.notes {
        println!("note: {n}");
    }
}

fn dataset(path: &Path, npy: Option<&Path>, split: &str, limit: Option<usize>) -> Result<ExitCode> {
    let dataset = Dataset::open(path)?;
    let purpose = match split {
        "calibration" => quantbench::data::Purpose::Calibration,
        "evaluation" => quantbench::data::Purpose::Evaluation,
        other => anyhow::bail!("unknown split '{other}' (expected calibration or evaluation)"),
    };
    match npy {
        Some(out) => {
            let (n, shape) = dataset.export_npy(purpose, limit, out)?;
            println!("wrote {n} samples, shape {shape:?}, to {}", out.display());
        }
        None => {
            let first = dataset.sample(0)?;
            println!("dataset     {}", path.display());
            println!("samples     {}", dataset.len());
            println!("input shape {:?}", first.shape);
            println!(
                "labels      {}",
                if dataset.has_labels() { "yes" } else { "no" }
            );
            for (name, p) in [
                ("calibration", quantbench::data::Purpose::Calibration),
                ("evaluation", quantbench::data::Purpose::Evaluation),
            ] {
                let r = dataset.indices(p)?;
                println!("{name:<11} samples {}..{} ({})", r.start, r.end, r.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
