//! `quantbench sweep`: a family of configurations quantized, evaluated and benchmarked into
//! one session file, on the engine's job service with a progress bar.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use quantbench::jobs::{Job, JobEnd};
use quantbench::onnx;
use quantbench::quant::QuantConfig;
use quantbench::runner::RunSettings;
use quantbench::runtime::Backend;
use quantbench::session::{ExperimentId, Session};

use super::args::{open_data, ort_options, InferArgs, ProfileArgs, ReadArgs};

/// What a sweep runs, shared by `sweep` (here, now) and `plan` (later, anywhere).
#[derive(clap::Args)]
pub struct SweepCommon {
    pub model: PathBuf,
    /// A description (.ron), or any source `eval --data` accepts.
    #[arg(long)]
    pub data: PathBuf,
    /// The output that top-1/top-5 score (default: the first).
    #[arg(long)]
    output: Option<String>,
    #[command(flatten)]
    infer: ReadArgs,
    /// QuantConfig files (RON), one experiment each.
    #[arg(long, num_args = 1..)]
    configs: Vec<PathBuf>,
    /// `standard`: a named family of configurations; a `.ron` file of configs (one, or a list
    /// of them); and/or a data preset (imagenet, pm1, unit, caffe, raw) for data without a
    /// description. May be given twice.
    #[arg(long)]
    preset: Vec<String>,
    /// Runtimes to measure on, comma-separated (default: the profile's: tract, and ort when
    /// installed; quick: ort alone when installed).
    #[arg(long, value_delimiter = ',')]
    backends: Option<Vec<String>>,
    /// ONNX Runtime graph optimization level: disabled, basic, extended, all.
    #[arg(long, default_value = "all")]
    ort_opt: quantbench::runtime::ort::OptLevel,
    /// ONNX Runtime: exact int8 kernels on CPUs without VNNI (session.x64quantprecision=1).
    #[arg(long)]
    x64_quant_precision: bool,
    /// Calibration samples for each quantized config of a preset (default: the profile's).
    #[arg(long)]
    samples: Option<usize>,
    /// Evaluate at most this many samples, spread evenly over the evaluation split (default:
    /// the profile's; standard and thorough: all).
    #[arg(long)]
    eval_limit: Option<usize>,
    /// Benchmark runs per config and runtime (default: the profile's).
    #[arg(long)]
    runs: Option<usize>,
    #[command(flatten)]
    profile: ProfileArgs,
    #[command(flatten)]
    remote: super::args::RemoteArgs,
}

#[derive(clap::Args)]
pub struct SweepArgs {
    #[command(flatten)]
    common: SweepCommon,
    /// The session file to write (RON); quantized models go to SESSION.models/ beside it.
    #[arg(long)]
    out: PathBuf,
}

/// A sweep ready to run: the float model, its data, the experiments and how to measure them.
pub struct Setup {
    pub model: quantbench::onnx::pb::ModelProto,
    pub dataset: quantbench::data::Dataset,
    pub experiments: Vec<quantbench::session::Experiment>,
    pub settings: RunSettings,
}

/// Configs from a `.ron` file: one config, or a list of them.
fn configs_file(path: &std::path::Path) -> Result<Vec<QuantConfig>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    if let Ok(list) = ron::from_str::<Vec<QuantConfig>>(&text) {
        return Ok(list);
    }
    Ok(vec![QuantConfig::load(path)?])
}

pub fn setup(args: &SweepCommon) -> Result<Setup> {
    use quantbench::session::Experiment;
    let model = onnx::read_model(&args.model)?;
    let mut standard = false;
    let mut config_files = args.configs.clone();
    let mut infer = InferArgs {
        read: args.infer.clone(),
        preset: None,
    };
    for p in &args.preset {
        if p == "standard" {
            standard = true;
        } else if p.ends_with(".ron") {
            config_files.push(PathBuf::from(p));
        } else {
            infer.preset = Some(p.parse().map_err(|e| {
                anyhow::anyhow!(
                    "--preset: {e}; or 'standard' for the experiments, or a .ron file of configs"
                )
            })?);
        }
    }
    let dataset = open_data(&args.data, &model, &infer)?;
    if standard && !config_files.is_empty() {
        anyhow::bail!("give --preset standard or configs, not both");
    }
    let profile = args.profile.profile.settings();
    let samples = args.samples.unwrap_or(profile.samples);
    let experiments: Vec<Experiment> = match (standard, config_files.is_empty()) {
        (true, _) => quantbench::session::standard_preset(samples, &quantbench::host::detect()),
        (false, false) => {
            let mut e = vec![Experiment::float()];
            for path in &config_files {
                for config in configs_file(path)? {
                    e.push(Experiment::quantized(config));
                }
            }
            e
        }
        (false, true) => {
            anyhow::bail!(
                "give --preset standard, --preset CONFIGS.ron or --configs A.ron B.ron ..."
            )
        }
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
        None => {
            let (found, note) = quantbench::runner::detect_backends(profile.backends, ort_options);
            if let Some(note) = note {
                eprintln!("note: {note}");
            }
            found
        }
    };
    let mut settings = RunSettings::of(args.profile.profile, backends);
    if let Some(runs) = args.runs {
        settings.bench.runs = runs;
        settings.bench.warmup = settings.bench.warmup.min(runs);
    }
    if args.eval_limit.is_some() {
        settings.eval_limit = args.eval_limit;
    }
    settings.output = args.output.clone();
    settings.remote = args.remote.remote();
    Ok(Setup {
        model,
        dataset,
        experiments,
        settings,
    })
}

pub fn sweep(args: SweepArgs) -> Result<ExitCode> {
    use quantbench::session::{DatasetRef, ModelRef};
    quantbench::fileio::check_output_dir(&args.out)?;
    let Setup {
        model,
        dataset,
        experiments,
        mut settings,
    } = setup(&args.common)?;
    let models_dir = args.out.with_extension("models");
    std::fs::create_dir_all(&models_dir)
        .with_context(|| format!("{}: cannot create", models_dir.display()))?;
    settings.models_dir = Some(models_dir);
    if let Some(note) = dataset.overlap_note() {
        eprintln!(
            "note: {note} (give the data disjoint calibration and evaluation splits in its description)"
        );
    }
    let mut session = Session::new(
        ModelRef::of_file(&args.common.model)?,
        Some(DatasetRef::of(&dataset)),
    );
    for e in experiments {
        session.add(e);
    }
    let file_bytes = std::fs::metadata(&args.common.model)
        .map(|m| m.len())
        .unwrap_or(0);
    let mut workbench = quantbench::runner::Workbench::new(model, file_bytes, dataset)?;
    let order: Vec<(ExperimentId, String)> = session
        .experiments
        .iter()
        .map(|e| (e.id, e.name.clone()))
        .collect();
    let out = args.out.clone();
    // The runner records each result in the session by id and it is saved after each (an
    // interrupted sweep keeps what finished); this thread shows the progress.
    let job = Job::spawn(
        "sweep",
        || {},
        move |cx| {
            quantbench::runner::run_pending(
                &mut session,
                &mut workbench,
                &settings,
                &cx.progress,
                |s, id| {
                    if let Some(e) = s.get(id) {
                        cx.send((id, Box::new(e.result.clone())));
                    }
                    s.save(&out)
                },
            )?;
            Ok(session)
        },
    )?;
    let session = match follow(job, &order)? {
        JobEnd::Done(session) => session,
        JobEnd::Cancelled => {
            anyhow::bail!(
                "cancelled; finished experiments are in {}",
                args.out.display()
            )
        }
        JobEnd::Failed(e) => return Err(e),
    };
    print!("{}", quantbench::report::to_text(&session));
    eprintln!("session written to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// What the sweep's job reports: an experiment finished, with its result.
type Finished = (ExperimentId, Box<quantbench::session::ExperimentResult>);

/// Shows the sweep's progress on a bar and each result as it comes (experiments run in
/// `order`).
fn follow(
    job: Job<Finished, Session>,
    order: &[(ExperimentId, String)],
) -> Result<JobEnd<Session>> {
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:24}] {msg} {pos}/{len} {eta}")
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .progress_chars("#>."),
    );
    let total = order.len();
    let position = |id: ExperimentId| order.iter().position(|(i, _)| *i == id).unwrap_or(0);
    // The experiment running: the one after the last that finished.
    let current = std::cell::Cell::new(0usize);
    let end = job.run_to_end(
        std::time::Duration::from_millis(100),
        |(id, result)| {
            let at = position(id);
            let name = &order[at].1;
            bar.suspend(|| {
                match &result.error {
                    Some(err) => eprintln!("[{}/{total}] {name}: failed: {err}", at + 1),
                    None => eprintln!("[{}/{total}] {name}: done", at + 1),
                }
                for n in &result.notes {
                    eprintln!("    note: {n}");
                }
            });
            current.set(at + 1);
        },
        |progress| {
            let (stage, done, stage_total) = progress.snapshot();
            let at = current.get().min(total.saturating_sub(1));
            bar.set_prefix(format!("[{}/{total}]", at + 1));
            bar.set_message(format!(
                "{}: {stage}",
                order.get(at).map_or("", |n| n.1.as_str())
            ));
            bar.set_length(stage_total);
            bar.set_position(done);
        },
    );
    bar.finish_and_clear();
    Ok(end)
}
