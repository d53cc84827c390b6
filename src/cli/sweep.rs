//! `quantbench sweep`: a family of configurations quantized, evaluated and benchmarked into
//! one session file, on the engine's job service with a progress bar.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use quantbench::jobs::{Job, JobEnd};
use quantbench::onnx;
use quantbench::quant::QuantConfig;
use quantbench::runtime::Backend;

use super::args::{open_data, ort_options, InferArgs, ReadArgs};

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
    /// Evaluate at most this many samples (spread evenly over the evaluation split).
    #[arg(long)]
    eval_limit: Option<usize>,
    /// Benchmark runs per config and runtime.
    #[arg(long, default_value_t = 100)]
    runs: usize,
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
    pub settings: quantbench::runner::RunSettings,
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
    let experiments: Vec<Experiment> = match (standard, config_files.is_empty()) {
        (true, _) => quantbench::session::standard_preset(args.samples),
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
        None => match quantbench::runtime::ort::version() {
            Ok(_) => vec![Backend::Tract, Backend::Ort(ort_options)],
            Err(e) => {
                eprintln!("note: measuring on tract only: {e:#}");
                vec![Backend::Tract]
            }
        },
    };
    let settings = quantbench::runner::RunSettings {
        backends,
        bench: quantbench::bench::BenchSettings {
            runs: args.runs,
            warmup: 10.min(args.runs),
            threads: 1,
        },
        eval_limit: args.eval_limit,
        layer_samples: 16,
        models_dir: None,
        output: args.output.clone(),
        remote: args.remote.remote(),
    };
    Ok(Setup {
        model,
        dataset,
        experiments,
        settings,
    })
}

pub fn sweep(args: SweepArgs) -> Result<ExitCode> {
    use quantbench::session::{DatasetRef, ModelRef, Session};
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
    let out = args.out.clone();
    let total = session.experiments.len();
    let names: Vec<String> = session.experiments.iter().map(|e| e.name.clone()).collect();
    let mut job_session = session.clone();
    let job = Job::spawn(
        "sweep",
        || {},
        move |cx| {
            cx.send(SweepEvent::Started(0));
            quantbench::runner::run_pending(
                &mut job_session,
                &mut workbench,
                &settings,
                &cx.progress,
                |s, i| {
                    cx.send(SweepEvent::Finished(i, Box::new(s.experiments[i].clone())));
                    Ok(())
                },
            )
        },
    )?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:24}] {msg} {pos}/{len} {eta}")
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .progress_chars("#>."),
    );
    let mut saved = Ok(());
    let current = std::cell::Cell::new(0);
    let end = job.run_to_end(
        std::time::Duration::from_millis(100),
        |event| match event {
            SweepEvent::Started(i) => current.set(i),
            SweepEvent::Finished(i, experiment) => {
                let e = &experiment;
                bar.suspend(|| {
                    match &e.result.error {
                        Some(err) => eprintln!("[{}/{total}] {}: failed: {err}", i + 1, e.name),
                        None => eprintln!("[{}/{total}] {}: done", i + 1, e.name),
                    }
                    for n in &e.result.notes {
                        eprintln!("    note: {n}");
                    }
                });
                session.experiments[i] = *experiment;
                current.set(i + 1);
                // Saved after each experiment: an interrupted sweep keeps what finished.
                if saved.is_ok() {
                    saved = session.save(&out);
                }
            }
        },
        |progress| {
            let (stage, done, stage_total) = progress.snapshot();
            let name = names.get(current.get()).map(String::as_str).unwrap_or("");
            bar.set_prefix(format!("[{}/{total}]", (current.get() + 1).min(total)));
            bar.set_message(format!("{name}: {stage}"));
            bar.set_length(stage_total);
            bar.set_position(done);
        },
    );
    bar.finish_and_clear();
    saved?;
    match end {
        JobEnd::Done(()) => {}
        JobEnd::Cancelled => {
            anyhow::bail!("cancelled; finished experiments are in {}", out.display())
        }
        JobEnd::Failed(e) => return Err(e),
    }
    print!("{}", quantbench::report::to_text(&session));
    eprintln!("session written to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// What the sweep's job reports to the terminal.
enum SweepEvent {
    /// Experiment `index` (of the session's list) is next.
    Started(usize),
    Finished(usize, Box<quantbench::session::Experiment>),
}
