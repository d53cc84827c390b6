//! Experiments and sessions: everything a user sees, as plain serde types saved as RON, so a
//! session file reopens the same tables and plots and says how to reproduce each figure
//! (model hash, dataset, configs, runtimes with their options, machine, tool version). The
//! file format (RON, its versions and migrations) is [`format`]; the named families of
//! experiments are [`preset`].

mod format;
mod preset;
pub mod ranking;

pub use format::SESSION_FORMAT;
pub use preset::standard_preset;

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::bench::BenchReport;
use crate::data::DatasetDesc;
use crate::eval::layers::LayerError;
use crate::eval::EvalReport;
use crate::host::Machine;
use crate::quant::{QuantConfig, QuantizeReport};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelRef {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

impl ModelRef {
    pub fn of_file(path: &Path) -> Result<ModelRef> {
        crate::jobs::checkpoint("hash a model file")?;
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        Ok(ModelRef::of_bytes(path, &bytes))
    }

    /// The reference to a file at `path` holding `bytes` (read once for decoding and hashing).
    pub fn of_bytes(path: &Path, bytes: &[u8]) -> ModelRef {
        ModelRef {
            path: crate::paths::absolute(path).display().to_string(),
            sha256: crate::fileio::sha256_hex(bytes),
            bytes: bytes.len() as u64,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetRef {
    pub path: String,
    pub desc: DatasetDesc,
}

/// The data a result was measured on: where it was, what it held (SHA-256 over the samples'
/// files and the description without paths, [`crate::data::Dataset::content_sha256`]), and
/// how it was read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataStamp {
    pub path: String,
    pub sha256: String,
    pub desc: DatasetDesc,
}

impl DataStamp {
    /// What `dataset` is: its absolute path and description, and the hash of its contents.
    pub fn of(dataset: &crate::data::Dataset) -> Result<DataStamp> {
        Ok(DataStamp {
            path: crate::paths::absolute(&dataset.path).display().to_string(),
            sha256: dataset.content_sha256()?,
            desc: dataset.resolved_desc(),
        })
    }
}

impl DatasetRef {
    /// A session's reference to `dataset` (absolute paths; saved relative to the session).
    pub fn of(dataset: &crate::data::Dataset) -> DatasetRef {
        DatasetRef {
            path: crate::paths::absolute(&dataset.path).display().to_string(),
            desc: dataset.resolved_desc(),
        }
    }

    /// Opens the dataset the session names.
    pub fn open(&self) -> Result<crate::data::Dataset> {
        crate::data::Dataset::from_desc(self.desc.clone(), Path::new(""), Path::new(&self.path))
    }
}

/// One evaluation on one runtime.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendEval {
    pub backend: String,
    pub runtime: String,
    pub report: EvalReport,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ExperimentResult {
    pub quantize: Option<QuantizeReport>,
    /// The quantized model's file, when it was written.
    pub model_path: Option<String>,
    pub size_bytes: u64,
    pub evals: Vec<BackendEval>,
    pub benches: Vec<BenchReport>,
    /// Per-layer SQNR against the float model (tract), in graph order.
    pub layers: Vec<LayerError>,
    /// Why this experiment failed, if it did (other experiments go on).
    pub error: Option<String>,
    /// What could not be measured and why (a runtime that cannot load the file, ...).
    pub notes: Vec<String>,
    /// The data these figures were measured on (None: before this was recorded).
    pub data: Option<DataStamp>,
    /// How they were measured beyond the config and the data (None: before this was recorded).
    pub measured: Option<Measurement>,
    /// Which layers to keep float: each kept float alone, ranked (the Layers view's job).
    pub sensitivity: Option<ranking::SensitivityReport>,
}

/// An experiment's latencies, timed with the other experiments of a run (or of a Re-measure)
/// in the same rounds, and what could not be timed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Timing {
    pub benches: Vec<BenchReport>,
    pub notes: Vec<String>,
}

/// How a result was measured, beyond its config and data: what must match before a result
/// can stand in for a new measurement (a search resumed from a session).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Evaluation samples at most (`None`: the whole evaluation split).
    pub eval_limit: Option<usize>,
    /// The runtimes it was measured on, with their options.
    pub backends: Vec<crate::runtime::Backend>,
    /// The device latency was timed on over SSH (`None`: the machine that ran it).
    pub device: Option<String>,
    /// The output accuracy was scored on (`None`: the first).
    #[serde(default)]
    pub output: Option<String>,
}

impl ExperimentResult {
    pub fn eval(&self, backend: &str) -> Option<&EvalReport> {
        self.evals
            .iter()
            .find(|e| e.backend == backend)
            .map(|e| &e.report)
    }

    pub fn bench(&self, backend: &str) -> Option<&BenchReport> {
        self.benches.iter().find(|b| b.backend == backend)
    }

    /// Whether these figures were measured on other data (another source, preprocessing or
    /// split) than `current`.
    pub fn measured_on_other_data(&self, current: Option<&DatasetDesc>) -> bool {
        match (&self.data, current) {
            (Some(stamp), Some(desc)) => stamp.desc != *desc,
            _ => false,
        }
    }
}

/// An experiment's identity within its session: given once by [`Session::add`], never reused,
/// never shifted by adding or removing another. Everything that acts on an experiment (a run's
/// events, a selection, a command, a search's verdict) names it by this, never by its position.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ExperimentId(pub u64);

impl std::fmt::Display for ExperimentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// 0 until the session assigns one ([`Session::add`]).
    #[serde(default)]
    pub id: ExperimentId,
    pub name: String,
    /// `None`: the float model itself, the baseline.
    pub config: Option<QuantConfig>,
    #[serde(default)]
    pub result: ExperimentResult,
    /// The experiment this one varies (a layer toggled between int8 and float), by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ExperimentId>,
}

impl Experiment {
    pub fn float() -> Self {
        Experiment {
            id: ExperimentId(0),
            name: "float".into(),
            config: None,
            result: ExperimentResult::default(),
            parent: None,
        }
    }

    pub fn quantized(config: QuantConfig) -> Self {
        Experiment {
            id: ExperimentId(0),
            name: config.label(),
            config: Some(config),
            result: ExperimentResult::default(),
            parent: None,
        }
    }

    /// Finished with figures: measured, not failed.
    pub fn has_figures(&self) -> bool {
        self.result.error.is_none() && !self.result.evals.is_empty()
    }

    pub fn is_done(&self) -> bool {
        self.result.error.is_some() || !self.result.evals.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// [`SESSION_FORMAT`] of the build that wrote it (0: before formats were numbered).
    #[serde(default)]
    pub format: u32,
    pub tool_version: String,
    pub model: ModelRef,
    pub dataset: Option<DatasetRef>,
    pub machine: Machine,
    pub experiments: Vec<Experiment>,
    /// The last id given out (ids of removed experiments are not given out again).
    #[serde(default)]
    pub last_id: u64,
}

impl Session {
    pub fn new(model: ModelRef, dataset: Option<DatasetRef>) -> Self {
        Session {
            format: SESSION_FORMAT,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            model,
            dataset,
            machine: crate::host::detect(),
            experiments: vec![],
            last_id: 0,
        }
    }

    /// Adds an experiment under a new id (one more than any the session has held) and returns
    /// the id.
    pub fn add(&mut self, mut experiment: Experiment) -> ExperimentId {
        let id = ExperimentId(self.highest_id() + 1);
        self.last_id = id.0;
        experiment.id = id;
        self.experiments.push(experiment);
        id
    }

    /// Where the experiment with `id` is in the list now.
    pub fn position(&self, id: ExperimentId) -> Option<usize> {
        self.experiments.iter().position(|e| e.id == id)
    }

    pub fn get(&self, id: ExperimentId) -> Option<&Experiment> {
        self.experiments.iter().find(|e| e.id == id)
    }

    pub fn get_mut(&mut self, id: ExperimentId) -> Option<&mut Experiment> {
        self.experiments.iter_mut().find(|e| e.id == id)
    }

    /// Removes the experiment with `id` (its id is not given out again).
    pub fn remove(&mut self, id: ExperimentId) -> Option<Experiment> {
        let at = self.position(id)?;
        Some(self.experiments.remove(at))
    }

    /// Stores `result` as the result of experiment `id`; false when the session no longer has
    /// it (removed while it ran): the result is then dropped, never put on another row.
    pub fn record(&mut self, id: ExperimentId, result: ExperimentResult) -> bool {
        match self.get_mut(id) {
            Some(e) => {
                e.result = result;
                true
            }
            None => false,
        }
    }

    /// Stores experiment `id`'s latencies (each runtime's replacing the one it had) and notes;
    /// false when the session no longer has it.
    pub fn record_timing(&mut self, id: ExperimentId, timing: Timing) -> bool {
        let Some(e) = self.get_mut(id) else {
            return false;
        };
        for b in timing.benches {
            e.result.benches.retain(|old| old.backend != b.backend);
            e.result.benches.push(b);
        }
        for note in timing.notes {
            if !e.result.notes.contains(&note) {
                e.result.notes.push(note);
            }
        }
        true
    }

    /// The float baseline's experiment, if the session has one.
    pub fn float(&self) -> Option<&Experiment> {
        self.experiments.iter().find(|e| e.config.is_none())
    }

    /// Gives experiments without an id (sessions written before ids existed) fresh ones.
    fn assign_missing_ids(&mut self) {
        let mut next = self.highest_id();
        for e in self.experiments.iter_mut().filter(|e| e.id.0 == 0) {
            next += 1;
            e.id = ExperimentId(next);
        }
        self.last_id = next;
    }

    fn highest_id(&self) -> u64 {
        self.experiments
            .iter()
            .map(|e| e.id.0)
            .max()
            .unwrap_or(0)
            .max(self.last_id)
    }

    /// The runtimes any experiment has results on, sorted.
    pub fn backends(&self) -> Vec<String> {
        let mut b: Vec<String> = self
            .experiments
            .iter()
            .flat_map(|e| e.result.evals.iter().map(|v| v.backend.clone()))
            .collect();
        b.sort();
        b.dedup();
        b
    }

    /// The model file (absolute once loaded).
    pub fn model_file(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(&self.model.path)
    }

    /// A message when `now` (the model file at `path`) is not the file the session measured
    /// (another SHA-256).
    pub fn model_changed(&self, now: &ModelRef, path: &Path) -> Option<String> {
        use crate::fileio::short_hash;
        (now.sha256 != self.model.sha256).then(|| {
            format!(
                "{}: the model changed since this session measured it (SHA-256 {}…, the session has {}…): its results describe the earlier file",
                path.display(),
                short_hash(&now.sha256),
                short_hash(&self.model.sha256)
            )
        })
    }
}
