//! The runner: the one loop that runs experiments, for every face (the CLI's `sweep`,
//! `run-plan`, `tune` and `layers --sensitivity`, the window's jobs, the tests).
//!
//! Each experiment is quantized, evaluated on each runtime, benchmarked (here or on a device
//! over SSH) and compared layer by layer, and reported by id: [`RunEvent::Started`], then
//! [`RunEvent::Done`] with its result or [`RunEvent::Failed`] with a typed
//! [`ExperimentError`]. A failure or a panic inside one experiment is that experiment's; the
//! others go on. Only cancellation ends a run early, with what finished already reported.
//!
//! The runner also decides what a run measures on: the runtimes (detected where none are named,
//! [`detect_backends`]) and where latency is timed ([`RunSettings::remote`]).

mod timing;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::bench::BenchSettings;
use crate::data::Dataset;
use crate::eval::{self, Outputs};
use crate::jobs::{self, Progress};
use crate::onnx::{self, pb};
use crate::profile::{BackendSet, Profile};
use crate::quant;
use crate::runtime::{ort::OrtOptions, Backend};
use crate::session::{
    BackendEval, Experiment, ExperimentId, ExperimentResult, Measurement, Session, Timing,
};
use crate::tensor::{self, Feed, InputSpec};

#[derive(Clone, Debug)]
pub struct RunSettings {
    /// The runtimes each experiment is measured on; empty: [`detect_backends`] decides, once
    /// per run (the window does not wait for the look-up at start-up).
    pub backends: Vec<Backend>,
    pub bench: BenchSettings,
    /// Evaluate at most this many samples of the evaluation split.
    pub eval_limit: Option<usize>,
    /// Samples for per-layer error (0: skip).
    pub layer_samples: usize,
    /// Where quantized models are written (one file per experiment); `None`: not written.
    pub models_dir: Option<PathBuf>,
    /// The output that accuracy scores (`None`: the first).
    pub output: Option<String>,
    /// Benchmarks run on this device over SSH instead of here (accuracy is still measured
    /// here: the runtimes compute the same values).
    pub remote: Option<crate::bench::remote::Remote>,
}

impl RunSettings {
    /// What `profile` measures, on `backends` (empty: detected when the run starts).
    pub fn of(profile: Profile, backends: Vec<Backend>) -> Self {
        let p = profile.settings();
        RunSettings {
            backends,
            bench: profile.bench(),
            eval_limit: p.eval_limit,
            layer_samples: p.layer_samples,
            models_dir: None,
            output: None,
            remote: None,
        }
    }

    /// How a result measured with these settings was measured (what decides whether it can
    /// stand in for a new measurement).
    pub fn measurement(&self) -> Measurement {
        Measurement {
            eval_limit: self.eval_limit,
            backends: self.backends.clone(),
            device: self.remote.as_ref().map(|r| r.to_string()),
            output: self.output.clone(),
        }
    }
}

impl Default for RunSettings {
    /// The standard profile on tract alone (no look-up of other runtimes).
    fn default() -> Self {
        RunSettings::of(Profile::Standard, vec![Backend::Tract])
    }
}

/// The runtimes `set` names that this machine has, and a note when ONNX Runtime was looked for
/// and not found (why, and that the figures are tract's only).
pub fn detect_backends(set: BackendSet, ort_options: OrtOptions) -> (Vec<Backend>, Option<String>) {
    match (crate::runtime::ort::version(), set) {
        (Ok(_), BackendSet::All) => (vec![Backend::Tract, Backend::Ort(ort_options)], None),
        (Ok(_), BackendSet::Deployment) => (vec![Backend::Ort(ort_options)], None),
        (Err(e), _) => (
            vec![Backend::Tract],
            Some(format!("measuring on tract only: {e:#}")),
        ),
    }
}

/// What one run reports, experiment by experiment, by id: each measured experiment's start and
/// end, then (the latencies of a run are timed together, at its end) each one's timing.
#[derive(Debug)]
pub enum RunEvent {
    Started(ExperimentId),
    /// Accuracy, size and per-layer error; the latency comes with [`RunEvent::Timed`].
    Done(ExperimentId, Box<ExperimentResult>),
    Failed(ExperimentId, Box<Failure>),
    /// The experiment's latency on each runtime, timed in rounds with the run's others.
    Timed(ExperimentId, Box<Timing>),
}

impl RunEvent {
    pub fn id(&self) -> ExperimentId {
        match self {
            RunEvent::Started(id)
            | RunEvent::Done(id, _)
            | RunEvent::Failed(id, _)
            | RunEvent::Timed(id, _) => *id,
        }
    }

    /// Records what this event says in `session` (by id: an experiment removed meanwhile is
    /// left alone); the experiment it changed, if one.
    pub fn record(self, session: &mut Session) -> Option<ExperimentId> {
        let id = self.id();
        let recorded = match self {
            RunEvent::Started(_) => false,
            RunEvent::Done(_, result) => session.record(id, *result),
            RunEvent::Failed(_, failure) => session.record(id, failure.into_result()),
            RunEvent::Timed(_, timing) => session.record_timing(id, *timing),
        };
        recorded.then_some(id)
    }
}

/// Why an experiment has no complete result.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A bug: the engine panicked inside this experiment (the others went on).
    #[error("internal error: {message} (please report it)")]
    Panicked { message: String },
    /// The experiment could not be done (a stage failed; the chain says which and why).
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// A failed experiment: the error, and what was measured before it (its size, its
/// quantization report, notes).
#[derive(Debug)]
pub struct Failure {
    pub error: ExperimentError,
    pub partial: ExperimentResult,
}

impl Failure {
    /// The result a session keeps: what was measured, with the error in words.
    pub fn into_result(self) -> ExperimentResult {
        ExperimentResult {
            error: Some(self.error.to_string()),
            ..self.partial
        }
    }
}

/// The float model, the data, and the float outputs per runtime (computed once, shared by
/// every experiment's comparison).
pub struct Workbench {
    pub float: pb::ModelProto,
    pub float_bytes: u64,
    pub dataset: Arc<Dataset>,
    /// The model's inputs, and the first sample bound to them (shapes for loading, the
    /// benchmark's input).
    pub inputs: Vec<InputSpec>,
    pub example: Vec<Feed>,
    /// What every result of this workbench is measured on.
    pub data: crate::session::DataStamp,
    float_outputs: HashMap<String, Outputs>,
    /// int8 activation ranges by [`calibration_key`]: a config that differs from an earlier
    /// one only in layers kept float, pins or recovery reuses its calibration.
    ranges: HashMap<String, quant::ActivationRanges>,
    notes: Vec<String>,
    /// The last model [`Workbench::model_of`] quantized again, by its config (a reference
    /// timed with one variant after another is quantized once).
    last_model: Option<(quant::QuantConfig, pb::ModelProto)>,
}

/// What an int8 calibration depends on: the config without the settings that only use its
/// ranges (layers kept float, pinned ranges, bias correction, AdaRound, the target's name).
pub fn calibration_key(config: &quant::QuantConfig) -> String {
    quant::QuantConfig {
        keep_float: vec![],
        pinned_ranges: Default::default(),
        bias_correction: None,
        adaround: false,
        target: quant::Target::Generic,
        ..config.clone()
    }
    .to_ron()
}

impl Workbench {
    /// `dataset` may be shared (a window keeps the one it shows, a job runs on it).
    pub fn new(
        float: pb::ModelProto,
        float_bytes: u64,
        dataset: impl Into<Arc<Dataset>>,
    ) -> Result<Self> {
        let dataset = dataset.into();
        let inputs = tensor::model_inputs(&float)?;
        let example = dataset.bound(0, &inputs)?.inputs;
        crate::jobs::checkpoint("prepare experiments")?;
        let data = crate::session::DataStamp::of(&dataset)?;
        Ok(Workbench {
            float,
            float_bytes,
            dataset,
            inputs,
            example,
            data,
            float_outputs: HashMap::new(),
            ranges: HashMap::new(),
            notes: vec![],
            last_model: None,
        })
    }

    /// Runs `experiments` one after another, reporting each through `on_event`, then times
    /// them together; an error from `on_event` (a session that cannot be saved) ends the run
    /// with it. Only cancellation and `on_event`'s errors are returned: an experiment's own
    /// failure, panics included, is its [`RunEvent::Failed`].
    pub fn run_experiments(
        &mut self,
        experiments: impl IntoIterator<Item = Experiment>,
        settings: &RunSettings,
        progress: &Progress,
        on_event: &mut dyn FnMut(RunEvent) -> Result<()>,
    ) -> Result<()> {
        self.run_and_retime(experiments, vec![], settings, progress, on_event)
    }

    /// [`Workbench::run_experiments`], timing `retime` (finished experiments: the float
    /// reference a run of variants is compared with, or everything for "Re-measure") in the
    /// same rounds.
    pub fn run_and_retime(
        &mut self,
        experiments: impl IntoIterator<Item = Experiment>,
        retime: Vec<Experiment>,
        settings: &RunSettings,
        progress: &Progress,
        on_event: &mut dyn FnMut(RunEvent) -> Result<()>,
    ) -> Result<()> {
        let mut settings = std::borrow::Cow::Borrowed(settings);
        if settings.backends.is_empty() {
            let (backends, note) = detect_backends(BackendSet::All, OrtOptions::default());
            self.notes.extend(note);
            settings.to_mut().backends = backends;
        }
        let mut timed = vec![];
        for experiment in experiments {
            let id = experiment.id;
            on_event(RunEvent::Started(id))?;
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.run_one(&experiment, &settings, progress)
            }));
            let event = match ran {
                Ok(Ok(Ok((result, model)))) => {
                    timed.push(timing::Entry::of(id, model, &result));
                    RunEvent::Done(id, Box::new(result))
                }
                Ok(Ok(Err(failure))) => RunEvent::Failed(id, Box::new(failure)),
                Ok(Err(cancelled)) => return Err(cancelled),
                Err(panic) => RunEvent::Failed(
                    id,
                    Box::new(Failure {
                        error: ExperimentError::Panicked {
                            message: jobs::panic_text(panic.as_ref()),
                        },
                        partial: self.fresh_result(&settings),
                    }),
                ),
            };
            on_event(event)?;
        }
        for e in retime {
            match self.model_of(&e, progress) {
                Ok(model) => timed.push(timing::Entry::of(e.id, model, &e.result)),
                Err(err) if jobs::is_cancelled(&err) => return Err(err),
                Err(err) => on_event(RunEvent::Timed(
                    e.id,
                    Box::new(Timing {
                        benches: vec![],
                        notes: vec![format!("latency not measured again: {err:#}")],
                    }),
                ))?,
            }
        }
        self.time(timed, &settings, progress, on_event)
    }

    /// Runs one experiment ([`Workbench::run_experiments`]) and returns the result it keeps (a
    /// failure's with its error), timed; `Err` only for cancellation.
    pub fn run_single(
        &mut self,
        experiment: Experiment,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<ExperimentResult> {
        let mut session = Session::new(Default::default(), None);
        let id = session.add(experiment.clone());
        let experiment = Experiment { id, ..experiment };
        self.run_experiments([experiment], settings, progress, &mut |event| {
            event.record(&mut session);
            Ok(())
        })?;
        session
            .remove(id)
            .map(|e| e.result)
            .context("the run reported no result")
    }

    /// What the runner noticed about the runs since the last call (a runtime not found).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    fn fresh_result(&self, settings: &RunSettings) -> ExperimentResult {
        ExperimentResult {
            data: Some(self.data.clone()),
            measured: Some(settings.measurement()),
            ..Default::default()
        }
    }

    /// One experiment: its result and the model measured (to be timed), or its failure; `Err`
    /// only for cancellation.
    fn run_one(
        &mut self,
        experiment: &Experiment,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<std::result::Result<(ExperimentResult, pb::ModelProto), Failure>> {
        let mut result = self.fresh_result(settings);
        match self.measure_all(experiment, settings, progress, &mut result) {
            Ok(model) => Ok(Ok((result, model))),
            Err(e) if jobs::is_cancelled(&e) => Err(e),
            Err(e) => Ok(Err(Failure {
                error: ExperimentError::Failed(e),
                partial: result,
            })),
        }
    }

    fn measure_all(
        &mut self,
        experiment: &Experiment,
        settings: &RunSettings,
        progress: &Progress,
        result: &mut ExperimentResult,
    ) -> Result<pb::ModelProto> {
        let model = match &experiment.config {
            None => {
                result.size_bytes = self.float_bytes;
                self.float.clone()
            }
            Some(config) => {
                progress.stage("quantizing", 1);
                let (q, report) = self
                    .quantize(config, progress)
                    .with_context(|| format!("quantizing ({})", config.label()))?;
                result.size_bytes = prost::Message::encoded_len(&q) as u64;
                if let Some(dir) = &settings.models_dir {
                    let path = keep_model(dir, experiment, &q)?;
                    result.model_path = Some(path.display().to_string());
                }
                result.quantize = Some(report);
                q
            }
        };
        for &backend in &settings.backends {
            progress.check()?;
            match self.evaluate(
                &model,
                experiment.config.is_none(),
                backend,
                settings,
                progress,
            ) {
                Ok(eval) => result.evals.push(eval),
                Err(e) if jobs::is_cancelled(&e) => return Err(e),
                Err(e) => result.notes.push(format!("{}: {e:#}", backend.name())),
            }
        }
        if result.evals.is_empty() {
            anyhow::bail!(
                "no runtime could run the model: {}",
                result.notes.join("; ")
            );
        }
        if let (Some(config), true) = (&experiment.config, settings.layer_samples > 0) {
            match self.layer_errors(&model, config, settings, progress) {
                Ok(layers) => result.layers = layers,
                Err(e) if jobs::is_cancelled(&e) => return Err(e),
                Err(e) => result.notes.push(format!("per-layer error: {e:#}")),
            }
        }
        Ok(model)
    }

    /// The runtime's description and `model`'s outputs over the evaluation samples.
    fn outputs_of(
        &self,
        model: &pb::ModelProto,
        backend: Backend,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<(String, Outputs)> {
        let runner = backend.load(model, &self.example, rayon::current_num_threads())?;
        let outputs = eval::collect_outputs(
            runner.as_ref(),
            &self.inputs,
            &self.dataset,
            settings.eval_limit,
            progress,
        )?;
        Ok((runner.describe(), outputs))
    }

    /// Makes sure the float outputs for `backend` are cached; returns the cache key.
    fn ensure_reference(
        &mut self,
        backend: Backend,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<String> {
        let key = reference_key(backend, settings);
        if !self.float_outputs.contains_key(&key) {
            let (_, outputs) = self
                .outputs_of(&self.float, backend, settings, progress)
                .context("the float model's outputs (the reference)")?;
            self.float_outputs.insert(key.clone(), outputs);
        }
        Ok(key)
    }

    /// `config`'s accuracy figures against float on `backend` over at most `limit` evaluation
    /// samples, with no benchmark and no result kept: the search ranks variants by it.
    pub fn score(
        &mut self,
        config: &quant::QuantConfig,
        backend: Backend,
        limit: Option<usize>,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<eval::EvalReport> {
        let settings = RunSettings {
            eval_limit: limit,
            ..settings.clone()
        };
        let (model, _) = self.quantize(config, progress)?;
        let (_, outputs) = self.outputs_of(&model, backend, &settings, progress)?;
        let key = self.ensure_reference(backend, &settings, progress)?;
        eval::score(
            &outputs,
            Some(&self.float_outputs[&key]),
            &self.dataset,
            settings.output.as_deref(),
        )
    }

    /// Quantizes the float model by `config`, reusing the calibration of an earlier config with
    /// the same [`calibration_key`].
    fn quantize(
        &mut self,
        config: &quant::QuantConfig,
        progress: &Progress,
    ) -> Result<(pb::ModelProto, quant::QuantizeReport)> {
        if config.mode != quant::Mode::Int8 {
            return quant::quantize(&self.float, config, Some(&self.dataset), progress);
        }
        let key = calibration_key(config);
        if let Some(known) = self.ranges.get(&key) {
            let ranges = quant::Ranges::Known(known, Some(&self.dataset));
            let (q, mut report) =
                quant::quantize_with(&self.float, config, Some(ranges), progress)?;
            report.notes.push(format!(
                "calibration reused: {} activation ranges of an earlier experiment with the same calibration settings",
                known.len()
            ));
            return Ok((q, report));
        }
        if !config.keep_float.is_empty() {
            // Layers kept float calibrate fewer tensors: the ranges kept for the others with this
            // key come from the whole plan (then this config reuses them as they would).
            let whole = quant::QuantConfig {
                keep_float: vec![],
                pinned_ranges: Default::default(),
                bias_correction: None,
                adaround: false,
                ..config.clone()
            };
            let (_, _, ranges) = quant::quantize_keeping_ranges(
                &self.float,
                &whole,
                Some(quant::Ranges::Calibrate(&self.dataset)),
                progress,
            )?;
            self.ranges.insert(key, ranges);
            return self.quantize(config, progress);
        }
        let (q, report, ranges) = quant::quantize_keeping_ranges(
            &self.float,
            config,
            Some(quant::Ranges::Calibrate(&self.dataset)),
            progress,
        )?;
        self.ranges.insert(key, ranges);
        Ok((q, report))
    }

    /// Per-layer error both ways against the float model as `config` prepares it; where the
    /// two cannot share one graph (subgraphs), the cumulative SQNR against the float model.
    fn layer_errors(
        &self,
        quantized: &pb::ModelProto,
        config: &quant::QuantConfig,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<Vec<eval::layers::LayerError>> {
        let both = quant::prepare_float(&self.float, config).and_then(|prepared| {
            eval::layers::analyse(
                quantized,
                &prepared.model,
                &self.dataset,
                settings.layer_samples,
                progress,
            )
        });
        match both {
            Ok(layers) => Ok(layers.into_iter().map(Into::into).collect()),
            Err(e) if jobs::is_cancelled(&e) => Err(e),
            Err(_) => eval::layers::per_layer_sqnr(
                quantized,
                &self.float,
                &self.dataset,
                settings.layer_samples,
                progress,
            ),
        }
    }

    /// `model`'s figures on `backend` (against the float reference, unless it is the float
    /// model, whose outputs become the reference).
    fn evaluate(
        &mut self,
        model: &pb::ModelProto,
        is_float: bool,
        backend: Backend,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<BackendEval> {
        let (runtime_name, outputs) = self
            .outputs_of(model, backend, settings, progress)
            .with_context(|| format!("evaluating on {}", backend.name()))?;
        let scored = settings.output.as_deref();
        let report = if is_float {
            eval::score(&outputs, None, &self.dataset, scored)?
        } else {
            let key = self.ensure_reference(backend, settings, progress)?;
            eval::score(
                &outputs,
                Some(&self.float_outputs[&key]),
                &self.dataset,
                scored,
            )?
        };
        if is_float {
            // The float experiment's outputs are the reference every later one compares with.
            self.float_outputs
                .insert(reference_key(backend, settings), outputs);
        }
        Ok(BackendEval {
            backend: backend.name().into(),
            runtime: runtime_name,
            report,
        })
    }
}

/// The float outputs a comparison on `backend` with `settings` needs: one per runtime (with its
/// options) and evaluation limit.
fn reference_key(backend: Backend, settings: &RunSettings) -> String {
    format!("{backend:?} {:?}", settings.eval_limit)
}

/// Runs the experiments of `session` with the given ids (those it still has), recording each
/// result in the session by id as it finishes; `after_each` sees the session then (to save it,
/// to redraw). Stops at cancellation with what finished kept.
pub fn run_ids(
    session: &mut Session,
    bench: &mut Workbench,
    ids: &[ExperimentId],
    settings: &RunSettings,
    progress: &Progress,
    mut after_each: impl FnMut(&Session, ExperimentId) -> Result<()>,
) -> Result<()> {
    let experiments: Vec<Experiment> = ids
        .iter()
        .filter_map(|&id| session.get(id).cloned())
        .collect();
    run_recording(
        session,
        bench,
        experiments,
        vec![],
        settings,
        progress,
        &mut after_each,
    )
}

/// Times the finished experiments of `session` with the given ids again, together in rounds
/// ("Re-measure"; the search's final comparison of its fastest candidates); each timing is
/// recorded by id and `after_each` sees the session then.
pub fn retime(
    session: &mut Session,
    bench: &mut Workbench,
    ids: &[ExperimentId],
    settings: &RunSettings,
    progress: &Progress,
    mut after_each: impl FnMut(&Session, ExperimentId) -> Result<()>,
) -> Result<()> {
    let finished: Vec<Experiment> = ids
        .iter()
        .filter_map(|&id| session.get(id))
        .filter(|e| e.has_figures())
        .cloned()
        .collect();
    run_recording(
        session,
        bench,
        vec![],
        finished,
        settings,
        progress,
        &mut after_each,
    )
}

/// [`Workbench::run_and_retime`], each event recorded in `session` by id.
fn run_recording(
    session: &mut Session,
    bench: &mut Workbench,
    experiments: Vec<Experiment>,
    retimed: Vec<Experiment>,
    settings: &RunSettings,
    progress: &Progress,
    after_each: &mut dyn FnMut(&Session, ExperimentId) -> Result<()>,
) -> Result<()> {
    bench.run_and_retime(
        experiments,
        retimed,
        settings,
        progress,
        &mut |event| match event.record(session) {
            Some(id) => after_each(session, id),
            None => Ok(()),
        },
    )
}

/// Runs every experiment of `session` that has no result yet ([`run_ids`]).
pub fn run_pending(
    session: &mut Session,
    bench: &mut Workbench,
    settings: &RunSettings,
    progress: &Progress,
    after_each: impl FnMut(&Session, ExperimentId) -> Result<()>,
) -> Result<()> {
    let pending: Vec<ExperimentId> = session
        .experiments
        .iter()
        .filter(|e| !e.is_done())
        .map(|e| e.id)
        .collect();
    run_ids(session, bench, &pending, settings, progress, after_each)
}

/// Writes an experiment's quantized model into `dir` as `ID-NAME-HASH.onnx`: the content hash
/// in the name means two sessions sharing a folder (or a session started afresh, whose ids
/// begin again at 1) never overwrite each other's files with other contents.
pub fn keep_model(dir: &Path, experiment: &Experiment, model: &pb::ModelProto) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let bytes = onnx::encode_model(model);
    let hash = crate::fileio::sha256_hex(&bytes);
    let path = crate::paths::absolute(&dir.join(format!(
        "{:02}-{}-{}.onnx",
        experiment.id,
        slug(&experiment.name),
        &hash[..10]
    )));
    if bytes.len() as u64 <= onnx::SINGLE_FILE_LIMIT {
        crate::fileio::write_atomic(&path, &bytes)?;
    } else {
        onnx::write_model(&path, model, onnx::SINGLE_FILE_LIMIT)?;
    }
    Ok(path)
}

/// A file-name-safe form of an experiment name.
pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}
