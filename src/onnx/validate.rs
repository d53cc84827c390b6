//! What a decoded model must satisfy before anything indexes into it: initializers as large as
//! their dimensions say, node inputs that name something, arities ONNX allows.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};

use super::pb;
use super::pb::tensor_proto::DataType;
use super::tensor::element_size;

/// Checks what the rewrite and the runtimes index into: every initializer holds as many bytes
/// as its dimensions say (negative or overflowing dimensions refused before any allocation),
/// and every node input names something (a graph input, an initializer or a node's output).
pub(super) fn validate_graph(graph: &pb::GraphProto) -> Result<()> {
    validate_scope(graph, &std::collections::HashSet::new(), 0)
}

/// `validate_graph` for a graph whose nodes may also read the names `outer` holds (the scopes
/// around a subgraph).
fn validate_scope<'a>(
    graph: &'a pb::GraphProto,
    outer: &std::collections::HashSet<&'a str>,
    depth: usize,
) -> Result<()> {
    use std::collections::HashSet;
    if depth > 64 {
        bail!("subgraphs nested more than 64 deep");
    }
    for t in &graph.initializer {
        if let Some(d) = t.dims.iter().find(|&&d| d < 0) {
            bail!("initializer '{}' has a negative dimension ({d})", t.name);
        }
        let count = t
            .dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .filter(|&n| n <= (1u64 << 40))
            .ok_or_else(|| {
                anyhow!(
                    "initializer '{}' has dimensions {:?}: more elements than any machine holds",
                    t.name,
                    t.dims
                )
            })?;
        let external = t.data_location == Some(pb::tensor_proto::DataLocation::External as i32);
        let sized = !matches!(
            DataType::try_from(t.data_type).unwrap_or(DataType::Undefined),
            DataType::String | DataType::Int4 | DataType::Uint4 | DataType::Undefined
        );
        if external || !sized {
            continue;
        }
        let held = if !t.raw_data.is_empty() {
            t.raw_data.len() as u64 / element_size(t.data_type) as u64
        } else {
            [
                t.float_data.len(),
                t.int32_data.len(),
                t.int64_data.len(),
                t.double_data.len(),
                t.uint64_data.len(),
            ]
            .into_iter()
            .max()
            .unwrap_or(0) as u64
        };
        if held != count {
            bail!(
                "initializer '{}' holds {held} values, but its dimensions {:?} need {count}",
                t.name,
                t.dims
            );
        }
    }
    let mut known: HashSet<&str> = outer.clone();
    known.extend(graph.input.iter().map(|v| v.name.as_str()));
    known.extend(graph.initializer.iter().map(|t| t.name.as_str()));
    known.extend(
        graph
            .sparse_initializer
            .iter()
            .filter_map(|t| t.values.as_ref().map(|v| v.name.as_str())),
    );
    known.extend(
        graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(|o| o.as_str())),
    );
    for n in &graph.node {
        if let Some(missing) = n
            .input
            .iter()
            .find(|i| !i.is_empty() && !known.contains(i.as_str()))
        {
            bail!(
                "node '{}' ({}) reads '{missing}', which no graph input, initializer or node provides",
                n.name,
                n.op_type
            );
        }
        check_arity(n)?;
        for a in &n.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                validate_scope(g, &known, depth + 1).with_context(|| {
                    format!(
                        "in the subgraph '{}' of node '{}' ({})",
                        a.name, n.name, n.op_type
                    )
                })?;
            }
        }
    }
    check_weights(graph)?;
    Ok(())
}

/// Inputs (fewest, most) and outputs (fewest, most) of the default-domain ops the rewrite and
/// the evaluation index into; other ops are left to the runtimes.
fn arity(op: &str) -> Option<((usize, usize), (usize, usize))> {
    const ANY: usize = usize::MAX;
    Some(match op {
        "Conv" | "ConvTranspose" | "Gemm" => ((2, 3), (1, 1)),
        "MatMul" | "Add" | "Sub" | "Mul" | "Div" | "Pow" | "PRelu" | "Gather" | "Reshape"
        | "Expand" | "Tile" => ((2, 2), (1, 1)),
        "MatMulInteger" | "ConvInteger" => ((2, 4), (1, 1)),
        "QuantizeLinear" | "DequantizeLinear" => ((2, 3), (1, 1)),
        "BatchNormalization" => ((5, 5), (1, 3)),
        "LayerNormalization" => ((2, 3), (1, 3)),
        "Relu" | "Sigmoid" | "Tanh" | "Softmax" | "HardSwish" | "HardSigmoid" | "Erf" | "Sqrt"
        | "Exp" | "Log" | "Neg" | "Abs" | "Identity" | "Flatten" | "Transpose"
        | "GlobalAveragePool" | "GlobalMaxPool" | "AveragePool" | "LeakyRelu" | "Gelu" | "Cast"
        | "Shape" | "Reciprocal" => ((1, 1), (1, 1)),
        "MaxPool" => ((1, 1), (1, 2)),
        "Clip" => ((1, 3), (1, 1)),
        "Squeeze" | "Unsqueeze" | "ReduceMean" | "ReduceSum" | "ReduceMax" => ((1, 2), (1, 1)),
        "Split" => ((1, 2), (1, ANY)),
        "Concat" | "Sum" | "Max" | "Min" | "Mean" => ((1, ANY), (1, 1)),
        "Resize" => ((1, 4), (1, 1)),
        "Upsample" => ((1, 2), (1, 1)),
        "Slice" => ((1, 5), (1, 1)),
        "Pad" => ((1, 4), (1, 1)),
        "DynamicQuantizeLinear" => ((1, 1), (3, 3)),
        _ => return None,
    })
}

fn check_arity(n: &pb::NodeProto) -> Result<()> {
    if n.output.is_empty() || n.output.iter().all(|o| o.is_empty()) {
        bail!("node '{}' ({}) has no output", n.name, n.op_type);
    }
    if !(n.domain.is_empty() || n.domain == "ai.onnx") {
        return Ok(());
    }
    let Some(((imin, imax), (omin, omax))) = arity(&n.op_type) else {
        return Ok(());
    };
    // Trailing empty names are optional inputs left out.
    let inputs = n.input.len() - n.input.iter().rev().take_while(|i| i.is_empty()).count();
    let outputs = n.output.len();
    let first_missing = n.input.iter().take(imin).position(|i| i.is_empty());
    if inputs < imin || inputs > imax || first_missing.is_some() {
        bail!(
            "node '{}' ({}) has {inputs} inputs; {} takes {}",
            n.name,
            n.op_type,
            n.op_type,
            range_text(imin, imax)
        );
    }
    if outputs < omin || outputs > omax {
        bail!(
            "node '{}' ({}) has {outputs} outputs; {} gives {}",
            n.name,
            n.op_type,
            n.op_type,
            range_text(omin, omax)
        );
    }
    Ok(())
}

fn range_text(lo: usize, hi: usize) -> String {
    match (lo, hi) {
        (l, h) if l == h => format!("{l}"),
        (l, usize::MAX) => format!("{l} or more"),
        (l, h) => format!("{l} to {h}"),
    }
}

/// Weights the rewrite divides by or indexes along: a Conv/ConvTranspose weight of rank 3 or
/// more, a Gemm/MatMul constant operand of rank 1 or more, and none of them with a zero-sized
/// dimension.
fn check_weights(graph: &pb::GraphProto) -> Result<()> {
    let inits: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    for n in &graph.node {
        let (weights, min_rank): (&[String], usize) = match n.op_type.as_str() {
            "Conv" | "ConvTranspose" => (&n.input[1..2.min(n.input.len())], 3),
            "Gemm" | "MatMul" => (&n.input[..2.min(n.input.len())], 1),
            _ => continue,
        };
        for w in weights {
            let Some(t) = inits.get(w.as_str()) else {
                continue;
            };
            if t.dims.len() < min_rank {
                bail!(
                    "node '{}' ({}): weight '{}' has rank {} ({:?}); {} needs at least {min_rank}",
                    n.name,
                    n.op_type,
                    t.name,
                    t.dims.len(),
                    t.dims,
                    n.op_type
                );
            }
            if t.dims.contains(&0) {
                bail!(
                    "node '{}' ({}): weight '{}' has a zero-sized dimension {:?}",
                    n.name,
                    n.op_type,
                    t.name,
                    t.dims
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod validation_tests {
    use super::*;
    use crate::onnx::{decode_model, encode_model, f32_tensor, node};

    fn model(graph: pb::GraphProto) -> Vec<u8> {
        encode_model(&pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(graph),
            ..Default::default()
        })
    }

    fn graph(init: pb::TensorProto, inputs: &[&str]) -> pb::GraphProto {
        pb::GraphProto {
            node: vec![node("MatMul", "mm", inputs, &["y"])],
            initializer: vec![init],
            input: vec![pb::ValueInfoProto {
                name: "x".into(),
                ..Default::default()
            }],
            output: vec![pb::ValueInfoProto {
                name: "y".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn malformed_graphs_are_refused_with_what_is_wrong() {
        let ok = f32_tensor("w", &[2, 3], &[0.5; 6]);
        assert!(decode_model(&model(graph(ok.clone(), &["x", "w"]))).is_ok());
        // Fewer bytes than the dimensions say.
        let mut short = ok.clone();
        short.raw_data.truncate(8);
        let e = decode_model(&model(graph(short, &["x", "w"])))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'w' holds 2 values") && e.contains("need 6"),
            "{e}"
        );
        // Dimensions no machine holds: refused before anything is allocated.
        let mut huge = ok.clone();
        huge.dims = vec![1 << 31, 1 << 31, 1 << 31];
        let e = decode_model(&model(graph(huge, &["x", "w"])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("more elements than any machine holds"), "{e}");
        let mut negative = ok.clone();
        negative.dims = vec![-2, 3];
        assert!(decode_model(&model(graph(negative, &["x", "w"]))).is_err());
        // A node input nothing provides.
        let e = decode_model(&model(graph(ok, &["x", "missing"])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("node 'mm' (MatMul) reads 'missing'"), "{e}");
    }
}
