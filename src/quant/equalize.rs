//! Cross-layer equalization (Nagel et al., "Data-Free Quantization", 2019): for two
//! convolutions joined through operations that commute with a positive per-channel scale
//! (ReLU, MaxPool, Identity), output channel `i` of the first is divided by `s_i` and input
//! channel `i` of the second multiplied by it. The float model computes the same; with
//! `s_i = sqrt(r1_i / r2_i)` both channels' weight ranges become `sqrt(r1_i · r2_i)`, which a
//! per-tensor scale serves far better when the ranges differ by orders of magnitude (depthwise
//! convolutions after a folded BatchNormalization).
//!
//! ReLU6 (Clip 0..6, as MobileNet and EfficientNet-Lite write it) does not commute with a
//! scale: `min(max(x/s, 0), 6) ≠ min(max(x, 0), 6)/s`. Between an equalized pair it becomes
//! ReLU followed by a Min with one bound per channel, `6/s_i`, which computes exactly what the
//! ReLU6 did on the rescaled channels: the float model's outputs do not change.

use anyhow::Result;

use crate::onnx::{self, pb, GraphIndex};

/// Ops between the two convolutions through which a positive per-channel scale passes
/// unchanged: `f(s·x) = s·f(x)` for `s > 0`, channel by channel.
const SCALE_COMMUTING: [&str; 3] = ["Relu", "MaxPool", "Identity"];

/// A pair found: the initializer positions of the first conv's weight and bias and of the
/// second conv's weight.
struct Pair {
    w1: usize,
    b1: Option<usize>,
    w2: usize,
    /// ReLU6 nodes between the two (node index, its upper bound).
    relu6: Vec<(usize, f32)>,
}

/// The upper bound of `node` when it is a Clip to [0, hi] (ReLU6: hi = 6).
fn relu6_bound(graph: &pb::GraphProto, index: &GraphIndex, node: &pb::NodeProto) -> Option<f32> {
    if node.op_type != "Clip" {
        return None;
    }
    let bound = |k: usize, attr: &str| -> Option<f32> {
        match node.input.get(k).filter(|n| !n.is_empty()) {
            Some(name) => {
                let &i = index.initializers.get(name)?;
                let v = onnx::tensor_to_f32(&graph.initializer[i]).ok()?;
                (v.len() == 1).then(|| v[0])
            }
            None => onnx::attr_float(node, attr),
        }
    };
    let hi = bound(2, "max")?;
    (bound(1, "min") == Some(0.0) && hi > 0.0 && hi.is_finite()).then_some(hi)
}

/// The weight and optional bias initializer positions of a conv, if both are constants used
/// by this node alone (so rescaling them changes nothing else).
fn own_weights(
    graph: &pb::GraphProto,
    index: &GraphIndex,
    node: &pb::NodeProto,
) -> Option<(usize, Option<usize>)> {
    let w = node.input.get(1)?;
    let wi = *index.initializers.get(w)?;
    let float = pb::tensor_proto::DataType::Float as i32;
    let t = &graph.initializer[wi];
    if index.consumers_of(w).len() != 1 || t.dims.len() < 3 || t.data_type != float {
        return None;
    }
    let bi = match node.input.get(2).filter(|b| !b.is_empty()) {
        Some(b) => {
            let bi = *index.initializers.get(b)?;
            if index.consumers_of(b).len() != 1 || graph.initializer[bi].data_type != float {
                return None;
            }
            Some(bi)
        }
        None => None,
    };
    Some((wi, bi))
}

fn find_pairs(graph: &pb::GraphProto, index: &GraphIndex) -> Vec<Pair> {
    let mut pairs = vec![];
    for node in &graph.node {
        if node.op_type != "Conv" {
            continue;
        }
        let Some((w1, b1)) = own_weights(graph, index, node) else {
            continue;
        };
        // Follow single-consumer scale-commuting ops (and ReLU6) to the next Conv.
        let mut tensor = &node.output[0];
        let mut relu6 = vec![];
        let second = loop {
            if index.is_graph_output(tensor) {
                break None;
            }
            let consumers = index.consumers_of(tensor);
            let [next] = consumers else { break None };
            let next_node = &graph.node[*next];
            if next_node.op_type == "Conv" {
                break (next_node.input.first() == Some(tensor)).then_some(*next);
            }
            let clip = relu6_bound(graph, index, next_node);
            if (!SCALE_COMMUTING.contains(&next_node.op_type.as_str()) && clip.is_none())
                || next_node.output.iter().skip(1).any(|o| !o.is_empty())
            {
                break None;
            }
            if let Some(hi) = clip {
                relu6.push((*next, hi));
            }
            tensor = &next_node.output[0];
        };
        let Some(second) = second else { continue };
        let Some((w2, _)) = own_weights(graph, index, &graph.node[second]) else {
            continue;
        };
        let out_channels = graph.initializer[w1].dims[0];
        let w2_dims = &graph.initializer[w2].dims;
        let group = onnx::attr_int(&graph.node[second], "group").unwrap_or(1);
        // The second reads all channels (group 1) or one each (depthwise).
        let fits = out_channels > 0
            && ((group == 1 && w2_dims[1] == out_channels)
                || (group == out_channels && w2_dims[1] == 1 && w2_dims[0] % out_channels == 0));
        if fits {
            pairs.push(Pair { w1, b1, w2, relu6 });
        }
    }
    pairs
}

/// What equalization did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Equalized {
    pub pairs: usize,
    /// ReLU6 between equalized pairs, now ReLU and a per-channel Min.
    pub relu6: usize,
}

/// Equalizes every pair, `rounds` times over (a conv can end one pair and start the next).
pub fn equalize(graph: &mut pb::GraphProto, rounds: usize) -> Result<Equalized> {
    let index = GraphIndex::new(graph);
    let pairs = find_pairs(graph, &index);
    // Per pair, the product of its scales over the rounds: what its middle channels were
    // divided by.
    let mut total: Vec<Vec<f32>> = vec![vec![]; pairs.len()];
    for _ in 0..rounds {
        for (p, t) in pairs.iter().zip(&mut total) {
            let scales = equalize_pair(graph, p)?;
            if t.is_empty() {
                *t = scales;
            } else {
                t.iter_mut().zip(&scales).for_each(|(a, b)| *a *= b);
            }
        }
    }
    // Last first: each split inserts a node, moving those after it.
    let mut clips: Vec<(usize, f32, &Vec<f32>)> = pairs
        .iter()
        .zip(&total)
        .flat_map(|(p, t)| p.relu6.iter().map(move |&(n, hi)| (n, hi, t)))
        .collect();
    clips.sort_by_key(|c| std::cmp::Reverse(c.0));
    clips.dedup_by_key(|c| c.0);
    for &(n, hi, t) in &clips {
        split_relu6(graph, n, hi, t);
    }
    Ok(Equalized {
        pairs: pairs.len(),
        relu6: clips.len(),
    })
}

/// Replaces Clip node `n` (to [0, hi]) by ReLU and a Min with bound `hi / s_c` on channel `c`
/// (axis 1), inserted right after it so that the nodes stay in order.
fn split_relu6(graph: &mut pb::GraphProto, n: usize, hi: f32, scales: &[f32]) {
    let node = &mut graph.node[n];
    let output = node.output[0].clone();
    let relu_out = format!("{output}/relu");
    let bound_name = format!("{output}/bound");
    let min_name = format!("{}/min", node.name);
    node.op_type = "Relu".into();
    node.input.truncate(1);
    node.attribute.clear();
    node.output[0] = relu_out.clone();
    let bounds: Vec<f32> = scales.iter().map(|s| hi / s).collect();
    graph.initializer.push(onnx::f32_tensor(
        &bound_name,
        &[bounds.len() as i64, 1, 1],
        &bounds,
    ));
    let min = pb::NodeProto {
        name: min_name,
        op_type: "Min".into(),
        input: vec![relu_out, bound_name],
        output: vec![output],
        ..Default::default()
    };
    graph.node.insert(n + 1, min);
}

/// Equalizes one pair; returns the scale of each middle channel (its output channels of the
/// first conv were divided by it).
fn equalize_pair(graph: &mut pb::GraphProto, p: &Pair) -> Result<Vec<f32>> {
    let (w1i, b1i, w2i) = (p.w1, p.b1, p.w2);
    let mut w1 = onnx::tensor_to_f32(&graph.initializer[w1i])?;
    let mut w2 = onnx::tensor_to_f32(&graph.initializer[w2i])?;
    let channels = graph.initializer[w1i].dims[0].max(1) as usize;
    let w2_dims: Vec<usize> = graph.initializer[w2i]
        .dims
        .iter()
        .map(|&d| d.max(0) as usize)
        .collect();
    let per1 = w1.len() / channels;
    let inner2: usize = w2_dims[2..].iter().product();
    let depthwise = w2_dims[1] != channels;
    // Input channel of W2's element `e`.
    let channel_of = |e: usize| {
        if depthwise {
            (e / inner2) / (w2_dims[0] / channels)
        } else {
            (e / inner2) % w2_dims[1]
        }
    };
    let mut r1 = vec![0f32; channels];
    for (e, v) in w1.iter().enumerate() {
        let c = e / per1;
        r1[c] = r1[c].max(v.abs());
    }
    let mut r2 = vec![0f32; channels];
    for (e, v) in w2.iter().enumerate() {
        let c = channel_of(e);
        r2[c] = r2[c].max(v.abs());
    }
    let scales: Vec<f32> = r1
        .iter()
        .zip(&r2)
        .map(|(&a, &b)| {
            let s = (a / b).sqrt();
            if a > 0.0 && b > 0.0 && s.is_finite() {
                s.clamp(1e-4, 1e4)
            } else {
                1.0
            }
        })
        .collect();
    for (e, v) in w1.iter_mut().enumerate() {
        *v /= scales[e / per1];
    }
    for (e, v) in w2.iter_mut().enumerate() {
        *v *= scales[channel_of(e)];
    }
    replace_values(&mut graph.initializer[w1i], &w1);
    replace_values(&mut graph.initializer[w2i], &w2);
    if let Some(bi) = b1i {
        let mut b1 = onnx::tensor_to_f32(&graph.initializer[bi])?;
        if b1.len() == channels {
            for (v, s) in b1.iter_mut().zip(&scales) {
                *v /= s;
            }
            replace_values(&mut graph.initializer[bi], &b1);
        }
    }
    Ok(scales)
}

fn replace_values(t: &mut pb::TensorProto, values: &[f32]) {
    *t = onnx::f32_tensor(&t.name, &t.dims, values);
}

/// Per output channel of a conv weight: the largest magnitude (for tests and reports).
pub fn channel_ranges(t: &pb::TensorProto) -> Result<Vec<f32>> {
    let values = onnx::tensor_to_f32(t)?;
    let channels = t.dims.first().copied().unwrap_or(1).max(1) as usize;
    let per = values.len() / channels;
    Ok((0..channels)
        .map(|c| {
            values[c * per..(c + 1) * per]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()))
        })
        .collect())
}
