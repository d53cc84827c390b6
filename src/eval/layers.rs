//! Per-layer error: run the float model and the quantized one on the same inputs with the
//! quantized activations exposed, and measure the SQNR of each against its float counterpart.
//!
//! The quantized model's value for tensor `t` is the output of the DequantizeLinear that
//! follows `QuantizeLinear(t)`: what the next layer sees, carrying all error accumulated up to
//! and including `t`'s own quantization. Tensors are matched by their ONNX names, which the
//! rewrite keeps (taps are chosen before tract optimises, so the names hold).

use std::collections::HashMap;

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::metrics;
use crate::data::{Dataset, Purpose};
use crate::jobs::Progress;
use crate::onnx::{self, pb, GraphIndex};
use crate::runtime::TractModel;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerError {
    /// The float tensor's name.
    pub tensor: String,
    /// Op type of the node producing it (`input` for a graph input).
    pub op_type: String,
    /// The node producing it in the prepared float model (what `keep_float` names).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Cumulative SQNR (the whole model quantized).
    #[serde(with = "crate::eval::figure")]
    pub sqnr_db: f64,
    /// Every metric, both ways, where [`analyse`] measured them (sessions from before it hold
    /// the SQNR only).
    #[serde(default)]
    pub cumulative: Option<LayerMetrics>,
    #[serde(default)]
    pub isolated: Option<LayerMetrics>,
}

impl From<LayerReport> for LayerError {
    fn from(r: LayerReport) -> Self {
        LayerError {
            sqnr_db: r.cumulative.sqnr_db,
            tensor: r.tensor,
            op_type: r.op_type,
            node: r.node,
            cumulative: Some(r.cumulative),
            isolated: Some(r.isolated),
        }
    }
}

/// (float tensor, the quantized model's tensor holding its value, producing op) in graph order:
/// every float activation the two graphs share by name; where the quantized graph quantizes it,
/// the output of its DequantizeLinear (what the next layer sees).
fn tapped_pairs(
    quantized: &pb::ModelProto,
    float: &pb::ModelProto,
) -> Vec<(String, String, String)> {
    let q_graph = onnx::graph(quantized);
    let q_index = GraphIndex::new(q_graph);
    let f_graph = onnx::graph(float);
    let types = crate::quant::prepare::model_tensor_types(float);
    let is_float =
        |t: &str| types.get(t).copied().unwrap_or(1) == pb::tensor_proto::DataType::Float as i32;
    let dequantized = |t: &str| -> Option<String> {
        q_index
            .consumers_of(t)
            .iter()
            .map(|&i| &q_graph.node[i])
            .find(|n| n.op_type == "QuantizeLinear")
            .and_then(|q| {
                q_index
                    .consumers_of(&q.output[0])
                    .iter()
                    .map(|&i| &q_graph.node[i])
                    .find(|n| n.op_type == "DequantizeLinear")
                    .map(|d| d.output[0].clone())
            })
    };
    let mut pairs = vec![];
    for input in onnx::real_inputs(f_graph) {
        if let Some(d) = dequantized(&input.name) {
            pairs.push((input.name.clone(), d, "input".to_string()));
        }
    }
    for node in &f_graph.node {
        for t in node.output.iter().filter(|t| !t.is_empty() && is_float(t)) {
            if !q_index.producer.contains_key(t) {
                continue;
            }
            let tapped = dequantized(t).unwrap_or_else(|| t.clone());
            pairs.push((t.clone(), tapped, node.op_type.clone()));
        }
    }
    pairs
}

/// SQNR per shared activation over up to `samples` evaluation samples.
pub fn per_layer_sqnr(
    quantized: &pb::ModelProto,
    float: &pb::ModelProto,
    dataset: &Dataset,
    samples: usize,
    progress: &Progress,
) -> Result<Vec<LayerError>> {
    crate::jobs::checkpoint("per-layer error")?;
    let pairs = tapped_pairs(quantized, float);
    if pairs.is_empty() {
        return Ok(vec![]);
    }
    let indices = dataset.samples_of(Purpose::Evaluation, Some(samples.max(1)))?;
    let inputs = crate::tensor::model_inputs(float)?;
    let example = dataset.bound(indices[0], &inputs)?.inputs;
    let float_names: Vec<String> = pairs.iter().map(|p| p.0.clone()).collect();
    let quant_names: Vec<String> = pairs.iter().map(|p| p.1.clone()).collect();
    let float_run =
        TractModel::load(float, &example, Some(&float_names)).context("float model with taps")?;
    let quant_run = TractModel::load(quantized, &example, Some(&quant_names))
        .context("quantized model with taps")?;
    progress.stage("per-layer error", indices.len() as u64);
    let sums: Vec<(f64, f64)> = indices
        .par_iter()
        .map(|&i| -> Result<Vec<(f64, f64)>> {
            progress.check()?;
            let sample = dataset.bound(i, &inputs)?;
            let f = float_run.run(&sample.inputs)?;
            let q = quant_run.run(&sample.inputs)?;
            progress.step();
            Ok(f.iter()
                .zip(&q)
                .map(|(a, b)| {
                    let mut s = (0.0, 0.0);
                    for (&x, &y) in a.iter().zip(b) {
                        s.0 += x as f64 * x as f64;
                        s.1 += (x - y) as f64 * (x - y) as f64;
                    }
                    s
                })
                .collect())
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .reduce(|mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                x.0 += y.0;
                x.1 += y.1;
            }
            a
        })
        .unwrap_or_default();
    Ok(pairs
        .into_iter()
        .zip(sums)
        .map(|((tensor, _, op_type), (signal, noise))| LayerError {
            tensor,
            op_type,
            node: String::new(),
            sqnr_db: metrics::sqnr_db(signal, noise),
            cumulative: None,
            isolated: None,
        })
        .collect())
}

/// Layer errors by tensor name, for aligning several experiments into heatmap rows.
pub fn by_tensor(layers: &[LayerError]) -> HashMap<&str, f64> {
    layers
        .iter()
        .map(|l| (l.tensor.as_str(), l.sqnr_db))
        .collect()
}

/// The error of one quantized tensor against its float value, over the samples compared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerMetrics {
    #[serde(with = "crate::eval::figure")]
    pub sqnr_db: f64,
    #[serde(with = "crate::eval::figure")]
    pub cosine: f64,
    /// RMS error over RMS float value.
    #[serde(with = "crate::eval::figure")]
    pub relative_rmse: f64,
    #[serde(with = "crate::eval::figure")]
    pub max_abs_error: f64,
    /// RMS error over the tensor's quantization step (TensorFlow Lite's `rmse/scale`): about
    /// 1/√12 ≈ 0.289 when the only error is rounding to that step.
    #[serde(default, with = "crate::eval::figure::option")]
    pub rmse_over_scale: Option<f64>,
}

impl LayerMetrics {
    fn of(s: &crate::taps::TapStats, scale: Option<f32>) -> Self {
        let n = s.count.max(1) as f64;
        LayerMetrics {
            sqnr_db: metrics::sqnr_db(s.signal, s.noise),
            cosine: if s.signal > 0.0 && s.candidate > 0.0 {
                s.dot / (s.signal.sqrt() * s.candidate.sqrt())
            } else if s.signal == s.candidate {
                1.0
            } else {
                0.0
            },
            relative_rmse: if s.signal > 0.0 {
                (s.noise / s.signal).sqrt()
            } else {
                f64::INFINITY
            },
            max_abs_error: s.max_abs,
            rmse_over_scale: scale
                .filter(|&q| q > 0.0)
                .map(|q| (s.noise / n).sqrt() / q as f64),
        }
    }
}

/// One quantized tensor, measured both ways.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerReport {
    pub tensor: String,
    pub op_type: String,
    /// The node producing the tensor in the prepared float model (what `keep_float` names;
    /// empty for a graph input).
    #[serde(default)]
    pub node: String,
    /// The activation's quantization step, where the quantized model quantizes it.
    pub scale: Option<f32>,
    /// The whole model quantized.
    pub cumulative: LayerMetrics,
    /// Only the layer producing this tensor quantized, its inputs taken from the float model.
    pub isolated: LayerMetrics,
}

/// The scale of the QuantizeLinear reading `tensor` in `graph`, when it is one constant.
fn activation_scale(graph: &pb::GraphProto, index: &GraphIndex, tensor: &str) -> Option<f32> {
    let q = index
        .consumers_of(tensor)
        .iter()
        .map(|&i| &graph.node[i])
        .find(|n| n.op_type == "QuantizeLinear")?;
    let t = &graph.initializer[*index.initializers.get(q.input.get(1)?)?];
    match onnx::tensor_to_f32(t).ok()?.as_slice() {
        [s] => Some(*s),
        _ => None,
    }
}

/// Per-layer error of `quantized` against `float` (the float model as the rewrite prepared
/// it: [`crate::quant::prepare_float`]), cumulative and isolated, over up to `samples`
/// evaluation samples, in one run per sample of a graph holding the float model and both
/// copies (float activations computed once).
pub fn analyse(
    quantized: &pb::ModelProto,
    float: &pb::ModelProto,
    dataset: &Dataset,
    samples: usize,
    progress: &Progress,
) -> Result<Vec<LayerReport>> {
    use crate::taps::{self, Copy, Tap};
    let pairs = tapped_pairs(quantized, float);
    let copies = [Copy::Cumulative, Copy::Isolated];
    let merged = taps::merged(float, quantized, &copies)?;
    let computed = taps::computed_tensors(onnx::graph(quantized));
    let f_index = GraphIndex::new(onnx::graph(float));
    let tapped: Vec<Tap> = pairs
        .iter()
        .flat_map(|(f, q, _)| {
            // Quantized where it feeds only a saturating activation: compared clamped.
            let clamp = (f != q)
                .then(|| {
                    crate::quant::rewrite::saturation_interval_of(onnx::graph(float), &f_index, f)
                })
                .flatten();
            [
                Tap {
                    reference: f.clone(),
                    candidate: format!("{}{q}", Copy::Cumulative.prefix()),
                    channels: false,
                    clamp,
                },
                Tap {
                    reference: f.clone(),
                    candidate: taps::isolated_candidate(&computed, f, q),
                    channels: false,
                    clamp,
                },
            ]
        })
        .collect();
    let stats = taps::compare(
        &merged,
        &tapped,
        dataset,
        Purpose::Evaluation,
        samples,
        progress,
    )?;
    let q_graph = onnx::graph(quantized);
    let q_index = GraphIndex::new(q_graph);
    let f_graph = onnx::graph(float);
    let node_of = |t: &str| {
        f_index
            .producer
            .get(t)
            .map(|&p| f_graph.node[p].name.clone())
            .unwrap_or_default()
    };
    Ok(pairs
        .into_iter()
        .zip(stats.chunks(2))
        .map(|((tensor, _, op_type), s)| {
            let scale = activation_scale(q_graph, &q_index, &tensor);
            LayerReport {
                cumulative: LayerMetrics::of(&s[0], scale),
                isolated: LayerMetrics::of(&s[1], scale),
                node: node_of(&tensor),
                tensor,
                op_type,
                scale,
            }
        })
        .collect())
}
