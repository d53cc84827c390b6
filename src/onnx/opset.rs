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
        let mut upgrade = Upgrade {
            from,
            target,
            new_inits: &mut *new_inits,
        };
        match upgrade.node(&mut n)? {
            Some(replacement) => {
                notes.push(format!(
                    "{} '{}': rewritten for the opset-13 axis semantics",
                    n.op_type, n.name
                ));
                out_nodes.extend(replacement);
            }
            None => out_nodes.push(n),
        }
    }
    Ok(out_nodes)
}

/// One node's upgrade from opset `from` to `target`, with the constants it adds.
struct Upgrade<'a> {
    from: i64,
    target: i64,
    new_inits: &'a mut Vec<pb::TensorProto>,
}

impl Upgrade<'_> {
    /// Whether the upgrade crosses the opset where an operator changed.
    fn crosses(&self, since: i64) -> bool {
        self.from < since && self.target >= since
    }

    /// An attribute's values as a new int64 constant input; its name.
    fn const_input(&mut self, n: &pb::NodeProto, suffix: &str, values: &[i64]) -> String {
        let name = if n.name.is_empty() {
            format!("{}_{suffix}_qb_upgrade", n.output[0])
        } else {
            format!("{}_{}_qb_upgrade", n.name.replace('/', "_"), suffix)
        };
        self.new_inits
            .push(i64_tensor(&name, &[values.len() as i64], values));
        name
    }

    /// The `axes` attribute as the second input (Squeeze/Unsqueeze/ReduceSum at 13, the other
    /// reductions at 18).
    fn axes_to_input(&mut self, n: &mut pb::NodeProto) {
        if let Some(axes) = attr_ints(n, "axes") {
            n.attribute.retain(|a| a.name != "axes");
            let name = self.const_input(n, "axes", &axes);
            n.input.truncate(1);
            n.input.push(name);
        }
    }

    /// Upgrades `n` in place; or returns the nodes that replace it.
    fn node(&mut self, n: &mut pb::NodeProto) -> Result<Option<Vec<pb::NodeProto>>> {
        let target = self.target;
        match n.op_type.as_str() {
            "Clip" if self.crosses(11) => self.clip(n),
            "Squeeze" | "Unsqueeze" | "ReduceSum" if self.crosses(13) => self.axes_to_input(n),
            "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1" | "ReduceL2"
            | "ReduceLogSum" | "ReduceLogSumExp" | "ReduceSumSquare"
                if self.crosses(18) =>
            {
                self.axes_to_input(n)
            }
            "Split" if self.crosses(13) || self.crosses(18) => self.split(n),
            "GridSample" if self.crosses(20) => {
                for a in n.attribute.iter_mut().filter(|a| a.name == "mode") {
                    let renamed: &[u8] = match a.s.as_slice() {
                        b"bilinear" => b"linear",
                        b"bicubic" => b"cubic",
                        other => other,
                    };
                    a.s = renamed.to_vec();
                }
            }
            "Pad" if self.crosses(11) => self.pad(n),
            "Slice" if self.crosses(10) => self.slice(n),
            "Dropout" if self.crosses(12) => n.attribute.retain(|a| a.name != "ratio"),
            "BatchNormalization" if self.crosses(9) => n.attribute.retain(|a| a.name != "spatial"),
            "Gemm" | "Add" | "Sub" | "Mul" | "Div" if self.crosses(7) => {
                if attr(n, "axis").is_some() {
                    bail!(
                        "node '{}' ({}) uses the opset-6 'axis' broadcast, which quantbench cannot upgrade to opset {target}",
                        n.name, n.op_type
                    );
                }
                n.attribute.retain(|a| a.name != "broadcast");
            }
            "Reshape" if self.from < 5 => bail!("node '{}' (Reshape) uses the opset-1 shape attribute; upgrade the model to opset 5+ first", n.name),
            "TopK" if self.crosses(10) => {
                let k = attr_int(n, "k").unwrap_or(1);
                n.attribute.retain(|a| a.name != "k");
                let name = self.const_input(n, "k", &[k]);
                n.input.push(name);
            }
            "Softmax" | "LogSoftmax" | "Hardmax" if self.crosses(13) => {
                return Ok(Some(softmax_2d(n)))
            }
            "Upsample" if target >= 10 => bail!(
                "node '{}' (Upsample) is deprecated from opset 10 and quantbench cannot rewrite it; export the model with opset {target} or newer",
                n.name
            ),
            "Resize" if self.crosses(11) => bail!(
                "node '{}' (Resize, opset 10) changed meaning in opset 11; export the model with opset 11 or newer",
                n.name
            ),
            _ => {}
        }
        Ok(None)
    }

    fn clip(&mut self, n: &mut pb::NodeProto) {
        let min = attr(n, "min").map(|a| a.f);
        let max = attr(n, "max").map(|a| a.f);
        n.attribute.retain(|a| a.name != "min" && a.name != "max");
        let base = if n.name.is_empty() {
            n.output[0].clone()
        } else {
            n.name.clone()
        };
        let min_name = format!("{base}_min_qb_upgrade");
        let max_name = format!("{base}_max_qb_upgrade");
        self.new_inits.push(super::f32_tensor(
            &min_name,
            &[],
            &[min.unwrap_or(f32::MIN)],
        ));
        self.new_inits.push(super::f32_tensor(
            &max_name,
            &[],
            &[max.unwrap_or(f32::MAX)],
        ));
        n.input = vec![n.input[0].clone(), min_name, max_name];
    }

    /// `split` as an input from 13; from 18 an equal split says how many parts.
    fn split(&mut self, n: &mut pb::NodeProto) {
        if self.crosses(13) {
            if let Some(split) = attr_ints(n, "split") {
                n.attribute.retain(|a| a.name != "split");
                let name = self.const_input(n, "split", &split);
                n.input.truncate(1);
                n.input.push(name);
            }
        }
        if self.crosses(18) && n.input.get(1).is_none_or(|s| s.is_empty()) {
            n.attribute
                .push(super::int_attr("num_outputs", n.output.len() as i64));
        }
    }

    fn pad(&mut self, n: &mut pb::NodeProto) {
        let pads = attr_ints(n, "pads").unwrap_or_default();
        let value = attr(n, "value").map(|a| a.f).unwrap_or(0.0);
        n.attribute
            .retain(|a| a.name != "pads" && a.name != "value");
        let pads_name = self.const_input(n, "pads", &pads);
        let value_name = format!("{pads_name}_value");
        self.new_inits
            .push(super::f32_tensor(&value_name, &[], &[value]));
        n.input = vec![n.input[0].clone(), pads_name, value_name];
    }

    fn slice(&mut self, n: &mut pb::NodeProto) {
        let starts = attr_ints(n, "starts").unwrap_or_default();
        let ends = attr_ints(n, "ends").unwrap_or_default();
        let axes = attr_ints(n, "axes");
        n.attribute.clear();
        let mut inputs = vec![
            n.input[0].clone(),
            self.const_input(n, "starts", &starts),
            self.const_input(n, "ends", &ends),
        ];
        if let Some(axes) = axes {
            inputs.push(self.const_input(n, "axes", &axes));
        }
        n.input = inputs;
    }
}

/// Before 13 Softmax (and LogSoftmax, Hardmax) coerced its input to 2-D at `axis` (default 1);
/// from 13 it works along one axis (default -1): flatten, apply on the last axis, restore.
fn softmax_2d(n: &pb::NodeProto) -> Vec<pb::NodeProto> {
    let axis = attr_int(n, "axis").unwrap_or(1);
    let base = if n.name.is_empty() {
        n.output[0].clone()
    } else {
        n.name.clone()
    };
    let x = n.input[0].clone();
    let y = n.output[0].clone();
    let flat = format!("{base}_flat_qb_upgrade");
    let soft = format!("{base}_2d_qb_upgrade");
    let shape = format!("{base}_shape_qb_upgrade");
    let mut flatten = node("Flatten", &flat, &[&x], &[&flat]);
    flatten.attribute.push(super::int_attr("axis", axis));
    let mut op = node(&n.op_type, &n.name, &[&flat], &[&soft]);
    op.attribute.push(super::int_attr("axis", -1));
    vec![
        flatten,
        op,
        node("Shape", &shape, &[&x], &[&shape]),
        node(
            "Reshape",
            &format!("{base}_restore_qb_upgrade"),
            &[&soft, &shape],
            &[&y],
        ),
    ]
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
