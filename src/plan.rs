//! Sweeps as plans that any scheduler can run. A plan is a folder:
//!
//! ```text
//! PLAN/plan.ron          the model (a copy beside it, or a path) and its hash, the data, one
//!                        experiment per index, the settings
//! PLAN/model.onnx        the float model (unless the plan points at it)
//! PLAN/results/I.ron     experiment I's result, written atomically by `run-plan --index I`
//! PLAN/models/           the quantized models the experiments wrote
//! PLAN/slurm.sbatch      an array job of every index (emitted on request)
//! PLAN/kubernetes-job.yaml  an Indexed Job of every index (emitted on request)
//! ```
//!
//! Any index runs on any machine that sees the folder and the data, in any order, any number of
//! times: a result is complete or absent, and [`merge`] gathers whatever has finished into a
//! session the workbench opens, each benchmark with the machine it was measured on.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::bench::BenchSettings;
use crate::fileio::sha256_hex;
use crate::host::Machine;
use crate::jobs::Progress;
use crate::onnx;
use crate::runner::{RunSettings, Workbench};
use crate::runtime::Backend;
use crate::session::{DatasetRef, Experiment, ModelRef, Session};

pub const PLAN_FILE: &str = "plan.ron";
pub const MODEL_FILE: &str = "model.onnx";
pub const SLURM_FILE: &str = "slurm.sbatch";
pub const KUBERNETES_FILE: &str = "kubernetes-job.yaml";
const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub tool_version: String,
    /// The float model: `path` relative to the plan folder (the copy) or absolute.
    pub model: ModelRef,
    pub dataset: DatasetRef,
    /// One per index, without results.
    pub experiments: Vec<Experiment>,
    pub settings: PlanSettings,
    /// Where the plan was written.
    pub machine: Machine,
}

/// What [`RunSettings`] holds, in a form that means the same on every machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanSettings {
    pub backends: Vec<Backend>,
    pub bench: BenchSettings,
    pub eval_limit: Option<usize>,
    pub layer_samples: usize,
    pub output: Option<String>,
    /// Keep each experiment's quantized model in `PLAN/models/`.
    pub keep_models: bool,
    /// Benchmarks on this device over SSH (every task that runs at once measures on it).
    #[serde(default)]
    pub remote: Option<crate::bench::remote::Remote>,
}

impl PlanSettings {
    pub fn of(settings: &RunSettings) -> PlanSettings {
        PlanSettings {
            backends: settings.backends.clone(),
            bench: settings.bench.clone(),
            eval_limit: settings.eval_limit,
            layer_samples: settings.layer_samples,
            output: settings.output.clone(),
            keep_models: settings.models_dir.is_some(),
            remote: settings.remote.clone(),
        }
    }

    fn sweep(&self, plan_dir: &Path) -> RunSettings {
        RunSettings {
            backends: self.backends.clone(),
            bench: self.bench.clone(),
            eval_limit: self.eval_limit,
            layer_samples: self.layer_samples,
            models_dir: self.keep_models.then(|| plan_dir.join("models")),
            output: self.output.clone(),
            remote: self.remote.clone(),
        }
    }
}

/// One finished index, as `run-plan` writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanResult {
    pub index: usize,
    pub experiment: Experiment,
    /// Where it ran (the benchmarks carry it too).
    pub machine: Machine,
    pub host: String,
    /// The scheduler's job id, when it ran under one.
    pub job: Option<String>,
    pub seconds: f64,
}

/// Writes a plan of `experiments` for `model_path` (its bytes read once) into `dir`. With
/// `copy_model`, the model is copied into the plan, which is then self-contained but for the
/// data; otherwise the plan names the model's absolute path and its hash, checked before each
/// run. Refuses a folder that holds another plan's results.
pub fn write(
    dir: &Path,
    model_path: &Path,
    dataset: &crate::data::Dataset,
    experiments: Vec<Experiment>,
    settings: &RunSettings,
    copy_model: bool,
) -> Result<Plan> {
    if experiments.is_empty() {
        bail!("a plan needs at least one experiment");
    }
    let results = dir.join("results");
    if has_results(&results)? {
        bail!(
            "{}: holds the results of an earlier plan; merge them and choose another folder, or remove it",
            dir.display()
        );
    }
    std::fs::create_dir_all(&results)
        .with_context(|| format!("{}: cannot create", results.display()))?;
    let bytes = std::fs::read(model_path)
        .with_context(|| format!("{}: cannot read", model_path.display()))?;
    let mut model = ModelRef::of_bytes(model_path, &bytes);
    if copy_model {
        crate::fileio::write_atomic(&dir.join(MODEL_FILE), &bytes)?;
        model.path = MODEL_FILE.into();
    }
    let mut experiments = experiments;
    for (i, e) in experiments.iter_mut().enumerate() {
        e.result = Default::default();
        if e.id.0 == 0 {
            e.id = crate::session::ExperimentId(i as u64 + 1);
        }
    }
    let plan = Plan {
        format: FORMAT,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        model,
        dataset: DatasetRef::of(dataset),
        experiments,
        settings: PlanSettings::of(settings),
        machine: crate::host::detect(),
    };
    let text = ron::ser::to_string_pretty(&plan, ron::ser::PrettyConfig::default())?;
    crate::fileio::write_atomic(&dir.join(PLAN_FILE), text.as_bytes())?;
    Ok(plan)
}

fn has_results(results: &Path) -> Result<bool> {
    match std::fs::read_dir(results) {
        Ok(mut entries) => {
            Ok(entries.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "ron"))))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(anyhow!("{}: cannot read: {e}", results.display())),
    }
}

impl Plan {
    pub fn load(dir: &Path) -> Result<Plan> {
        let path = dir.join(PLAN_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: cannot read (is {} a plan folder, written by quantbench plan?)",
                path.display(),
                dir.display()
            )
        })?;
        let plan: Plan =
            ron::from_str(&text).map_err(|e| anyhow!("{}: invalid plan: {e}", path.display()))?;
        if plan.format > FORMAT {
            bail!(
                "{}: plan format {} is newer than this quantbench's ({FORMAT}); update quantbench",
                path.display(),
                plan.format
            );
        }
        Ok(plan)
    }

    /// The model file: the copy in `dir`, or the path the plan names.
    pub fn model_path(&self, dir: &Path) -> PathBuf {
        let p = Path::new(&self.model.path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    }
}

pub fn result_path(dir: &Path, index: usize) -> PathBuf {
    dir.join("results").join(format!("{index}.ron"))
}

/// The index a scheduler gave this task: Slurm's array task id, or the completion index of a
/// Kubernetes Indexed Job.
pub fn scheduler_index() -> Result<usize> {
    for var in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
        if let Ok(v) = std::env::var(var) {
            return v
                .trim()
                .parse()
                .map_err(|_| anyhow!("{var}={v}: not an index"));
        }
    }
    bail!("no --index, and neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set")
}

fn scheduler_job() -> Option<String> {
    match (
        std::env::var("SLURM_ARRAY_JOB_ID"),
        std::env::var("SLURM_ARRAY_TASK_ID"),
    ) {
        (Ok(job), Ok(task)) => Some(format!("slurm {job}_{task}")),
        _ => std::env::var("HOSTNAME")
            .ok()
            .filter(|_| std::env::var("JOB_COMPLETION_INDEX").is_ok())
            .map(|pod| format!("kubernetes pod {pod}")),
    }
}

pub enum RunOutcome {
    Ran(Box<PlanResult>),
    /// A complete result was there already (running an index twice is harmless).
    AlreadyDone(PathBuf),
}

/// Runs experiment `index` of the plan in `dir` and writes its result atomically.
pub fn run_index(dir: &Path, index: usize, force: bool, progress: &Progress) -> Result<RunOutcome> {
    let started = std::time::Instant::now();
    let plan = Plan::load(dir)?;
    let Some(experiment) = plan.experiments.get(index) else {
        bail!(
            "{}: index {index} is out of range: the plan has {} experiments (0..{})",
            dir.display(),
            plan.experiments.len(),
            plan.experiments.len()
        );
    };
    let out = result_path(dir, index);
    if !force && read_result(&out).is_ok_and(|r| r.experiment.is_done()) {
        return Ok(RunOutcome::AlreadyDone(out));
    }
    let model_path = plan.model_path(dir);
    let bytes = std::fs::read(&model_path)
        .with_context(|| format!("{}: cannot read the plan's model", model_path.display()))?;
    if sha256_hex(&bytes) != plan.model.sha256 {
        bail!(
            "{}: is not the model the plan was written for (its SHA-256 differs from {})",
            model_path.display(),
            plan.model.sha256
        );
    }
    let model = onnx::decode_model(&bytes).with_context(|| model_path.display().to_string())?;
    let dataset = plan.dataset.open()?;
    let mut workbench = Workbench::new(model, bytes.len() as u64, dataset)?;
    let settings = plan.settings.sweep(dir);
    let mut experiment = experiment.clone();
    experiment.result = workbench.run_single(experiment.clone(), &settings, progress)?;
    let result = PlanResult {
        index,
        experiment,
        machine: crate::host::detect(),
        host: crate::host::host_name(),
        job: scheduler_job(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let text = ron::ser::to_string_pretty(&result, ron::ser::PrettyConfig::default())?;
    crate::fileio::write_atomic(&out, text.as_bytes())?;
    Ok(RunOutcome::Ran(Box::new(result)))
}

fn read_result(path: &Path) -> Result<PlanResult> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    ron::from_str(&text).map_err(|e| anyhow!("{}: invalid result: {e}", path.display()))
}

/// What [`merge`] found.
pub struct Merged {
    pub session: Session,
    pub finished: usize,
    pub pending: Vec<usize>,
    /// Result files that could not be read (named, with the reason): left out, not fatal.
    pub unreadable: Vec<String>,
}

impl Merged {
    /// The unfinished indices, as "0, 3, 5".
    pub fn pending_list(&self) -> String {
        self.pending
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Gathers the finished results of the plan in `dir` into a session: experiments in index
/// order, the unfinished ones pending (the workbench can run them).
pub fn merge(dir: &Path) -> Result<Merged> {
    let plan = Plan::load(dir)?;
    let model_path = crate::paths::absolute(&plan.model_path(dir));
    let model = ModelRef {
        path: model_path.display().to_string(),
        ..plan.model.clone()
    };
    let mut session = Session::new(model, Some(plan.dataset.clone()));
    let (mut finished, mut pending, mut unreadable) = (0, vec![], vec![]);
    let mut machines: Vec<Machine> = vec![];
    for (index, planned) in plan.experiments.iter().enumerate() {
        let path = result_path(dir, index);
        let experiment = match path.exists().then(|| read_result(&path)) {
            Some(Ok(r)) if r.index == index && r.experiment.id == planned.id => {
                finished += 1;
                if !machines.contains(&r.machine) {
                    machines.push(r.machine.clone());
                }
                r.experiment
            }
            Some(Ok(r)) => {
                unreadable.push(format!(
                    "{}: holds index {} (experiment {}), not index {index}",
                    path.display(),
                    r.index,
                    r.experiment.id
                ));
                pending.push(index);
                planned.clone()
            }
            Some(Err(e)) => {
                unreadable.push(format!("{e:#}"));
                pending.push(index);
                planned.clone()
            }
            None => {
                pending.push(index);
                planned.clone()
            }
        };
        session.last_id = session.last_id.max(experiment.id.0);
        session.experiments.push(experiment);
    }
    // One machine: the session's. Several: each benchmark names its own; the session keeps
    // the first result's.
    if let Some(m) = machines.first() {
        session.machine = m.clone();
    }
    Ok(Merged {
        session,
        finished,
        pending,
        unreadable,
    })
}

/// How the emitted job files run `run-plan`.
#[derive(Clone, Debug)]
pub struct EmitSettings {
    /// The quantbench binary on the cluster's nodes (Slurm) .
    pub binary: String,
    /// Slurm: partition (none: the default), CPUs per task, time limit.
    pub partition: Option<String>,
    pub cpus_per_task: usize,
    pub time_limit: String,
    /// Kubernetes: container image, the claim holding the plan, the claim holding the data
    /// (mounted at the data's path), how many pods at once.
    pub image: String,
    pub plan_claim: String,
    pub data_claim: Option<String>,
    pub parallelism: usize,
}

impl Default for EmitSettings {
    /// This binary, one CPU per task for an hour, the image `quantbench:latest` with the plan
    /// on the claim `quantbench-plan`, four pods at once.
    fn default() -> Self {
        EmitSettings {
            binary: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "quantbench".into()),
            partition: None,
            cpus_per_task: 1,
            time_limit: "01:00:00".into(),
            image: "quantbench:latest".into(),
            plan_claim: "quantbench-plan".into(),
            data_claim: None,
            parallelism: 4,
        }
    }
}

/// A Slurm array job of every index of `plan` (in `dir`, absolute): one task per experiment,
/// each `quantbench run-plan DIR` (the task reads its index from SLURM_ARRAY_TASK_ID).
pub fn slurm_script(plan: &Plan, dir: &Path, emit: &EmitSettings) -> String {
    let dir = crate::paths::absolute(dir);
    let q = |s: &str| shell_quote(s);
    let mut s = String::from("#!/bin/bash\n");
    s += &format!(
        "# quantbench plan: {} experiments of {}\n# submit: sbatch {}\n",
        plan.experiments.len(),
        Path::new(&plan.model.path)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        q(&dir.join(SLURM_FILE).display().to_string())
    );
    s += "#SBATCH --job-name=quantbench-plan\n";
    s += &format!("#SBATCH --array=0-{}\n", plan.experiments.len() - 1);
    s += &format!("#SBATCH --cpus-per-task={}\n", emit.cpus_per_task.max(1));
    s += "#SBATCH --ntasks=1\n";
    s += &format!("#SBATCH --time={}\n", emit.time_limit);
    if let Some(p) = &emit.partition {
        s += &format!("#SBATCH --partition={p}\n");
    }
    s += &format!(
        "#SBATCH --output={}\n",
        dir.join("logs").join("%A_%a.out").display()
    );
    s += "set -euo pipefail\n";
    s += &format!(
        "exec {} run-plan {} --threads \"${{SLURM_CPUS_PER_TASK:-1}}\"\n",
        q(&emit.binary),
        q(&dir.display().to_string())
    );
    s
}

/// The folder the plan's data lives in (what a Kubernetes pod must mount at the same path).
fn data_root(plan: &Plan) -> PathBuf {
    let p = Path::new(&plan.dataset.path);
    p.parent().unwrap_or(Path::new("/")).to_path_buf()
}

/// A Kubernetes Indexed Job of every index of `plan`: the plan folder mounted at `/plan` from
/// `plan_claim`, the data (when a claim is given) at its own path, one pod per index.
pub fn kubernetes_job(plan: &Plan, emit: &EmitSettings) -> serde_json::Value {
    use serde_json::json;
    let mut mounts = vec![json!({"name": "plan", "mountPath": "/plan"})];
    let mut volumes = vec![json!({
        "name": "plan",
        "persistentVolumeClaim": {"claimName": emit.plan_claim},
    })];
    if let Some(claim) = &emit.data_claim {
        mounts.push(json!({
            "name": "data",
            "mountPath": data_root(plan).display().to_string(),
            "readOnly": true,
        }));
        volumes.push(json!({"name": "data", "persistentVolumeClaim": {"claimName": claim}}));
    }
    let cpus = emit.cpus_per_task.max(1);
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "quantbench-plan", "labels": {"app": "quantbench"}},
        "spec": {
            "completionMode": "Indexed",
            "completions": plan.experiments.len(),
            "parallelism": emit.parallelism.clamp(1, plan.experiments.len()),
            "backoffLimit": plan.experiments.len() * 2,
            "template": {
                "metadata": {"labels": {"app": "quantbench"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "quantbench",
                        "image": emit.image,
                        // The pod's index arrives as JOB_COMPLETION_INDEX, which run-plan reads.
                        "command": ["quantbench", "run-plan", "/plan", "--threads", cpus.to_string()],
                        "resources": {
                            "requests": {"cpu": cpus.to_string()},
                            "limits": {"cpu": cpus.to_string()},
                        },
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    })
}

/// `value` as YAML (block style; strings double-quoted, as JSON writes them, which YAML reads
/// as the same strings).
pub fn to_yaml(value: &serde_json::Value) -> String {
    fn scalar(v: &serde_json::Value) -> String {
        v.to_string()
    }
    fn emit(v: &serde_json::Value, indent: usize, out: &mut String) {
        use serde_json::Value;
        let pad = " ".repeat(indent);
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match v {
                        Value::Object(m) if !m.is_empty() => {
                            out.push_str(&format!("{pad}{k}:\n"));
                            emit(v, indent + 2, out);
                        }
                        Value::Array(a) if !a.is_empty() => {
                            out.push_str(&format!("{pad}{k}:\n"));
                            emit(v, indent, out);
                        }
                        _ => out.push_str(&format!("{pad}{k}: {}\n", scalar(v))),
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(m) if !m.is_empty() => {
                            let mut inner = String::new();
                            emit(item, indent + 2, &mut inner);
                            // The first key goes on the dash's line.
                            out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                        }
                        _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                    }
                }
            }
            _ => out.push_str(&format!("{pad}{}\n", scalar(v))),
        }
    }
    let mut out = String::new();
    emit(value, 0, &mut out);
    out
}

/// `s` quoted for a POSIX shell (unquoted when it is plainly safe).
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Writes the job files `kinds` name ("slurm", "kubernetes") into the plan folder; returns
/// their paths.
pub fn emit(
    dir: &Path,
    plan: &Plan,
    kinds: &[String],
    settings: &EmitSettings,
) -> Result<Vec<PathBuf>> {
    let mut written = vec![];
    for kind in kinds {
        let (path, text) = match kind.as_str() {
            "slurm" => (dir.join(SLURM_FILE), slurm_script(plan, dir, settings)),
            "kubernetes" | "k8s" => (
                dir.join(KUBERNETES_FILE),
                to_yaml(&kubernetes_job(plan, settings)),
            ),
            other => bail!("--emit {other}: expected slurm or kubernetes"),
        };
        crate::fileio::write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    if kinds.iter().any(|k| k == "slurm") {
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)
            .with_context(|| format!("{}: cannot create", logs.display()))?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_of_a_manifest_nests_maps_and_lists_of_maps() {
        let v = serde_json::json!({
            "a": {"b": 1, "c": ["x", "y"]},
            "items": [{"name": "n", "args": ["1"]}, {"name": "m"}],
            "empty": [],
        });
        assert_eq!(
            to_yaml(&v),
            // Keys in order (serde_json's maps are sorted).
            "a:\n  b: 1\n  c:\n  - \"x\"\n  - \"y\"\nempty: []\nitems:\n- args:\n  - \"1\"\n  name: \"n\"\n- name: \"m\"\n"
        );
    }

    #[test]
    fn shell_quoting_keeps_plain_paths_and_quotes_the_rest() {
        assert_eq!(shell_quote("/a/b-c.d"), "/a/b-c.d");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
