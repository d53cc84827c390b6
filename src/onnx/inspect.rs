//! A model's summary: what `quantbench inspect` prints and the GUI's model panel shows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::pb;

/// A dimension is a number or a symbol (`batch`, `N`, `DynamicDimension.0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(i64),
    Symbol(String),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValueSummary {
    pub name: String,
    pub elem_type: String,
    pub shape: Vec<Dim>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightSummary {
    pub name: String,
    pub elem_type: String,
    pub shape: Vec<i64>,
    pub elements: usize,
    pub bytes: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub name: String,
    pub op_type: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub weights: Vec<WeightSummary>,
}

/// A normalisation or activation spelled out in primitive ops (found by
/// `quant::patterns::annotate`): kept float inside by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatternUnit {
    pub kind: String,
    pub input: String,
    pub output: String,
    pub nodes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub path: String,
    pub file_bytes: u64,
    pub ir_version: i64,
    pub opset: i64,
    pub producer: String,
    pub inputs: Vec<ValueSummary>,
    pub outputs: Vec<ValueSummary>,
    /// op type -> count, sorted by op type for stable display
    pub op_histogram: BTreeMap<String, usize>,
    pub nodes: Vec<NodeSummary>,
    /// Elements of every constant tensor (initializers, Constant nodes, subgraphs), except
    /// int64 and bool ones (shapes, axes, indices).
    pub parameters: usize,
    /// Bytes of the same tensors.
    pub weight_bytes: usize,
    /// Units quantization keeps float inside (filled by `quant::patterns::annotate`).
    #[serde(default)]
    pub units: Vec<PatternUnit>,
}

fn value_summary(v: &pb::ValueInfoProto) -> ValueSummary {
    ValueSummary {
        name: v.name.clone(),
        elem_type: super::data_type_name(super::value_elem_type(v)).to_string(),
        shape: super::value_dims(v)
            .into_iter()
            .map(|d| match d {
                Ok(n) => Dim::Fixed(n),
                Err(s) => Dim::Symbol(s),
            })
            .collect(),
    }
}

fn weight_summary(name: &str, t: &pb::TensorProto) -> WeightSummary {
    WeightSummary {
        name: name.to_string(),
        elem_type: super::data_type_name(t.data_type).to_string(),
        shape: t.dims.clone(),
        elements: super::element_count(&t.dims),
        bytes: super::tensor_bytes(t),
    }
}

/// Every constant tensor of `graph` and of the subgraphs inside it (If branches, Loop and Scan
/// bodies): initializers and the values of Constant nodes, named as the graph reads them.
fn constant_tensors(graph: &pb::GraphProto, out: &mut Vec<WeightSummary>) {
    for t in &graph.initializer {
        out.push(weight_summary(&t.name, t));
    }
    for n in &graph.node {
        if n.op_type == "Constant" {
            if let (Some(t), Some(o)) = (
                super::attr(n, "value").and_then(|a| a.t.as_ref()),
                n.output.first(),
            ) {
                out.push(weight_summary(o, t));
            }
        }
        for a in &n.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                constant_tensors(g, out);
            }
        }
    }
}

/// A node's name, or one made from its op type and first output when it has none.
fn readable_name(n: &pb::NodeProto) -> String {
    match (n.name.is_empty(), n.output.first()) {
        (false, _) => n.name.clone(),
        (true, Some(o)) => format!("{}:{o}", n.op_type),
        (true, None) => n.op_type.clone(),
    }
}

pub fn summarize(model: &pb::ModelProto, path: &Path) -> Result<ModelSummary> {
    crate::jobs::checkpoint("summarize a model")?;
    let graph = super::graph(model);
    let mut constants = vec![];
    constant_tensors(graph, &mut constants);
    // Weights the top-level nodes read by name (initializers and Constant outputs).
    let by_name: std::collections::HashMap<&str, &WeightSummary> =
        constants.iter().map(|w| (w.name.as_str(), w)).collect();
    let nodes: Vec<NodeSummary> = graph
        .node
        .iter()
        .map(|n| NodeSummary {
            name: readable_name(n),
            op_type: n.op_type.clone(),
            inputs: n.input.clone(),
            outputs: n.output.clone(),
            weights: n
                .input
                .iter()
                .filter_map(|i| by_name.get(i.as_str()).map(|w| (*w).clone()))
                .collect(),
        })
        .collect();
    let mut op_histogram = BTreeMap::new();
    for n in &graph.node {
        *op_histogram.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    // The count and the size describe the same set: every constant tensor of numbers (int8 and
    // int32 weights of a quantized model count like float ones), without the int64/bool
    // shape, axis and index constants.
    let is_weight = |w: &&WeightSummary| !matches!(w.elem_type.as_str(), "INT64" | "BOOL");
    let parameters = constants.iter().filter(is_weight).map(|w| w.elements).sum();
    let weight_bytes = constants.iter().filter(is_weight).map(|w| w.bytes).sum();
    Ok(ModelSummary {
        path: path.display().to_string(),
        file_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        ir_version: model.ir_version,
        opset: super::default_opset(model),
        producer: format!("{} {}", model.producer_name, model.producer_version)
            .trim()
            .to_string(),
        inputs: super::real_inputs(graph)
            .into_iter()
            .map(value_summary)
            .collect(),
        outputs: graph.output.iter().map(value_summary).collect(),
        op_histogram,
        nodes,
        units: vec![],
        parameters,
        weight_bytes,
    })
}

fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

impl ModelSummary {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "model      {}", self.path);
        let _ = writeln!(
            s,
            "file       {} ({} bytes), IR {}, opset {}{}",
            human_bytes(self.file_bytes),
            self.file_bytes,
            self.ir_version,
            self.opset,
            if self.producer.is_empty() {
                String::new()
            } else {
                format!(", from {}", self.producer)
            }
        );
        let _ = writeln!(
            s,
            "parameters {} ({} of weights)",
            self.parameters,
            human_bytes(self.weight_bytes as u64)
        );
        for (label, values) in [("input ", &self.inputs), ("output", &self.outputs)] {
            for v in values {
                let _ = writeln!(
                    s,
                    "{label}     {} {} {}",
                    v.name,
                    v.elem_type,
                    shape_text(&v.shape)
                );
            }
        }
        let ops: Vec<String> = self
            .op_histogram
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            s,
            "ops        {} nodes: {}",
            self.nodes.len(),
            ops.join(", ")
        );
        if !self.units.is_empty() {
            let _ = writeln!(
                s,
                "units      kept float inside by default (--quantize-patterns quantizes them):"
            );
            for u in &self.units {
                let _ = writeln!(
                    s,
                    "  {:<28} {} -> {} ({} nodes: {})",
                    u.kind,
                    u.input,
                    u.output,
                    u.nodes.len(),
                    u.nodes.join(", ")
                );
            }
        }
        let _ = writeln!(s, "\nnodes:");
        for n in &self.nodes {
            let _ = write!(s, "  {:<28} {:<20}", n.name, n.op_type);
            let weights: Vec<String> = n
                .weights
                .iter()
                .map(|w| {
                    format!(
                        "{} {:?} {} {}",
                        w.name,
                        w.shape,
                        w.elem_type,
                        human_bytes(w.bytes as u64)
                    )
                })
                .collect();
            let _ = writeln!(s, " {}", weights.join("; "));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{f32_tensor, i64_tensor, node};

    fn constant(output: &str, t: pb::TensorProto) -> pb::NodeProto {
        let mut n = node("Constant", "", &[], &[output]);
        n.attribute.push(pb::AttributeProto {
            name: "value".into(),
            r#type: pb::attribute_proto::AttributeType::Tensor as i32,
            t: Some(t),
            ..Default::default()
        });
        n
    }

    #[test]
    fn weights_in_constants_and_subgraphs_are_counted_once_by_count_and_size() {
        let branch = pb::GraphProto {
            node: vec![constant("inner_c", f32_tensor("", &[2, 2], &[1.0; 4]))],
            initializer: vec![f32_tensor("inner_w", &[5], &[0.5; 5])],
            ..Default::default()
        };
        let mut if_node = node("If", "if", &["cond"], &["y"]);
        if_node.attribute.push(pb::AttributeProto {
            name: "then_branch".into(),
            r#type: pb::attribute_proto::AttributeType::Graph as i32,
            g: Some(branch),
            ..Default::default()
        });
        let model = pb::ModelProto {
            graph: Some(pb::GraphProto {
                node: vec![
                    constant("c_out", f32_tensor("", &[3, 4], &[0.25; 12])),
                    node("MatMul", "mm", &["x", "c_out"], &["h"]),
                    if_node,
                ],
                initializer: vec![i64_tensor("shape", &[2], &[1, -1])],
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = summarize(&model, Path::new("m.onnx")).unwrap();
        // 12 (Constant) + 4 (Constant in the branch) + 5 (branch initializer); the int64 shape
        // is not a weight.
        assert_eq!(s.parameters, 21);
        assert_eq!(s.weight_bytes, 21 * 4);
        assert_eq!(s.nodes[0].name, "Constant:c_out");
        assert_eq!(s.nodes[1].weights.len(), 1);
        assert_eq!(s.nodes[1].weights[0].shape, vec![3, 4]);
    }
}
