//! A per-channel `Mul` after a `Conv` scales its weights; a per-channel `Add` becomes its bias.

use anyhow::Result;

use super::{conv_bias, only_consumer, set_conv_bias};
use crate::onnx::{self, pb, GraphIndex};

/// The first `op` (Add or Mul) node that applies a per-channel constant (`[C, 1, ..]` or
/// `[1, C, 1, ..]`, on the channel axis) to the only output of a Conv: (its position, the
/// conv's position, the constant's name).
fn per_channel_after_conv(
    graph: &pb::GraphProto,
    index: &GraphIndex,
    op: &str,
) -> Option<(usize, usize, String)> {
    graph.node.iter().enumerate().find_map(|(pos, node)| {
        if node.op_type != op || node.input.len() != 2 {
            return None;
        }
        let (act, constant) = if index.is_initializer(&node.input[1]) {
            (&node.input[0], &node.input[1])
        } else if index.is_initializer(&node.input[0]) {
            (&node.input[1], &node.input[0])
        } else {
            return None;
        };
        let conv_pos = *index.producer.get(act)?;
        let conv = &graph.node[conv_pos];
        if conv.op_type != "Conv" || only_consumer(index, act) != Some(pos) {
            return None;
        }
        let w = &graph.initializer[*index.initializers.get(&conv.input[1])?];
        let c = &graph.initializer[index.initializers[constant]];
        let channels = *w.dims.first()?;
        let spatial = w.dims.len().saturating_sub(2);
        let squeezed: Vec<i64> = c.dims.iter().copied().skip_while(|&d| d == 1).collect();
        let per_channel = squeezed.first() == Some(&channels)
            && squeezed[1..].iter().all(|&d| d == 1)
            && c.dims.len() > spatial
            && c.dims[c.dims.len() - spatial..].iter().all(|&d| d == 1);
        per_channel.then_some((pos, conv_pos, constant.clone()))
    })
}

/// `Conv → Add(per-channel constant)` becomes the conv's bias.
pub(super) fn fold_conv_bias_adds(graph: &mut pb::GraphProto) -> Result<usize> {
    let mut count = 0;
    loop {
        let index = GraphIndex::new(graph);
        let Some((add_pos, conv_pos, constant)) = per_channel_after_conv(graph, &index, "Add")
        else {
            break;
        };
        let add = graph.node[add_pos].clone();
        let conv = graph.node[conv_pos].clone();
        let channels = graph.initializer[index.initializers[&conv.input[1]]].dims[0] as usize;
        let mut bias = conv_bias(graph, &index, &conv, channels)?;
        let extra = onnx::tensor_to_f32(&graph.initializer[index.initializers[&constant]])?;
        for (b, e) in bias.iter_mut().zip(extra) {
            *b += e;
        }
        graph.node[conv_pos].output[0] = add.output[0].clone();
        set_conv_bias(graph, conv_pos, &bias);
        graph.node.remove(add_pos);
        count += 1;
    }
    Ok(count)
}

/// `Conv → Mul(per-channel constant)` (a scale layer, or half of a BatchNormalization that
/// paddle2onnx writes as Mul + Add) scales the conv's weights and bias instead: quantized per
/// tensor, the constant would zero its small channels.
pub(super) fn fold_conv_channel_muls(graph: &mut pb::GraphProto) -> Result<usize> {
    let mut count = 0;
    loop {
        let index = GraphIndex::new(graph);
        let Some((mul_pos, conv_pos, constant)) = per_channel_after_conv(graph, &index, "Mul")
        else {
            break;
        };
        let mul = graph.node[mul_pos].clone();
        let conv = graph.node[conv_pos].clone();
        let w_index = index.initializers[&conv.input[1]];
        let dims = graph.initializer[w_index].dims.clone();
        let channels = dims[0] as usize;
        let mut weight = onnx::tensor_to_f32(&graph.initializer[w_index])?;
        let mut bias = conv_bias(graph, &index, &conv, channels)?;
        let k = onnx::tensor_to_f32(&graph.initializer[index.initializers[&constant]])?;
        let per = weight.len() / channels.max(1);
        for c in 0..channels {
            for w in &mut weight[c * per..(c + 1) * per] {
                *w *= k[c];
            }
            bias[c] *= k[c];
        }
        // A new weight: the old one may feed other nodes.
        let w_name = format!("{}_scaled_{}", conv.input[1], mul.output[0]);
        graph
            .initializer
            .push(onnx::f32_tensor(&w_name, &dims, &weight));
        graph.node[conv_pos].input[1] = w_name;
        graph.node[conv_pos].output[0] = mul.output[0].clone();
        set_conv_bias(graph, conv_pos, &bias);
        graph.node.remove(mul_pos);
        count += 1;
    }
    Ok(count)
}
