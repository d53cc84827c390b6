//! The float model and copies of a quantized one in a single graph, run once per sample: every
//! comparison between a float tensor and its quantized counterpart (per-layer error, bias
//! correction) costs one run of that graph, the float activations computed once.
//!
//! A copy is *cumulative* when its nodes read their own copy's tensors (the whole model
//! quantized), *isolated* when every tensor the float graph also computes is read from the
//! float graph instead: each quantized layer then sees float inputs and carries only its own
//! quantization error (ONNX Runtime's `qdq_loss_debug` and TensorFlow Lite's quantization
//! debugger measure the same).

use std::collections::HashSet;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use crate::data::{Dataset, Purpose};
use crate::jobs::Progress;
use crate::onnx::{self, pb};
use crate::runtime::TractModel;

/// How a copy of the quantized graph reads the tensors the float graph also computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copy {
    Cumulative,
    Isolated,
}

impl Copy {
    /// The prefix of the copy's tensor names inside the merged graph.
    pub fn prefix(self) -> &'static str {
        match self {
            Copy::Cumulative => "qb.cumulative/",
            Copy::Isolated => "qb.isolated/",
        }
    }
}

/// In the isolated copy, where a layer's output is quantized the consumers read the float
/// value quantized, not the layer's; the layer's own output quantized is computed beside it,
/// under this prefix (what [`isolated_candidate`] names).
pub const ISOLATED_OUTPUT: &str = "qb.isolated-output/";

/// Every tensor a graph's nodes compute.
pub fn computed_tensors(graph: &pb::GraphProto) -> HashSet<&str> {
    graph
        .node
        .iter()
        .flat_map(|n| n.output.iter())
        .map(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The isolated copy's tensor holding the quantized model's `tapped` value for float tensor
/// `float_tensor` (`tapped`: its DequantizeLinear output, or the tensor itself); `computed`:
/// [`computed_tensors`] of the quantized graph.
pub fn isolated_candidate(computed: &HashSet<&str>, float_tensor: &str, tapped: &str) -> String {
    if tapped != float_tensor && computed.contains(float_tensor) {
        format!("{ISOLATED_OUTPUT}{tapped}")
    } else {
        format!("{}{tapped}", Copy::Isolated.prefix())
    }
}

/// `float` with one copy of `quantized` per entry of `copies` beside it, tensors of copy `c`
/// named `c.prefix() + name`. Both models must share their graph inputs (the quantized one made
/// from `float` by quantbench's rewrite).
pub fn merged(
    float: &pb::ModelProto,
    quantized: &pb::ModelProto,
    copies: &[Copy],
) -> Result<pb::ModelProto> {
    let q = onnx::graph(quantized);
    if let Some(n) = q.node.iter().find(|n| {
        !onnx::subgraph_inputs(n).is_empty()
            || n.attribute
                .iter()
                .any(|a| a.g.is_some() || !a.graphs.is_empty())
    }) {
        bail!(
            "per-layer comparison: node '{}' ({}) has a subgraph; models with If/Loop/Scan bodies are not compared layer by layer yet",
            n.name,
            n.op_type
        );
    }
    let mut out = float.clone();
    for import in &quantized.opset_import {
        match out
            .opset_import
            .iter_mut()
            .find(|o| o.domain == import.domain)
        {
            Some(o) => o.version = o.version.max(import.version),
            None => out.opset_import.push(import.clone()),
        }
    }
    let f = onnx::graph(float);
    let mut float_tensors = computed_tensors(f);
    float_tensors.extend(f.input.iter().map(|i| i.name.as_str()));
    let q_initializers: HashSet<&str> = q.initializer.iter().map(|t| t.name.as_str()).collect();
    let q_inputs: HashSet<&str> = onnx::real_inputs(q)
        .into_iter()
        .map(|i| i.name.as_str())
        .collect();
    let q_computed = computed_tensors(q);
    let mut nodes = vec![];
    let mut initializers = vec![];
    for &copy in copies {
        let prefix = copy.prefix();
        for t in &q.initializer {
            let mut t = t.clone();
            t.name = format!("{prefix}{}", t.name);
            initializers.push(t);
        }
        for n in &q.node {
            let mut n = n.clone();
            n.name = format!("{prefix}{}", n.name);
            for o in n.output.iter_mut().filter(|o| !o.is_empty()) {
                *o = format!("{prefix}{o}");
            }
            for i in n.input.iter_mut().filter(|i| !i.is_empty()) {
                let shared = q_inputs.contains(i.as_str())
                    || (copy == Copy::Isolated
                        && !q_initializers.contains(i.as_str())
                        && float_tensors.contains(i.as_str()));
                if !shared {
                    *i = format!("{prefix}{i}");
                }
            }
            nodes.push(n);
        }
        if copy == Copy::Isolated {
            // Each layer's own output, quantized as the quantized model quantizes it.
            for qn in q.node.iter().filter(|n| {
                n.op_type == "QuantizeLinear"
                    && n.input.first().is_some_and(|t| {
                        q_computed.contains(t.as_str()) && float_tensors.contains(t.as_str())
                    })
            }) {
                let mut own = qn.clone();
                own.name = format!("{ISOLATED_OUTPUT}{}", qn.name);
                own.input[0] = format!("{prefix}{}", qn.input[0]);
                for i in own.input.iter_mut().skip(1).filter(|i| !i.is_empty()) {
                    *i = format!("{prefix}{i}");
                }
                own.output = vec![format!("{ISOLATED_OUTPUT}{}", qn.output[0])];
                nodes.push(own);
                for dq in q
                    .node
                    .iter()
                    .filter(|n| n.op_type == "DequantizeLinear" && n.input[0] == qn.output[0])
                {
                    let mut own = dq.clone();
                    own.name = format!("{ISOLATED_OUTPUT}{}", dq.name);
                    own.input[0] = format!("{ISOLATED_OUTPUT}{}", dq.input[0]);
                    for i in own.input.iter_mut().skip(1).filter(|i| !i.is_empty()) {
                        *i = format!("{prefix}{i}");
                    }
                    own.output = vec![format!("{ISOLATED_OUTPUT}{}", dq.output[0])];
                    nodes.push(own);
                }
            }
        }
    }
    let g = onnx::graph_mut(&mut out);
    g.node.extend(nodes);
    g.initializer.extend(initializers);
    Ok(out)
}

/// Sums over samples comparing a reference tensor `x` with a candidate `y` element by element.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TapStats {
    pub count: u64,
    /// Σx², Σ(x−y)², Σxy, Σy².
    pub signal: f64,
    pub noise: f64,
    pub dot: f64,
    pub candidate: f64,
    pub max_abs: f64,
    /// Σ(y−x) per channel (axis 1), and the elements counted per channel; empty when not asked.
    pub channel_error: Vec<f64>,
    pub channel_count: Vec<u64>,
}

impl TapStats {
    fn merge(&mut self, o: TapStats) {
        self.count += o.count;
        self.signal += o.signal;
        self.noise += o.noise;
        self.dot += o.dot;
        self.candidate += o.candidate;
        self.max_abs = self.max_abs.max(o.max_abs);
        if self.channel_error.is_empty() {
            self.channel_error = o.channel_error;
            self.channel_count = o.channel_count;
        } else {
            for (a, b) in self.channel_error.iter_mut().zip(o.channel_error) {
                *a += b;
            }
            for (a, b) in self.channel_count.iter_mut().zip(o.channel_count) {
                *a += b;
            }
        }
    }

    /// The mean of `y − x` per channel.
    pub fn channel_mean_error(&self) -> Vec<f64> {
        self.channel_error
            .iter()
            .zip(&self.channel_count)
            .map(|(e, &n)| if n > 0 { e / n as f64 } else { 0.0 })
            .collect()
    }
}

/// One comparison: the reference tensor's name and the candidate's, both in the same model;
/// `channels`: also sum the error per channel (axis 1); `clamp`: both tensors' values clamped
/// to this interval first (a tensor read only by saturating activations, where values beyond
/// it make no difference: `quant::rewrite::saturation_interval_of`).
pub struct Tap {
    pub reference: String,
    pub candidate: String,
    pub channels: bool,
    pub clamp: Option<(f32, f32)>,
}

/// Runs `model` over up to `samples` samples of `purpose` and compares each tap's pair.
pub fn compare(
    model: &pb::ModelProto,
    taps: &[Tap],
    dataset: &Dataset,
    purpose: Purpose,
    samples: usize,
    progress: &Progress,
) -> Result<Vec<TapStats>> {
    crate::jobs::checkpoint("compare layers")?;
    if taps.is_empty() {
        return Ok(vec![]);
    }
    let indices = dataset.samples_of(purpose, Some(samples.max(1)))?;
    let Some(&first) = indices.first() else {
        bail!(
            "{}: the dataset is empty (no samples found)",
            dataset.path.display()
        );
    };
    let inputs = crate::tensor::model_inputs(model)?;
    let example = dataset.bound(first, &inputs)?.inputs;
    let mut names: Vec<String> = vec![];
    let mut position = |name: &str| match names.iter().position(|n| n == name) {
        Some(p) => p,
        None => {
            names.push(name.to_string());
            names.len() - 1
        }
    };
    let slots: Vec<(usize, usize)> = taps
        .iter()
        .map(|t| (position(&t.reference), position(&t.candidate)))
        .collect();
    let run = TractModel::load(model, &example, Some(&names))
        .context("the float and quantized models side by side")?;
    let shapes = run.output_shapes()?;
    progress.stage("comparing layers", indices.len() as u64);
    let per_sample = |&i: &usize| -> Result<Vec<TapStats>> {
        progress.check()?;
        let sample = dataset.bound(i, &inputs)?;
        let outputs = run.run(&sample.inputs)?;
        progress.step();
        Ok(taps
            .iter()
            .zip(&slots)
            .map(|(tap, &(r, c))| {
                let (x, y) = (&outputs[r], &outputs[c]);
                let mut s = TapStats::default();
                let shape = &shapes[r];
                let (channels, inner) = match shape.as_slice() {
                    [_, c, rest @ ..] if tap.channels => (*c, rest.iter().product::<usize>()),
                    _ => (0, 1),
                };
                if channels > 0 {
                    s.channel_error = vec![0.0; channels];
                    s.channel_count = vec![0; channels];
                }
                let (lo, hi) = tap.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
                for (e, (&a, &b)) in x.iter().zip(y).enumerate() {
                    let (a, b) = (a.clamp(lo, hi) as f64, b.clamp(lo, hi) as f64);
                    let d = b - a;
                    s.signal += a * a;
                    s.noise += d * d;
                    s.dot += a * b;
                    s.candidate += b * b;
                    s.max_abs = s.max_abs.max(d.abs());
                    if channels > 0 {
                        let c = (e / inner.max(1)) % channels;
                        s.channel_error[c] += d;
                        s.channel_count[c] += 1;
                    }
                }
                s.count = x.len().min(y.len()) as u64;
                s
            })
            .collect())
    };
    indices.par_iter().map(per_sample).try_reduce(
        || taps.iter().map(|_| TapStats::default()).collect(),
        |mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                x.merge(y);
            }
            Ok(a)
        },
    )
}
