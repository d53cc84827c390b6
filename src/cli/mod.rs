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
    /// Without a command, the workbench opens on the bundled MNIST sample.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the workbench on a model (.onnx) or a saved session (.ron).
    Gui { path: Option<PathBuf> },
    /// Open the window, run what the session lacks, save a PNG of a view and close.
    Screenshot {
        /// A session (.ron) or a model (.onnx); default: the bundled MNIST sample with the standard preset.
        path: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// tradeoff, heatmap, compare or all.
        #[arg(long, default_value = "all")]
        view: crate::gui::CentralView,
        /// The left panel's tab: model, dataset or settings.
        #[arg(long, default_value = "model")]
        tab: crate::gui::SetupTab,
        /// Also write the session with everything that ran.
        #[arg(long)]
        session_out: Option<PathBuf>,
    },
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
    /// Measure latency (batch 1) and throughput (1..N streams) of a model.
    Bench(BenchArgs),
    /// Quantize, evaluate and benchmark a family of configurations; write a session file.
    Sweep(SweepArgs),
    /// Write a dataset description from a folder or file, or show what the model will see.
    #[command(subcommand)]
    Dataset(DatasetCommand),
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Infer a description (RON) for SOURCE from the model: a folder of images (class
    /// sub-folders give labels), .csv/.tsv(.gz), .npy, .npz, test_data_set_* folders, or
    /// 'synthetic'.
    New {
        source: PathBuf,
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        infer: InferArgs,
    },
    /// Print what the model will see: samples, inputs (name, type, shape, value range), labels,
    /// splits; or write the split's preprocessed inputs to a .npy file.
    Show {
        /// A description (.ron), or any source `--data` accepts (with --model).
        data: PathBuf,
        /// The model, to bind inputs and infer a description for a folder or file.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Write the split's preprocessed inputs, stacked along a first axis: .npy (one input)
        /// or .npz (one array per model input), for feeding the same inputs to other tools.
        #[arg(long)]
        export: Option<PathBuf>,
        /// calibration or evaluation
        #[arg(long, default_value = "calibration")]
        split: String,
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        infer: InferArgs,
    },
}

/// How to read data that has no description (a folder, a CSV...): what the model cannot say.
#[derive(clap::Args, Clone, Default)]
struct InferArgs {
    #[command(flatten)]
    read: ReadArgs,
    /// Value normalisation: imagenet, pm1 ([-1, 1]), unit ([0, 1]), caffe (BGR mean), raw.
    #[arg(long)]
    preset: Option<quantbench::data::infer::Preset>,
}

/// The data options other than the preset (sweep's --preset also names its experiments).
#[derive(clap::Args, Clone, Default)]
struct ReadArgs {
    /// Resize the shorter side to N pixels (then centre-crop to the model's size).
    #[arg(long)]
    resize: Option<u32>,
    /// Centre crop HxW; also the sample size where the model leaves it open.
    #[arg(long, value_parser = parse_hw)]
    crop: Option<(u32, u32)>,
    /// Per-channel mean (after scaling), comma-separated.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    mean: Option<Vec<f32>>,
    /// Per-channel std, comma-separated.
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
    /// nchw or nhwc.
    #[arg(long, value_parser = parse_layout)]
    layout: Option<quantbench::data::Layout>,
    /// rgb, bgr or gray.
    #[arg(long, value_parser = parse_color)]
    color: Option<quantbench::data::Color>,
    /// CSV: the label column, by header name or 0-based index.
    #[arg(long)]
    label_column: Option<String>,
    /// synthetic: how many random samples.
    #[arg(long)]
    synthetic_samples: Option<usize>,
    /// Text: a Hugging Face tokenizer.json; the data is then a .csv/.tsv/.jsonl of sentences.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Text: the column (or JSONL field) with the sentences (default: text).
    #[arg(long)]
    text_column: Option<String>,
    /// Text: tokens per sample, truncated and padded to it.
    #[arg(long)]
    max_length: Option<usize>,
    /// Images: crop (resize the shorter side, centre crop), stretch, letterbox (keep the
    /// aspect ratio, pad around) or pad-width (text lines: the input height, padded on the
    /// right to its width).
    #[arg(long)]
    fit: Option<quantbench::data::infer::Fit>,
    /// Images: pixel value (0-255) of padding.
    #[arg(long)]
    pad_value: Option<f32>,
    /// Image folders: calibrate on N variants of each image (1-8: itself, mirrored, corner
    /// and centre crops).
    #[arg(long)]
    augment: Option<usize>,
}

impl InferArgs {
    fn options(&self) -> quantbench::data::infer::Options {
        let s = &self.read;
        quantbench::data::infer::Options {
            preset: self.preset,
            resize: s.resize,
            crop: s.crop,
            mean: s.mean.clone(),
            std: s.std.clone(),
            layout: s.layout,
            color: s.color,
            label_column: s.label_column.clone(),
            samples: s.synthetic_samples,
            tokenizer: s.tokenizer.clone(),
            text_column: s.text_column.clone(),
            max_length: s.max_length,
            fit: s.fit,
            pad_value: s.pad_value,
            augment: s.augment,
        }
    }
}

fn parse_hw(s: &str) -> std::result::Result<(u32, u32), String> {
    s.split_once(['x', 'X'])
        .and_then(|(h, w)| Some((h.trim().parse().ok()?, w.trim().parse().ok()?)))
        .ok_or_else(|| format!("'{s}' is not HxW, e.g. 224x224"))
}

fn parse_layout(s: &str) -> std::result::Result<quantbench::data::Layout, String> {
    match s.to_ascii_lowercase().as_str() {
        "nchw" => Ok(quantbench::data::Layout::Nchw),
        "nhwc" => Ok(quantbench::data::Layout::Nhwc),
        _ => Err(format!("'{s}': expected nchw or nhwc")),
    }
}

fn parse_color(s: &str) -> std::result::Result<quantbench::data::Color, String> {
    match s.to_ascii_lowercase().as_str() {
        "rgb" => Ok(quantbench::data::Color::Rgb),
        "bgr" => Ok(quantbench::data::Color::Bgr),
        "gray" | "grey" | "grayscale" => Ok(quantbench::data::Color::Grayscale),
        _ => Err(format!("'{s}': expected rgb, bgr or gray")),
    }
}

/// Opens `--data` for `model`, printing on stderr what had to be guessed.
fn open_data(path: &Path, model: &onnx::pb::ModelProto, infer: &InferArgs) -> Result<Dataset> {
    let (dataset, notes) = Dataset::open_for(path, model, &infer.options())?;
    for n in notes {
        eprintln!("data: {n}");
    }
    Ok(dataset)
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
    /// Calibration data: a description (.ron), a folder of images, .csv/.tsv(.gz), .npy,
    /// .npz, test_data_set_* folders, or 'synthetic'.
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    infer: InferArgs,
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
    /// A description (.ron), a folder of images, .csv/.tsv(.gz), .npy, .npz, test_data_set_*
    /// folders, or 'synthetic'.
    #[arg(long)]
    data: PathBuf,
    /// The output that top-1/top-5 score (default: the first).
    #[arg(long)]
    output: Option<String>,
    #[command(flatten)]
    infer: InferArgs,
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

#[derive(clap::Args)]
struct BenchArgs {
    model: PathBuf,
    #[command(flatten)]
    backend: BackendArgs,
    /// Measure throughput with 1..N concurrent streams, each with its own loaded model.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value_t = 100)]
    runs: usize,
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Feed the first sample of this data (default: synthetic inputs of the model's types).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Input shape where the model leaves dimensions open, e.g. 1,3,224,224 (single-input
    /// models; use --data for others).
    #[arg(long, value_delimiter = ',')]
    shape: Option<Vec<usize>>,
    #[command(flatten)]
    infer: InferArgs,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct SweepArgs {
    model: PathBuf,
    /// A description (.ron), or any source `eval --data` accepts.
    #[arg(long)]
    data: PathBuf,
    /// The output that top-1/top-5 score (default: the first).
    #[arg(long)]
    output: Option<String>,
    #[command(flatten)]
    infer: ReadArgs,
    /// QuantConfig files (RON), one experiment each.
    #[arg(long, num_args = 1..)]
    configs: Vec<PathBuf>,
    /// `standard`: a named family of configurations; and/or a data preset (imagenet, pm1,
    /// unit, caffe, raw) for data without a description. May be given twice.
    #[arg(long)]
    preset: Vec<String>,
    /// The session file to write (RON); quantized models go to SESSION.models/ beside it.
    #[arg(long)]
    out: PathBuf,
    /// Runtimes to measure on, comma-separated (default: tract, and ort when installed).
    #[arg(long, value_delimiter = ',')]
    backends: Option<Vec<String>>,
    /// ONNX Runtime graph optimization level: disabled, basic, extended, all.
    #[arg(long, default_value = "all")]
    ort_opt: quantbench::runtime::ort::OptLevel,
    /// ONNX Runtime: exact int8 kernels on CPUs without VNNI (session.x64quantprecision=1).
    #[arg(long)]
    x64_quant_precision: bool,
    /// Calibration samples for each quantized config of a preset.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Evaluate at most this many samples.
    #[arg(long)]
    eval_limit: Option<usize>,
    /// Benchmark runs per config and runtime.
    #[arg(long, default_value_t = 100)]
    runs: usize,
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
        Backend::parse(
            &self.backend,
            ort_options(self.ort_opt, self.x64_quant_precision),
        )
    }
}

fn ort_options(
    optimization: quantbench::runtime::ort::OptLevel,
    x64_quant_precision: bool,
) -> quantbench::runtime::ort::OrtOptions {
    quantbench::runtime::ort::OrtOptions {
        optimization,
        x64_quant_precision,
    }
}

pub fn run() -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        crate::gui::run(crate::gui::Startup {
            started: Some(started),
            ..Default::default()
        })?;
        return Ok(ExitCode::SUCCESS);
    };
    match command {
        Command::Gui { path } => {
            crate::gui::run(crate::gui::Startup {
                open: path,
                started: Some(started),
                ..Default::default()
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Screenshot {
            path,
            out,
            view,
            tab,
            session_out,
        } => {
            onnx::check_output_dir(&out)?;
            let plan = crate::gui::ScreenshotPlan {
                out: out.clone(),
                view,
                tab,
                session_out,
            };
            crate::gui::run(crate::gui::Startup {
                open: path,
                screenshot: Some(plan),
                started: Some(started),
            })?;
            if !out.is_file() {
                anyhow::bail!(
                    "{}: the window closed before the screenshot was taken",
                    out.display()
                );
            }
            eprintln!("wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { model, json } => inspect(&model, json),
        Command::Quantize(args) => quantize(args),
        Command::Eval(args) => eval(args),
        Command::Bench(args) => bench(args),
        Command::Sweep(args) => sweep(args),
        Command::Dataset(DatasetCommand::New {
            source,
            model,
            out,
            infer,
        }) => dataset_new(&source, &model, &out, &infer),
        Command::Dataset(DatasetCommand::Show {
            data,
            model,
            export,
            split,
            limit,
            infer,
        }) => dataset_show(
            &data,
            model.as_deref(),
            export.as_deref(),
            &split,
            limit,
            &infer,
        ),
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
    if args.reduce_range {
        config.reduce_range = true;
    }

    config.validate()?;
    Ok(config)
}

fn quantize(args: QuantizeArgs) -> Result<ExitCode> {
    let config = config_from_args(&args)?;
    onnx::check_output_dir(&args.out)?;
    let model = onnx::read_model(&args.model)?;
    let dataset = match (&args.data, config.mode.needs_calibration()) {
        (Some(p), true) => Some(open_data(p, &model, &args.infer)?),
        (None, true) => anyhow::bail!(
            "int8 needs calibration data: pass --data (a folder of images, .csv, .npy, .npz, a .ron description, or 'synthetic')"
        ),
        _ => None,
    };
    if let Some(d) = &dataset {
        let inputs = quantbench::tensor::model_inputs(&model)
            .with_context(|| args.model.display().to_string())?;
        d.check_fits(&inputs)?;
    }
    let progress = Progress::new();
    let (quantized, report) = quant::quantize(&model, &config, dataset.as_ref(), &progress)
        .with_context(|| format!("{}: quantization failed", args.model.display()))?;
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

fn eval(args: EvalArgs) -> Result<ExitCode> {
    let backend = args.backend.backend()?;
    let model = onnx::read_model(&args.model)?;
    let inputs = quantbench::tensor::model_inputs(&model)
        .with_context(|| args.model.display().to_string())?;
    let dataset = open_data(&args.data, &model, &args.infer)?;
    let example = dataset.bound(0, &inputs)?.inputs;
    let workers = rayon::current_num_threads();
    let load = |path: &Path, model: &onnx::pb::ModelProto| -> Result<Box<dyn Runner>> {
        backend
            .load(model, &example, workers)
            .with_context(|| path.display().to_string())
    };
    let candidate = load(&args.model, &model)?;
    let reference_model = args
        .reference
        .as_deref()
        .map(onnx::read_model)
        .transpose()?;
    let reference = match (&args.reference, &reference_model) {
        (Some(p), Some(m)) => Some(load(p, m)?),
        _ => None,
    };
    let progress = Progress::new();
    let report = quantbench::eval::evaluate(
        candidate.as_ref(),
        reference.as_deref(),
        &inputs,
        &dataset,
        args.limit,
        args.output.as_deref(),
        &progress,
    )?;
    let layers = match (&reference_model, args.layers) {
        (Some(reference), true) => Some(quantbench::eval::layers::per_layer_sqnr(
            &model,
            reference,
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
    println!(
        "samples    {} in {:.2} s{}",
        r.samples,
        r.seconds,
        if r.synthetic {
            "  (SYNTHETIC: random inputs)"
        } else {
            ""
        }
    );
    if !r.output.is_empty() {
        println!("output     {}", r.output);
    }
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
    if r.outputs.len() > 1 {
        println!("per output (fidelity against the reference):");
        for o in &r.outputs {
            println!(
                "  {:<24} {:<18} SQNR {:>7.2} dB  cosine {:.5}  max abs {:.4}{}{}",
                o.name,
                format!("{:?}", o.shape),
                o.sqnr_db,
                o.cosine,
                o.max_abs_error,
                o.agreement
                    .map(|a| format!("  agreement {a:.4}"))
                    .unwrap_or_default(),
                if o.non_finite_samples > 0 {
                    format!("  NaN/inf in {} samples", o.non_finite_samples)
                } else {
                    String::new()
                }
            );
        }
    }
    for n in &r.notes {
        println!("note: {n}");
    }
}

fn dataset_new(
    source: &Path,
    model_path: &Path,
    out: &Path,
    infer: &InferArgs,
) -> Result<ExitCode> {
    onnx::check_output_dir(out)?;
    let model = onnx::read_model(model_path)?;
    let inferred = quantbench::data::infer::describe(source, &model, &infer.options())?;
    // Check that it opens and fits before writing it.
    let dataset = Dataset::from_desc(inferred.desc.clone(), Path::new(""), source)?;
    dataset.check_fits(&quantbench::tensor::model_inputs(&model)?)?;
    quantbench::data::infer::save_description(&inferred.desc, Path::new(""), out)?;
    for n in &inferred.notes {
        println!("note: {n}");
    }
    println!(
        "wrote {} ({} samples{})",
        out.display(),
        dataset.len(),
        if dataset.has_labels() {
            ", labelled"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn dataset_show(
    path: &Path,
    model_path: Option<&Path>,
    export: Option<&Path>,
    split: &str,
    limit: Option<usize>,
    infer: &InferArgs,
) -> Result<ExitCode> {
    let model = model_path.map(onnx::read_model).transpose()?;
    let dataset = match &model {
        Some(m) => open_data(path, m, infer)?,
        None => Dataset::open(path)?,
    };
    let purpose = match split {
        "calibration" => quantbench::data::Purpose::Calibration,
        "evaluation" => quantbench::data::Purpose::Evaluation,
        other => anyhow::bail!("unknown split '{other}' (expected calibration or evaluation)"),
    };
    let inputs = model
        .as_ref()
        .map(quantbench::tensor::model_inputs)
        .transpose()?;
    if let Some(out) = export {
        let (n, arrays) = dataset.export(purpose, limit, inputs.as_deref(), out)?;
        let shapes: Vec<String> = arrays
            .iter()
            .map(|(name, shape)| format!("{name} {shape:?}"))
            .collect();
        println!(
            "wrote {n} samples ({}) to {}",
            shapes.join(", "),
            out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let first = match &inputs {
        Some(inputs) => dataset.bound(0, inputs)?,
        None => dataset.sample(0)?,
    };
    println!("dataset     {}", path.display());
    println!(
        "source      {}",
        ron::to_string(&dataset.desc.source).unwrap_or_default()
    );
    let pre = &dataset.desc.preprocess;
    if matches!(
        dataset.desc.source,
        quantbench::data::Source::Csv { .. } | quantbench::data::Source::ImageFolder { .. }
    ) {
        println!("preprocess  {}", quantbench::data::describe_preprocess(pre));
    }
    println!(
        "samples     {}{}",
        dataset.len(),
        if dataset.is_synthetic() {
            " (SYNTHETIC: random inputs, fidelity only)"
        } else {
            ""
        }
    );
    for feed in &first.inputs {
        let values = feed.data.to_f32();
        let (lo, hi) = values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len().max(1) as f64;
        println!(
            "input       {}: {} {:?}, sample 0 from {lo} to {hi}, mean {mean:.4}",
            if feed.name.is_empty() {
                "(the model's input)"
            } else {
                &feed.name
            },
            feed.data.elem_type(),
            feed.shape
        );
    }
    println!(
        "labels      {}",
        if dataset.has_labels() {
            let classes = dataset.class_names();
            if classes.is_empty() {
                "yes".to_string()
            } else {
                format!("{} classes ({})", classes.len(), classes.join(", "))
            }
        } else {
            "no".into()
        }
    );
    if first.expected.is_some() {
        println!("reference   outputs stored with the data (fidelity without a reference model)");
    }
    for (name, p) in [
        ("calibration", quantbench::data::Purpose::Calibration),
        ("evaluation", quantbench::data::Purpose::Evaluation),
    ] {
        let r = dataset.indices(p)?;
        println!("{name:<11} samples {}..{} ({})", r.start, r.end, r.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(args: BenchArgs) -> Result<ExitCode> {
    let backend = args.backend.backend()?;
    let model = onnx::read_model(&args.model)?;
    let inputs = quantbench::tensor::model_inputs(&model)
        .with_context(|| args.model.display().to_string())?;
    let mut infer = args.infer.clone();
    let data = match (&args.data, &args.shape) {
        (Some(d), _) => d.clone(),
        (None, Some(shape)) => {
            let [input] = inputs.as_slice() else {
                anyhow::bail!(
                    "{}: --shape describes one input, the model has {}: give --data (an .npz, or 'synthetic')",
                    args.model.display(),
                    inputs.len()
                );
            };
            if shape.len() == 4 && input.dims.len() == 4 {
                infer.read.crop = Some((shape[2] as u32, shape[3] as u32));
            }
            PathBuf::from(quantbench::data::infer::SYNTHETIC)
        }
        (None, None) => PathBuf::from(quantbench::data::infer::SYNTHETIC),
    };
    if data.as_os_str() == quantbench::data::infer::SYNTHETIC {
        infer.read.synthetic_samples = Some(1);
    }
    let dataset = open_data(&data, &model, &infer)?;
    let input = dataset.bound(0, &inputs)?.inputs;
    if let (Some(shape), Some(first)) = (&args.shape, input.first()) {
        if &first.shape != shape {
            anyhow::bail!(
                "{}: --shape {shape:?} does not fit input '{}' {}",
                args.model.display(),
                first.name,
                inputs[0].dims_text()
            );
        }
    }
    let settings = quantbench::bench::BenchSettings {
        runs: args.runs,
        warmup: args.warmup,
        threads: args.threads,
    };
    let size = std::fs::metadata(&args.model).map(|m| m.len()).unwrap_or(0);
    let report =
        quantbench::bench::benchmark(&model, size, backend, &input, &settings, &Progress::new())
            .with_context(|| args.model.display().to_string())?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["throughput_per_s"] = serde_json::json!(report.throughput_per_s());
        value["threads"] = serde_json::json!(args.threads);
        value["cpu"] = serde_json::json!(report.machine.cpu);
        println!("{}", serde_json::to_string(&value)?);
    } else {
        let m = &report.machine;
        println!(
            "model      {} ({})",
            args.model.display(),
            onnx::inspect::human_bytes(report.size_bytes)
        );
        println!("runtime    {}", report.runtime);
        println!(
            "machine    {}, {} cores, int8: {}",
            m.cpu,
            m.cores,
            if m.int8_features.is_empty() {
                "-".into()
            } else {
                m.int8_features.join(", ")
            }
        );
        println!("input      {}", report.inputs);
        println!(
            "latency    min {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3} ms  (spread {:.1}%, {} runs after {} warm-up)",
            report.min_ms, report.p50_ms, report.p90_ms, report.p99_ms, report.max_ms, report.spread_pct, report.runs, report.warmup
        );
        for t in &report.throughput {
            println!(
                "throughput {:>2} stream{}: {:.1} /s",
                t.streams,
                if t.streams == 1 { " " } else { "s" },
                t.per_second
            );
        }
        println!(
            "peak RSS   {}",
            onnx::inspect::human_bytes(report.peak_rss_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Draws `[#####.....] stage done/total` on stderr while `progress` runs, if stderr is a terminal.
fn spawn_ticker(
    progress: Progress,
    label: std::sync::Arc<std::sync::Mutex<String>>,
) -> Option<std::thread::JoinHandle<()>> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    std::thread::Builder::new()
        .name("quantbench-progress".into())
        .spawn(move || loop {
            let (stage, done, total) = progress.snapshot();
            if stage == "finished" {
                eprint!("\r{:<100}\r", "");
                break;
            }
            let width = 24;
            let filled = if total > 0 {
                (done as usize * width / total as usize).min(width)
            } else {
                0
            };
            let label = label.lock().map(|l| l.clone()).unwrap_or_default();
            eprint!(
                "\r[{}{}] {label}: {stage} {done}/{total}{:<10}",
                "#".repeat(filled),
                ".".repeat(width - filled),
                ""
            );
            std::thread::sleep(std::time::Duration::from_millis(150));
        })
        .ok()
}

fn sweep(args: SweepArgs) -> Result<ExitCode> {
    use quantbench::session::{DatasetRef, Experiment, ModelRef, Session};
    onnx::check_output_dir(&args.out)?;
    let model = onnx::read_model(&args.model)?;
    let mut standard = false;
    let mut infer = InferArgs {
        read: args.infer.clone(),
        preset: None,
    };
    for p in &args.preset {
        if p == "standard" {
            standard = true;
        } else {
            infer.preset = Some(p.parse().map_err(|e| {
                anyhow::anyhow!("--preset: {e}; or 'standard' for the experiments")
            })?);
        }
    }
    let dataset = open_data(&args.data, &model, &infer)?;
    if standard && !args.configs.is_empty() {
        anyhow::bail!("give --preset standard or --configs, not both");
    }
    let experiments: Vec<Experiment> = match (standard, args.configs.is_empty()) {
        (true, _) => quantbench::session::standard_preset(args.samples),
        (false, false) => {
            let mut e = vec![Experiment::float()];
            for path in &args.configs {
                e.push(Experiment::quantized(QuantConfig::load(path)?));
            }
            e
        }
        (false, true) => anyhow::bail!("give --preset standard or --configs A.ron B.ron ..."),
    };
    let ort_options = ort_options(args.ort_opt, args.x64_quant_precision);
    let backends = match &args.backends {
        Some(names) => names
            .iter()
            .map(|n| {
                let backend = Backend::parse(n, ort_options)?;
                if let Backend::Ort(_) = backend {
                    quantbench::runtime::ort::version()?;
                }
                Ok(backend)
            })
            .collect::<Result<Vec<_>>>()?,
        None => match quantbench::runtime::ort::version() {
            Ok(_) => vec![Backend::Tract, Backend::Ort(ort_options)],
            Err(e) => {
                eprintln!("note: measuring on tract only: {e:#}");
                vec![Backend::Tract]
            }
        },
    };
    let models_dir = args.out.with_extension("models");
    std::fs::create_dir_all(&models_dir)
        .with_context(|| format!("{}: cannot create", models_dir.display()))?;
    let settings = quantbench::sweep::SweepSettings {
        backends,
        bench: quantbench::bench::BenchSettings {
            runs: args.runs,
            warmup: 10.min(args.runs),
            threads: 1,
        },
        eval_limit: args.eval_limit,
        layer_samples: 16,
        models_dir: Some(models_dir),
        output: args.output.clone(),
    };
    let mut session = Session::new(
        ModelRef::of_file(&args.model)?,
        Some(DatasetRef {
            path: args.data.display().to_string(),
            desc: dataset.desc.clone(),
        }),
    );
    for e in experiments {
        session.add(e);
    }
    let file_bytes = std::fs::metadata(&args.model).map(|m| m.len()).unwrap_or(0);
    let mut workbench = quantbench::sweep::Workbench::new(model, file_bytes, dataset)?;
    let progress = Progress::new();
    let label = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let ticker = spawn_ticker(progress.clone(), label.clone());
    let total = session.experiments.len();
    if let Ok(mut l) = label.lock() {
        *l = format!("[1/{total}] {}", session.experiments[0].name);
    }
    let out = args.out.clone();
    let result = quantbench::sweep::run_pending(
        &mut session,
        &mut workbench,
        &settings,
        &progress,
        |s, i| {
            let e = &s.experiments[i];
            eprint!("\r");
            match &e.result.error {
                Some(err) => eprintln!("[{}/{total}] {}: failed: {err}", i + 1, e.name),
                None => eprintln!("[{}/{total}] {}: done{:<40}", i + 1, e.name, ""),
            }
            for n in &e.result.notes {
                eprintln!("    note: {n}");
            }
            if let (Ok(mut l), Some(next)) = (label.lock(), s.experiments.get(i + 1)) {
                *l = format!("[{}/{total}] {}", i + 2, next.name);
            }
            s.save(&out)
        },
    );
    progress.stage("finished", 0);
    if let Some(t) = ticker {
        let _ = t.join();
    }
    result?;
    print!("{}", quantbench::report::to_text(&session));
    eprintln!("session written to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    /// Every command's flags are consistent (no two options with one name): clap checks it.
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
