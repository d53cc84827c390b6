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

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Result};

use crate::onnx::{self, pb, GraphIndex};

/// What preparation changed, one line per kind of change.
pub fn prepare(model: &mut pb::ModelProto, fold_batch_norm: bool) -> Result<Vec<String>> {
    let mut notes = vec![];
    let graph = onnx::graph_mut(model);
    let n = constants_to_initializers(graph);
    if n > 0 {
        notes.push(format!("{n} Constant nodes turned into initializers"));
    }
    let n = fold_weight_reshapes(graph)?;
    if n > 0 {
        notes.push(format!("{n} Reshape/Identity of weights folded"));
    }
    let (n, left) = if fold_batch_norm {
        fold_batch_norms(graph)?
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
        fold_conv_channel_muls(graph)?
    } else {
        0
    };
    if n > 0 {
        notes.push(format!(
            "{n} Mul of a per-channel constant folded into Conv weights"
        ));
    }
    let n = fold_conv_bias_adds(graph)?;
    if n > 0 {
        notes.push(format!(
            "{n} Add of a per-channel constant folded into Conv bias"
        ));
    }
    drop_unused_initializers(graph);
    Ok(notes)
}

fn constants_to_initializers(graph: &mut pb::GraphProto) -> usize {
    let mut count = 0;
    let mut kept = Vec::with_capacity(graph.node.len());
    for node in std::mem::take(&mut graph.node) {
        let tensor = (node.op_type == "Constant" && node.domain.is_empty())
            .then(|| onnx::attr(&node, "value").and_then(|a| a.t.clone()))
            .flatten();
        match tensor {
            Some(mut t) if node.output.len() == 1 => {
                t.name = node.output[0].clone();
                graph.initializer.push(t);
                count += 1;
            }
            _ => kept.push(node),
        }
    }
    graph.node = kept;
    count
}

fn fold_weight_reshapes(graph: &mut pb::GraphProto) -> Result<usize> {
    let mut count = 0;
    loop {
        let index = GraphIndex::new(graph);
        let found = graph.node.iter().position(|n| {
            let data_const = n.input.first().is_some_and(|i| index.is_initializer(i));
            match n.op_type.as_str() {
                "Identity" => data_const,
                "Reshape" => data_const && n.input.get(1).is_some_and(|i| index.is_initializer(i)),
                _ => false,
            }
        });
        let Some(pos) = found else { break };
        let node = graph.node.remove(pos);
        let data = graph.initializer[index.initializers[&node.input[0]]].clone();
        let mut folded = data.clone();
        folded.name = node.output[0].clone();
        if node.op_type == "Reshape" {
            let shape =
                onnx::tensor_to_i64(&graph.initializer[index.initializers[&node.input[1]]])?;
            folded.dims = resolve_reshape(&data.dims, &shape).ok_or_else(|| {
                anyhow::anyhow!(
                    "node '{}' (Reshape): shape {shape:?} does not fit {:?}",
                    node.name,
                    data.dims
                )
            })?;
        }
        graph.initializer.push(folded);
        count += 1;
    }
    Ok(count)
}

fn resolve_reshape(dims: &[i64], shape: &[i64]) -> Option<Vec<i64>> {
    let total: i64 = dims.iter().product();
    let mut out: Vec<i64> = shape
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            if s == 0 {
                dims.get(i).copied().unwrap_or(0)
            } else {
                s
            }
        })
        .collect();
    let known: i64 = out.iter().filter(|&&d| d != -1).product();
    if let Some(free) = out.iter().position(|&d| d == -1) {
        if known == 0 || total % known != 0 {
            return None;
        }
        out[free] = total / known;
    }
    (out.iter().product::<i64>() == total).then_some(out)
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

/// Weight element index -> the output channel it contributes to.
type ChannelOf = Box<dyn Fn(usize) -> usize>;

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
fn fold_batch_norms(graph: &mut pb::GraphProto) -> Result<(usize, Vec<String>)> {
    let mut count = 0;
    let mut skipped: HashSet<usize> = HashSet::new();
    loop {
        let index = GraphIndex::new(graph);
        let found = graph.node.iter().enumerate().find_map(|(bn_pos, bn)| {
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
                    "Gemm" => gemm_bias(graph, &index, node, channels).is_some(),
                    "MatMul" => true,
                    _ => node
                        .input
                        .get(2)
                        .is_none_or(|b| b.is_empty() || index.is_initializer(b)),
                };
                (bias_ok
                    && only_consumer(&index, &bn.input[0]) == Some(bn_pos)
                    && index.consumers_of(w).len() == 1)
                    .then_some(pos)
            });
            Some((bn_pos, fold))
        });
        let Some((bn_pos, producer)) = found else {
            break;
        };
        let Some(pos) = producer else {
            skipped.insert(bn_pos);
            continue;
        };
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
            "Gemm" => gemm_bias(graph, &index, &node, channels).expect("checked when found"),
            "MatMul" => vec![0.0; channels],
            _ => conv_bias(graph, &index, &node, channels)?,
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
        match node.op_type.as_str() {
            "MatMul" => {
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
            }
            op => {
                graph.node[pos].output[0] = bn.output[0].clone();
                set_conv_bias(graph, pos, &new_bias);
                if op == "Gemm" {
                    let gemm = &mut graph.node[pos];
                    gemm.attribute.retain(|a| a.name != "beta");
                }
                graph.node.remove(bn_pos);
                // Positions after bn_pos moved down by one.
                skipped = skipped
                    .into_iter()
                    .map(|p| if p > bn_pos { p - 1 } else { p })
                    .collect();
            }
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
fn fold_conv_bias_adds(graph: &mut pb::GraphProto) -> Result<usize> {
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
fn fold_conv_channel_muls(graph: &mut pb::GraphProto) -> Result<usize> {
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

/// Element type of every tensor of `model` (ONNX DataType numbers), so that integer and bool
/// tensors are never quantized: what tract's type inference concludes, and where it cannot
/// conclude (an op it does not know), what the file declares or [`tensor_types`] derives.
pub fn model_tensor_types(model: &pb::ModelProto) -> HashMap<String, i32> {
    let mut types = tensor_types(onnx::graph(model));
    use tract_onnx::prelude::{Framework, InferenceModelExt};
    use tract_onnx::tract_hir::infer::Factoid;
    // tract can panic on a malformed graph: then the declared and derived types stand alone.
    let analysed = crate::jobs::catch_panics("type inference", || {
        let mut inference = tract_onnx::onnx().model_for_proto_model(model)?;
        // Partial facts are still facts: a failure further down leaves the rest typed.
        let _ = inference.analyse(false);
        Ok(inference)
    });
    let Ok(inference) = analysed else {
        return types;
    };
    for node in inference.nodes() {
        for (slot, output) in node.outputs.iter().enumerate() {
            let outlet = tract_onnx::prelude::OutletId::new(node.id, slot);
            let Some(name) = inference.outlet_label(outlet) else {
                continue;
            };
            if let Some(dt) = output.fact.datum_type.concretize().and_then(onnx_data_type) {
                types.insert(name.to_string(), dt);
            }
        }
    }
    types
}

fn onnx_data_type(dt: tract_onnx::prelude::DatumType) -> Option<i32> {
    use pb::tensor_proto::DataType as D;
    use tract_onnx::prelude::DatumType as T;
    Some(match dt {
        T::F32 => D::Float,
        T::F16 => D::Float16,
        T::F64 => D::Double,
        T::I8 => D::Int8,
        T::U8 => D::Uint8,
        T::I16 => D::Int16,
        T::U16 => D::Uint16,
        T::I32 => D::Int32,
        T::U32 => D::Uint32,
        T::I64 => D::Int64,
        T::U64 => D::Uint64,
        T::Bool => D::Bool,
        T::String => D::String,
        _ => return None,
    } as i32)
}

/// Element type of every tensor, from the file's declarations and propagated through the graph
/// by each op's typing rule (the fallback of [`model_tensor_types`]).
pub fn tensor_types(graph: &pb::GraphProto) -> HashMap<String, i32> {
    use pb::tensor_proto::DataType as D;
    let mut types: HashMap<String, i32> = HashMap::new();
    for i in &graph.input {
        types.insert(i.name.clone(), onnx::value_elem_type(i));
    }
    for v in graph.value_info.iter().chain(&graph.output) {
        let t = onnx::value_elem_type(v);
        if t != 0 {
            types.insert(v.name.clone(), t);
        }
    }
    for t in &graph.initializer {
        types.insert(t.name.clone(), t.data_type);
    }
    for n in &graph.node {
        let input_type = |k: usize| {
            n.input
                .get(k)
                .and_then(|i| types.get(i))
                .copied()
                .unwrap_or(D::Float as i32)
        };
        let out = match n.op_type.as_str() {
            "Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin" => D::Int64 as i32,
            "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or"
            | "Not" | "Xor" | "IsNaN" | "IsInf" => D::Bool as i32,
            "Cast" => onnx::attr_int(n, "to").unwrap_or(1) as i32,
            "Constant" | "ConstantOfShape" => onnx::attr(n, "value")
                .and_then(|a| a.t.as_ref())
                .map(|t| t.data_type)
                .unwrap_or(D::Float as i32),
            "Where" => input_type(1),
            _ => input_type(0),
        };
        for (k, o) in n.output.iter().enumerate() {
            let t = if n.op_type == "TopK" && k == 1 {
                D::Int64 as i32
            } else {
                out
            };
            types.entry(o.clone()).or_insert(t);
        }
    }
    types
}

#[cfg(test)]
mod tests {
    #[test]
    fn reshape_resolution() {
        assert_eq!(
            super::resolve_reshape(&[16, 4, 4, 10], &[256, 10]),
            Some(vec![256, 10])
        );
        assert_eq!(
            super::resolve_reshape(&[2, 3, 4], &[0, -1]),
            Some(vec![2, 12])
        );
        assert_eq!(super::resolve_reshape(&[2, 3], &[4, 2]), None);
    }
}
