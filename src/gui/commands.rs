//! What panels ask the app to do, and the sender they ask through: commands are collected while
//! a frame draws and applied once, after it (easy to test, easy to log). A command names the
//! experiment it acts on by id: rows added or removed meanwhile never move it onto another.

use std::cell::RefCell;
use std::path::PathBuf;

use quantbench::session::ExperimentId;

use super::CentralView;

/// Everything a panel can ask the app to do.
#[derive(Clone, Debug, PartialEq)]
pub enum AppCommand {
    OpenPath(PathBuf),
    /// Ask for a path (the desktop's dialog, or a prompt when none can open), then act on it.
    AskPath(super::dialogs::PathPurpose),
    /// The prompt's path was given (`Some`) or the prompt closed.
    PromptDone(Option<PathBuf>),
    OpenDataset(PathBuf),
    ApplyDatasetDesc(Box<quantbench::data::DatasetDesc>),
    /// Write the open dataset's description (as edited and applied) to a RON file.
    SaveDatasetDesc(PathBuf),
    /// The output that accuracy scores (`None`: the first).
    SetScoredOutput(Option<String>),
    ToggleKeepFloat(String),
    AddExperiment,
    AddPreset,
    RemoveExperiment(ExperimentId),
    Select(Option<ExperimentId>),
    Run,
    /// Rank this experiment's layers by what keeping each float recovers per millisecond.
    RankSensitivity(ExperimentId),
    /// Start the search (or resume it: what the session has measured is reused).
    StartTune(super::app::TuneRequest),
    StopTune,
    /// Find out why this experiment's model is not faster (the Speed-up view).
    Explain(ExperimentId),
    /// Show this experiment's layer (a node) in the Layers view.
    ShowLayer(ExperimentId, String),
    StopSensitivity,
    /// Time every finished experiment again, together in rounds (no accuracy rerun).
    Remeasure,
    Cancel,
    ExportModel {
        experiment: ExperimentId,
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
    DismissAllMessages,
    /// Show the frame-time gauge (a developer's readout) or hide it.
    ShowFrameTimes(bool),
    /// Stop opening the model, session or dataset being opened.
    CancelLoading,
    DismissMessage(usize),
    /// Recover the interrupted session, or restore the model's earlier results.
    AcceptOffer,
    DismissOffer,
    /// A variant of an experiment, added and run at once (its calibration reused).
    Vary {
        experiment: ExperimentId,
        change: Variation,
    },
    /// The calibration inspector for an activation, with an experiment's settings (`None`: the
    /// Settings tab's).
    InspectCalibration {
        experiment: Option<ExperimentId>,
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
    /// 4-bit weights stored as ONNX INT4 tensors (opset 21) instead of int8 ones.
    OnnxInt4,
    /// These layers kept float too (the top of a sensitivity ranking).
    KeepFloat(Vec<String>),
}

impl Variation {
    /// Changes `config` as this variation says; what changed, in words (the variant's name).
    pub fn apply(&self, config: &mut quantbench::quant::QuantConfig) -> String {
        match self {
            Variation::ToggleFloat(node) => {
                if let Some(i) = config.keep_float.iter().position(|k| k == node) {
                    config.keep_float.remove(i);
                    format!("{node} int8")
                } else {
                    config.keep_float.push(node.clone());
                    format!("{node} float")
                }
            }
            Variation::Pin(tensor, range) => {
                config.pinned_ranges.insert(tensor.clone(), *range);
                format!("{tensor} pinned [{:.4}, {:.4}]", range.0, range.1)
            }
            Variation::ToggleInt16(tensor) => {
                let wide = &mut config.int16_activations;
                if let Some(i) = wide.iter().position(|t| t == tensor) {
                    wide.remove(i);
                    format!("{tensor} 8-bit")
                } else {
                    wide.push(tensor.clone());
                    format!("{tensor} 16-bit")
                }
            }
            Variation::Unpin(tensor) => {
                config.pinned_ranges.remove(tensor);
                format!("{tensor} unpinned")
            }
            Variation::KeepFloat(layers) => {
                for l in layers {
                    if !config.keep_float.contains(l) {
                        config.keep_float.push(l.clone());
                    }
                }
                format!("top {} sensitive float", layers.len())
            }
            Variation::OnnxInt4 => {
                config.int4_storage = quantbench::quant::Int4Storage::OnnxInt4;
                "ONNX INT4 storage".into()
            }
        }
    }
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
