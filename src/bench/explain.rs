//! Why a quantized model is not faster: which weighted ops still compute in float (and why),
//! their share of the multiply-accumulates, the Q/DQ pairs around ops an int8 runtime has no
//! kernel for, the CPU's int8 instruction sets, and the change to try.
//!
//! ONNX Runtime runs a Conv/MatMul/Gemm in int8 when it is a QDQ "node unit": every input
//! (activation and weight) comes from a DequantizeLinear and its one output goes to a
//! QuantizeLinear. Anything else runs in float between a dequantize and a quantize.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use crate::onnx::{self, pb, GraphIndex};
use crate::runtime::TractModel;
use crate::tensor::Feed;

/// Ops ONNX Runtime's CPU provider runs from QDQ node units (int8 or quantized data movement).
const ORT_QDQ_OPS: [&str; 24] = [
    "Conv",
    "ConvTranspose",
    "MatMul",
    "Gemm",
    "Add",
    "Mul",
    "Concat",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Gather",
    "Resize",
    "Sigmoid",
    "LeakyRelu",
    "Softmax",
    "Split",
    "Identity",
    "Slice",
    "ArgMax",
];

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FloatOp {
    pub node: String,
    pub op_type: String,
    pub macs: u64,
    /// Why it is not an int8 node unit.
    pub reason: String,
}

/// An op ONNX Runtime has no int8 kernel for, reading a dequantized activation: the Q/DQ pair
/// around it is a dequantize and a quantize around a float op.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct UnfusedRead {
    pub node: String,
    pub op_type: String,
    /// The dequantized tensor it reads.
    pub tensor: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SpeedExplanation {
    pub weighted_ops: usize,
    pub int8_ops: usize,
    /// The weighted ops that are int8 node units, in graph order.
    pub int8_nodes: Vec<String>,
    pub total_macs: u64,
    pub float_macs: u64,
    /// Weighted ops computing in float, largest first.
    pub float_ops: Vec<FloatOp>,
    /// DequantizeLinear outputs read by ops without a QDQ kernel: op type -> count.
    pub unfused_qdq: BTreeMap<String, usize>,
    /// Those reads one by one, in graph order.
    pub unfused_reads: Vec<UnfusedRead>,
    pub int8_features: Vec<String>,
    pub advice: Vec<String>,
}

impl SpeedExplanation {
    pub fn float_share(&self) -> f64 {
        if self.total_macs == 0 {
            0.0
        } else {
            self.float_macs as f64 / self.total_macs as f64
        }
    }
}

/// Multiply-accumulates of each weighted op by node position, from the output shapes tract
/// infers for `example` (node names may repeat or be empty).
fn macs(model: &pb::ModelProto, example: &[Feed]) -> Result<BTreeMap<usize, u64>> {
    let g = onnx::graph(model);
    let index = GraphIndex::new(g);
    let weighted: Vec<(usize, &pb::NodeProto)> = g
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            matches!(
                n.op_type.as_str(),
                "Conv" | "ConvTranspose" | "MatMul" | "Gemm"
            ) && n.input.len() >= 2
                && !n.output.is_empty()
        })
        .collect();
    let outputs: Vec<String> = weighted.iter().map(|(_, n)| n.output[0].clone()).collect();
    if outputs.is_empty() {
        return Ok(BTreeMap::new());
    }
    let run = TractModel::load(model, example, Some(&outputs))?;
    let shapes = run.output_shapes()?;
    // A weight's dims, through a DequantizeLinear where the quantized model has one.
    let weight_dims = |name: &str| -> Option<Vec<u64>> {
        let source = match index.producer.get(name) {
            Some(&p) if g.node[p].op_type == "DequantizeLinear" => g.node[p].input[0].as_str(),
            _ => name,
        };
        let t = &g.initializer[*index.initializers.get(source)?];
        Some(t.dims.iter().map(|&d| d.max(0) as u64).collect())
    };
    let mut out = BTreeMap::new();
    for (&(pos, n), shape) in weighted.iter().zip(shapes) {
        let elements: u64 = shape.iter().map(|&d| d as u64).product();
        let w = n
            .input
            .get(1)
            .and_then(|w| weight_dims(w))
            .unwrap_or_default();
        let per_output = match (n.op_type.as_str(), w.as_slice()) {
            // Weight [C_out, C_in / group, k...]: each output sums C_in / group · k... products.
            ("Conv", [_, rest @ ..]) => rest.iter().product::<u64>(),
            // Weight [C_in, C_out / group, k...]: each input element feeds C_out / group · k...
            ("ConvTranspose", [cin, cout_g, k @ ..]) => {
                k.iter().product::<u64>() * cin / (*cout_g).max(1)
            }
            ("Gemm", [_, k]) if onnx::attr_int(n, "transB").unwrap_or(0) == 1 => *k,
            ("Gemm" | "MatMul", [.., k, _]) => *k,
            _ => 0,
        };
        out.insert(pos, elements * per_output);
    }
    Ok(out)
}

/// Explains `quantized` (quantbench's or any tool's QDQ file) run on a CPU with `features`.
pub fn explain(
    quantized: &pb::ModelProto,
    example: &[Feed],
    features: &[String],
    has_vnni: bool,
) -> Result<SpeedExplanation> {
    let g = onnx::graph(quantized);
    let index = GraphIndex::new(g);
    let macs = macs(quantized, example)?;
    let from_dq = |t: &str| {
        index
            .producer
            .get(t)
            .is_some_and(|&p| g.node[p].op_type == "DequantizeLinear")
    };
    let mut float_ops = vec![];
    let mut int8_nodes = vec![];
    let (mut weighted, mut int8, mut total, mut float_macs) = (0, 0, 0u64, 0u64);
    for (&pos, &m) in &macs {
        let n = &g.node[pos];
        weighted += 1;
        total += m;
        let consumers = index.consumers_of(&n.output[0]);
        let reason = if !from_dq(&n.input[0]) {
            Some("its input is not quantized".to_string())
        } else if !n.input.get(1).is_some_and(|w| from_dq(w)) {
            Some("its weight is not quantized".to_string())
        } else if !(consumers.len() == 1 && g.node[consumers[0]].op_type == "QuantizeLinear") {
            let next: Vec<&str> = consumers
                .iter()
                .map(|&c| g.node[c].op_type.as_str())
                .collect();
            Some(if next.is_empty() {
                "its output is a graph output, not quantized".to_string()
            } else {
                format!("its output is not quantized (read by {})", next.join(", "))
            })
        } else {
            None
        };
        match reason {
            None => {
                int8 += 1;
                int8_nodes.push(n.name.clone());
            }
            Some(reason) => {
                float_macs += m;
                float_ops.push(FloatOp {
                    node: n.name.clone(),
                    op_type: n.op_type.clone(),
                    macs: m,
                    reason,
                });
            }
        }
    }
    float_ops.sort_by_key(|f| std::cmp::Reverse(f.macs));
    let mut unfused_qdq = BTreeMap::new();
    let mut unfused_reads = vec![];
    for dq in g
        .node
        .iter()
        .filter(|n| n.op_type == "DequantizeLinear" && !index.is_initializer(&n.input[0]))
    {
        for &c in index.consumers_of(&dq.output[0]) {
            let reader = &g.node[c];
            let op = &reader.op_type;
            if op != "QuantizeLinear" && !ORT_QDQ_OPS.contains(&op.as_str()) {
                *unfused_qdq.entry(op.clone()).or_insert(0) += 1;
                unfused_reads.push(UnfusedRead {
                    node: reader.name.clone(),
                    op_type: op.clone(),
                    tensor: dq.output[0].clone(),
                });
            }
        }
    }
    let mut e = SpeedExplanation {
        weighted_ops: weighted,
        int8_ops: int8,
        int8_nodes,
        total_macs: total,
        float_macs,
        float_ops,
        unfused_qdq,
        unfused_reads,
        int8_features: features.to_vec(),
        advice: vec![],
    };
    e.advice = advice(&e, features, has_vnni);
    Ok(e)
}

/// What to try, from what the explanation found.
fn advice(e: &SpeedExplanation, features: &[String], has_vnni: bool) -> Vec<String> {
    let mut advice = vec![];
    let share = e.float_share();
    if share > 0.2 {
        let top: Vec<String> = e
            .float_ops
            .iter()
            .take(3)
            .map(|f| format!("{} ({})", f.node, f.reason))
            .collect();
        advice.push(format!(
            "{:.0}% of the multiply-accumulates still run in float; the largest: {}. Quantize what they read and write: add the ops around them to the quantized ops, or stop keeping them float",
            share * 100.0,
            top.join("; ")
        ));
    }
    if !e.unfused_qdq.is_empty() {
        let list: Vec<String> = e
            .unfused_qdq
            .iter()
            .map(|(op, n)| format!("{op} ×{n}"))
            .collect();
        advice.push(format!(
            "Q/DQ pairs feed ops ONNX Runtime has no int8 kernel for ({}): each is a dequantize and a quantize around a float op that a float Conv before it would have fused (HardSwish, HardSigmoid, Sigmoid). Keeping the layers on both sides float can be faster than int8 there: the search (tune) tries such groups and keeps the fastest that meets its goal",
            list.join(", ")
        ));
    }
    if !has_vnni {
        advice.push(format!(
            "this CPU ({}) has no VNNI: int8 dot products go through 16-bit intermediate sums (vpmaddubsw), so int8 kernels gain less over float here than on a VNNI CPU; for ONNX Runtime, quantize for the target ort-cpu (ONNX Runtime on this CPU: 7-bit weights) to stay exact",
            if features.is_empty() { "no AVX2".to_string() } else { features.join(", ") }
        ));
    }
    if advice.is_empty() {
        advice.push("every weighted op is an int8 node unit: the model is as quantized as ONNX Runtime can run it".into());
    }
    advice
}
