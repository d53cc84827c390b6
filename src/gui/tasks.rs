//! The window's background work other than experiments: opening models, sessions and datasets
//! (previews decoded too), and writing files (exports, sessions, autosaves, screenshots,
//! tables, descriptions). Each function here runs on a job of the engine's job service; the
//! app applies what it returns on the UI thread, which never reads, decodes or writes a model
//! itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{anyhow, Context, Result};
use eframe::egui;

use quantbench::data::{Dataset, DatasetDesc};
use quantbench::onnx::{self, inspect::ModelSummary, pb};
use quantbench::session::{DatasetRef, ModelRef, Session};

/// Samples shown as images in the Dataset tab.
pub const PREVIEWS: usize = 4;

pub struct OpenedDataset {
    pub path: PathBuf,
    pub dataset: Arc<Dataset>,
    /// What had to be guessed to read it (a folder or file opened without a description).
    pub notes: Vec<String>,
    /// Why the dataset does not fit the model, if it does not.
    pub mismatch: Option<anyhow::Error>,
    pub previews: Vec<(egui::ColorImage, String)>,
}

/// A session file with results that an earlier run left for this model.
#[derive(Clone, Debug)]
pub struct EarlierWork {
    pub path: PathBuf,
    pub experiments: usize,
    pub done: usize,
    pub saved: Option<SystemTime>,
}

pub struct OpenedModel {
    pub path: PathBuf,
    pub proto: Arc<pb::ModelProto>,
    pub summary: ModelSummary,
    pub model_ref: ModelRef,
    /// A new session on the model (made here: it records the machine, read from the system).
    pub session: Session,
    /// A description found beside the model (opened, or why not).
    pub dataset: Option<Result<OpenedDataset>>,
    /// Without one: whether the dataset open now fits this model (`Some(why)` when not).
    pub current_fit: Option<Option<anyhow::Error>>,
    /// Where this model's session is autosaved (a new file: earlier ones are never
    /// overwritten); `None` without a data folder.
    pub autosave: Option<PathBuf>,
    /// The newest earlier autosave of this model with results, offered for restoring.
    pub earlier: Option<EarlierWork>,
}

pub struct OpenedSession {
    pub path: PathBuf,
    pub session: Session,
    pub model: OpenedModel,
    /// Said when the model file is not the one the session measured.
    pub changed: Option<String>,
    /// What opening it found worth saying (a merged plan: how much of it has finished).
    pub notes: Vec<String>,
}

pub enum Loaded {
    Model(Box<OpenedModel>),
    Session(Box<OpenedSession>),
    Dataset(Box<OpenedDataset>),
}

fn fit(dataset: &Dataset, model: &pb::ModelProto) -> Option<anyhow::Error> {
    quantbench::tensor::model_inputs(model)
        .and_then(|inputs| dataset.check_fits(&inputs))
        .err()
}

fn opened(
    path: PathBuf,
    dataset: Dataset,
    notes: Vec<String>,
    model: &pb::ModelProto,
) -> OpenedDataset {
    let mismatch = fit(&dataset, model);
    let previews = super::dataset_panel::previews(&dataset, PREVIEWS);
    OpenedDataset {
        path,
        dataset: Arc::new(dataset),
        notes,
        mismatch,
        previews,
    }
}

/// Opens `path` (a folder, a file or a description) as data for `model`.
pub fn open_dataset(path: &Path, model: &pb::ModelProto) -> Result<OpenedDataset> {
    let (dataset, notes) = Dataset::open_for(path, model, &Default::default())?;
    Ok(opened(path.to_path_buf(), dataset, notes, model))
}

/// Opens the dataset `desc` describes (relative paths against `base`), as edited in the tab.
pub fn apply_description(
    desc: DatasetDesc,
    base: &Path,
    path: &Path,
    model: &pb::ModelProto,
) -> Result<OpenedDataset> {
    let dataset = Dataset::from_desc(desc, base, path)?;
    Ok(opened(path.to_path_buf(), dataset, vec![], model))
}

/// Reopens the dataset a session (or the window) referred to, for `model`.
pub fn reopen_dataset(dataset: &DatasetRef, model: &pb::ModelProto) -> Result<OpenedDataset> {
    Ok(opened(
        PathBuf::from(&dataset.path),
        dataset.open()?,
        vec![],
        model,
    ))
}

/// Reads and summarizes a model; finds a dataset description beside it (else checks that
/// `current`, the dataset open now, fits it); looks for earlier work on it in `sessions`.
pub fn open_model(
    path: &Path,
    current: Option<Arc<Dataset>>,
    sessions: Option<&Path>,
) -> Result<OpenedModel> {
    let proto = onnx::read_model(path)?;
    let mut summary = onnx::inspect::summarize(&proto, path)?;
    quantbench::quant::patterns::annotate(&mut summary, &proto);
    let model_ref = ModelRef::of_file(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let beside = ["dataset.ron", "photos.ron"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file());
    let (dataset, current_fit) = match (beside, current) {
        (Some(ds), _) => (
            Some(Dataset::open(&ds).map(|d| opened(ds, d, vec![], &proto))),
            None,
        ),
        (None, Some(current)) => (None, Some(fit(&current, &proto))),
        (None, None) => (None, None),
    };
    let (autosave, earlier) = match sessions {
        Some(dir) => {
            let (fresh, earlier) = autosaves_of(dir, path, &model_ref)?;
            (Some(fresh), earlier)
        }
        None => (None, None),
    };
    Ok(OpenedModel {
        path: path.to_path_buf(),
        proto: Arc::new(proto),
        summary,
        session: Session::new(model_ref.clone(), None),
        model_ref,
        dataset,
        current_fit,
        autosave,
        earlier,
    })
}

/// Opens a session file with its model and dataset.
pub fn open_session(path: &Path, sessions: Option<&Path>) -> Result<OpenedSession> {
    let session = Session::load(path)?;
    let model_path = session.model_file();
    let mut model = open_model(&model_path, None, sessions)
        .with_context(|| format!("{}: the session's model", path.display()))?;
    // The session's own dataset, not a description that happens to lie beside the model.
    model.dataset = session.dataset.as_ref().map(|d| {
        reopen_dataset(d, &model.proto)
            .with_context(|| format!("{}: the session's dataset", path.display()))
    });
    model.earlier = None;
    let changed = session.model_changed(&model.model_ref, &model_path);
    Ok(OpenedSession {
        path: path.to_path_buf(),
        session,
        model,
        changed,
        notes: vec![],
    })
}

/// The session a merged plan folder makes: its finished results gathered (by the same merge
/// as `quantbench merge`) into `PLAN/session.ron`, which is then opened; the unfinished
/// experiments are pending, ready to run here.
pub fn open_plan(dir: &Path, sessions: Option<&Path>) -> Result<OpenedSession> {
    let merged = quantbench::plan::merge(dir)?;
    let path = dir.join(MERGED_SESSION);
    merged
        .session
        .save(&path)
        .with_context(|| format!("{}: cannot write the merged session", path.display()))?;
    let mut opened = open_session(&path, sessions)?;
    let total = merged.finished + merged.pending.len();
    let mut note = format!(
        "plan {}: {} of {total} experiments finished, merged into {}",
        dir.display(),
        merged.finished,
        path.display()
    );
    if !merged.pending.is_empty() {
        note += &format!(
            "; {} pending (indices {}): Run measures them here",
            merged.pending.len(),
            merged.pending_list()
        );
    }
    opened.notes.push(note);
    opened.notes.extend(
        merged
            .unreadable
            .into_iter()
            .map(|u| format!("left out: {u}")),
    );
    Ok(opened)
}

/// Where [`open_plan`] writes the merged session, inside the plan folder.
pub const MERGED_SESSION: &str = "session.ron";

/// Writes the experiments (the window's pending ones) as a plan folder with its Slurm array
/// script and Kubernetes Indexed Job manifest; returns what to say.
pub fn export_plan(
    dir: &Path,
    model: &Path,
    dataset: &Dataset,
    experiments: Vec<quantbench::session::Experiment>,
    settings: &quantbench::runner::RunSettings,
) -> Result<String> {
    use quantbench::plan;
    let mut settings = settings.clone();
    let mut found = None;
    if settings.backends.is_empty() {
        let (backends, note) = quantbench::runner::detect_backends(
            quantbench::profile::BackendSet::All,
            Default::default(),
        );
        settings.backends = backends;
        found = note;
    }
    // Kept models belong to the window's session folder, not to the plan's tasks.
    settings.models_dir = None;
    let written = plan::write(dir, model, dataset, experiments, &settings, true)?;
    let kinds = ["slurm".to_string(), "kubernetes".to_string()];
    let files = plan::emit(dir, &written, &kinds, &plan::EmitSettings::default())?;
    Ok(format!(
        "plan of {} experiments written to {} ({}); submit it, then open the folder to merge what has finished{}",
        written.experiments.len(),
        dir.display(),
        files
            .iter()
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(", "),
        found.map_or(String::new(), |n| format!(" ({n})"))
    ))
}

/// In the folder of autosaves: a file name for a new session of the model at `path` (the first
/// of `STEM-HASH.ron`, `STEM-HASH-2.ron`, ... that does not exist) and the newest existing one
/// with results.
fn autosaves_of(
    dir: &Path,
    path: &Path,
    model: &ModelRef,
) -> Result<(PathBuf, Option<EarlierWork>)> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let stem = path
        .file_stem()
        .map(|s| quantbench::runner::slug(&s.to_string_lossy()))
        .unwrap_or_else(|| "model".into());
    let prefix = format!("{stem}-{}", &model.sha256[..10]);
    let name = |k: usize| {
        if k == 1 {
            format!("{prefix}.ron")
        } else {
            format!("{prefix}-{k}.ron")
        }
    };
    let mut earlier: Option<EarlierWork> = None;
    let mut k = 1;
    loop {
        let candidate = dir.join(name(k));
        if !candidate.exists() {
            return Ok((candidate, earlier));
        }
        if let Ok(s) = Session::load(&candidate) {
            let done = s.experiments.iter().filter(|e| e.is_done()).count();
            let saved = std::fs::metadata(&candidate)
                .and_then(|m| m.modified())
                .ok();
            let newer = earlier
                .as_ref()
                .is_none_or(|e| saved.is_some() && saved >= e.saved);
            if done > 0 && newer {
                earlier = Some(EarlierWork {
                    path: candidate,
                    experiments: s.experiments.len(),
                    done,
                    saved,
                });
            }
        }
        k += 1;
    }
}

/// What an export copies.
pub enum ExportSource {
    /// A quantized model kept beside the session when its experiment ran.
    Kept(PathBuf),
    /// The float model itself.
    Float(Arc<pb::ModelProto>),
}

/// Writes the exported model to `out` atomically: a kept file is copied (never quantized
/// again), the float model written as it was read.
pub fn export(source: ExportSource, out: &Path) -> Result<()> {
    match source {
        ExportSource::Kept(kept) => {
            if onnx::external_data_files(&kept)?.is_empty() {
                quantbench::fileio::copy_atomic(&kept, out)
            } else {
                // Its weights are in a file named after the kept one: written anew under the
                // export's name.
                let model = onnx::read_model(&kept)?;
                onnx::write_model(out, &model, onnx::SINGLE_FILE_LIMIT)
            }
        }
        ExportSource::Float(model) => onnx::write_model(out, &model, onnx::SINGLE_FILE_LIMIT),
    }
}

pub fn save_png(path: &Path, image: &egui::ColorImage) -> Result<()> {
    quantbench::jobs::checkpoint("encode a screenshot")?;
    let [w, h] = image.size;
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let buffer = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
        .ok_or_else(|| anyhow!("screenshot of {w}x{h} has the wrong size"))?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    buffer
        .write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| anyhow!("{}: cannot encode PNG: {e}", path.display()))?;
    quantbench::fileio::write_atomic(path, bytes.get_ref())
}

/// The results table as CSV, or Markdown for a `.md` name.
pub fn export_table(session: &Session, path: &Path) -> Result<()> {
    let text = if path.extension().is_some_and(|e| e == "md") {
        quantbench::report::to_markdown(session)
    } else {
        quantbench::report::to_csv(session)
    };
    quantbench::fileio::write_atomic(path, text.as_bytes())
}

/// The marker a running window keeps in its data folder, naming the session it works on; one
/// left by a process that is gone means that session was interrupted.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RunningMarker {
    pub pid: u32,
    pub session: Option<String>,
}

pub fn marker_path(data_dir: &Path, pid: u32) -> PathBuf {
    data_dir.join(format!("running-{pid}.ron"))
}

pub fn write_marker(data_dir: &Path, session: Option<&Path>) -> Result<()> {
    let marker = RunningMarker {
        pid: std::process::id(),
        session: session.map(|p| p.display().to_string()),
    };
    let text = ron::to_string(&marker).map_err(|e| anyhow!("{e}"))?;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("{}: cannot create", data_dir.display()))?;
    quantbench::fileio::write_atomic(&marker_path(data_dir, marker.pid), text.as_bytes())
}

/// A session that a window which is gone was working on.
#[derive(Clone, Debug)]
pub struct Interrupted {
    pub session: PathBuf,
    pub experiments: usize,
    pub done: usize,
    pub saved: Option<SystemTime>,
    /// The markers to remove once the user has answered.
    pub markers: Vec<PathBuf>,
}

/// Markers in `data_dir` left by processes that no longer run, with the newest session they
/// name that still opens and has experiments.
pub fn find_interrupted(data_dir: &Path) -> Result<Option<Interrupted>> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Ok(None);
    };
    let mut found: Option<Interrupted> = None;
    let mut markers = vec![];
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("running-")
            .and_then(|n| n.strip_suffix(".ron"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || process_is_alive(pid) {
            continue;
        }
        markers.push(path.clone());
        let marker: RunningMarker = match std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| ron::from_str(&t).ok())
        {
            Some(m) => m,
            None => continue,
        };
        let Some(session_path) = marker.session.map(PathBuf::from) else {
            continue;
        };
        let Ok(session) = Session::load(&session_path) else {
            continue;
        };
        let saved = std::fs::metadata(&session_path)
            .and_then(|m| m.modified())
            .ok();
        if session.experiments.is_empty() || found.as_ref().is_some_and(|f| f.saved >= saved) {
            continue;
        }
        found = Some(Interrupted {
            session: session_path,
            experiments: session.experiments.len(),
            done: session.experiments.iter().filter(|e| e.is_done()).count(),
            saved,
            markers: vec![],
        });
    }
    if let Some(f) = found.as_mut() {
        f.markers = markers;
    } else {
        // Markers of processes that left nothing to recover.
        for m in markers {
            let _ = std::fs::remove_file(m);
        }
    }
    Ok(found)
}

fn process_is_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        // No cheap portable check: a marker of another live window may be offered too.
        false
    }
}
