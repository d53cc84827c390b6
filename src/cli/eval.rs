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
    /// Evaluate at most this many samples, spread evenly over the evaluation split (or the
    /// shard): every class of a folder sorted by class is in the subset.
    #[arg(long)]
    limit: Option<usize>,
    /// Evaluate slice K of N contiguous slices of the evaluation split (1/4 .. 4/4).
    #[arg(long, value_name = "K/N")]
    shard: Option<quantbench::data::Shard>,
    /// Where the running figures are saved (every --checkpoint-every seconds) so that an
    /// interrupted evaluation resumes instead of starting over; default: a file in
    /// ~/.cache/quantbench/ named after the models, data, selection and runtime.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    checkpoint_every: f64,
    /// Start over even if a checkpoint of this evaluation exists, and save none.
    #[arg(long)]
    no_checkpoint: bool,
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
    let selection = quantbench::data::Selection {
        limit: args.limit,
        shard: args.shard,
    };
    let resume = match args.no_checkpoint {
        true => None,
        false => Some(resume_for(&args, &dataset, selection, backend.name())?),
    };
    if let Some(r) = &resume {
        if r.path.exists() {
            eprintln!("resuming from the checkpoint {}", r.path.display());
        }
    }
    if let Some(note) = dataset.overlap_note() {
        eprintln!(
            "note: if the model was calibrated on this data, {note} (give the data disjoint calibration and evaluation splits in its description)"
        );
    }
    let progress = Progress::new();
    let report = with_progress_bar(&progress, || {
        quantbench::eval::evaluate(
            candidate.as_ref(),
            reference.as_deref(),
            &inputs,
            &dataset,
            selection,
            args.output.as_deref(),
            &progress,
            resume.as_ref(),
        )
    })?;
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
        value["broken"] = serde_json::json!(report.is_broken());
        value["backend"] = serde_json::json!(backend.name());
        value["runtime"] = serde_json::json!(candidate.describe());
        value["shared_calibration_samples"] = serde_json::json!(dataset.shared_samples());
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

/// The checkpoint of this evaluation: named after everything its figures depend on.
fn resume_for(
    args: &EvalArgs,
    dataset: &quantbench::data::Dataset,
    selection: quantbench::data::Selection,
    backend: &str,
) -> Result<quantbench::eval::Resume> {
    use quantbench::fileio::sha256_hex;
    let file_hash = |p: &Path| -> Result<String> {
        let bytes = std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()))?;
        Ok(sha256_hex(&bytes))
    };
    let key = format!(
        "model {} reference {} data {} ({} samples) selection {:?} output {:?} backend {backend}",
        file_hash(&args.model)?,
        args.reference
            .as_deref()
            .map(file_hash)
            .transpose()?
            .unwrap_or_default(),
        ron::to_string(&dataset.resolved_desc())?,
        dataset.len(),
        selection,
        args.output,
    );
    let path = match &args.checkpoint {
        Some(p) => p.clone(),
        None => {
            let dir = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("quantbench");
            std::fs::create_dir_all(&dir).with_context(|| {
                format!("{}: cannot create the checkpoint folder", dir.display())
            })?;
            dir.join(format!("eval-{}.ron", &sha256_hex(key.as_bytes())[..16]))
        }
    };
    Ok(quantbench::eval::Resume {
        path,
        key,
        every: std::time::Duration::from_secs_f64(args.checkpoint_every.max(0.0)),
    })
}

/// Runs `work` with a progress bar on stderr (hidden when stderr is not a terminal): done,
/// rate and the time left.
fn with_progress_bar<T>(progress: &Progress, work: impl FnOnce() -> Result<T> + Send) -> Result<T>
where
    T: Send,
{
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:24}] {pos}/{len} {per_sec} eta {eta}")
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .progress_chars("#>."),
    );
    let done = std::sync::atomic::AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("eval-progress".into())
            .spawn_scoped(scope, || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let (stage, pos, len) = progress.snapshot();
                    bar.set_message(stage);
                    bar.set_length(len);
                    bar.set_position(pos);
                    std::thread::park_timeout(std::time::Duration::from_millis(200));
                }
            })
            .map(|handle| {
                let result = work();
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                handle.thread().unpark();
                result
            })
            .map_err(|e| anyhow::anyhow!("cannot start the progress thread: {e}"))
    });
    bar.finish_and_clear();
    result?
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
