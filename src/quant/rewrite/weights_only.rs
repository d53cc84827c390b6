//! Weight-only modes: int8 and int4 weights behind a DequantizeLinear each, fp16 weights behind
//! a Cast; activations stay float.

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Result};

use super::*;
use crate::onnx::{self, pb, GraphIndex};

/// int8-weights and int4-weights: a DequantizeLinear after each weight of Conv/MatMul/Gemm.
pub fn quantize_weights_only(
    graph: &mut pb::GraphProto,
    config: &QuantConfig,
    int4_as_onnx: bool,
    roundings: &Roundings,
) -> Result<RewriteCounts> {
    let snapshot = graph.clone();
    let mut edit = Edit::new(&snapshot, int4_as_onnx).with_roundings(roundings);
    let mut counts = RewriteCounts::default();
    let qtype = if config.mode == Mode::Int4Weights {
        QType::Int4
    } else {
        config.int8_weight_type()
    };
    for node in &snapshot.node {
        let Some((w, axis)) =
            weight_slot(node, &edit.index, &snapshot).filter(|_| is_quantized_node(node, config))
        else {
            if config.ops.contains(&node.op_type) && is_kept_float(node, config) {
                counts.nodes_kept_float += 1;
            }
            continue;
        };
        let dims = edit
            .initializer(&node.input[w])
            .map(|t| t.dims.clone())
            .unwrap_or_default();
        let granularity = match (config.mode, config.int4_block_size) {
            // A block axis shorter than a block (a depthwise kernel's single input channel)
            // would give each element its own scale: one scale per output channel instead.
            (Mode::Int4Weights, Some(size))
                if dims
                    .get(reduction_axis(node, axis))
                    .is_some_and(|&d| d < size as i64) =>
            {
                Granularity::Channel(axis)
            }
            (Mode::Int4Weights, Some(size)) => Granularity::Block {
                axis: reduction_axis(node, axis),
                size,
            },
            _ if config.per_channel => Granularity::Channel(axis),
            _ => Granularity::Tensor,
        };
        edit.dequantize_weight(
            &node.input[w],
            granularity,
            qtype,
            config.weights_symmetric(),
        )?;
        counts.weights += 1;
        counts.nodes_quantized += 1;
    }
    edit.finish_weights_only(graph);
    Ok(counts)
}

/// Whether int4 weights are written as ONNX INT4 tensors for this config and target opset.
pub fn int4_as_onnx(config: &QuantConfig, opset: i64) -> bool {
    match config.int4_storage {
        Int4Storage::Auto => opset >= 21,
        Int4Storage::Int8Container => false,
        Int4Storage::OnnxInt4 => true,
    }
}

/// fp16: float weights stored as float16, each followed by a Cast back to float.
/// Returns the counts and the names of the tensors kept float because they hold values beyond
/// the float16 range (a BatchNormalization variance of 1e8: clamping it to 65504 would change
/// the model).
pub fn convert_fp16(
    graph: &mut pb::GraphProto,
    config: &QuantConfig,
) -> Result<(RewriteCounts, Vec<String>)> {
    let snapshot = graph.clone();
    let index = GraphIndex::new(&snapshot);
    let kept: HashSet<&str> = snapshot
        .node
        .iter()
        .filter(|n| is_kept_float(n, config))
        .flat_map(|n| n.input.iter().map(|s| s.as_str()))
        .collect();
    let mut replaced = HashMap::new();
    let mut nodes = vec![];
    let mut inits = vec![];
    let mut counts = RewriteCounts::default();
    let mut out_of_range = vec![];
    for t in &snapshot.initializer {
        // Small constants (scalars, shapes) gain nothing and some ops need them as they are.
        if t.data_type != pb::tensor_proto::DataType::Float as i32
            || onnx::element_count(&t.dims) < 16
            || kept.contains(t.name.as_str())
        {
            continue;
        }
        if index.consumers_of(&t.name).is_empty() {
            continue;
        }
        let values = onnx::tensor_to_f32(t)?;
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            bail!(
                "weight '{}' holds {v}: cannot convert a non-finite weight",
                t.name
            );
        }
        if values.iter().any(|v| v.abs() > 65504.0) {
            out_of_range.push(t.name.clone());
            continue;
        }
        let name16 = format!("{}_fp16", t.name);
        inits.push(onnx::f16_tensor(&name16, &t.dims, &values));
        let out = format!("{}_fp32", t.name);
        let mut cast = onnx::node("Cast", &format!("{}_Cast", t.name), &[&name16], &[&out]);
        cast.attribute.push(onnx::int_attr(
            "to",
            pb::tensor_proto::DataType::Float as i64,
        ));
        nodes.push(cast);
        replaced.insert(t.name.clone(), out);
        counts.weights += 1;
    }
    finish(
        graph,
        &replaced,
        nodes,
        inits,
        HashMap::new(),
        &HashMap::new(),
        vec![],
    );
    Ok((counts, out_of_range))
}
