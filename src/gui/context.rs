//! What panels see of the app during one frame ([`AppCtx`]), and the loaded things it lends
//! them. Panels own only their own widgets' state; they read this and send commands.

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;

use quantbench::data::Dataset;
use quantbench::onnx::{inspect::ModelSummary, pb};
use quantbench::session::{ExperimentId, Session};

use super::background::RunStatus;
use super::commands::Commands;
use super::tasks::{EarlierWork, Interrupted};

pub struct LoadedModel {
    pub path: PathBuf,
    pub proto: Arc<pb::ModelProto>,
    pub summary: ModelSummary,
    pub bytes: u64,
}

pub struct LoadedDataset {
    pub path: PathBuf,
    /// Shared with the jobs that read it (experiments, a fit check for another model).
    pub dataset: Arc<Dataset>,
    /// Why the dataset does not fit the model, if it does not.
    pub mismatch: Option<anyhow::Error>,
    /// What had to be guessed to read it (a folder or file opened without a description).
    pub notes: Vec<String>,
    pub previews: Vec<(egui::TextureHandle, String)>,
    /// Said beside the figures when calibration and evaluation share samples.
    pub overlap: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Level {
    Info,
    Error,
}

/// Work from an earlier run the user can take up.
pub enum Offer {
    /// A window that is gone was working on this session.
    Interrupted(Interrupted),
    /// The model just opened has results autosaved by an earlier run.
    Earlier(EarlierWork),
}

/// What panels see of the app during one frame.
pub struct AppCtx<'a> {
    pub model: Option<&'a LoadedModel>,
    pub dataset: Option<&'a LoadedDataset>,
    pub session: Option<&'a Session>,
    /// The run of experiments, if one is going.
    pub run: Option<RunStatus<'a>>,
    /// A model, session or dataset is being opened.
    pub loading: bool,
    /// What runs in the background besides experiments (label, whether it can be stopped).
    pub activity: Vec<(String, bool)>,
    pub offer: Option<&'a Offer>,
    pub messages: &'a [(Level, String)],
    pub recent: &'a [String],
    pub selected: Option<ExperimentId>,
    pub keep_float: &'a [String],
    /// The output accuracy is scored on (`None`: the first).
    pub scored_output: Option<&'a str>,
    /// p95 of frame CPU time so far, when the developer's gauge is on (never in tests).
    pub frame_p95_ms: Option<f64>,
    /// The developer's gauge is on.
    pub frame_times: bool,
    /// The sensitivity ranking going on: for which experiment, how far.
    pub ranking: Option<(ExperimentId, super::app::RankProgress)>,
    /// Why experiments are not faster, as found out so far; which one is being looked at.
    pub explanations: &'a std::collections::HashMap<
        ExperimentId,
        Result<quantbench::bench::explain::SpeedExplanation, String>,
    >,
    pub explaining: Option<ExperimentId>,
    /// The layer the Layers view is asked to show (from the Speed-up view).
    pub layer_focus: Option<&'a str>,
    /// The search: its steps and choice; whether it runs.
    pub search: &'a super::app::SearchState,
    pub searching: bool,
    /// Why the current settings cannot become an experiment, if they cannot.
    pub settings_error: Option<String>,
    /// Where benchmarks run (`[user@]host[:port]`; empty: this machine).
    pub bench_device: &'a str,
    pub commands: &'a Commands,
    /// Hide clocks and durations so test snapshots are stable.
    pub is_test: bool,
}

impl AppCtx<'_> {
    /// The selected experiment, if the session still has it.
    pub fn selected_experiment(&self) -> Option<&quantbench::session::Experiment> {
        self.session?.get(self.selected?)
    }
}
