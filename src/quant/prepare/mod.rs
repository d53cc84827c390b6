//! Graph preparation before quantization: shape the float graph the way int8 runtimes fuse it,
//! so that calibration sees the tensors that will really be quantized.
//!
//! - `Constant` nodes become initializers (weights exported as constants are still weights);
//! - a `Reshape`/`Identity` of a weight is folded into a new weight;
//! - `BatchNormalization` after a `Conv`, `ConvTranspose`, `Gemm` or 2-D `MatMul` is folded
//!   into its weights and bias (static int8 only, where kernels fuse it); any other is left
//!   float and named in a note;
//! - a `Mul` of a per-channel constant after a `Conv` scales its weights (static int8 only);
//! - an `Add` of a per-channel constant after a `Conv` becomes the conv's bias.
//!
//! One file per pass: [`constants`] (Constant nodes, weight reshapes), [`batch_norm`],
//! [`channel_ops`] (per-channel Mul and Add after a Conv); [`types`] says each tensor's element
//! type.

mod batch_norm;
mod channel_ops;
mod constants;
mod types;

use std::collections::HashSet;

use anyhow::{bail, Result};

use crate::onnx::{self, pb, GraphIndex};

pub use types::{model_tensor_types, tensor_types};

/// What preparation changed, one line per kind of change.
pub fn prepare(model: &mut pb::ModelProto, fold_batch_norm: bool) -> Result<Vec<String>> {
    let mut notes = vec![];
    let graph = onnx::graph_mut(model);
    let n = constants::constants_to_initializers(graph);
    if n > 0 {
        notes.push(format!("{n} Constant nodes turned into initializers"));
    }
    let n = constants::fold_weight_reshapes(graph)?;
    if n > 0 {
        notes.push(format!("{n} Reshape/Identity of weights folded"));
    }
    let (n, left) = if fold_batch_norm {
        batch_norm::fold_batch_norms(graph)?
    } else {
        (0, vec![])
    };
    if n > 0 {
        notes.push(format!(
            "{n} BatchNormalization folded into the Conv/ConvTranspose/Gemm/MatMul before it"
        ));
    }
    if !left.is_empty() {
        let mut left = left;
        left.sort();
        notes.push(format!(
            "{} BatchNormalization left float (not after a foldable Conv, ConvTranspose, Gemm or [M, K] × [K, N] MatMul): {}",
            left.len(),
            left.join(", ")
        ));
    }
    let n = if fold_batch_norm {
        channel_ops::fold_conv_channel_muls(graph)?
    } else {
        0
    };
    if n > 0 {
        notes.push(format!(
            "{n} Mul of a per-channel constant folded into Conv weights"
        ));
    }
    let n = channel_ops::fold_conv_bias_adds(graph)?;
    if n > 0 {
        notes.push(format!(
            "{n} Add of a per-channel constant folded into Conv bias"
        ));
    }
    drop_unused_initializers(graph);
    Ok(notes)
}

fn only_consumer(index: &GraphIndex, tensor: &str) -> Option<usize> {
    match index.consumers_of(tensor) {
        [one] if !index.is_graph_output(tensor) => Some(*one),
        _ => None,
    }
}

/// The conv's bias values, creating zeros when it has none.
fn conv_bias(
    graph: &pb::GraphProto,
    index: &GraphIndex,
    conv: &pb::NodeProto,
    channels: usize,
) -> Result<Vec<f32>> {
    match conv.input.get(2).filter(|s| !s.is_empty()) {
        Some(b) => match index.initializers.get(b) {
            Some(&i) => onnx::tensor_to_f32(&graph.initializer[i]),
            None => bail!("node '{}' (Conv): bias '{b}' is not a constant", conv.name),
        },
        None => Ok(vec![0.0; channels]),
    }
}

fn set_conv_bias(graph: &mut pb::GraphProto, conv_pos: usize, bias: &[f32]) {
    let name = format!("{}_bias_folded", graph.node[conv_pos].output[0]);
    graph
        .initializer
        .push(onnx::f32_tensor(&name, &[bias.len() as i64], bias));
    let conv = &mut graph.node[conv_pos];
    conv.input.truncate(2);
    conv.input.push(name);
}

pub fn drop_unused_initializers(graph: &mut pb::GraphProto) {
    let mut used: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(|s| s.as_str()))
        .chain(graph.output.iter().map(|o| o.name.as_str()))
        .collect();
    // A body (If/Loop/Scan) may read an outer initializer that no main-graph node does.
    used.extend(
        graph
            .node
            .iter()
            .flat_map(onnx::subgraph_inputs)
            .map(|s| s.as_str()),
    );
    let keep: HashSet<String> = graph
        .initializer
        .iter()
        .filter(|t| used.contains(t.name.as_str()))
        .map(|t| t.name.clone())
        .collect();
    let removed: HashSet<String> = graph
        .initializer
        .iter()
        .filter(|t| !keep.contains(&t.name))
        .map(|t| t.name.clone())
        .collect();
    graph.initializer.retain(|t| keep.contains(&t.name));
    // Inputs that only existed to feed a removed initializer (IR < 4 files) go too; real
    // inputs stay, read or not: the model's interface never changes.
    graph.input.retain(|i| !removed.contains(&i.name));
    let names: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().cloned())
        .collect();
    graph.value_info.retain(|v| names.contains(&v.name));
}
