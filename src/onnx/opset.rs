//! Upgrading a model's default-domain opset in place.
//!
//! Quantization features need recent operator versions (per-channel Q/DQ: 13, int4 and blocked
//! Q/DQ: 21). Most operators read the same across versions; the ones whose attributes moved to
//! inputs or whose meaning changed are rewritten here, and an operator we cannot upgrade safely
//! is refused with its name rather than written out wrong.

use anyhow::{bail, Result};

use super::{attr, attr_int, attr_ints, graph_mut, i64_tensor, node, pb, set_default_opset};

/// What changed, for the user: one line per rewritten node kind.
pub fn upgrade(model: &mut pb::ModelProto, target: i64) -> Result<Vec<String>> {
    let from = super::default_opset(model);
    if from >= target {
        return Ok(vec![]);
    }
    let mut notes = vec![format!("opset {from} -> {target}")];
    let graph = graph_mut(model);
    let mut new_inits: Vec<pb::TensorProto> = vec![];
    let nodes = std::mem::take(&mut graph.node);
    graph.node = upgrade_nodes(nodes, from, target, &mut new_inits, &mut notes)?;
    graph.initializer.extend(new_inits);
    set_default_opset(model, target);
    drop_initializer_inputs(model);
    Ok(notes)
}

/// Upgrades `nodes` and, first, the nodes of their subgraphs (If/Loop/Scan bodies share the
/// model's opset). New constants go to `new_inits`, in the main graph, which bodies can read.
fn upgrade_nodes(
    nodes: Vec<pb::NodeProto>,
    from: i64,
    target: i64,
    new_inits: &mut Vec<pb::TensorProto>,
    notes: &mut Vec<String>,
) -> Result<Vec<pb::NodeProto>> {
    let mut out_nodes: Vec<pb::NodeProto> = Vec::with_capacity(nodes.len());
    let crosses = |since: i64| from < since && target >= since;
    for mut n in nodes {
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            out_nodes.push(n);
            continue;
        }
        for a in &mut n.attribute {
            for g in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                let body = std::mem::take(&mut g.node);
                g.node = upgrade_nodes(body, from, target, new_inits, notes)?;
            }
        }
        n.attribute
            .retain(|a| a.name != "consumed_inputs" && a.name != "is_test");
        let const_input =
            |n: &pb::NodeProto, suffix: &str, values: &[i64], inits: &mut Vec<pb::TensorProto>| {
                let name = format!("{}_{}_qb_upgrade", n.name.replace('/', "_"), suffix);
                let name = if n.name.is_empty() {
                    format!("{}_{suffix}_qb_upgrade", n.output[0])
                } else {
                    name
                };
                inits.push(i64_tensor(&name, &[values.len() as i64], values));
                name
            };
        match n.op_type.as_str() {
            "Clip" if crosses(11) => {
                let min = attr(&n, "min").map(|a| a.f);
                let max = attr(&n, "max").map(|a| a.f);
                n.attribute.retain(|a| a.name != "min" && a.name != "max");
                let base = if n.name.is_empty() { n.output[0].clone() } else { n.name.clone() };
                let mut inputs = vec![n.input[0].clone()];
                let min_name = format!("{base}_min_qb_upgrade");
                let max_name = format!("{base}_max_qb_upgrade");
                new_inits.push(super::f32_tensor(&min_name, &[], &[min.unwrap_or(f32::MIN)]));
                new_inits.push(super::f32_tensor(&max_name, &[], &[max.unwrap_or(f32::MAX)]));
                inputs.push(min_name);
                inputs.push(max_name);
                n.input = inputs;
            }
            "Squeeze" | "Unsqueeze" | "ReduceSum" if crosses(13) => {
                if let Some(axes) = attr_ints(&n, "axes") {
                    n.attribute.retain(|a| a.name != "axes");
                    let name = const_input(&n, "axes", &axes, new_inits);
                    n.input.truncate(1);
                    n.input.push(name);
                }
            }
            "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1" | "ReduceL2"
            | "ReduceLogSum" | "ReduceLogSumExp" | "ReduceSumSquare"
                if crosses(18) =>
            {
                if let Some(axes) = attr_ints(&n, "axes") {
                    n.attribute.retain(|a| a.name != "axes");
                    let name = const_input(&n, "axes", &axes, new_inits);
                    n.input.truncate(1);
                    n.input.push(name);
                }
            }
            "Split" if crosses(13) => {
                if let Some(split) = attr_ints(&n, "split") {
                    n.attribute.retain(|a| a.name != "split");
                    let name = const_input(&n, "split", &split, new_inits);
                    n.input.truncate(1);
                    n.input.push(name);
                }
                if crosses(18) && n.input.get(1).is_none_or(|s| s.is_empty()) {
                    n.attribute
                        .push(super::int_attr("num_outputs", n.output.len() as i64));
                }
            }
            "Split" if crosses(18) && n.input.get(1).is_none_or(|s| s.is_empty()) => {
                // From 18 an equal split must say how many parts.
                n.attribute
                    .push(super::int_attr("num_outputs", n.output.len() as i64));
            }
            "GridSample" if crosses(20) => {
                for a in n.attribute.iter_mut().filter(|a| a.name == "mode") {
                    let renamed: &[u8] = match a.s.as_slice() {
                        b"bilinear" => b"linear",
                        b"bicubic" => b"cubic",
                        other => other,
                    };
                    a.s = renamed.to_vec();
                }
            }
            "Pad" if crosses(11) => {
                let pads = attr_ints(&n, "pads").unwrap_or_default();
                let value = attr(&n, "value").map(|a| a.f).unwrap_or(0.0);
                n.attribute.retain(|a| a.name != "pads" && a.name != "value");
                let pads_name = const_input(&n, "pads", &pads, new_inits);
                let value_name = format!("{pads_name}_value");
                new_inits.push(super::f32_tensor(&value_name, &[], &[value]));
                n.input = vec![n.input[0].clone(), pads_name, value_name];
            }
            "Slice" if crosses(10) => {
                let starts = attr_ints(&n, "starts").unwrap_or_default();
                let ends = attr_ints(&n, "ends").unwrap_or_default();
                let axes = attr_ints(&n, "axes");
                n.attribute.clear();
                let mut inputs = vec![
                    n.input[0].clone(),
                    const_input(&n, "starts", &starts, new_inits),
                    const_input(&n, "ends", &ends, new_inits),
                ];
                if let Some(axes) = axes {
                    inputs.push(const_input(&n, "axes", &axes, new_inits));
                }
                n.input = inputs;
            }
            "Dropout" if crosses(12) => n.attribute.retain(|a| a.name != "ratio"),
            "BatchNormalization" if crosses(9) => n.attribute.retain(|a| a.name != "spatial"),
            "Gemm" | "Add" | "Sub" | "Mul" | "Div" if crosses(7) => {
                if attr(&n, "axis").is_some() {
                    bail!(
                        "node '{}' ({}) uses the opset-6 'axis' broadcast, which quantbench cannot upgrade to opset {target}",
                        n.name, n.op_type
                    );
                }
                n.attribute.retain(|a| a.name != "broadcast");
            }
            "Reshape" if from < 5 => bail!("node '{}' (Reshape) uses the opset-1 shape attribute; upgrade the model to opset 5+ first", n.name),
            "TopK" if crosses(10) => {
                let k = attr_int(&n, "k").unwrap_or(1);
                n.attribute.retain(|a| a.name != "k");
                let name = const_input(&n, "k", &[k], new_inits);
                n.input.push(name);
            }
            "Softmax" | "LogSoftmax" | "Hardmax" if crosses(13) => {
                // Before 13 the input was coerced to 2-D at `axis` (default 1); from 13 the op
                // works along one axis (default -1). Flatten, apply on the last axis, restore.
                let axis = attr_int(&n, "axis").unwrap_or(1);
                let base = if n.name.is_empty() { n.output[0].clone() } else { n.name.clone() };
                let x = n.input[0].clone();
                let y = n.output[0].clone();
                let flat = format!("{base}_flat_qb_upgrade");
                let soft = format!("{base}_2d_qb_upgrade");
                let shape = format!("{base}_shape_qb_upgrade");
                let mut flatten = node("Flatten", &flat, &[&x], &[&flat]);
                flatten.attribute.push(super::int_attr("axis", axis));
                let mut op = node(&n.op_type, &n.name, &[&flat], &[&soft]);
                op.attribute.push(super::int_attr("axis", -1));
                out_nodes.push(flatten);
                out_nodes.push(op);
                out_nodes.push(node("Shape", &shape, &[&x], &[&shape]));
                out_nodes.push(node("Reshape", &format!("{base}_restore_qb_upgrade"), &[&soft, &shape], &[&y]));
                notes.push(format!("{} '{}': rewritten for the opset-13 axis semantics", n.op_type, n.name));
                continue;
            }
            "Upsample" if target >= 10 => bail!(
                "node '{}' (Upsample) is deprecated from opset 10 and quantbench cannot rewrite it; export the model with opset {target} or newer",
                n.name
            ),
            "Resize" if crosses(11) => bail!(
                "node '{}' (Resize, opset 10) changed meaning in opset 11; export the model with opset 11 or newer",
                n.name
            ),
            _ => {}
        }
        out_nodes.push(n);
    }
    Ok(out_nodes)
}

/// From IR 4 on, initializers need not be listed as graph inputs; listing them makes runtimes
/// treat the weights as overridable inputs and blocks constant folding.
pub fn drop_initializer_inputs(model: &mut pb::ModelProto) {
    if model.ir_version < 4 {
        return;
    }
    let graph = graph_mut(model);
    let inits: std::collections::HashSet<String> =
        graph.initializer.iter().map(|t| t.name.clone()).collect();
    graph.input.retain(|i| !inits.contains(&i.name));
}
