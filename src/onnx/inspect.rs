//! A model's summary: what `quantbench inspect` prints and the GUI's model panel shows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{pb, GraphIndex};

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
    pub parameters: usize,
    pub weight_bytes: usize,
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

pub fn summarize(model: &pb::ModelProto, path: &Path) -> Result<ModelSummary> {
    let graph = super::graph(model);
    let index = GraphIndex::new(graph);
    let weight = |name: &str| -> Option<WeightSummary> {
        let t = &graph.initializer[*index.initializers.get(name)?];
        Some(WeightSummary {
            name: t.name.clone(),
            elem_type: super::data_type_name(t.data_type).to_string(),
            shape: t.dims.clone(),
            elements: super::element_count(&t.dims),
            bytes: super::tensor_bytes(t),
        })
    };
    let nodes: Vec<NodeSummary> = graph
        .node
        .iter()
        .map(|n| NodeSummary {
            name: n.name.clone(),
            op_type: n.op_type.clone(),
            inputs: n.input.clone(),
            outputs: n.output.clone(),
            weights: n.input.iter().filter_map(|i| weight(i)).collect(),
        })
        .collect();
    let mut op_histogram = BTreeMap::new();
    for n in &graph.node {
        *op_histogram.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    let parameters = graph
        .initializer
        .iter()
        .filter(|t| {
            t.data_type == pb::tensor_proto::DataType::Float as i32
                || t.data_type == pb::tensor_proto::DataType::Float16 as i32
        })
        .map(|t| super::element_count(&t.dims))
        .sum();
    let weight_bytes = graph.initializer.iter().map(super::tensor_bytes).sum();
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
