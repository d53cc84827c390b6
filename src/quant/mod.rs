//! Quantization: config, arithmetic, calibration and the graph rewrite, tied together by
//! [`quantize`], which turns a float ONNX model into a quantized one in memory.

pub mod adaround;
pub mod bias_correction;
pub mod calibrate;
pub mod config;
pub mod equalize;
pub mod inspect;
pub mod math;
pub mod patterns;
pub mod prepare;
pub mod rewrite;

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub use config::{
    ActivationType, BiasCorrection, Calibration, Int4Storage, Mode, QuantConfig, Symmetry, Target,
    DEFAULT_CALIBRATION_SAMPLES,
};

use crate::data::Dataset;
use crate::jobs::Progress;
use crate::onnx::{self, pb};

/// What a quantization did: the figures `quantize --json` prints.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct QuantizeReport {
    pub mode: String,
    pub config: QuantConfig,
    pub opset_before: i64,
    pub opset: i64,
    /// Why the opset is what it is, and what the graph preparation changed.
    pub notes: Vec<String>,
    pub counts: rewrite::RewriteCounts,
    pub calibration_samples: usize,
    pub calibration_seconds: f64,
    /// The runtime that ran the float model during calibration.
    pub calibration_runtime: Option<String>,
    pub rewrite_seconds: f64,
    pub size_before: u64,
    pub size_after: u64,
}

/// int8: every activation range a quantization used, by tensor (to quantize variants of its
/// config that keep more layers float, without calibrating again).
pub type ActivationRanges = HashMap<String, (f32, f32)>;

/// The opset a config needs, and why.
pub fn required_opset(config: &QuantConfig, model_opset: i64) -> (i64, String) {
    let (need, why) = match config.mode {
        Mode::Fp16 => (model_opset.max(7), "Cast"),
        Mode::Int8Dynamic => (11, "DynamicQuantizeLinear"),
        Mode::Int4Weights if config.int4_block_size.is_some() => (21, "blocked DequantizeLinear"),
        Mode::Int4Weights if config.int4_storage == Int4Storage::OnnxInt4 => (21, "INT4 tensors"),
        Mode::Int8 if !config.int16_activations.is_empty() => {
            (21, "16-bit QuantizeLinear/DequantizeLinear")
        }
        _ if config.per_channel => (13, "per-channel QuantizeLinear/DequantizeLinear"),
        _ => (
            13,
            "QuantizeLinear/DequantizeLinear with opset-13 semantics",
        ),
    };
    let target = config.opset.unwrap_or(model_opset).max(need);
    (target, format!("{why} needs opset {need}"))
}

/// Where `int8`'s activation ranges come from.
#[derive(Clone, Copy)]
pub enum Ranges<'a> {
    /// Calibration: the float model run over the dataset's calibration split.
    Calibrate(&'a Dataset),
    /// Given per tensor name (the rewrite exercised without running a model: fuzzing, tests).
    Given(&'a dyn Fn(&str) -> (f32, f32)),
    /// Known from an earlier quantization of the same model with a config that differs only
    /// in layers kept float (`QuantizeReport::activation_ranges`); tensors without a range stay
    /// float (as calibration left them). The dataset, when given, serves bias correction.
    Known(&'a HashMap<String, (f32, f32)>, Option<&'a Dataset>),
}

/// Quantizes `model` (left untouched) by `config`; `dataset` is needed by `int8` only.
pub fn quantize(
    model: &pb::ModelProto,
    config: &QuantConfig,
    dataset: Option<&Dataset>,
    progress: &Progress,
) -> Result<(pb::ModelProto, QuantizeReport)> {
    quantize_with(model, config, dataset.map(Ranges::Calibrate), progress)
}

/// The float model as the rewrite sees it: opset raised to what `config` needs, initializer
/// inputs dropped, constants and weight reshapes folded, BatchNormalization folded (int8 and
/// equalization), convolutions equalized (`cle`). It computes what `model` computes, and its
/// tensors carry the names the quantized model's do: the reference for per-layer error.
pub struct Prepared {
    pub model: pb::ModelProto,
    pub notes: Vec<String>,
    pub opset_before: i64,
    pub opset: i64,
}

pub fn prepare_float(model: &pb::ModelProto, config: &QuantConfig) -> Result<Prepared> {
    let opset_before = onnx::default_opset(model);
    let (opset, why) = required_opset(config, opset_before);
    if let Some(asked) = config.opset {
        if asked < opset {
            bail!("opset: {asked} is too old for these settings ({why})");
        }
    }
    let mut out = model.clone();
    let mut notes = vec![];
    if opset > opset_before {
        notes.push(format!(
            "opset raised from {opset_before} to {opset}: {why}"
        ));
    }
    notes.extend(onnx::opset::upgrade(&mut out, opset)?.into_iter().skip(1));
    // IR 3 requires every initializer to be a graph input too; from IR 4 they need not be.
    out.ir_version = out.ir_version.max(onnx::ir_version_for_opset(opset)).max(4);
    onnx::opset::drop_initializer_inputs(&mut out);
    rewrite::check_keep_float(onnx::graph(&out), config)?;
    // Folding BatchNormalization is what lets an int8 kernel fuse it; for weight-only modes it
    // only unbalances the channels of each weight (ruinous for per-tensor scales).
    notes.extend(prepare::prepare(
        &mut out,
        config.mode == Mode::Int8 || config.cle,
    )?);
    if config.cle {
        let done = equalize::equalize(onnx::graph_mut(&mut out), 4)?;
        notes.push(match done {
            equalize::Equalized { pairs: 0, .. } => {
                "cross-layer equalization: no pair of convolutions joined by ReLU, ReLU6, MaxPool or nothing"
                    .into()
            }
            equalize::Equalized { pairs, relu6: 0 } => {
                format!("cross-layer equalization: {pairs} pairs of convolutions rescaled")
            }
            equalize::Equalized { pairs, relu6 } => format!(
                "cross-layer equalization: {pairs} pairs of convolutions rescaled; {relu6} ReLU6 between them became ReLU and a Min with one bound per channel (the float model computes the same; each adds a Min and a Q/DQ pair)"
            ),
        });
    }
    Ok(Prepared {
        model: out,
        notes,
        opset_before,
        opset,
    })
}

/// `config` as the rewrite applies it to the prepared `graph`: with `float_patterns`, the
/// nodes inside normalisation and activation units, and (static int8) the elementwise Add and
/// Mul that no int8 kernel reads, added to `keep_float`; with a note saying what was kept.
pub fn effective_config(
    graph: &pb::GraphProto,
    config: &QuantConfig,
) -> (QuantConfig, Option<String>) {
    if !config.float_patterns || config.mode == Mode::Fp16 {
        return (config.clone(), None);
    }
    let units = patterns::find_units(graph);
    let names = patterns::node_names(graph, &units);
    let mut effective = config.clone();
    let mut said = vec![];
    if !units.is_empty() {
        said.push(format!(
            "kept float inside: {} ({} nodes)",
            patterns::summary(&units),
            names.len()
        ));
        effective.keep_float.extend(names.iter().cloned());
    }
    if config.mode == Mode::Int8 {
        // Whether an int8 kernel reads an Add is decided without the layers kept float by
        // name (by the user, or a search's stage 2): keeping a Conv float does not also move
        // the residual Add before it out of int8, which would change what that choice measures.
        let by_pattern = QuantConfig {
            keep_float: names,
            ..config.clone()
        };
        let unread = rewrite::elementwise_without_int8_reader(graph, &by_pattern);
        if !unread.is_empty() {
            said.push(format!(
                "{} elementwise Add/Mul kept float: no int8 kernel reads them",
                unread.len()
            ));
            effective.keep_float.extend(unread);
        }
    }
    effective.keep_float.sort();
    effective.keep_float.dedup();
    let note = (!said.is_empty()).then(|| said.join("; "));
    (effective, note)
}

/// What calibration did, for the report.
#[derive(Default)]
struct Calibrated {
    samples: usize,
    seconds: f64,
    runtime: Option<String>,
    /// Every activation range the rewrite used (int8).
    ranges: HashMap<String, (f32, f32)>,
}

/// [`quantize`], with `int8`'s ranges from `ranges`.
pub fn quantize_with(
    model: &pb::ModelProto,
    config: &QuantConfig,
    ranges: Option<Ranges>,
    progress: &Progress,
) -> Result<(pb::ModelProto, QuantizeReport)> {
    quantize_keeping_ranges(model, config, ranges, progress).map(|(m, r, _)| (m, r))
}

/// [`quantize_with`], also returning the activation ranges it used.
pub fn quantize_keeping_ranges(
    model: &pb::ModelProto,
    asked: &QuantConfig,
    ranges: Option<Ranges>,
    progress: &Progress,
) -> Result<(pb::ModelProto, QuantizeReport, ActivationRanges)> {
    crate::jobs::checkpoint("quantize")?;
    asked.validate()?;
    let size_before = onnx::encode_model(model).len() as u64;
    progress.stage("preparing graph", 1);
    let Prepared {
        model: mut prepared,
        mut notes,
        opset_before,
        opset,
    } = prepare_float(model, asked).context("preparing the graph")?;
    progress.check()?;
    // The config as applied to this graph; the model and the report record the one asked.
    let (effective, kept) = effective_config(onnx::graph(&prepared), asked);
    notes.extend(kept);
    let config = &effective;
    let started = Instant::now();
    let mut out = prepared.clone();
    let nearest = rewrite::Roundings::new();
    let (mut counts, calibrated) = rewrite_prepared(
        &mut out, config, opset, ranges, &nearest, progress, &mut notes,
    )
    .with_context(|| format!("rewriting the graph ({})", config.mode.cli_name()))?;
    let data = || match ranges {
        Some(Ranges::Calibrate(dataset)) | Some(Ranges::Known(_, Some(dataset))) => Some(dataset),
        _ => None,
    };
    let mut roundings = rewrite::Roundings::new();
    // What re-quantizes the prepared model with the ranges found: the recovery steps use it.
    let requantize = |float: &pb::ModelProto, roundings: &rewrite::Roundings| {
        let mut q = float.clone();
        let mut ignored = vec![];
        rewrite_prepared(
            &mut q,
            config,
            opset,
            Some(Ranges::Known(&calibrated.ranges, None)),
            roundings,
            progress,
            &mut ignored,
        )
        .map(|(c, _)| (q, c))
    };
    if config.adaround {
        let dataset = data().context("adaround: needs calibration data to learn the roundings")?;
        let qtype = match config.mode {
            Mode::Int4Weights => math::QType::Int4,
            _ => config.int8_weight_type(),
        };
        progress.check()?;
        let learned = adaround::learn(&prepared, &out, qtype, dataset, config.samples, progress)
            .context("AdaRound: learning the roundings")?;
        notes.push(learned.note);
        roundings = learned.roundings;
        (out, counts) = requantize(&prepared, &roundings)
            .context("rewriting the graph with the learned roundings")?;
    }
    if let Some(method) = config.bias_correction {
        let dataset = data()
            .context("bias_correction: needs calibration data to measure the layers' errors")?;
        let corrected = bias_correction::correct(
            &mut prepared,
            &mut out,
            method,
            dataset,
            config.samples,
            progress,
            &mut |float: &pb::ModelProto| requantize(float, &roundings),
        )
        .with_context(|| format!("bias correction ({method:?})"))?;
        counts = corrected.counts.unwrap_or(counts);
        notes.push(corrected.note);
    }
    quantize_embedding_tables(&mut out, config, &mut counts, &mut notes)?;
    let rewrite_seconds = started.elapsed().as_secs_f64() - calibrated.seconds;
    stamp(&mut out, asked);
    let report = QuantizeReport {
        mode: config.mode.cli_name().to_string(),
        config: asked.clone(),
        opset_before,
        opset,
        notes,
        counts,
        calibration_samples: calibrated.samples,
        calibration_seconds: calibrated.seconds,
        calibration_runtime: calibrated.runtime,
        rewrite_seconds,
        size_before,
        size_after: onnx::encode_model(&out).len() as u64,
    };
    Ok((out, report, calibrated.ranges))
}

/// The embedding tables read by Gather, on int8 with one scale per row (every mode but fp16).
fn quantize_embedding_tables(
    out: &mut pb::ModelProto,
    config: &QuantConfig,
    counts: &mut rewrite::RewriteCounts,
    notes: &mut Vec<String>,
) -> Result<()> {
    if config.mode == Mode::Fp16 {
        return Ok(());
    }
    let tables = rewrite::quantize_embeddings(onnx::graph_mut(out), config)
        .context("quantizing the embedding tables")?;
    if tables > 0 {
        notes.push(format!(
            "{tables} embedding tables read by Gather: int8 weights, one scale per row"
        ));
        counts.weights += tables;
    }
    Ok(())
}

/// Records in the model's metadata which quantbench made it, with which config.
fn stamp(out: &mut pb::ModelProto, config: &QuantConfig) {
    out.metadata_props
        .retain(|p| !p.key.starts_with("quantbench."));
    out.metadata_props.push(pb::StringStringEntryProto {
        key: "quantbench.version".into(),
        value: env!("CARGO_PKG_VERSION").into(),
    });
    out.metadata_props.push(pb::StringStringEntryProto {
        key: "quantbench.config".into(),
        value: config.to_ron(),
    });
}

/// The rewrite of a prepared float model (`out`, edited in place) by `config`'s mode.
fn rewrite_prepared(
    out: &mut pb::ModelProto,
    config: &QuantConfig,
    opset: i64,
    ranges: Option<Ranges>,
    roundings: &rewrite::Roundings,
    progress: &Progress,
    notes: &mut Vec<String>,
) -> Result<(rewrite::RewriteCounts, Calibrated)> {
    let mut info = Calibrated::default();
    let counts = match config.mode {
        Mode::Fp16 => {
            let (counts, out_of_range) = rewrite::convert_fp16(onnx::graph_mut(out), config)?;
            if !out_of_range.is_empty() {
                notes.push(format!(
                    "{} tensors hold values beyond the float16 range (±65504) and stay float: {}",
                    out_of_range.len(),
                    out_of_range.join(", ")
                ));
            }
            counts
        }
        Mode::Int8Dynamic => rewrite::quantize_dynamic(onnx::graph_mut(out), config)?,
        Mode::Int8Weights | Mode::Int4Weights => {
            let as_onnx = rewrite::int4_as_onnx(config, opset);
            if config.mode == Mode::Int4Weights {
                notes.push(if as_onnx {
                    "int4 weights stored as ONNX INT4 (opset 21); tract cannot load INT4, ONNX Runtime can".into()
                } else {
                    "int4 weights stored in int8 tensors (values -8..7); ONNX INT4 storage needs opset 21 (--opset 21)".into()
                });
            }
            rewrite::quantize_weights_only(onnx::graph_mut(out), config, as_onnx, roundings)?
        }
        Mode::Int8 => {
            let source = ranges
                .context("int8 needs calibration data: give a dataset (--data DATASET.ron)")?;
            let types = prepare::model_tensor_types(out);
            let mut plan = rewrite::plan_activations(onnx::graph(out), config, &types);
            let tensors = plan.calibrated();
            if tensors.is_empty() {
                bail!(
                    "no activation to quantize: none of the ops {:?} occurs in the model",
                    config.ops
                );
            }
            let mut ranges: HashMap<String, (f32, f32)> = match source {
                Ranges::Given(range_of) => {
                    tensors.iter().map(|t| (t.clone(), range_of(t))).collect()
                }
                Ranges::Known(known, _) => {
                    plan.drop_tensors(|t| !known.contains_key(t));
                    known.clone()
                }
                Ranges::Calibrate(dataset) => {
                    let (ranges, calibrated) = calibrated_ranges(
                        out, config, &mut plan, &tensors, dataset, progress, notes,
                    )
                    .with_context(|| {
                        format!(
                            "calibrating {} activations on {}",
                            tensors.len(),
                            dataset.path.display()
                        )
                    })?;
                    info = calibrated;
                    ranges
                }
            };
            // What calibration found, before pins and sharing (a variant of this config
            // reuses it and applies its own).
            info.ranges = ranges.clone();
            let calibrated = plan.calibrated();
            for (t, &range) in &config.pinned_ranges {
                if !calibrated.contains(t) {
                    bail!(
                        "pinned_ranges: '{t}' is not an activation int8 calibrates here (`quantbench calib MODEL --data D` lists them)"
                    );
                }
                ranges.insert(t.clone(), range);
            }
            rewrite::share_concat_ranges(onnx::graph(out), config, &plan, &mut ranges);
            progress.stage("rewriting graph", 1);
            rewrite::insert_qdq(onnx::graph_mut(out), config, &plan, &ranges, roundings)?
        }
    };
    Ok((counts, info))
}

/// int8's ranges from calibration: the float model run over the calibration samples, tensors
/// whose statistics cannot be quantized (NaN, attention masks) dropped from `plan` with a note,
/// each range chosen by the config's method (clamped where every consumer saturates).
fn calibrated_ranges(
    out: &pb::ModelProto,
    config: &QuantConfig,
    plan: &mut rewrite::ActivationPlan,
    tensors: &[String],
    dataset: &Dataset,
    progress: &Progress,
    notes: &mut Vec<String>,
) -> Result<(ActivationRanges, Calibrated)> {
    let calibration_start = Instant::now();
    let calibrated = calibrate::calibrate(
        out,
        tensors,
        dataset,
        config.samples,
        config.calibration,
        progress,
    )?;
    let available = dataset.indices(crate::data::Purpose::Calibration)?.len();
    let info = Calibrated {
        samples: available.min(config.samples),
        seconds: calibration_start.elapsed().as_secs_f64(),
        runtime: Some(calibrated.runtime.clone()),
        ranges: HashMap::new(),
    };
    if available < config.samples {
        notes.push(format!(
            "{} calibration samples asked, the data has {available}: calibrated on {available}",
            config.samples
        ));
    }
    let unfit: HashMap<&str, String> = calibrated
        .stats
        .iter()
        .filter_map(|(name, s)| s.unfit_reason().map(|r| (name.as_str(), r)))
        .collect();
    let mut unfit_names: Vec<&&str> = unfit.keys().collect();
    unfit_names.sort();
    for name in unfit_names {
        notes.push(format!(
            "'{name}' kept float: calibration saw {}",
            unfit[*name]
        ));
    }
    plan.drop_tensors(|t| unfit.contains_key(t));
    let qtype = calibrate::activation_qtype(config.activations);
    let saturation = rewrite::saturation_intervals(onnx::graph(out), plan);
    // Entropy and MSE searches cost milliseconds per tensor: spread them over workers.
    use rayon::prelude::*;
    let ranges = calibrated
        .stats
        .par_iter()
        .filter(|(name, _)| !unfit.contains_key(name.as_str()))
        .map(|(name, s)| {
            (
                name.clone(),
                s.range_within(
                    config.calibration,
                    qtype,
                    config.activations_symmetric(),
                    saturation.get(name).copied(),
                ),
            )
        })
        .collect();
    Ok((ranges, info))
}
