//! The runner: the one loop that runs experiments (quantize, evaluate on each runtime, benchmark,
//! per-layer error), by id. The
//! CLI's `sweep`, the GUI's jobs and the tests all come through here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::bench::{self, BenchSettings};
use crate::data::Dataset;
use crate::eval::{self, Outputs};
use crate::jobs::{self, Progress};
use crate::onnx::{self, pb};
use crate::quant;
use crate::runtime::Backend;
use crate::session::{BackendEval, Experiment, ExperimentResult, Session};
use crate::tensor::{self, Feed, InputSpec};

#[derive(Clone, Debug)]
pub struct RunSettings {
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

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            backends: vec![Backend::Tract],
            bench: BenchSettings::default(),
            eval_limit: None,
            layer_samples: 16,
            models_dir: None,
            output: None,
            remote: None,
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
        })
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
        let key = format!("{backend:?} {:?}", settings.eval_limit);
        if !self.float_outputs.contains_key(&key) {
            let (_, outputs) = self.outputs_of(&self.float, backend, settings, progress)?;
            self.float_outputs.insert(key.clone(), outputs);
        }
        Ok(key)
    }

    /// Runs one experiment, filling its result. Failures of the experiment itself are recorded
    /// in `result.error`; only cancellation is returned as an error.
    pub fn run(
        &mut self,
        experiment: &mut Experiment,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<()> {
        self.run_given(experiment, None, settings, progress)
    }

    /// [`Workbench::run`] on a model quantized elsewhere by the experiment's config (variants
    /// that reuse another quantization's calibration).
    pub fn run_model(
        &mut self,
        experiment: &mut Experiment,
        quantized: pb::ModelProto,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<()> {
        self.run_given(experiment, Some(quantized), settings, progress)
    }

    fn run_given(
        &mut self,
        experiment: &mut Experiment,
        given: Option<pb::ModelProto>,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<()> {
        experiment.result = ExperimentResult {
            data: Some(self.data.clone()),
            ..Default::default()
        };
        match self.run_inner(experiment, given, settings, progress) {
            Ok(()) => Ok(()),
            Err(e) if jobs::is_cancelled(&e) => Err(e),
            Err(e) => {
                experiment.result.error = Some(format!("{e:#}"));
                Ok(())
            }
        }
    }

    fn run_inner(
        &mut self,
        experiment: &mut Experiment,
        given: Option<pb::ModelProto>,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<()> {
        let model = match (&experiment.config, given) {
            (Some(_), Some(q)) => {
                experiment.result.size_bytes = prost::Message::encoded_len(&q) as u64;
                q
            }
            (None, _) => {
                experiment.result.size_bytes = self.float_bytes;
                self.float.clone()
            }
            (Some(config), None) => {
                progress.stage("quantizing", 1);
                let (q, report) = self.quantize(config, progress)?;
                experiment.result.size_bytes = prost::Message::encoded_len(&q) as u64;
                if let Some(dir) = &settings.models_dir {
                    let path = keep_model(dir, experiment, &q)?;
                    experiment.result.model_path = Some(path.display().to_string());
                }
                experiment.result.quantize = Some(report);
                q
            }
        };
        for &backend in &settings.backends {
            progress.check()?;
            let measured = self.measure(
                &model,
                experiment.config.is_none(),
                backend,
                settings,
                progress,
            );
            match measured {
                Ok((eval, bench)) => {
                    experiment.result.evals.push(eval);
                    match bench {
                        Ok(bench) => experiment.result.benches.push(bench),
                        Err(e) if jobs::is_cancelled(&e) => return Err(e),
                        // The accuracy stands without a latency (a device out of reach).
                        Err(e) => experiment
                            .result
                            .notes
                            .push(format!("{}: {e:#}", backend.name())),
                    }
                }
                Err(e) if jobs::is_cancelled(&e) => return Err(e),
                Err(e) => experiment
                    .result
                    .notes
                    .push(format!("{}: {e:#}", backend.name())),
            }
        }
        if experiment.result.evals.is_empty() {
            anyhow::bail!(
                "no runtime could run the model: {}",
                experiment.result.notes.join("; ")
            );
        }
        if let (Some(config), true) = (&experiment.config, settings.layer_samples > 0) {
            match self.layer_errors(&model, config, settings, progress) {
                Ok(layers) => experiment.result.layers = layers,
                Err(e) if jobs::is_cancelled(&e) => return Err(e),
                Err(e) => experiment
                    .result
                    .notes
                    .push(format!("per-layer error: {e:#}")),
            }
        }
        Ok(())
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

    fn measure(
        &mut self,
        model: &pb::ModelProto,
        is_float: bool,
        backend: Backend,
        settings: &RunSettings,
        progress: &Progress,
    ) -> Result<(BackendEval, Result<bench::BenchReport>)> {
        let (runtime_name, outputs) = self.outputs_of(model, backend, settings, progress)?;
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
            self.float_outputs.insert(format!("{backend:?}"), outputs);
        }
        let bench = match &settings.remote {
            Some(remote) => {
                progress.stage(&format!("benchmarking on {remote}"), 1);
                bench::remote::benchmark_model(
                    remote,
                    model,
                    &self.example,
                    backend,
                    &settings.bench,
                )
            }
            None => {
                let size = onnx::encode_model(model).len() as u64;
                bench::benchmark(
                    model,
                    size,
                    backend,
                    &self.example,
                    &settings.bench,
                    progress,
                )
            }
        }
        .context("benchmark");
        Ok((
            BackendEval {
                backend: backend.name().into(),
                runtime: runtime_name,
                report,
            },
            bench,
        ))
    }
}

/// Runs every experiment of `session` that has no result yet; `after_each` sees the session
/// after each experiment (to save it, to redraw). Stops at cancellation with what is done kept.
pub fn run_pending(
    session: &mut Session,
    bench: &mut Workbench,
    settings: &RunSettings,
    progress: &Progress,
    mut after_each: impl FnMut(&Session, usize) -> Result<()>,
) -> Result<()> {
    for index in 0..session.experiments.len() {
        if session.experiments[index].is_done() {
            continue;
        }
        let mut experiment = session.experiments[index].clone();
        bench.run(&mut experiment, settings, progress)?;
        session.experiments[index] = experiment;
        after_each(session, index)?;
    }
    Ok(())
}

/// Writes an experiment's quantized model into `dir` as `ID-NAME-HASH.onnx`: the content hash
/// in the name means two sessions sharing a folder (or a session started afresh, whose ids
/// begin again at 1) never overwrite each other's files with other contents.
pub fn keep_model(dir: &Path, experiment: &Experiment, model: &pb::ModelProto) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let bytes = onnx::encode_model(model);
    let hash = crate::session::sha256_hex(&bytes);
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
