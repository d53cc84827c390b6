//! Small graph queries and builders: the opset, attributes, value infos, nodes, and
//! [`GraphIndex`] (producers and consumers by tensor name).

use std::collections::HashMap;

use super::pb::tensor_proto::DataType;
use super::{ir_version_for_opset, pb};

/// The default-domain opset the model imports.
pub fn default_opset(model: &pb::ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(1)
}

pub fn set_default_opset(model: &mut pb::ModelProto, version: i64) {
    match model
        .opset_import
        .iter_mut()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
    {
        Some(o) => o.version = version,
        None => model.opset_import.push(pb::OperatorSetIdProto {
            domain: String::new(),
            version,
        }),
    }
    model.ir_version = model.ir_version.max(ir_version_for_opset(version));
}

pub fn graph(model: &pb::ModelProto) -> &pb::GraphProto {
    model
        .graph
        .as_ref()
        .expect("decode_model guarantees a graph")
}

pub fn graph_mut(model: &mut pb::ModelProto) -> &mut pb::GraphProto {
    model
        .graph
        .as_mut()
        .expect("decode_model guarantees a graph")
}

pub fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub fn attr_int(node: &pb::NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

pub fn attr_ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

pub fn attr_float(node: &pb::NodeProto, name: &str) -> Option<f32> {
    attr(node, name).map(|a| a.f)
}

pub fn int_attr(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

pub fn ints_attr(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// A float tensor value of unknown shape (a graph input or output to declare).
pub fn float_value(name: &str) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A float tensor value of fixed shape `dims`.
pub fn float_value_shaped(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    let mut v = float_value(name);
    if let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape = Some(pb::TensorShapeProto {
            dim: dims
                .iter()
                .map(|&d| pb::tensor_shape_proto::Dimension {
                    value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d)),
                    ..Default::default()
                })
                .collect(),
        });
    }
    v
}

pub fn node(op_type: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op_type.to_string(),
        name: name.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Every tensor name the subgraphs of `node` read (recursively), including outer-scope names.
pub fn subgraph_inputs(node: &pb::NodeProto) -> Vec<&String> {
    node.attribute
        .iter()
        .flat_map(|a| a.g.iter().chain(&a.graphs))
        .flat_map(|g| {
            g.node
                .iter()
                .flat_map(|n| n.input.iter().chain(subgraph_inputs(n)))
                .chain(g.output.iter().map(|o| &o.name))
        })
        .collect()
}

/// Name lookups over a graph, built once per pass.
pub struct GraphIndex {
    /// initializer name -> index in `graph.initializer`
    pub initializers: HashMap<String, usize>,
    /// tensor name -> index of the node producing it
    pub producer: HashMap<String, usize>,
    /// tensor name -> indices of the nodes consuming it, in graph order
    pub consumers: HashMap<String, Vec<usize>>,
    pub graph_outputs: Vec<String>,
}

impl GraphIndex {
    pub fn new(graph: &pb::GraphProto) -> Self {
        let initializers = graph
            .initializer
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let mut producer = HashMap::new();
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                producer.insert(o.clone(), i);
            }
            // A node with a body consumes what the body reads from outside, so no fold treats
            // such a tensor as unused or single-use.
            let mut read: Vec<&String> = n.input.iter().filter(|o| !o.is_empty()).collect();
            read.extend(subgraph_inputs(n));
            read.sort();
            read.dedup();
            for inp in read {
                consumers.entry(inp.clone()).or_default().push(i);
            }
        }
        let graph_outputs = graph.output.iter().map(|o| o.name.clone()).collect();
        GraphIndex {
            initializers,
            producer,
            consumers,
            graph_outputs,
        }
    }

    pub fn is_initializer(&self, name: &str) -> bool {
        self.initializers.contains_key(name)
    }

    pub fn consumers_of(&self, name: &str) -> &[usize] {
        self.consumers
            .get(name)
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    pub fn is_graph_output(&self, name: &str) -> bool {
        self.graph_outputs.iter().any(|o| o == name)
    }
}

/// Dimensions of a value's declared type: `Ok(n)` for a number, `Err(symbol)` for a symbol.
pub fn value_dims(v: &pb::ValueInfoProto) -> Vec<std::result::Result<i64, String>> {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_ref().and_then(|t| t.value.clone())
    else {
        return vec![];
    };
    t.shape
        .map(|s| {
            s.dim
                .iter()
                .enumerate()
                .map(|(i, d)| match &d.value {
                    Some(Value::DimValue(n)) if *n > 0 => Ok(*n),
                    Some(Value::DimParam(p)) if !p.is_empty() => Err(p.clone()),
                    _ => Err(format!("d{i}")),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn value_elem_type(v: &pb::ValueInfoProto) -> i32 {
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t.elem_type,
        None => 0,
    }
}

/// Graph inputs that are real inputs (IR < 4 files also list every initializer as an input).
pub fn real_inputs(graph: &pb::GraphProto) -> Vec<&pb::ValueInfoProto> {
    let inits: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .collect()
}
