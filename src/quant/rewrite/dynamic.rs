//! int8-dynamic: ONNX Runtime's `quantize_dynamic` form (`DynamicQuantizeLinear` +
//! `MatMulInteger`/`ConvInteger`), no calibration.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};

use super::*;
use crate::onnx::{self, pb, GraphIndex};

/// int8-dynamic, as ONNX Runtime's `quantize_dynamic` writes it: each MatMul with a 2-D
/// constant weight (and each Conv, when `ops` names Conv without MatMul) becomes `DynamicQuantizeLinear(x)` (uint8, scale and zero
/// point computed per run) → `MatMulInteger`/`ConvInteger` with int8 symmetric weights →
/// `Cast` to float → `Mul` by `s_x · s_w` (per output channel when per-channel) → bias `Add`.
/// One `DynamicQuantizeLinear` per distinct input tensor.
pub fn quantize_dynamic(graph: &mut pb::GraphProto, config: &QuantConfig) -> Result<RewriteCounts> {
    let index = GraphIndex::new(graph);
    let mut counts = RewriteCounts::default();
    let mut out = Dynamic {
        nodes: Vec::with_capacity(graph.node.len()),
        new_initializers: vec![],
        inputs: HashMap::new(),
    };
    for node in std::mem::take(&mut graph.node) {
        let weight = node
            .input
            .get(1)
            .and_then(|w| index.initializers.get(w))
            .map(|&i| &graph.initializer[i]);
        let Some(w) = weight.filter(|w| eligible(&node, w, &index, config)) else {
            if config.ops.contains(&node.op_type) && is_kept_float(&node, config) {
                counts.nodes_kept_float += 1;
            }
            out.nodes.push(node);
            continue;
        };
        out.rewrite(&node, w, &index, graph, config)
            .with_context(|| format!("rewriting node '{}' ({})", node.name, node.op_type))?;
        counts.weights += 1;
        counts.nodes_quantized += 1;
    }
    counts.activations = out.inputs.len();
    graph.node = out.nodes;
    graph.initializer.extend(out.new_initializers);
    crate::quant::prepare::drop_unused_initializers(graph);
    Ok(counts)
}

/// Whether `node` with constant weight `w` becomes an integer op.
fn eligible(
    node: &pb::NodeProto,
    w: &pb::TensorProto,
    index: &GraphIndex,
    config: &QuantConfig,
) -> bool {
    is_quantized_node(node, config)
        && node.input.len() >= 2
        && !index.is_initializer(&node.input[0])
        && match node.op_type.as_str() {
            "MatMul" => w.dims.len() == 2,
            // ConvInteger only when asked for by name in `ops` alone: ONNX Runtime's
            // ConvInteger ran PP-OCR's recognizer 6.5x slower than float here.
            "Conv" => w.dims.len() >= 3 && !config.ops.contains(&"MatMul".to_string()),
            _ => false,
        }
        && w.data_type == pb::tensor_proto::DataType::Float as i32
}

/// The graph being rewritten: its nodes in order, the initializers added, and the
/// `DynamicQuantizeLinear` outputs (quantized, scale, zero point) made for each input tensor.
struct Dynamic {
    nodes: Vec<pb::NodeProto>,
    new_initializers: Vec<pb::TensorProto>,
    inputs: HashMap<String, [String; 3]>,
}

impl Dynamic {
    /// The `DynamicQuantizeLinear` outputs for tensor `x`, made at its first use.
    fn quantized_input(&mut self, x: &str) -> [String; 3] {
        let Dynamic { nodes, inputs, .. } = self;
        inputs
            .entry(x.to_string())
            .or_insert_with(|| {
                let names = [
                    format!("{x}_dynamic_quantized"),
                    format!("{x}_dynamic_scale"),
                    format!("{x}_dynamic_zero_point"),
                ];
                nodes.push(onnx::node(
                    "DynamicQuantizeLinear",
                    &format!("{x}_DynamicQuantizeLinear"),
                    &[x],
                    &[&names[0], &names[1], &names[2]],
                ));
                names
            })
            .clone()
    }

    /// `node` as `MatMulInteger`/`ConvInteger` → `Cast` → `Mul` by `s_x · s_w` → bias `Add`.
    fn rewrite(
        &mut self,
        node: &pb::NodeProto,
        w: &pb::TensorProto,
        index: &GraphIndex,
        graph: &pb::GraphProto,
        config: &QuantConfig,
    ) -> Result<()> {
        let is_conv = node.op_type == "Conv";
        let (wq, wz, ws) = self.weight(node, w, is_conv, config)?;
        let base = if node.name.is_empty() {
            node.output[0].clone()
        } else {
            node.name.clone()
        };
        let [xq, xs, xz] = self.quantized_input(&node.input[0]);
        let (int_out, float_out, scale) = (
            format!("{base}_integer"),
            format!("{base}_integer_float"),
            format!("{base}_output_scale"),
        );
        let op = if is_conv {
            "ConvInteger"
        } else {
            "MatMulInteger"
        };
        let mut integer = onnx::node(
            op,
            &format!("{base}_{op}"),
            &[&xq, &wq, &xz, &wz],
            &[&int_out],
        );
        if is_conv {
            integer.attribute = node.attribute.clone();
        }
        self.nodes.push(integer);
        let mut cast = onnx::node("Cast", &format!("{base}_Cast"), &[&int_out], &[&float_out]);
        cast.attribute.push(onnx::int_attr(
            "to",
            pb::tensor_proto::DataType::Float as i64,
        ));
        self.nodes.push(cast);
        self.nodes.push(onnx::node(
            "Mul",
            &format!("{base}_scale_Mul"),
            &[&xs, &ws],
            &[&scale],
        ));
        let bias = node.input.get(2).filter(|b| is_conv && !b.is_empty());
        let scaled = if bias.is_some() {
            format!("{base}_scaled")
        } else {
            node.output[0].clone()
        };
        self.nodes.push(onnx::node(
            "Mul",
            &format!("{base}_output_Mul"),
            &[&float_out, &scale],
            &[&scaled],
        ));
        if let Some(b) = bias {
            let b_values = match index.initializers.get(b) {
                Some(&i) => onnx::tensor_to_f32(&graph.initializer[i])?,
                None => bail!("bias '{b}' is not a constant"),
            };
            let mut dims = vec![1, b_values.len() as i64];
            dims.extend(std::iter::repeat_n(1, w.dims.len() - 2));
            let name = format!("{base}_bias_broadcast");
            self.new_initializers
                .push(onnx::f32_tensor(&name, &dims, &b_values));
            self.nodes.push(onnx::node(
                "Add",
                &format!("{base}_bias_Add"),
                &[&scaled, &name],
                &[&node.output[0]],
            ));
        }
        Ok(())
    }

    /// The int8 symmetric weight, its zero point and scales (per output channel when
    /// per-channel); their names.
    fn weight(
        &mut self,
        node: &pb::NodeProto,
        w: &pb::TensorProto,
        is_conv: bool,
        config: &QuantConfig,
    ) -> Result<(String, String, String)> {
        let values = onnx::tensor_to_f32(w)?;
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            bail!(
                "weight '{}' holds {bad}: cannot quantize a non-finite weight",
                w.name
            );
        }
        let channel_axis = if is_conv { 0 } else { 1 };
        let granularity = if config.per_channel {
            Granularity::Channel(channel_axis)
        } else {
            Granularity::Tensor
        };
        // 7-bit weights where asked: ONNX Runtime's MatMulInteger multiplies u8 activations by
        // these in 16-bit sums on CPUs without VNNI, which 8-bit weights saturate.
        let q = quantize_weight(
            &values,
            &w.dims,
            granularity,
            config.int8_weight_type(),
            true,
            None,
        );
        let base = if node.name.is_empty() {
            node.output[0].clone()
        } else {
            node.name.clone()
        };
        let (wq, wz, ws) = (
            format!("{}_quantized", w.name),
            format!("{}_zero_point_dynamic", w.name),
            format!("{base}_weight_scale"),
        );
        self.new_initializers
            .push(onnx::byte_tensor(&wq, &w.dims, &q.values, true));
        // Symmetric weights: every zero point is 0, so one scalar serves per-channel too.
        self.new_initializers
            .push(onnx::byte_tensor(&wz, &[], &[0], true));
        let channels = q.scales.len() as i64;
        let scale_dims: Vec<i64> = match (channels > 1, is_conv) {
            (false, _) => vec![],
            (true, false) => vec![channels],
            (true, true) => {
                let mut d = vec![1, channels];
                d.extend(std::iter::repeat_n(1, w.dims.len() - 2));
                d
            }
        };
        self.new_initializers
            .push(onnx::f32_tensor(&ws, &scale_dims, &q.scales));
        Ok((wq, wz, ws))
    }
}
