//! Experiments and sessions: everything a user sees, as plain serde types saved as RON, so a
//! session file reopens the same tables and plots and says how to reproduce each figure
//! (model hash, dataset, configs, runtimes with their options, machine, tool version).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use crate::bench::BenchReport;
use crate::data::DatasetDesc;
use crate::eval::layers::LayerError;
use crate::eval::EvalReport;
use crate::host::Machine;
use crate::quant::{Calibration, Int4Storage, Mode, QuantConfig, QuantizeReport};

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
            sha256: sha256_hex(bytes),
            bytes: bytes.len() as u64,
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Stable within its session (never reused, never shifted by removing another row): what
    /// results and jobs refer to. 0 until the session assigns one ([`Session::add`]).
    #[serde(default)]
    pub id: u64,
    pub name: String,
    /// `None`: the float model itself, the baseline.
    pub config: Option<QuantConfig>,
    #[serde(default)]
    pub result: ExperimentResult,
    /// The experiment this one varies (a layer toggled between int8 and float), by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
}

impl Experiment {
    pub fn float() -> Self {
        Experiment {
            id: 0,
            name: "float".into(),
            config: None,
            result: ExperimentResult::default(),
            parent: None,
        }
    }

    pub fn quantized(config: QuantConfig) -> Self {
        Experiment {
            id: 0,
            name: config.label(),
            config: Some(config),
            result: ExperimentResult::default(),
            parent: None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.result.error.is_some() || !self.result.evals.is_empty()
    }
}

/// The session file format this build writes: 1 added experiment ids; 2 records paths relative
/// to the session file (where they lie near it, see [`crate::paths::portable`]). Older files
/// load (missing fields take defaults, ids are assigned, paths resolved as those versions
/// meant them); newer ones are refused by name.
pub const SESSION_FORMAT: u32 = 2;

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
    pub fn add(&mut self, mut experiment: Experiment) -> u64 {
        let id = self.highest_id() + 1;
        self.last_id = id;
        experiment.id = id;
        self.experiments.push(experiment);
        id
    }

    /// Where the experiment with `id` is in the list now.
    pub fn position(&self, id: u64) -> Option<usize> {
        self.experiments.iter().position(|e| e.id == id)
    }

    /// Gives experiments without an id (sessions written before ids existed) fresh ones.
    fn assign_missing_ids(&mut self) {
        let mut next = self.highest_id();
        for e in self.experiments.iter_mut().filter(|e| e.id == 0) {
            next += 1;
            e.id = next;
        }
        self.last_id = next;
    }

    fn highest_id(&self) -> u64 {
        self.experiments
            .iter()
            .map(|e| e.id)
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

    pub fn to_ron(&self) -> Result<String> {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default().struct_names(true))
            .map_err(|e| anyhow!("cannot serialize the session: {e}"))
    }

    /// Parses a session text (paths as written; [`Session::load`] resolves them).
    pub fn from_ron(text: &str) -> Result<Session> {
        Ok(Session::parse(text)?.0)
    }

    /// The session and the format it was written in.
    fn parse(text: &str) -> Result<(Session, u32)> {
        // ron's error starts with line:column.
        let mut session: Session = ron::from_str(text).map_err(|e| anyhow!("at {e}"))?;
        let written_in = session.format;
        if session.format > SESSION_FORMAT {
            return Err(anyhow!(
                "written by quantbench {} in session format {}; this quantbench {} reads up to format {SESSION_FORMAT}",
                session.tool_version,
                session.format,
                env!("CARGO_PKG_VERSION")
            ));
        }
        session.assign_missing_ids();
        session.format = SESSION_FORMAT;
        Ok((session, written_in))
    }

    /// Writes atomically (a crash mid-write leaves the previous file intact), with the paths
    /// it holds relative to the file's folder where they lie near it.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::jobs::checkpoint("save a session")?;
        let dir = session_dir(path);
        let mut portable = self.clone();
        portable.map_paths(&mut |p| *p = crate::paths::portable(p, &dir));
        crate::fileio::write_atomic(path, portable.to_ron()?.as_bytes())
    }

    /// Calls `f` on every file path the session holds: the model, the dataset (and the files
    /// its description names), each result's kept model and data.
    fn map_paths(&mut self, f: &mut dyn FnMut(&mut String)) {
        f(&mut self.model.path);
        if let Some(d) = self.dataset.as_mut() {
            f(&mut d.path);
            d.desc.paths_mut().into_iter().for_each(&mut *f);
        }
        for e in &mut self.experiments {
            if let Some(p) = e.result.model_path.as_mut() {
                f(p);
            }
            if let Some(d) = e.result.data.as_mut() {
                f(&mut d.path);
                d.desc.paths_mut().into_iter().for_each(&mut *f);
            }
        }
    }

    /// The model file (absolute once loaded).
    pub fn model_file(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(&self.model.path)
    }

    /// A message when `model` is not the file the session measured (another SHA-256).
    pub fn model_changed(&self, model: &Path) -> Result<Option<String>> {
        let now = ModelRef::of_file(model)?;
        Ok((now.sha256 != self.model.sha256).then(|| {
            format!(
                "{}: the model changed since this session measured it (SHA-256 {}…, the session has {}…): its results describe the earlier file",
                model.display(),
                &now.sha256[..12.min(now.sha256.len())],
                &self.model.sha256[..12.min(self.model.sha256.len())]
            )
        }))
    }

    /// Reads a session file; its paths come back absolute. A file that does not parse is
    /// copied to a backup beside it (named in the error) before anything can overwrite it.
    pub fn load(path: &Path) -> Result<Session> {
        crate::jobs::checkpoint("open a session")?;
        let bytes = std::fs::read(path)
            .with_context(|| format!("{}: cannot read session", path.display()))?;
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|e| anyhow!("not UTF-8 text ({e})"))
            .and_then(Session::parse);
        let (mut session, format) = match parsed {
            Ok(p) => p,
            Err(e) => {
                let kept = match keep_backup(path, &bytes) {
                    Ok(backup) => format!("a copy is kept as {}", backup.display()),
                    Err(b) => format!("no backup could be written: {b:#}"),
                };
                return Err(e.context(format!(
                    "{}: not a quantbench session ({kept})",
                    path.display()
                )));
            }
        };
        let dir = session_dir(path);
        if format >= 2 {
            session.map_paths(&mut |p| *p = crate::paths::resolve(p, &dir));
        } else {
            session.migrate_paths(&dir);
        }
        Ok(session)
    }

    /// Before format 2 a session held paths as they were given, relative to the directory
    /// quantbench ran in (the session's own folder is tried first: a moved project), and a
    /// dataset description's paths relative to the description file, as in the file.
    fn migrate_paths(&mut self, dir: &Path) {
        let resolve = |p: &mut String| {
            let beside = crate::paths::resolve(p, dir);
            *p = if p.is_empty() || Path::new(&beside).exists() {
                beside
            } else {
                crate::paths::absolute(Path::new(p.as_str()))
                    .display()
                    .to_string()
            };
        };
        let dataset = |path: &mut String, desc: &mut DatasetDesc| {
            resolve(path);
            let base = Path::new(path.as_str());
            let base = if base.extension().is_some_and(|e| e == "ron") {
                base.parent().unwrap_or(Path::new("")).to_path_buf()
            } else {
                dir.to_path_buf()
            };
            for p in desc.paths_mut() {
                if Path::new(p.as_str()).is_relative() && base != dir {
                    *p = crate::paths::resolve(p, &base);
                } else {
                    resolve(p);
                }
            }
        };
        resolve(&mut self.model.path);
        if let Some(d) = self.dataset.as_mut() {
            dataset(&mut d.path, &mut d.desc);
        }
        for e in &mut self.experiments {
            if let Some(p) = e.result.model_path.as_mut() {
                resolve(p);
            }
            if let Some(d) = e.result.data.as_mut() {
                dataset(&mut d.path, &mut d.desc);
            }
        }
    }
}

fn session_dir(path: &Path) -> std::path::PathBuf {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    crate::paths::absolute(dir)
}

/// Copies a session file that does not parse to `NAME.corrupt-N.ron` beside it (the first N
/// free, or the one already holding these bytes), and returns the copy's path.
fn keep_backup(path: &Path, bytes: &[u8]) -> Result<std::path::PathBuf> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "session".into());
    for n in 1..1000 {
        let backup = path.with_file_name(format!("{stem}.corrupt-{n}.ron"));
        match std::fs::read(&backup) {
            Ok(existing) if existing == bytes => return Ok(backup),
            Ok(_) => continue,
            Err(_) => {
                crate::fileio::write_atomic(&backup, bytes)?;
                return Ok(backup);
            }
        }
    }
    Err(anyhow!("1000 backups exist already"))
}

/// The `standard` preset: float, fp16, int8 weight-only, int8 per-tensor and per-channel, int8
/// per-channel with entropy calibration, int4 weight-only (int8 storage, runs everywhere).
pub fn standard_preset(samples: usize) -> Vec<Experiment> {
    let base = QuantConfig {
        samples,
        ..Default::default()
    };
    let mut experiments = vec![Experiment::float()];
    for config in [
        QuantConfig {
            mode: Mode::Fp16,
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int8Weights,
            per_channel: true,
            ..base.clone()
        },
        QuantConfig {
            per_channel: false,
            ..base.clone()
        },
        QuantConfig {
            per_channel: true,
            ..base.clone()
        },
        QuantConfig {
            per_channel: true,
            calibration: Calibration::Entropy,
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int4Weights,
            per_channel: true,
            int4_storage: Int4Storage::Int8Container,
            ..base
        },
    ] {
        experiments.push(Experiment::quantized(config));
    }
    experiments
}

/// Marks the points no other point beats on both axes: `higher_is_better` for the first value,
/// lower for the second. Points with a missing value are never on the front.
pub fn pareto_front(points: &[Option<(f64, f64)>]) -> Vec<bool> {
    points
        .iter()
        .map(|p| {
            let Some((a, l)) = p else { return false };
            !points
                .iter()
                .flatten()
                .any(|(b, m)| (b >= a && m <= l) && (b > a || m < l))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_by_hand() {
        // (accuracy, latency)
        let points = [
            Some((0.99, 10.0)), // front: most accurate
            Some((0.98, 5.0)),  // front
            Some((0.97, 6.0)),  // dominated by (0.98, 5.0)
            Some((0.90, 1.0)),  // front: fastest
            None,               // no figures: never on the front
            Some((0.98, 5.0)),  // a tie with a front point is on the front too
        ];
        assert_eq!(
            pareto_front(&points),
            vec![true, true, false, true, false, true]
        );
    }

    #[test]
    fn ids_are_never_reused_or_shifted() {
        let mut s = Session::new(
            ModelRef {
                path: "m.onnx".into(),
                sha256: String::new(),
                bytes: 0,
            },
            None,
        );
        let ids: Vec<u64> = standard_preset(10).into_iter().map(|e| s.add(e)).collect();
        assert_eq!(ids, (1..=7).collect::<Vec<_>>());
        s.experiments.remove(2);
        assert_eq!(s.position(5), Some(3));
        assert_eq!(s.position(3), None);
        assert_eq!(s.add(Experiment::float()), 8);
        // The newest removed: its id is not given out again.
        s.experiments.retain(|e| e.id != 8);
        assert_eq!(s.add(Experiment::float()), 9);
        s.experiments.retain(|e| e.id != 9);
        // A session written before ids: every experiment gets one, in order.
        let mut text = s.to_ron().unwrap().replace("last_id: 9,", "");
        for id in 1..=9 {
            text = text.replace(&format!(" id: {id},"), "");
        }
        assert!(!text.contains("id:"), "{text}");
        let old = Session::from_ron(&text).unwrap();
        let ids: Vec<u64> = old.experiments.iter().map(|e| e.id).collect();
        assert_eq!(ids, (1..=6).collect::<Vec<_>>());
    }

    #[test]
    fn corrupt_and_future_sessions_are_refused_with_where_and_why() {
        let s = Session::new(
            ModelRef {
                path: "m.onnx".into(),
                sha256: String::new(),
                bytes: 0,
            },
            None,
        );
        let text = s.to_ron().unwrap();
        let broken = text.replacen("experiments: [", "experiments: [[", 1);
        let line = broken
            .lines()
            .position(|l| l.contains("experiments: [["))
            .unwrap()
            + 1;
        let e = Session::from_ron(&broken).unwrap_err().to_string();
        assert!(e.starts_with(&format!("at {line}:")), "{e}");
        let future = text.replacen(
            &format!("format: {SESSION_FORMAT},"),
            &format!("format: {},", SESSION_FORMAT + 1),
            1,
        );
        let e = Session::from_ron(&future).unwrap_err().to_string();
        assert!(e.contains("reads up to format"), "{e}");
    }

    /// A format-1 session (paths as given, a description's paths relative to the description)
    /// comes back with absolute paths to the same files; saved again, they are relative to the
    /// session file where they lie near it.
    #[test]
    fn format_one_paths_resolve_to_the_files_they_meant() {
        let top = tempfile::tempdir().unwrap();
        let project = top.path().join("project");
        std::fs::create_dir_all(project.join("data/photos")).unwrap();
        std::fs::write(project.join("model.onnx"), b"m").unwrap();
        std::fs::write(project.join("data/photos.ron"), b"").unwrap();
        let desc = crate::data::DatasetDesc {
            source: crate::data::Source::ImageFolder {
                path: "photos".into(),
                labels: crate::data::Labels::None,
            },
            preprocess: Default::default(),
            calibration: Default::default(),
            evaluation: Default::default(),
            augment: 0,
        };
        let mut s = Session::new(
            ModelRef {
                path: "model.onnx".into(),
                sha256: String::new(),
                bytes: 1,
            },
            Some(DatasetRef {
                path: "data/photos.ron".into(),
                desc,
            }),
        );
        s.format = 1;
        let path = project.join("s.ron");
        let text = s.to_ron().unwrap().replacen("format: 2,", "format: 1,", 1);
        std::fs::write(&path, text).unwrap();
        let back = Session::load(&path).unwrap();
        let p = |rel: &str| project.join(rel).display().to_string();
        assert_eq!(back.model.path, p("model.onnx"));
        let d = back.dataset.as_ref().unwrap();
        assert_eq!(d.path, p("data/photos.ron"));
        assert_eq!(d.desc.clone().paths_mut()[0].as_str(), p("data/photos"));
        back.save(&path).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.contains("path: \"data/photos\""), "{written}");
        assert!(!written.contains(project.to_str().unwrap()), "{written}");
        assert_eq!(Session::load(&path).unwrap(), back);
    }

    #[test]
    fn standard_preset_has_the_seven_configurations() {
        let names: Vec<String> = standard_preset(200)
            .iter()
            .map(|e| e.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "float",
                "fp16",
                "int8-weights per-channel",
                "int8 per-tensor minmax",
                "int8 per-channel minmax",
                "int8 per-channel entropy",
                "int4-weights per-channel"
            ]
        );
    }
}
