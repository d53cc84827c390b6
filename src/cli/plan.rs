//! `quantbench plan`, `run-plan` and `merge`: a sweep written as a folder any scheduler can
//! run one index at a time (Slurm array jobs, Kubernetes Indexed Jobs, a shell loop), and the
//! finished results gathered into a session.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use quantbench::jobs::{Job, JobEnd, Progress};
use quantbench::plan::{self, EmitSettings, RunOutcome};
use quantbench::session::Session;

use super::sweep::{setup, Setup, SweepCommon};

#[derive(clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    common: SweepCommon,
    /// The plan folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Name the model by its absolute path and hash instead of copying it into the plan.
    #[arg(long)]
    link_model: bool,
    /// Also write job files: slurm (PLAN/slurm.sbatch), kubernetes (PLAN/kubernetes-job.yaml).
    #[arg(long, value_delimiter = ',')]
    emit: Vec<String>,
    /// The quantbench binary the Slurm tasks run (default: this one).
    #[arg(long)]
    binary: Option<String>,
    /// Slurm partition (default: the cluster's default).
    #[arg(long)]
    partition: Option<String>,
    /// CPUs per task (Slurm) or per pod (Kubernetes); also each run's worker threads.
    #[arg(long, default_value_t = 1)]
    cpus_per_task: usize,
    /// Slurm time limit per task.
    #[arg(long, default_value = "01:00:00")]
    time_limit: String,
    /// Kubernetes: the container image (with quantbench on its PATH).
    #[arg(long, default_value = "quantbench:latest")]
    image: String,
    /// Kubernetes: the PersistentVolumeClaim holding the plan folder (mounted at /plan).
    #[arg(long, default_value = "quantbench-plan")]
    plan_claim: String,
    /// Kubernetes: the PersistentVolumeClaim holding the data, mounted at the data's path.
    #[arg(long)]
    data_claim: Option<String>,
    /// Kubernetes: pods at once.
    #[arg(long, default_value_t = 4)]
    parallelism: usize,
    /// Keep each experiment's quantized model in PLAN/models/.
    #[arg(long)]
    keep_models: bool,
}

pub fn plan(args: PlanArgs) -> Result<ExitCode> {
    let Setup {
        dataset,
        experiments,
        mut settings,
        ..
    } = setup(&args.common)?;
    settings.bench.threads = args.cpus_per_task.max(1);
    if args.keep_models {
        settings.models_dir = Some(args.out.join("models"));
    }
    // Ids as a session gives them, so that the merged session is the sweep's.
    let mut numbered = Session::new(Default::default(), None);
    for e in experiments {
        numbered.add(e);
    }
    let written = plan::write(
        &args.out,
        &args.common.model,
        &dataset,
        numbered.experiments,
        &settings,
        !args.link_model,
    )?;
    let defaults = EmitSettings::default();
    let emitted = plan::emit(
        &args.out,
        &written,
        &args.emit,
        &EmitSettings {
            binary: args.binary.clone().unwrap_or(defaults.binary),
            partition: args.partition.clone(),
            cpus_per_task: args.cpus_per_task,
            time_limit: args.time_limit.clone(),
            image: args.image.clone(),
            plan_claim: args.plan_claim.clone(),
            data_claim: args.data_claim.clone(),
            parallelism: args.parallelism,
        },
    )?;
    let n = written.experiments.len();
    println!("plan of {n} experiments written to {}", args.out.display());
    for (i, e) in written.experiments.iter().enumerate() {
        println!("  {i:>3}  {}", e.name);
    }
    let dir = args.out.display();
    println!("run one:   quantbench run-plan {dir} --index I   (0..{n})");
    for path in &emitted {
        let how = match path.extension().and_then(|e| e.to_str()) {
            Some("sbatch") => format!("sbatch {}", path.display()),
            _ => format!("kubectl apply -f {}", path.display()),
        };
        println!("submit:    {how}");
    }
    println!("gather:    quantbench merge {dir} --out SESSION.ron");
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct RunPlanArgs {
    plan: PathBuf,
    /// The experiment to run; default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX.
    #[arg(long)]
    index: Option<usize>,
    /// Run it again even if its result is there.
    #[arg(long)]
    force: bool,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run_plan(args: RunPlanArgs) -> Result<ExitCode> {
    if let Some(n) = args.threads {
        // The first use of rayon's pool: it can only be sized now.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
    let index = match args.index {
        Some(i) => i,
        None => plan::scheduler_index()?,
    };
    let dir = args.plan.clone();
    let force = args.force;
    let job = Job::spawn(
        "run-plan",
        || {},
        move |cx: &quantbench::jobs::JobContext<(), _>| {
            plan::run_index(&dir, index, force, &cx.progress)
        },
    )?;
    match job.run_to_end(
        std::time::Duration::from_millis(500),
        |()| {},
        |_: &Progress| {},
    ) {
        JobEnd::Done(RunOutcome::Ran(r)) => {
            let e = &r.experiment;
            match &e.result.error {
                Some(err) => eprintln!("[{index}] {}: failed: {err}", e.name),
                None => eprintln!(
                    "[{index}] {}: done in {:.1} s on {}",
                    e.name, r.seconds, r.host
                ),
            }
            println!("{}", plan::result_path(&args.plan, index).display());
            // A failed experiment is a result too (recorded, merged, shown): the task succeeded.
            Ok(ExitCode::SUCCESS)
        }
        JobEnd::Done(RunOutcome::AlreadyDone(path)) => {
            eprintln!("[{index}] already done: {}", path.display());
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        JobEnd::Cancelled => anyhow::bail!("cancelled"),
        JobEnd::Failed(e) => Err(e),
    }
}

#[derive(clap::Args)]
pub struct MergeArgs {
    plan: PathBuf,
    /// The session to write (RON), which the workbench opens.
    #[arg(long)]
    out: PathBuf,
}

pub fn merge(args: MergeArgs) -> Result<ExitCode> {
    quantbench::fileio::check_output_dir(&args.out)?;
    let merged = plan::merge(&args.plan)?;
    for problem in &merged.unreadable {
        eprintln!("warning: left out: {problem}");
    }
    merged
        .session
        .save(&args.out)
        .with_context(|| format!("{}: cannot write the session", args.out.display()))?;
    let total = merged.session.experiments.len();
    print!("{}", quantbench::report::to_text(&merged.session));
    eprintln!(
        "{} of {total} experiments finished{}; session written to {}",
        merged.finished,
        if merged.pending.is_empty() {
            String::new()
        } else {
            format!(" (pending: {})", merged.pending_list())
        },
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
