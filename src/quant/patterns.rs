//! Normalisations and activations spelled out in primitive ops (as JAX, TensorFlow and
//! PyTorch export them), found as units so that their insides stay float: a LayerNorm written
//! as ReduceMean, Sub, Pow, Sqrt, Div, Mul and Add loses everything when its Mul and Add are
//! quantized like a residual connection, while the MatMul around it quantize well.
//!
//! A unit is found from an anchor only such a pattern has (Sqrt, Erf, Tanh, Exp, Sigmoid,
//! HardSigmoid, Clip): its root is a tensor read twice on the way back to the anchor (`x` in
//! `x · sigmoid(x)`, in `x − mean(x)`), and the unit is every elementwise or reduction node fed
//! only by the root, constants and the unit itself, with a single tensor leaving it.

use std::collections::{HashMap, HashSet};

use crate::onnx::{pb, GraphIndex};

/// What a unit computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitKind {
    /// (x − mean) / sqrt(var + ε), then scale and shift: LayerNorm, InstanceNorm, GroupNorm.
    MeanVarianceNorm,
    /// x / sqrt(mean(x²) + ε), then scale.
    RmsNorm,
    /// x · Φ(x), written with Erf or with Tanh.
    Gelu,
    /// exp(x − max) / Σ exp(x − max).
    Softmax,
    /// x · sigmoid(x).
    Silu,
    /// x · relu6(x + 3) / 6, or x · hardsigmoid(x).
    HardSwish,
}

impl UnitKind {
    pub fn describe(self) -> &'static str {
        match self {
            UnitKind::MeanVarianceNorm => "mean-variance normalisation",
            UnitKind::RmsNorm => "RMS normalisation",
            UnitKind::Gelu => "GELU",
            UnitKind::Softmax => "softmax",
            UnitKind::Silu => "SiLU",
            UnitKind::HardSwish => "HardSwish",
        }
    }
}

/// One pattern found: its kind, its nodes (indices into the graph, in graph order), the tensor
/// it reads and the one it writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    pub kind: UnitKind,
    pub nodes: Vec<usize>,
    pub input: String,
    pub output: String,
}

/// The ops a unit may hold.
const UNIT_OPS: [&str; 20] = [
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "Erf",
    "Tanh",
    "Exp",
    "Sigmoid",
    "HardSigmoid",
    "Clip",
    "Relu",
    "Neg",
    "Abs",
    "Cast",
];
const ANCHORS: [&str; 7] = [
    "Sqrt",
    "Erf",
    "Tanh",
    "Exp",
    "Sigmoid",
    "HardSigmoid",
    "Clip",
];
/// Single-input ops that may follow a unit without belonging to it.
const TRAILING: [&str; 12] = [
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "Tanh",
    "Sigmoid",
    "Relu",
    "Clip",
    "Exp",
    "Abs",
    "Neg",
    "Cast",
    "Erf",
];
/// Steps walked back from an anchor looking for its root.
const REACH: usize = 8;
/// Nodes in a unit at most (a LayerNorm with its affine has about 9).
const MAX_NODES: usize = 24;

/// Every unit of `graph`, each node in one unit at most, in graph order of their outputs.
pub fn find_units(graph: &pb::GraphProto) -> Vec<Unit> {
    let index = GraphIndex::new(graph);
    let mut taken: HashSet<usize> = HashSet::new();
    let mut units = vec![];
    for (a, anchor) in graph.node.iter().enumerate() {
        if !ANCHORS.contains(&anchor.op_type.as_str()) || taken.contains(&a) {
            continue;
        }
        // The farthest root first: the whole LayerNorm (from x) rather than its tail (from
        // x − mean, read twice too).
        let found = roots(graph, &index, a)
            .into_iter()
            .rev()
            .filter_map(|root| unit_from(graph, &index, &root, a))
            .find(|u| u.nodes.iter().all(|n| !taken.contains(n)));
        if let Some(unit) = found {
            taken.extend(&unit.nodes);
            units.push(unit);
        }
    }
    let position = |u: &Unit| u.nodes.last().copied().unwrap_or(0);
    units.sort_by_key(position);
    units
}

/// Branch tensors (read by two or more nodes) on the way back from `anchor` through unit ops,
/// nearest first.
fn roots(graph: &pb::GraphProto, index: &GraphIndex, anchor: usize) -> Vec<String> {
    let mut found: Vec<String> = vec![];
    let mut frontier: Vec<usize> = vec![anchor];
    let mut seen: HashSet<usize> = HashSet::new();
    for _ in 0..REACH {
        let mut next = vec![];
        for n in frontier {
            for t in graph.node[n]
                .input
                .iter()
                .filter(|t| is_data(graph, index, t))
            {
                if index.consumers_of(t).len() >= 2 && !found.contains(t) {
                    found.push(t.clone());
                }
                if let Some(&p) = index.producer.get(t) {
                    if UNIT_OPS.contains(&graph.node[p].op_type.as_str()) && seen.insert(p) {
                        next.push(p);
                    }
                }
            }
        }
        frontier = next;
    }
    found
}

/// A tensor that varies with the input: not an initializer, nor a Constant node's output.
fn is_data(graph: &pb::GraphProto, index: &GraphIndex, t: &str) -> bool {
    !t.is_empty()
        && !index.is_initializer(t)
        && index
            .producer
            .get(t)
            .is_none_or(|&p| graph.node[p].op_type != "Constant")
}

/// The unit rooted at `root`, if it holds `anchor`, is of a known kind, and one tensor leaves it.
fn unit_from(
    graph: &pb::GraphProto,
    index: &GraphIndex,
    root: &str,
    anchor: usize,
) -> Option<Unit> {
    let mut inside: HashSet<usize> = HashSet::new();
    let mut produced: HashSet<&str> = HashSet::from([root]);
    loop {
        let before = inside.len();
        let frontier: Vec<usize> = produced
            .iter()
            .flat_map(|t| index.consumers_of(t).iter().copied())
            .filter(|c| !inside.contains(c))
            .collect();
        for c in frontier {
            let node = &graph.node[c];
            let fed_inside = node
                .input
                .iter()
                .filter(|t| is_data(graph, index, t))
                .all(|t| produced.contains(t.as_str()));
            if UNIT_OPS.contains(&node.op_type.as_str()) && fed_inside && inside.insert(c) {
                produced.extend(node.output.iter().map(String::as_str));
            }
        }
        if inside.len() == before || inside.len() > MAX_NODES {
            break;
        }
    }
    if !inside.contains(&anchor) || inside.len() > MAX_NODES {
        return None;
    }
    // Exactly one tensor leaves the unit (read outside it, or a graph output).
    let leaving: Vec<&String> = inside
        .iter()
        .flat_map(|&n| &graph.node[n].output)
        .filter(|t| {
            !t.is_empty()
                && (index.is_graph_output(t)
                    || index.consumers_of(t).iter().any(|c| !inside.contains(c)))
        })
        .collect();
    let [output] = leaving[..] else { return None };
    let mut output = output.clone();
    // What follows the pattern proper and only reads it (a mean pooling and a Tanh after a
    // LayerNorm) is not part of it: trimmed from the end.
    while let Some(&last) = index.producer.get(&output) {
        let node = &graph.node[last];
        let data: Vec<&String> = node
            .input
            .iter()
            .filter(|t| is_data(graph, index, t))
            .collect();
        let trailing = TRAILING.contains(&node.op_type.as_str()) && last != anchor;
        match data[..] {
            [only] if trailing && inside.len() > 1 => {
                inside.remove(&last);
                output = only.clone();
            }
            _ => break,
        }
    }
    let mut nodes: Vec<usize> = inside.into_iter().collect();
    nodes.sort_unstable();
    let kind = kind_of(graph, &nodes)?;
    Some(Unit {
        kind,
        nodes,
        input: root.to_string(),
        output,
    })
}

fn kind_of(graph: &pb::GraphProto, nodes: &[usize]) -> Option<UnitKind> {
    let mut ops: HashMap<&str, usize> = HashMap::new();
    for &n in nodes {
        *ops.entry(graph.node[n].op_type.as_str()).or_default() += 1;
    }
    let has = |op: &str| ops.contains_key(op);
    let reduces = has("ReduceMean") || has("ReduceSum");
    let root_like = has("Sqrt") || has("Pow");
    Some(if reduces && root_like && !has("Exp") {
        if has("Sub") {
            UnitKind::MeanVarianceNorm
        } else {
            UnitKind::RmsNorm
        }
    } else if has("Exp") && has("ReduceSum") && (has("Div") || has("Reciprocal")) {
        UnitKind::Softmax
    } else if (has("Erf") || has("Tanh")) && has("Mul") {
        UnitKind::Gelu
    } else if has("Sigmoid") && has("Mul") {
        UnitKind::Silu
    } else if (has("HardSigmoid") || has("Clip")) && has("Mul") {
        UnitKind::HardSwish
    } else {
        return None;
    })
}

/// The names of the nodes inside `units` (unnamed nodes cannot be kept float by name).
pub fn node_names(graph: &pb::GraphProto, units: &[Unit]) -> Vec<String> {
    units
        .iter()
        .flat_map(|u| &u.nodes)
        .map(|&n| graph.node[n].name.clone())
        .filter(|n| !n.is_empty())
        .collect()
}

/// "6 mean-variance normalisations, 2 GELU": the units found, counted by kind.
pub fn summary(units: &[Unit]) -> String {
    let mut counts: Vec<(UnitKind, usize)> = vec![];
    for u in units {
        match counts.iter_mut().find(|(k, _)| *k == u.kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((u.kind, 1)),
        }
    }
    counts.sort();
    counts
        .iter()
        .map(|(k, n)| format!("{n} {}", k.describe()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fills `summary.units` with the units of `model` (its graph as quantization prepares it);
/// none when it cannot be prepared (the quantize command then says why).
pub fn annotate(summary: &mut crate::onnx::inspect::ModelSummary, model: &pb::ModelProto) {
    let Ok(prepared) = super::prepare_float(model, &super::QuantConfig::default()) else {
        return;
    };
    let graph = crate::onnx::graph(&prepared.model);
    summary.units = find_units(graph)
        .into_iter()
        .map(|u| crate::onnx::inspect::PatternUnit {
            kind: u.kind.describe().to_string(),
            nodes: u
                .nodes
                .iter()
                .map(|&n| graph.node[n].name.clone())
                .collect(),
            input: u.input,
            output: u.output,
        })
        .collect();
}
