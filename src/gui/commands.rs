//! What panels ask the app to do, and the sender they ask through: commands are collected while
//! a frame draws and applied once, after it (easy to test, easy to log).

use std::cell::RefCell;
use std::path::PathBuf;

use super::CentralView;

/// Everything a panel can ask the app to do.
#[derive(Clone, Debug, PartialEq)]
pub enum AppCommand {
    OpenPath(PathBuf),
    OpenDataset(PathBuf),
    ApplyDatasetDesc(Box<quantbench::data::DatasetDesc>),
    /// Write the open dataset's description (as edited and applied) to a RON file.
    SaveDatasetDesc(PathBuf),
    /// The output that accuracy scores (`None`: the first).
    SetScoredOutput(Option<String>),
    ToggleKeepFloat(String),
    AddExperiment,
    AddPreset,
    RemoveExperiment(usize),
    Select(Option<usize>),
    Run,
    Cancel,
    ExportModel {
        experiment: usize,
        path: PathBuf,
    },
    SaveSession(PathBuf),
    /// Write the pending experiments as a plan folder (with Slurm and Kubernetes job files).
    ExportPlan(PathBuf),
    /// Where benchmarks run: `[user@]host[:port]` over SSH, or empty for this machine.
    SetBenchDevice(String),
    SaveScreenshot(PathBuf),
    ExportTable(PathBuf),
    SetView(CentralView),
    /// Stop opening the model, session or dataset being opened.
    CancelLoading,
    DismissMessage(usize),
    /// Recover the interrupted session, or restore the model's earlier results.
    AcceptOffer,
    DismissOffer,
    /// A variant of an experiment, added and run at once (its calibration reused).
    Vary {
        experiment: usize,
        change: Variation,
    },
    /// The calibration inspector for an activation, with an experiment's settings.
    InspectCalibration {
        experiment: usize,
        tensor: String,
    },
    CloseInspector,
}

/// How a variant differs from its parent experiment.
#[derive(Clone, Debug, PartialEq)]
pub enum Variation {
    /// This node between int8 and float.
    ToggleFloat(String),
    /// This activation's range set by hand.
    Pin(String, (f32, f32)),
    /// This activation between 8 and 16 bits.
    ToggleInt16(String),
    Unpin(String),
}

/// Sends commands from panels that only borrow the app's state.
#[derive(Default)]
pub struct Commands(RefCell<Vec<AppCommand>>);

impl Commands {
    pub fn send(&self, c: AppCommand) {
        self.0.borrow_mut().push(c);
    }

    pub fn take(&self) -> Vec<AppCommand> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}
