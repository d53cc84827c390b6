//! `BatchNormalization` after a `Conv`, `ConvTranspose`, `Gemm` or 2-D `MatMul` folded into its
//! weights and bias (static int8, where kernels fuse it).

use std::collections::HashSet;

use anyhow::{bail, Context, Result};

use super::{conv_bias, only_consumer, set_conv_bias};
use crate::onnx::{self, pb, GraphIndex};

/// Weight element index -> the output channel it contributes to.
type ChannelOf = Box<dyn Fn(usize) -> usize>;

/// The rank of a tensor where the graph declares it (inputs, value_info, outputs), or where
/// its producer fixes it (Flatten, Gemm: 2).
fn declared_rank(graph: &pb::GraphProto, tensor: &str) -> Option<usize> {
    let declared = graph
        .input
        .iter()
        .chain(&graph.value_info)
        .chain(&graph.output)
        .find(|v| v.name == tensor)
        .map(|v| onnx::value_dims(v).len())
        .filter(|&r| r > 0);
    declared.or_else(|| {
        graph
            .node
            .iter()
            .find(|n| n.output.first().is_some_and(|o| o == tensor))
            .filter(|n| matches!(n.op_type.as_str(), "Flatten" | "Gemm"))
            .map(|_| 2)
    })
}

/// For a linear node whose output channels a BatchNormalization can be folded into: the
/// number of output channels and, for each weight element, its output channel.
fn output_channel_map(
    graph: &pb::GraphProto,
    node: &pb::NodeProto,
    dims: &[i64],
) -> Option<(usize, ChannelOf)> {
    let d: Vec<usize> = dims.iter().map(|&x| x.max(0) as usize).collect();
    match (node.op_type.as_str(), d.as_slice()) {
        ("Conv", [c, rest @ ..]) if *c > 0 => {
            let per: usize = rest.iter().product();
            Some((*c, Box::new(move |i| i / per.max(1))))
        }
        ("ConvTranspose", [cin, cout_g, spatial @ ..]) => {
            // Weight [C_in, C_out / group, k..]: input channel ci belongs to group
            // ci / (C_in / group), whose output channels start at group · C_out / group.
            let group = onnx::attr_int(node, "group").unwrap_or(1).max(1) as usize;
            let (cin, cout_g) = (*cin, *cout_g);
            if cin % group != 0 || cout_g == 0 {
                return None;
            }
            let per: usize = spatial.iter().product::<usize>().max(1);
            let cin_g = cin / group;
            Some((
                cout_g * group,
                Box::new(move |i| {
                    let ci = i / (cout_g * per);
                    let j = (i / per) % cout_g;
                    (ci / cin_g) * cout_g + j
                }),
            ))
        }
        ("Gemm", [a, b]) => {
            let (a, b) = (*a, *b);
            if onnx::attr_int(node, "transB").unwrap_or(0) == 1 {
                Some((a, Box::new(move |i| i / b.max(1))))
            } else {
                Some((b, Box::new(move |i| i % b.max(1))))
            }
        }
        // Only where the output is [M, N]: on [B, T, N] a BatchNormalization normalizes T.
        ("MatMul", [_, n]) if declared_rank(graph, &node.input[0]) == Some(2) => {
            let n = *n;
            Some((n, Box::new(move |i| i % n.max(1))))
        }
        _ => None,
    }
}

/// The bias of a Gemm as one value per output channel (`beta · C`), if C broadcasts that way.
fn gemm_bias(
    graph: &pb::GraphProto,
    index: &GraphIndex,
    gemm: &pb::NodeProto,
    channels: usize,
) -> Option<Vec<f32>> {
    let Some(c) = gemm.input.get(2).filter(|c| !c.is_empty()) else {
        return Some(vec![0.0; channels]);
    };
    let t = &graph.initializer[*index.initializers.get(c)?];
    let values = onnx::tensor_to_f32(t).ok()?;
    let beta = onnx::attr_float(gemm, "beta").unwrap_or(1.0);
    let per_channel = t
        .dims
        .split_last()
        .is_some_and(|(&n, lead)| n as usize == channels && lead.iter().all(|&d| d == 1));
    match values.len() {
        1 => Some(vec![values[0] * beta; channels]),
        _ if per_channel => Some(values.iter().map(|v| v * beta).collect()),
        _ => None,
    }
}

/// `BatchNormalization` after a Conv, ConvTranspose, Gemm or MatMul (`[M, K] × [K, N]`) is
/// folded into its weights and bias. Returns the count folded and the names of those left.
pub(super) fn fold_batch_norms(graph: &mut pb::GraphProto) -> Result<(usize, Vec<String>)> {
    let mut count = 0;
    let mut skipped: HashSet<usize> = HashSet::new();
    loop {
        let index = GraphIndex::new(graph);
        let Some((bn_pos, producer)) = next_batch_norm(graph, &index, &skipped) else {
            break;
        };
        let Some(pos) = producer else {
            skipped.insert(bn_pos);
            continue;
        };
        let bn_name = graph.node[bn_pos].name.clone();
        let removed = fold(graph, &index, bn_pos, pos)
            .with_context(|| format!("folding BatchNormalization '{bn_name}'"))?;
        if removed {
            // Positions after bn_pos moved down by one.
            skipped = skipped
                .into_iter()
                .map(|p| if p > bn_pos { p - 1 } else { p })
                .collect();
        }
        count += 1;
    }
    let left = skipped
        .into_iter()
        .map(|p| {
            let n = &graph.node[p];
            if n.name.is_empty() {
                n.output[0].clone()
            } else {
                n.name.clone()
            }
        })
        .collect();
    Ok((count, left))
}

/// The next BatchNormalization with constant parameters not yet skipped, and the position of
/// the node it folds into, if it can.
fn next_batch_norm(
    graph: &pb::GraphProto,
    index: &GraphIndex,
    skipped: &HashSet<usize>,
) -> Option<(usize, Option<usize>)> {
    graph.node.iter().enumerate().find_map(|(bn_pos, bn)| {
        let candidate = bn.op_type == "BatchNormalization"
            && !skipped.contains(&bn_pos)
            && bn.output.iter().skip(1).all(|o| o.is_empty())
            && bn.input.len() >= 5
            && bn.input[1..5].iter().all(|i| index.is_initializer(i));
        if !candidate {
            return None;
        }
        let fold = index.producer.get(&bn.input[0]).and_then(|&pos| {
            let node = &graph.node[pos];
            let w = node.input.get(1)?;
            let dims = &graph.initializer[*index.initializers.get(w)?].dims;
            let (channels, _) = output_channel_map(graph, node, dims)?;
            let bias_ok = match node.op_type.as_str() {
                "Gemm" => gemm_bias(graph, index, node, channels).is_some(),
                "MatMul" => true,
                _ => node
                    .input
                    .get(2)
                    .is_none_or(|b| b.is_empty() || index.is_initializer(b)),
            };
            (bias_ok
                && only_consumer(index, &bn.input[0]) == Some(bn_pos)
                && index.consumers_of(w).len() == 1)
                .then_some(pos)
        });
        Some((bn_pos, fold))
    })
}

/// Folds the BatchNormalization at `bn_pos` into the node at `pos`; whether the
/// BatchNormalization node was removed (a MatMul keeps it, as the Add of its bias).
fn fold(graph: &mut pb::GraphProto, index: &GraphIndex, bn_pos: usize, pos: usize) -> Result<bool> {
    let bn = graph.node[bn_pos].clone();
    let node = graph.node[pos].clone();
    let get = |name: &str| onnx::tensor_to_f32(&graph.initializer[index.initializers[name]]);
    let (gamma, beta, mean, var) = (
        get(&bn.input[1])?,
        get(&bn.input[2])?,
        get(&bn.input[3])?,
        get(&bn.input[4])?,
    );
    let eps = onnx::attr_float(&bn, "epsilon").unwrap_or(1e-5);
    let w_index = index.initializers[&node.input[1]];
    let mut weight = onnx::tensor_to_f32(&graph.initializer[w_index])?;
    let dims = graph.initializer[w_index].dims.clone();
    let (channels, channel_of) =
        output_channel_map(graph, &node, &dims).expect("checked when found");
    if [&gamma, &beta, &mean, &var]
        .iter()
        .any(|v| v.len() != channels)
    {
        bail!("node '{}' (BatchNormalization): parameters do not match the {channels} channels of '{}'", bn.name, node.name);
    }
    let bias = match node.op_type.as_str() {
        "Gemm" => gemm_bias(graph, index, &node, channels).expect("checked when found"),
        "MatMul" => vec![0.0; channels],
        _ => conv_bias(graph, index, &node, channels)?,
    };
    if bias.len() != channels {
        bail!(
            "node '{}' ({}): its bias holds {} values for {channels} output channels",
            node.name,
            node.op_type,
            bias.len()
        );
    }
    let k: Vec<f32> = (0..channels)
        .map(|c| gamma[c] / (var[c] + eps).sqrt())
        .collect();
    for (i, w) in weight.iter_mut().enumerate() {
        *w *= k[channel_of(i)];
    }
    let new_bias: Vec<f32> = (0..channels)
        .map(|c| (bias[c] - mean[c]) * k[c] + beta[c])
        .collect();
    let w_name = format!("{}_bn_folded", node.input[1]);
    graph
        .initializer
        .push(onnx::f32_tensor(&w_name, &dims, &weight));
    graph.node[pos].input[1] = w_name;
    if node.op_type == "MatMul" {
        let product = format!("{}_before_bias", bn.output[0]);
        let bias_name = format!("{}_bias", bn.output[0]);
        graph
            .initializer
            .push(onnx::f32_tensor(&bias_name, &[channels as i64], &new_bias));
        graph.node[pos].output[0] = product.clone();
        graph.node[bn_pos] = onnx::node(
            "Add",
            &format!("{}_bias_Add", bn.name),
            &[&product, &bias_name],
            &[&bn.output[0]],
        );
        return Ok(false);
    }
    graph.node[pos].output[0] = bn.output[0].clone();
    set_conv_bias(graph, pos, &new_bias);
    if node.op_type == "Gemm" {
        graph.node[pos].attribute.retain(|a| a.name != "beta");
    }
    graph.node.remove(bn_pos);
    Ok(true)
}
