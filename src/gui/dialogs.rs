//! Choosing a path: the desktop's file dialog where one can open (an XDG desktop portal on the
//! session bus, or zenity), a typed path otherwise. A dialog that cannot open must not look
//! like one the user cancelled: where none is available, or one "returns" faster than a person
//! could cancel it, the window asks for the path in a prompt of its own and says why.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::AppCommand;
use quantbench::session::ExperimentId;

/// What a path is asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum PathPurpose {
    /// A model (.onnx) or a session (.ron).
    Open,
    /// A plan folder.
    OpenPlan,
    DataFolder,
    DataFile,
    SaveSession,
    SaveScreenshot,
    ExportTable,
    /// An experiment's model; the file name offered.
    ExportModel(ExperimentId, String),
    ExportPlan,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    OpenFile,
    OpenFolder,
    Save,
}

impl PathPurpose {
    fn kind(&self) -> Kind {
        match self {
            PathPurpose::Open | PathPurpose::DataFile => Kind::OpenFile,
            PathPurpose::OpenPlan | PathPurpose::DataFolder | PathPurpose::ExportPlan => {
                Kind::OpenFolder
            }
            _ => Kind::Save,
        }
    }

    /// "Save the session to", as the prompt's title says it.
    pub fn title(&self) -> String {
        match self {
            PathPurpose::Open => "Open a model (.onnx) or a session (.ron)".into(),
            PathPurpose::OpenPlan => "Open a plan folder".into(),
            PathPurpose::DataFolder => "Open a folder of data".into(),
            PathPurpose::DataFile => "Open a data file (.csv, .npz, .ron, …)".into(),
            PathPurpose::SaveSession => "Save the session to".into(),
            PathPurpose::SaveScreenshot => "Save a screenshot (PNG) to".into(),
            PathPurpose::ExportTable => "Export the table (.csv or .md) to".into(),
            PathPurpose::ExportModel(id, _) => format!("Export experiment {id}'s model to"),
            PathPurpose::ExportPlan => "Write the plan into the folder".into(),
        }
    }

    fn filter(&self) -> Option<(&'static str, &'static [&'static str])> {
        match self {
            PathPurpose::Open => Some(("model or session", &["onnx", "ron"])),
            PathPurpose::DataFile => Some(("data", &["ron", "csv", "tsv", "gz", "npy", "npz"])),
            PathPurpose::SaveSession => Some(("session", &["ron"])),
            PathPurpose::SaveScreenshot => Some(("PNG", &["png"])),
            PathPurpose::ExportTable => Some(("CSV or Markdown", &["csv", "md"])),
            PathPurpose::ExportModel(..) => Some(("ONNX", &["onnx"])),
            _ => None,
        }
    }

    /// The file name a save offers.
    pub fn default_name(&self) -> String {
        match self {
            PathPurpose::SaveSession => "session.ron".into(),
            PathPurpose::SaveScreenshot => "quantbench.png".into(),
            PathPurpose::ExportTable => "results.csv".into(),
            PathPurpose::ExportModel(_, name) => name.clone(),
            PathPurpose::ExportPlan => "plan".into(),
            _ => String::new(),
        }
    }

    /// What to do with the path chosen.
    pub fn command(&self, path: PathBuf) -> AppCommand {
        match self {
            PathPurpose::Open | PathPurpose::OpenPlan => AppCommand::OpenPath(path),
            PathPurpose::DataFolder | PathPurpose::DataFile => AppCommand::OpenDataset(path),
            PathPurpose::SaveSession => AppCommand::SaveSession(path),
            PathPurpose::SaveScreenshot => AppCommand::SaveScreenshot(path),
            PathPurpose::ExportTable => AppCommand::ExportTable(path),
            PathPurpose::ExportModel(id, _) => AppCommand::ExportModel {
                experiment: *id,
                path,
            },
            PathPurpose::ExportPlan => AppCommand::ExportPlan(path),
        }
    }
}

/// Where the desktop's file dialogs come from, as far as the environment tells.
#[derive(Clone, Debug, PartialEq)]
pub enum DialogService {
    /// A session bus (an XDG portal may answer on it) or zenity.
    Native,
    /// Neither: no dialog can open; the reason, in words.
    Absent(String),
}

impl DialogService {
    /// From the environment `var` gives (the process's, or a test's).
    pub fn detect(var: impl Fn(&str) -> Option<String>) -> Self {
        if cfg!(not(target_os = "linux")) {
            return DialogService::Native;
        }
        let bus = var("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty());
        let zenity = var("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join("zenity").is_file())
        });
        if bus || zenity {
            DialogService::Native
        } else {
            DialogService::Absent(
                "no file dialog service here (no desktop portal on a session bus, no zenity)"
                    .into(),
            )
        }
    }

    pub fn of_process() -> Self {
        DialogService::detect(|k| std::env::var(k).ok())
    }
}

/// A person takes longer than this to cancel a dialog: a quicker "cancel" is a dialog that
/// never opened (a session bus with no portal behind it).
const FASTEST_CANCEL: Duration = Duration::from_millis(250);

/// Asks the desktop for a path for `purpose`: `Ok(Some)` chosen, `Ok(None)` cancelled,
/// `Err(why)` when no dialog could open (ask by a prompt instead).
pub fn ask(service: &DialogService, purpose: &PathPurpose) -> Result<Option<PathBuf>, String> {
    if let DialogService::Absent(why) = service {
        return Err(why.clone());
    }
    let mut dialog = rfd::FileDialog::new();
    if let Some((name, extensions)) = purpose.filter() {
        dialog = dialog.add_filter(name, extensions);
    }
    let name = purpose.default_name();
    if purpose.kind() == Kind::Save && !name.is_empty() {
        dialog = dialog.set_file_name(name);
    }
    let asked = Instant::now();
    let chosen = match purpose.kind() {
        Kind::OpenFile => dialog.pick_file(),
        Kind::OpenFolder => dialog.pick_folder(),
        Kind::Save => dialog.save_file(),
    };
    match chosen {
        Some(path) => Ok(Some(path)),
        None if asked.elapsed() < FASTEST_CANCEL => {
            Err("the desktop's file dialog did not open".into())
        }
        None => Ok(None),
    }
}

/// A path asked for in the window, when no dialog could open.
pub struct PathPrompt {
    pub purpose: PathPurpose,
    pub text: String,
    /// Why the window asks (no dialog service).
    pub why: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_bus_and_no_zenity_is_no_dialog_service() {
        let empty = tempfile::tempdir().unwrap();
        let path = empty.path().to_string_lossy().into_owned();
        let env = |bus: Option<&str>| {
            let path = path.clone();
            let bus = bus.map(str::to_string);
            move |k: &str| match k {
                "DBUS_SESSION_BUS_ADDRESS" => bus.clone(),
                "PATH" => Some(path.clone()),
                _ => None,
            }
        };
        assert!(matches!(
            DialogService::detect(env(None)),
            DialogService::Absent(_)
        ));
        assert_eq!(
            DialogService::detect(env(Some("unix:path=/run/user/1000/bus"))),
            DialogService::Native
        );
        // zenity on the PATH is a service too.
        std::fs::write(empty.path().join("zenity"), "").unwrap();
        assert_eq!(DialogService::detect(env(None)), DialogService::Native);
        // Absent: asking says why at once, without trying.
        let why = ask(&DialogService::detect(|_| None), &PathPurpose::SaveSession).unwrap_err();
        assert!(why.contains("no file dialog service"), "{why}");
    }
}
