//! Static int8: which activation tensors get a Q/DQ pair (once, where an int8 kernel would
//! produce them; shared scales through data movement and Concat), and the rewrite that
//! inserts them with the weights' DequantizeLinear and the int32 biases.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};

use super::*;
use crate::onnx::{self, pb, GraphIndex};

/// Ops whose output holds the same values as (a subset or rearrangement of) their input, so the
/// output can share the input's scale and zero point.
pub(super) const SCALE_PRESERVING: [&str; 9] = [
    "MaxPool",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Identity",
    "Slice",
    "Gather",
];
/// Float ops whose input is best left unquantized (see `plan_activations`).
pub(super) const FLOAT_INPUT_OPS: [&str; 2] = ["Softmax", "LogSoftmax"];
/// Activations that int8 runtimes fuse into the op before them.
pub(super) const FUSED_ACTIVATIONS: [&str; 2] = ["Relu", "Clip"];
pub(super) const FUSING_PRODUCERS: [&str; 5] = ["Conv", "ConvTranspose", "MatMul", "Gemm", "Add"];

/// Which activation tensors get Q/DQ, in graph order.
#[derive(Clone, Debug, Default)]
pub struct ActivationPlan {
    /// Every tensor that gets a Q/DQ pair.
    pub quantized: Vec<String>,
    /// Tensors whose parameters come from another tensor (tensor -> source), not calibration.
    pub shared: HashMap<String, String>,
}

impl ActivationPlan {
    /// The tensors calibration must observe.
    pub fn calibrated(&self) -> Vec<String> {
        self.quantized
            .iter()
            .filter(|t| !self.shared.contains_key(*t))
            .cloned()
            .collect()
    }

    /// Leaves out the tensors `drop` picks, and those whose parameters would come from them.
    pub fn drop_tensors(&mut self, drop: impl Fn(&str) -> bool) {
        let dropped: HashSet<String> = self
            .quantized
            .iter()
            .filter(|t| drop(self.root(t)))
            .cloned()
            .collect();
        self.quantized.retain(|t| !dropped.contains(t));
        self.shared.retain(|t, _| !dropped.contains(t));
    }

    fn root<'a>(&'a self, mut t: &'a str) -> &'a str {
        while let Some(s) = self.shared.get(t) {
            t = s;
        }
        t
    }
}

/// `types`: every tensor's element type ([`crate::quant::prepare::model_tensor_types`]).
pub fn plan_activations(
    graph: &pb::GraphProto,
    config: &QuantConfig,
    types: &HashMap<String, i32>,
) -> ActivationPlan {
    let index = GraphIndex::new(graph);
    let is_float_activation = |t: &str| {
        !t.is_empty()
            && !index.is_initializer(t)
            && types.get(t).copied().unwrap_or(1) == pb::tensor_proto::DataType::Float as i32
    };
    let mut order: Vec<String> = vec![];
    let mut seen: HashSet<String> = HashSet::new();
    let mut add = |t: &str, order: &mut Vec<String>| {
        if seen.insert(t.to_string()) {
            order.push(t.to_string());
        }
    };
    let tail = float_tail(graph, &index, config);
    // MatMul outputs inside a MatMul + Add linear layer: accumulated with the bias, not quantized.
    let linear_inside: HashSet<&str> = graph
        .node
        .iter()
        .filter(|n| linear_bias(n, &index, graph, config).is_some())
        .map(|n| n.output[0].as_str())
        .collect();
    for node in graph.node.iter().filter(|n| is_quantized_node(n, config)) {
        for i in node
            .input
            .iter()
            .filter(|i| is_float_activation(i) && !linear_inside.contains(i.as_str()))
        {
            add(i, &mut order);
        }
        for o in node.output.iter().filter(|o| {
            is_float_activation(o)
                && !tail.contains(o.as_str())
                && !linear_inside.contains(o.as_str())
        }) {
            // Quantize after a fused activation instead of before it.
            let fused = FUSING_PRODUCERS
                .contains(&node.op_type.as_str())
                .then(|| match index.consumers_of(o) {
                    [only] => {
                        let next = &graph.node[*only];
                        (FUSED_ACTIVATIONS.contains(&next.op_type.as_str())
                            && next.input[1..]
                                .iter()
                                .all(|b| b.is_empty() || index.is_initializer(b))
                            && !is_kept_float(next, config)
                            && !index.is_graph_output(&next.output[0]))
                        .then(|| next.output[0].clone())
                    }
                    _ => None,
                })
                .flatten();
            add(fused.as_deref().unwrap_or(o), &mut order);
        }
    }
    // Graph order: sort by the producing node's position (graph inputs first).
    let position = |t: &str| index.producer.get(t).map(|&p| p + 1).unwrap_or(0);
    order.sort_by_key(|t| position(t));
    let in_plan: HashSet<&str> = order.iter().map(|s| s.as_str()).collect();
    let mut shared = HashMap::new();
    for t in &order {
        if let Some(&p) = index.producer.get(t) {
            let producer = &graph.node[p];
            if SCALE_PRESERVING.contains(&producer.op_type.as_str())
                && in_plan.contains(producer.input[0].as_str())
            {
                shared.insert(t.clone(), producer.input[0].clone());
            }
        }
    }
    ActivationPlan {
        quantized: order,
        shared,
    }
}

/// Tensors from which every path reaches a graph output through float ops only (the
/// network's tail: logits before a Sigmoid/Softmax), and Softmax inputs: no int8 kernel reads
/// them.
fn float_tail<'g>(
    graph: &'g pb::GraphProto,
    index: &GraphIndex,
    config: &QuantConfig,
) -> HashSet<&'g str> {
    // Tensors from which every path reaches a graph output through float ops only (the
    // network's tail: logits before a Sigmoid/Softmax): no int8 kernel reads them, so a Q/DQ
    // there would only add error, which a Sigmoid of small probabilities magnifies.
    let mut tail: HashSet<&'g str> = HashSet::new();
    for node in graph.node.iter().rev() {
        for o in node.output.iter().filter(|o| !o.is_empty()) {
            let consumers = index.consumers_of(o);
            let feeds_float_tail = !consumers.is_empty()
                && consumers.iter().all(|&c| {
                    let next = &graph.node[c];
                    !is_quantized_node(next, config)
                        && next.output.iter().all(|x| {
                            x.is_empty() || index.is_graph_output(x) || tail.contains(x.as_str())
                        })
                });
            // A Softmax input needs no Q/DQ either (no int8 kernel reads it), and tract
            // simulates DequantizeLinear → Softmax → QuantizeLinear with a lossy int8
            // softmax (−17.5 dB on the zoo encoder where ONNX Runtime gives 32 dB).
            let only_softmax = !consumers.is_empty()
                && consumers.iter().all(|&c| {
                    let next = &graph.node[c];
                    FLOAT_INPUT_OPS.contains(&next.op_type.as_str())
                        && !is_quantized_node(next, config)
                });
            if index.is_graph_output(o) || feeds_float_tail || only_softmax {
                tail.insert(o);
            }
        }
    }
    tail
}

/// The quantized elementwise Add and Mul (not a linear layer's bias) whose output no int8
/// kernel reads, directly or through data movement and fused activations: a transformer's
/// residual sum feeding a float LayerNorm, a scaling before a float softmax. Quantizing them
/// only adds a Q/DQ pair; a CNN's residual Add read by the next Conv keeps its int8.
pub fn elementwise_without_int8_reader(
    graph: &pb::GraphProto,
    config: &QuantConfig,
) -> Vec<String> {
    const ELEMENTWISE: [&str; 2] = ["Add", "Mul"];
    let index = GraphIndex::new(graph);
    let biases: HashSet<usize> = graph
        .node
        .iter()
        .filter_map(|n| linear_bias(n, &index, graph, config).map(|(add, _)| add))
        .collect();
    let elementwise = |i: usize| {
        let n = &graph.node[i];
        ELEMENTWISE.contains(&n.op_type.as_str())
            && is_quantized_node(n, config)
            && !biases.contains(&i)
    };
    // Whether node `i`'s output reaches a reader; elementwise nodes read only through others
    // that keep their int8, found from the graph's end backwards.
    let mut keeps: Vec<bool> = vec![false; graph.node.len()];
    for i in (0..graph.node.len()).rev() {
        let mut frontier: Vec<&str> = graph.node[i].output.iter().map(String::as_str).collect();
        let mut read = false;
        for _ in 0..8 {
            let mut next = vec![];
            for t in frontier {
                for &c in index.consumers_of(t) {
                    let consumer = &graph.node[c];
                    if elementwise(c) {
                        read |= keeps[c];
                    } else if is_quantized_node(consumer, config) {
                        read = true;
                    } else if SCALE_PRESERVING.contains(&consumer.op_type.as_str())
                        || FUSED_ACTIVATIONS.contains(&consumer.op_type.as_str())
                    {
                        next.extend(consumer.output.iter().map(String::as_str));
                    }
                }
            }
            frontier = next;
        }
        keeps[i] = read || !elementwise(i);
    }
    (0..graph.node.len())
        .filter(|&i| elementwise(i) && !keeps[i])
        .map(|i| graph.node[i].name.clone())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The interval outside which `node` (an activation reading `input` as its data) gives the
/// same output as at the interval's edge: HardSwish is 0 below −3, HardSigmoid is flat outside
/// its linear part, Relu below 0, Clip beyond its bounds. `None`: no such activation.
fn saturation_interval(
    node: &pb::NodeProto,
    input: &str,
    graph: &pb::GraphProto,
    index: &GraphIndex,
) -> Option<(f32, f32)> {
    if node.input.first().map(String::as_str) != Some(input) {
        return None;
    }
    let constant = |k: usize| -> Option<Option<f32>> {
        match node.input.get(k).filter(|n| !n.is_empty()) {
            None => Some(None),
            Some(name) => {
                let &i = index.initializers.get(name)?;
                let values = onnx::tensor_to_f32(&graph.initializer[i]).ok()?;
                (values.len() == 1).then(|| Some(values[0]))
            }
        }
    };
    match node.op_type.as_str() {
        "HardSwish" => Some((-3.0, f32::INFINITY)),
        "Relu" => Some((0.0, f32::INFINITY)),
        "HardSigmoid" => {
            let alpha = onnx::attr_float(node, "alpha").unwrap_or(0.2);
            let beta = onnx::attr_float(node, "beta").unwrap_or(0.5);
            (alpha > 0.0).then(|| (-beta / alpha, (1.0 - beta) / alpha))
        }
        "Clip" => {
            // Opset 11 moved the bounds from attributes to optional inputs.
            let lo = constant(1)?.or_else(|| onnx::attr_float(node, "min"));
            let hi = constant(2)?.or_else(|| onnx::attr_float(node, "max"));
            Some((lo.unwrap_or(f32::NEG_INFINITY), hi.unwrap_or(f32::INFINITY)))
        }
        _ => None,
    }
}

/// Calibrated tensors whose every consumer is a saturating activation, with the interval
/// where any of them still changes (their union): values beyond it all give the edge's
/// output, so a range wider than the interval only coarsens the grid. Calibration clamps
/// such a tensor's statistics to it (a Conv before a HardSwish whose outputs reach −60 would
/// otherwise spend most of its 256 levels on values the HardSwish turns into 0).
pub fn saturation_intervals(
    graph: &pb::GraphProto,
    plan: &ActivationPlan,
) -> HashMap<String, (f32, f32)> {
    let index = GraphIndex::new(graph);
    plan.calibrated()
        .into_iter()
        .filter_map(|t| saturation_interval_of(graph, &index, &t).map(|r| (t, r)))
        .collect()
}

/// [`saturation_intervals`] for one tensor: the interval where its consumers still change,
/// when every consumer is a saturating activation (values beyond it are as good as its edge;
/// per-layer error compares the float values clamped to it).
pub fn saturation_interval_of(
    graph: &pb::GraphProto,
    index: &GraphIndex,
    tensor: &str,
) -> Option<(f32, f32)> {
    let consumers = index.consumers_of(tensor);
    if consumers.is_empty() || index.is_graph_output(tensor) {
        return None;
    }
    let (lo, hi) =
        consumers
            .iter()
            .try_fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &c| {
                let (a, b) = saturation_interval(&graph.node[c], tensor, graph, index)?;
                Some((lo.min(a), hi.max(b)))
            })?;
    (lo < hi && (lo.is_finite() || hi.is_finite())).then_some((lo, hi))
}

/// Groups of quantized nodes to keep float together, one per planned activation: its producer
/// and its consumers, reached through the float ops between them (a Conv → HardSwish →
/// depthwise Conv chain is one group). A Q/DQ pair leaves a tensor only when every node
/// writing or reading it stays float, so keeping either Conv alone keeps both pairs around the
/// HardSwish, and only the pair of them removes that error. Sorted, without duplicates;
/// single nodes where a tensor has no quantized neighbour beyond them.
pub fn float_units(
    graph: &pb::GraphProto,
    config: &QuantConfig,
    types: &HashMap<String, i32>,
) -> Vec<Vec<String>> {
    /// Float ops crossed between two quantized nodes (an activation, a reshape).
    const HOPS: usize = 3;
    let index = GraphIndex::new(graph);
    let plan = plan_activations(graph, config, types);
    let quantized = |i: usize| is_quantized_node(&graph.node[i], config);
    let data_inputs = |i: usize| -> Vec<&String> {
        graph.node[i]
            .input
            .iter()
            .filter(|t| !t.is_empty() && !index.is_initializer(t))
            .collect()
    };
    let mut units: Vec<Vec<String>> = vec![];
    for t in &plan.quantized {
        let mut nodes: Vec<usize> = vec![];
        // Back to the quantized node that writes `t`, through single-input float ops.
        let mut at = index.producer.get(t).copied();
        for _ in 0..=HOPS {
            let Some(p) = at else { break };
            if quantized(p) {
                nodes.push(p);
                break;
            }
            at = match data_inputs(p)[..] {
                [only] => index.producer.get(only).copied(),
                _ => None,
            };
        }
        // Forward to every quantized node reading it, through float ops.
        let mut frontier: Vec<&str> = vec![t];
        for _ in 0..=HOPS {
            let mut next = vec![];
            for tensor in frontier {
                for &c in index.consumers_of(tensor) {
                    if quantized(c) {
                        nodes.push(c);
                    } else {
                        next.extend(graph.node[c].output.iter().map(String::as_str));
                    }
                }
            }
            frontier = next;
        }
        let mut names: Vec<String> = nodes
            .into_iter()
            .map(|i| graph.node[i].name.clone())
            .collect();
        names.sort();
        names.dedup();
        if !names.is_empty() && names.iter().all(|n| !n.is_empty()) && !units.contains(&names) {
            units.push(names);
        }
    }
    units
}

/// Gives every input and the output of each quantized Concat one range (their union), so an
/// int8 Concat copies bytes instead of requantizing each input.
pub fn share_concat_ranges(
    graph: &pb::GraphProto,
    config: &QuantConfig,
    plan: &ActivationPlan,
    ranges: &mut HashMap<String, (f32, f32)>,
) {
    for node in graph
        .node
        .iter()
        .filter(|n| n.op_type == "Concat" && is_quantized_node(n, config))
    {
        let roots: Vec<String> = node
            .input
            .iter()
            .chain(&node.output)
            .filter(|t| plan.quantized.contains(t))
            .map(|t| plan.root(t).to_string())
            .collect();
        if roots.len() != node.input.len() + 1 {
            continue;
        }
        let union = roots
            .iter()
            .filter_map(|r| ranges.get(r))
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &(a, b)| {
                (lo.min(a), hi.max(b))
            });
        for r in roots {
            ranges.insert(r, union);
        }
    }
}

/// int8 static: weights, biases and the planned activations, with `ranges` from calibration.
pub fn insert_qdq(
    graph: &mut pb::GraphProto,
    config: &QuantConfig,
    plan: &ActivationPlan,
    ranges: &HashMap<String, (f32, f32)>,
    roundings: &Roundings,
) -> Result<RewriteCounts> {
    let params = activation_params(config, plan, ranges)?;
    let snapshot = graph.clone();
    let mut edit = Edit::new(&snapshot, false).with_roundings(roundings);
    let mut counts = RewriteCounts::default();
    for node in &snapshot.node {
        if !is_quantized_node(node, config) {
            if config.ops.contains(&node.op_type) {
                counts.nodes_kept_float += 1;
            }
            continue;
        }
        counts.nodes_quantized += 1;
        quantize_node_constants(&mut edit, node, &snapshot, config, &params, &mut counts)
            .with_context(|| format!("rewriting node '{}' ({})", node.name, node.op_type))?;
    }
    let mut activation_nodes: HashMap<String, Vec<pb::NodeProto>> = HashMap::new();
    let mut activation_replaced = HashMap::new();
    let mut graph_input_nodes = vec![];
    for t in &plan.quantized {
        let (p, qtype) = params[t];
        let (sn, zn) = (format!("{t}_scale"), format!("{t}_zero_point"));
        edit.new_initializers
            .push(onnx::f32_tensor(&sn, &[], &[p.scale]));
        edit.new_initializers.push(if qtype.bits() == 16 {
            onnx::short_tensor(&zn, &[], &[p.zero_point], qtype.is_signed())
        } else {
            onnx::byte_tensor(&zn, &[], &[p.zero_point], qtype.is_signed())
        });
        let (qn, dn) = (format!("{t}_quantized"), format!("{t}_dequantized"));
        let q = onnx::node(
            "QuantizeLinear",
            &format!("{t}_QuantizeLinear"),
            &[t, &sn, &zn],
            &[&qn],
        );
        let d = onnx::node(
            "DequantizeLinear",
            &format!("{t}_DequantizeLinear"),
            &[&qn, &sn, &zn],
            &[&dn],
        );
        if edit.index.producer.contains_key(t) {
            activation_nodes.insert(t.clone(), vec![q, d]);
        } else {
            graph_input_nodes.extend([q, d]);
        }
        activation_replaced.insert(t.clone(), dn);
        counts.activations += 1;
    }
    let Edit {
        replaced,
        weight_nodes,
        new_initializers,
        ..
    } = edit;
    finish(
        graph,
        &replaced,
        weight_nodes,
        new_initializers,
        activation_nodes,
        &activation_replaced,
        graph_input_nodes,
    );
    Ok(counts)
}

/// Each planned activation's grid (8 or 16 bits) from its range.
fn activation_params(
    config: &QuantConfig,
    plan: &ActivationPlan,
    ranges: &HashMap<String, (f32, f32)>,
) -> Result<HashMap<String, (QParams, QType)>> {
    let act_qtype = crate::quant::calibrate::activation_qtype(config.activations);
    let act_sym = config.activations_symmetric();
    let mut params = HashMap::new();
    for t in &plan.quantized {
        let root = plan.root(t);
        let &(lo, hi) = ranges
            .get(root)
            .ok_or_else(|| anyhow::anyhow!("no calibrated range for tensor '{root}'"))?;
        let qtype = if config.is_int16_activation(root) {
            crate::quant::calibrate::wide_activation_qtype(config.activations)
        } else {
            act_qtype
        };
        params.insert(t.clone(), (math::qparams(lo, hi, qtype, act_sym), qtype));
    }
    Ok(params)
}

/// A quantized node's weight (with its int32 bias) and its other float constants.
fn quantize_node_constants(
    edit: &mut Edit,
    node: &pb::NodeProto,
    snapshot: &pb::GraphProto,
    config: &QuantConfig,
    params: &HashMap<String, (QParams, QType)>,
    counts: &mut RewriteCounts,
) -> Result<()> {
    let slot = weight_slot(node, &edit.index, snapshot);
    if let Some((w, axis)) = slot {
        let g = if config.per_channel {
            Granularity::Channel(axis)
        } else {
            Granularity::Tensor
        };
        let linear = linear_bias(node, &edit.index, snapshot, config).map(|(_, b)| b);
        let bias = node
            .input
            .get(2)
            .filter(|b| {
                !b.is_empty() && matches!(node.op_type.as_str(), "Conv" | "ConvTranspose" | "Gemm")
            })
            .or(linear.as_ref());
        let input_scale = params.get(&node.input[0]).map(|(p, _)| p.scale);
        let floors = match (bias.and_then(|b| edit.initializer(b)), input_scale) {
            (Some(b), Some(sx)) => {
                let channels = edit
                    .initializer(&node.input[w])
                    .and_then(|t| t.dims.get(axis))
                    .map_or(1, |&d| d.max(1) as usize);
                Some(bias_floors(b, sx, channels, g)?)
            }
            _ => None,
        };
        edit.dequantize_weight_floored(
            &node.input[w],
            g,
            config.int8_weight_type(),
            config.weights_symmetric(),
            floors.as_deref(),
        )?;
        counts.weights += 1;
        if let (Some(b), Some(sx)) = (bias, input_scale) {
            edit.dequantize_bias(b, sx, &node.input[w])?;
            counts.biases += 1;
        }
    }
    // Other float constants feeding a quantized op (Add/Mul operands): int8, per channel
    // when they vary along one axis (per tensor would zero the small channels).
    for (k, i) in node.input.iter().enumerate() {
        let is_slot = slot.is_some_and(|(w, _)| w == k) || (slot.is_some() && k == 2);
        if is_slot || edit.replaced.contains_key(i) {
            continue;
        }
        if let Some(t) = edit.initializer(i) {
            if t.data_type == pb::tensor_proto::DataType::Float as i32
                && onnx::element_count(&t.dims) > 0
            {
                let varying: Vec<usize> = (0..t.dims.len()).filter(|&a| t.dims[a] > 1).collect();
                let g = match varying.as_slice() {
                    [axis] => Granularity::Channel(*axis),
                    _ => Granularity::Tensor,
                };
                edit.dequantize_weight(i, g, QType::Int8, true)?;
                counts.weights += 1;
            }
        }
    }
    Ok(())
}

/// The smallest weight scale per channel (or for the tensor) that keeps the int32 bias
/// `b / (s_x · s_w)` within i32 (ONNX Runtime raises the weight scale the same way).
fn bias_floors(
    bias: &pb::TensorProto,
    input_scale: f32,
    channels: usize,
    g: Granularity,
) -> Result<Vec<f32>> {
    let values = onnx::tensor_to_f32(bias)?;
    let limit = input_scale as f64 * (i32::MAX as f64 - 1.0);
    let floor = |v: f32| (v.abs() as f64 / limit) as f32;
    Ok(if matches!(g, Granularity::Channel(_)) {
        // A grouped ConvTranspose has `group` bias entries per weight channel.
        let mut floors = vec![0.0f32; channels];
        for (c, &v) in values.iter().enumerate() {
            floors[c % channels] = floors[c % channels].max(floor(v));
        }
        floors
    } else {
        vec![values.iter().map(|&v| floor(v)).fold(0.0, f32::max)]
    })
}
