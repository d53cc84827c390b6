//! Small models built by hand for the tests, and readers of what the rewrite wrote.

use std::path::Path;

use quantbench::data::Dataset;
use quantbench::onnx::{self, pb, GraphIndex};

/// Deterministic values in [-1, 1).
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f64 / u32::MAX as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

pub fn model(
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    input: &[i64],
) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(pb::GraphProto {
            name: "hand-built".into(),
            node: nodes,
            initializer: inits,
            input: vec![onnx::float_value_shaped("x", input)],
            output: vec![onnx::float_value("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn synthetic(model: &pb::ModelProto) -> Dataset {
    Dataset::open_for(Path::new("synthetic"), model, &Default::default())
        .unwrap()
        .0
}

/// A constant of `graph` as f32.
pub fn constant(graph: &pb::GraphProto, index: &GraphIndex, name: &str) -> Vec<f32> {
    onnx::tensor_to_f32(&graph.initializer[index.initializers[name]]).unwrap()
}

pub fn int_constant(graph: &pb::GraphProto, index: &GraphIndex, name: &str) -> i32 {
    let t = &graph.initializer[index.initializers[name]];
    onnx::tensor_to_f32(t).unwrap()[0] as i32
}

/// The weight a DequantizeLinear of `graph` makes from the initializer it reads, and the
/// (scale, zero point) of the QuantizeLinear reading activation `t`.
pub fn dequantized_weight(graph: &pb::GraphProto, index: &GraphIndex, weight_dq: &str) -> Vec<f32> {
    let dq = &graph.node[index.producer[weight_dq]];
    let q = constant(graph, index, &dq.input[0]);
    let scale = constant(graph, index, &dq.input[1])[0];
    let zero = dq
        .input
        .get(2)
        .map(|z| int_constant(graph, index, z))
        .unwrap_or(0);
    q.iter()
        .map(|&v| (v as i32 - zero) as f32 * scale)
        .collect()
}

pub fn activation_qparams(graph: &pb::GraphProto, index: &GraphIndex, t: &str) -> (f32, i32) {
    let q = index
        .consumers_of(t)
        .iter()
        .map(|&i| &graph.node[i])
        .find(|n| n.op_type == "QuantizeLinear")
        .unwrap();
    (
        constant(graph, index, &q.input[1])[0],
        int_constant(graph, index, &q.input[2]),
    )
}
