//! `quantbench tune`: the fastest quantized model that meets a tolerance, found by the engine's
//! search (`quantbench::tune`), every candidate kept in a session (resumable).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use quantbench::eval::figure;
use quantbench::jobs::Progress;
use quantbench::onnx;
use quantbench::quant::{self, Target};
use quantbench::runner::{RunSettings, Workbench};
use quantbench::runtime::Backend;
use quantbench::session::{DatasetRef, ModelRef, Session};
use quantbench::tune::{Goal, TuneSettings};

use super::args::{open_data, ort_options, InferArgs, ProfileArgs};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("goal").required(true).args(["max_drop", "min_agreement", "min_sqnr"])))]
pub struct TuneArgs {
    model: PathBuf,
    /// Calibration and evaluation data.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    infer: InferArgs,
    /// The runtime the model is for: ort-cpu (measured on ONNX Runtime; the default), tract,
    /// tensorrt or generic (measured on tract).
    #[arg(long, default_value_t = Target::DEFAULT)]
    target: Target,
    /// Top-1 may drop at most this much below float (labelled data), e.g. 0.01.
    #[arg(long)]
    max_drop: Option<f64>,
    /// Agreement with float at least this, e.g. 0.99.
    #[arg(long)]
    min_agreement: Option<f64>,
    /// Output SQNR against float at least this many dB.
    #[arg(long)]
    min_sqnr: Option<f64>,
    /// Where the chosen model is written.
    #[arg(long)]
    out: PathBuf,
    /// Every candidate goes here (and is reused from here: a stopped search resumes).
    #[arg(long)]
    session: Option<PathBuf>,
    /// Calibration samples per candidate (default: the profile's).
    #[arg(long)]
    samples: Option<usize>,
    /// Evaluate at most this many samples (default: the profile's).
    #[arg(long)]
    eval_limit: Option<usize>,
    /// Benchmark runs per candidate (default: the profile's).
    #[arg(long)]
    runs: Option<usize>,
    #[command(flatten)]
    profile: ProfileArgs,
    /// Layers the search may keep float (default: half of those it quantizes).
    #[arg(long)]
    max_float_layers: Option<usize>,
    /// Start no new candidate after this many minutes: choose among those measured by then.
    #[arg(long)]
    minutes: Option<f64>,
    /// End with one JSON object: the chosen config and its figures.
    #[arg(long)]
    json: bool,
    /// The latencies the search ranks by: measured on a device over SSH.
    #[command(flatten)]
    remote: super::args::RemoteArgs,
}

fn goal(args: &TuneArgs) -> Result<Goal> {
    Ok(match (args.max_drop, args.min_agreement, args.min_sqnr) {
        (Some(d), _, _) => Goal::MaxDrop(d),
        (_, Some(a), _) => Goal::MinAgreement(a),
        (_, _, Some(s)) => Goal::MinSqnr(s),
        _ => anyhow::bail!("give --max-drop, --min-agreement or --min-sqnr"),
    })
}

/// The search's settings: the profile's, with the flags over them, on the target's runtime.
fn settings(args: &TuneArgs, goal: Goal, model: ModelRef) -> Result<TuneSettings> {
    let backend = match args.target {
        Target::OrtCpu => {
            quantbench::runtime::ort::version()
                .context("target ort-cpu is measured on ONNX Runtime")?;
            Backend::Ort(ort_options(quantbench::runtime::ort::OptLevel::All, false))
        }
        _ => Backend::Tract,
    };
    let profile = args.profile.profile;
    let mut run = RunSettings::of(profile, vec![backend]);
    if let Some(runs) = args.runs {
        run.bench.runs = runs.max(1);
        run.bench.warmup = run.bench.warmup.min(runs);
    }
    if args.eval_limit.is_some() {
        run.eval_limit = args.eval_limit;
    }
    run.layer_samples = 0;
    run.models_dir = args.session.as_ref().map(|p| p.with_extension("models"));
    run.remote = args.remote.remote();
    Ok(TuneSettings {
        goal,
        target: args.target,
        samples: args.samples.unwrap_or(profile.settings().samples),
        max_float_layers: args.max_float_layers,
        layer_samples: profile.settings().layer_samples,
        run,
        model,
        time_budget: args
            .minutes
            .filter(|m| *m > 0.0)
            .map(|m| std::time::Duration::from_secs_f64(m * 60.0)),
    })
}

pub fn tune(args: TuneArgs) -> Result<ExitCode> {
    quantbench::fileio::check_output_dir(&args.out)?;
    let goal = goal(&args)?;
    let model = onnx::read_model(&args.model)?;
    let dataset = open_data(&args.data, &model, &args.infer)?;
    let model_ref = ModelRef::of_file(&args.model)?;
    let settings = settings(&args, goal, model_ref.clone())?;
    let mut session = match &args.session {
        Some(p) if p.exists() => {
            let session = Session::load(p)?;
            if session.model.sha256 != model_ref.sha256 {
                anyhow::bail!(
                    "{}: holds the results of another model file ({}, SHA-256 {}…; {} is {}…): give another --session, or remove this one",
                    p.display(),
                    session.model.path,
                    quantbench::fileio::short_hash(&session.model.sha256),
                    args.model.display(),
                    quantbench::fileio::short_hash(&model_ref.sha256)
                );
            }
            session
        }
        _ => Session::new(model_ref, Some(DatasetRef::of(&dataset))),
    };
    if let Some(d) = &settings.run.models_dir {
        std::fs::create_dir_all(d).with_context(|| format!("{}: cannot create", d.display()))?;
    }
    let size = std::fs::metadata(&args.model).map(|m| m.len()).unwrap_or(0);
    let mut bench = Workbench::new(model, size, dataset)?;
    let started = std::time::Instant::now();
    let progress = Progress::new();
    let session_path = args.session.clone();
    let outcome = quantbench::tune::tune(
        &mut session,
        &mut bench,
        &settings,
        &progress,
        |s| match &session_path {
            Some(p) => s.save(p),
            None => Ok(()),
        },
        |line| eprintln!("{line}"),
    )?;
    let chosen = session
        .get(outcome.chosen)
        .context("the chosen candidate is in the session")?;
    let config = chosen
        .config
        .clone()
        .context("the float model was chosen")?;
    let quantized = match &chosen.result.model_path {
        Some(p) if std::path::Path::new(p).is_file() => onnx::read_model(std::path::Path::new(p))?,
        _ => quant::quantize(&bench.float, &config, Some(&bench.dataset), &progress)?.0,
    };
    onnx::write_model(&args.out, &quantized, onnx::SINGLE_FILE_LIMIT)?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} ({}) after {} candidates in {seconds:.1} s",
        args.out.display(),
        chosen.name,
        outcome.verdicts.len()
    );
    print_chosen(
        &args,
        chosen,
        &config,
        &outcome,
        settings.run.backends[0],
        seconds,
    )
}

fn print_chosen(
    args: &TuneArgs,
    chosen: &quantbench::session::Experiment,
    config: &quant::QuantConfig,
    outcome: &quantbench::tune::Outcome,
    backend: Backend,
    seconds: f64,
) -> Result<ExitCode> {
    let b = backend.name();
    let eval = chosen.result.eval(b);
    let p50 = chosen.result.bench(b).map(|r| r.p50_ms);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "chosen": chosen.name,
                "id": chosen.id,
                "config": config,
                "backend": b,
                "top1": eval.and_then(|r| r.top1),
                "agreement": eval.and_then(|r| r.agreement),
                "sqnr_db": figure::to_json(eval.and_then(|r| r.sqnr_db)),
                "broken": eval.is_some_and(|r| r.is_broken()),
                "p50_ms": p50,
                "size_bytes": chosen.result.size_bytes,
                "kept_float": config.keep_float,
                "candidates": outcome.verdicts.len(),
                "reused": outcome.verdicts.iter().filter(|v| v.reused).count(),
                "seconds": seconds,
                "output": args.out.display().to_string(),
            })
        );
    } else {
        println!(
            "chosen: {} on {b}: top-1 {} agreement {} SQNR {} p50 {} size {}",
            chosen.name,
            eval.and_then(|r| r.top1)
                .map_or("-".into(), |v| format!("{v:.4}")),
            eval.and_then(|r| r.agreement)
                .map_or("-".into(), |v| format!("{v:.4}")),
            eval.and_then(|r| r.sqnr_db)
                .map_or("-".into(), |v| format!("{v:.2} dB")),
            p50.map_or("-".into(), |v| format!("{v:.3} ms")),
            onnx::inspect::human_bytes(chosen.result.size_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}
