//! `quantbench eval`: accuracy on labelled data and fidelity against a reference model.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use quantbench::jobs::Progress;
use quantbench::onnx;
use quantbench::runtime::Runner;

use super::args::{open_data, BackendArgs, InferArgs};

#[derive(clap::Args)]
pub struct EvalArgs {
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

pub fn eval(args: EvalArgs) -> Result<ExitCode> {
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
