//! Rewriting the prepared float graph into its quantized form.
//!
//! int8: each activation tensor is quantized once, where an int8 kernel would produce it (after
//! a Relu/Clip that fuses into the preceding Conv/MatMul/Gemm/Add, not before it and again after
//! it); data-movement ops (MaxPool, Reshape, ...) reuse their input's scale so their Q/DQ is
//! exact; weights get per-tensor or per-channel DequantizeLinear; Conv/Gemm biases become int32
//! with scale `s_x · s_w`, as int8 kernels accumulate them. Weight-only modes put a
//! DequantizeLinear (int8, int4) or a Cast (fp16) after each weight and leave activations float.

mod activations;
mod dynamic;
mod weights_only;

use std::collections::HashMap;

use anyhow::{bail, Result};

use super::config::{Int4Storage, Mode, QuantConfig};
use super::math::{self, QParams, QType};
use crate::onnx::{self, pb, GraphIndex};

pub use activations::{
    elementwise_without_int8_reader, float_units, insert_qdq, plan_activations,
    saturation_interval_of, saturation_intervals, share_concat_ranges, ActivationPlan,
};
pub use dynamic::quantize_dynamic;
pub use weights_only::{convert_fp16, int4_as_onnx, quantize_weights_only};

/// A learned rounding of one weight (AdaRound's, `quant::adaround`): its integer values, valid on the grid of `scales`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rounding {
    pub scales: Vec<f32>,
    pub values: Vec<i32>,
}

/// Learned roundings by weight name.
pub type Roundings = HashMap<String, Rounding>;

pub(super) fn is_kept_float(node: &pb::NodeProto, config: &QuantConfig) -> bool {
    config
        .keep_float
        .iter()
        .any(|k| *k == node.name || *k == node.op_type)
}

pub(super) fn is_quantized_node(node: &pb::NodeProto, config: &QuantConfig) -> bool {
    node.domain.is_empty() && config.ops.contains(&node.op_type) && !is_kept_float(node, config)
}

/// Checks that every name in `keep_float` names a node or an op type of the graph.
pub fn check_keep_float(graph: &pb::GraphProto, config: &QuantConfig) -> Result<()> {
    for k in &config.keep_float {
        if !graph.node.iter().any(|n| n.name == *k || n.op_type == *k) {
            bail!("keep_float: '{k}' is neither a node name nor an op type of this model");
        }
    }
    Ok(())
}

/// Quantized weight: integer values with their scale and zero point, laid out for one
/// DequantizeLinear.
pub(super) struct QuantizedWeight {
    values: Vec<i32>,
    scales: Vec<f32>,
    zero_points: Vec<i32>,
    /// Shape of scale and zero point (empty: scalar).
    param_dims: Vec<i64>,
    axis: Option<i64>,
    block_size: Option<i64>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Granularity {
    Tensor,
    Channel(usize),
    /// Blocks of `size` along `axis`.
    Block {
        axis: usize,
        size: usize,
    },
}

/// Which scale (group) each element of a weight uses, by flat index.
pub(crate) struct GroupIndex {
    dims: Vec<usize>,
    strides: Vec<usize>,
    granularity: Granularity,
}

impl GroupIndex {
    pub(crate) fn new(dims: &[i64], granularity: Granularity) -> Self {
        let dims: Vec<usize> = dims.iter().map(|&d| d.max(0) as usize).collect();
        let strides = (0..dims.len())
            .map(|a| dims[a + 1..].iter().product::<usize>())
            .collect();
        GroupIndex {
            dims,
            strides,
            granularity,
        }
    }

    pub(crate) fn of(&self, flat: usize) -> usize {
        match self.granularity {
            Granularity::Tensor => 0,
            Granularity::Channel(a) => (flat / self.strides[a]) % self.dims[a].max(1),
            Granularity::Block { axis, size } => {
                // Same coordinates, with the blocked axis divided by the block size.
                let mut g = 0;
                let mut rem = flat;
                for (a, &stride) in self.strides.iter().enumerate() {
                    let coord = rem / stride.max(1);
                    rem %= stride.max(1);
                    let (c, extent) = if a == axis {
                        (coord / size, self.dims[a].div_ceil(size))
                    } else {
                        (coord, self.dims[a])
                    };
                    g = g * extent + c;
                }
                g
            }
        }
    }
}

/// `min_scales`: a floor per group (per channel), where a bias would otherwise overflow int32.
pub(super) fn quantize_weight(
    values: &[f32],
    dims: &[i64],
    granularity: Granularity,
    qtype: QType,
    symmetric: bool,
    min_scales: Option<&[f32]>,
) -> QuantizedWeight {
    let dims_u: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    // The group layout: how many, the shape of scale and zero point, axis and block size.
    let (groups, param_dims, axis, block_size): (usize, Vec<i64>, Option<i64>, Option<i64>) =
        match granularity {
            Granularity::Tensor => (1, vec![], None, None),
            Granularity::Channel(a) => (dims_u[a], vec![dims[a]], Some(a as i64), None),
            Granularity::Block { axis, size } => {
                let mut pd = dims.to_vec();
                pd[axis] = dims_u[axis].div_ceil(size) as i64;
                (
                    pd.iter().product::<i64>() as usize,
                    pd,
                    Some(axis as i64),
                    Some(size as i64),
                )
            }
        };
    let groups_index = GroupIndex::new(dims, granularity);
    let group_of = |flat: usize| groups_index.of(flat);
    let mut lo = vec![f32::INFINITY; groups];
    let mut hi = vec![f32::NEG_INFINITY; groups];
    for (i, &v) in values.iter().enumerate() {
        let g = group_of(i);
        lo[g] = lo[g].min(v);
        hi[g] = hi[g].max(v);
    }
    let params: Vec<QParams> = (0..groups)
        .map(|g| {
            let mut p = math::qparams(lo[g], hi[g], qtype, symmetric);
            let floor = min_scales
                .and_then(|m| m.get(if m.len() == 1 { 0 } else { g }))
                .copied()
                .unwrap_or(0.0);
            if p.scale < floor {
                // A coarser grid for this channel; symmetric grids keep their zero point.
                let lo = lo[g].min(0.0);
                p = if symmetric {
                    QParams {
                        scale: floor,
                        zero_point: p.zero_point,
                    }
                } else {
                    let (qmin, qmax) = qtype.range();
                    QParams {
                        scale: floor,
                        zero_point: (qmin as f32 - lo / floor)
                            .round_ties_even()
                            .clamp(qmin as f32, qmax as f32)
                            as i32,
                    }
                };
            }
            p
        })
        .collect();
    let quantized = values
        .iter()
        .enumerate()
        .map(|(i, &v)| math::quantize(v, params[group_of(i)], qtype))
        .collect();
    QuantizedWeight {
        values: quantized,
        scales: params.iter().map(|p| p.scale).collect(),
        zero_points: params.iter().map(|p| p.zero_point).collect(),
        param_dims,
        axis,
        block_size,
    }
}

/// Accumulates new nodes and initializers during a rewrite.
pub(super) struct Edit<'a> {
    graph: &'a pb::GraphProto,
    index: GraphIndex,
    new_initializers: Vec<pb::TensorProto>,
    /// DequantizeLinear/Cast nodes for weights: they depend on initializers only, so they go first.
    weight_nodes: Vec<pb::NodeProto>,
    /// weight name -> its dequantized tensor name
    replaced: HashMap<String, String>,
    /// weight name -> per-group scales (for bias scales)
    weight_scales: HashMap<String, Vec<f32>>,
    int4_as_onnx: bool,
    /// Learned roundings (AdaRound) that replace round-to-nearest where their scales match.
    roundings: Option<&'a Roundings>,
}

impl<'a> Edit<'a> {
    fn new(graph: &'a pb::GraphProto, int4_as_onnx: bool) -> Self {
        Edit {
            graph,
            index: GraphIndex::new(graph),
            new_initializers: vec![],
            weight_nodes: vec![],
            replaced: HashMap::new(),
            weight_scales: HashMap::new(),
            int4_as_onnx,
            roundings: None,
        }
    }

    fn with_roundings(mut self, roundings: &'a Roundings) -> Self {
        self.roundings = Some(roundings);
        self
    }

    fn initializer(&self, name: &str) -> Option<&'a pb::TensorProto> {
        self.index
            .initializers
            .get(name)
            .map(|&i| &self.graph.initializer[i])
    }

    fn dequantize_weight(
        &mut self,
        name: &str,
        granularity: Granularity,
        qtype: QType,
        symmetric: bool,
    ) -> Result<()> {
        self.dequantize_weight_floored(name, granularity, qtype, symmetric, None)
    }

    fn dequantize_weight_floored(
        &mut self,
        name: &str,
        granularity: Granularity,
        qtype: QType,
        symmetric: bool,
        min_scales: Option<&[f32]>,
    ) -> Result<()> {
        if self.replaced.contains_key(name) {
            return Ok(());
        }
        let Some(t) = self.initializer(name) else {
            return Ok(());
        };
        let values = onnx::tensor_to_f32(t)?;
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            bail!("weight '{name}' holds {bad}: cannot quantize a non-finite weight");
        }
        // A granularity that does not fit this tensor falls back to per-tensor.
        let granularity = match granularity {
            Granularity::Channel(a) if a >= t.dims.len() => Granularity::Tensor,
            Granularity::Block { axis, .. } if axis >= t.dims.len() => Granularity::Tensor,
            g => g,
        };
        let mut q = quantize_weight(&values, &t.dims, granularity, qtype, symmetric, min_scales);
        if let Some(r) = self.roundings.and_then(|r| r.get(name)) {
            // Learned on this grid: a different grid (a bias floor moved a scale) keeps RTN.
            if r.scales == q.scales && r.values.len() == q.values.len() {
                q.values.clone_from(&r.values);
            }
        }
        let signed = qtype.is_signed();
        let (qn, sn, zn) = (
            format!("{name}_quantized"),
            format!("{name}_scale"),
            format!("{name}_zero_point"),
        );
        let nibbles = self.int4_as_onnx && qtype.bits() == 4;
        let make = |n: &str, dims: &[i64], v: &[i32]| {
            if nibbles {
                onnx::nibble_tensor(n, dims, v, signed)
            } else {
                onnx::byte_tensor(n, dims, v, signed)
            }
        };
        self.new_initializers.push(make(&qn, &t.dims, &q.values));
        self.new_initializers
            .push(onnx::f32_tensor(&sn, &q.param_dims, &q.scales));
        self.new_initializers
            .push(make(&zn, &q.param_dims, &q.zero_points));
        let out = format!("{name}_dequantized");
        let mut dq = onnx::node(
            "DequantizeLinear",
            &format!("{name}_DequantizeLinear"),
            &[&qn, &sn, &zn],
            &[&out],
        );
        if let Some(a) = q.axis {
            dq.attribute.push(onnx::int_attr("axis", a));
        }
        if let Some(b) = q.block_size {
            dq.attribute.push(onnx::int_attr("block_size", b));
        }
        self.weight_nodes.push(dq);
        self.replaced.insert(name.to_string(), out);
        self.weight_scales.insert(name.to_string(), q.scales);
        Ok(())
    }

    /// Applies the weight edits (no activation Q/DQ) to `graph`.
    fn finish_weights_only(self, graph: &mut pb::GraphProto) {
        finish(
            graph,
            &self.replaced,
            self.weight_nodes,
            self.new_initializers,
            HashMap::new(),
            &HashMap::new(),
            vec![],
        );
    }

    /// Bias as int32 with scale `s_x · s_w[c]` and zero point 0.
    fn dequantize_bias(&mut self, name: &str, input_scale: f32, weight: &str) -> Result<()> {
        if self.replaced.contains_key(name) {
            return Ok(());
        }
        let (Some(t), Some(ws)) = (
            self.initializer(name),
            self.weight_scales.get(weight).cloned(),
        ) else {
            return Ok(());
        };
        let values = onnx::tensor_to_f32(t)?;
        if values.is_empty() {
            // An empty bias adds nothing: left as it is.
            return Ok(());
        }
        // [N], or [1, .., N] (a MatMul + Add bias broadcast over the leading axes).
        let is_vector = t
            .dims
            .split_last()
            .is_some_and(|(_, lead)| lead.iter().all(|&d| d == 1));
        if !is_vector || ws.is_empty() || values.len() % ws.len() != 0 {
            return self.dequantize_weight(name, Granularity::Tensor, QType::Int8, true);
        }
        // Output channel c of a grouped ConvTranspose uses weight channel c mod (C_out/group).
        let scales: Vec<f32> = (0..values.len())
            .map(|c| input_scale * ws[c % ws.len()])
            .collect();
        let q: Vec<i32> = values
            .iter()
            .zip(&scales)
            .map(|(&b, &s)| {
                (b as f64 / s as f64)
                    .round_ties_even()
                    .clamp(i32::MIN as f64, i32::MAX as f64) as i32
            })
            .collect();
        let per_channel = ws.len() > 1;
        let pd: Vec<i64> = if per_channel {
            vec![values.len() as i64]
        } else {
            vec![]
        };
        let (qn, sn, zn) = (
            format!("{name}_quantized"),
            format!("{name}_scale"),
            format!("{name}_zero_point"),
        );
        self.new_initializers
            .push(onnx::i32_tensor(&qn, &t.dims, &q));
        self.new_initializers.push(onnx::f32_tensor(
            &sn,
            &pd,
            if per_channel { &scales } else { &scales[..1] },
        ));
        self.new_initializers.push(onnx::i32_tensor(
            &zn,
            &pd,
            &vec![0; pd.first().copied().unwrap_or(1) as usize],
        ));
        let out = format!("{name}_dequantized");
        let mut dq = onnx::node(
            "DequantizeLinear",
            &format!("{name}_DequantizeLinear"),
            &[&qn, &sn, &zn],
            &[&out],
        );
        if per_channel {
            dq.attribute
                .push(onnx::int_attr("axis", t.dims.len() as i64 - 1));
        }
        self.weight_nodes.push(dq);
        self.replaced.insert(name.to_string(), out);
        Ok(())
    }
}

/// The weight input of a node and the axis of its output channels, for the ops that have one.
pub(crate) fn weight_slot(
    node: &pb::NodeProto,
    index: &GraphIndex,
    graph: &pb::GraphProto,
) -> Option<(usize, usize)> {
    let w = node.input.get(1)?;
    let rank = graph.initializer[*index.initializers.get(w)?].dims.len();
    match node.op_type.as_str() {
        "Conv" => Some((1, 0)),
        "ConvTranspose" => Some((1, 1)),
        "Gemm" => Some((
            1,
            if onnx::attr_int(node, "transB").unwrap_or(0) == 1 {
                0
            } else {
                1
            },
        )),
        // [.., K, N]: output channels on the last axis, whatever the rank.
        "MatMul" if rank >= 2 => Some((1, rank - 1)),
        _ => None,
    }
}

/// The axis a weight's input elements run along (for blocked quantization).
pub(super) fn reduction_axis(node: &pb::NodeProto, channel_axis: usize) -> usize {
    match node.op_type.as_str() {
        "Conv" => 1,
        "ConvTranspose" => 0,
        "MatMul" => channel_axis - 1,
        _ => 1 - channel_axis.min(1),
    }
}

/// For a MatMul with a constant weight `[.., K, N]` whose output only feeds an `Add` of a
/// constant `[N]` (or `[1, .., N]`): that Add's position and the constant's name. Together
/// they are one linear layer, quantized like a Gemm: no Q/DQ between them, an int32 bias.
pub(super) fn linear_bias(
    node: &pb::NodeProto,
    index: &GraphIndex,
    graph: &pb::GraphProto,
    config: &QuantConfig,
) -> Option<(usize, String)> {
    if node.op_type != "MatMul" || !is_quantized_node(node, config) {
        return None;
    }
    let w = &graph.initializer[*index.initializers.get(node.input.get(1)?)?];
    let channels = *w.dims.last()?;
    let out = node.output.first()?;
    let &[add_pos] = index.consumers_of(out) else {
        return None;
    };
    let add = &graph.node[add_pos];
    if index.is_graph_output(out)
        || add.op_type != "Add"
        || add.input.len() != 2
        || !is_quantized_node(add, config)
    {
        return None;
    }
    let bias = if add.input[0] == *out {
        &add.input[1]
    } else {
        &add.input[0]
    };
    let b = &graph.initializer[*index.initializers.get(bias)?];
    let fits = b.data_type == pb::tensor_proto::DataType::Float as i32
        && b.dims.last() == Some(&channels)
        && b.dims[..b.dims.len() - 1].iter().all(|&d| d == 1)
        && index.consumers_of(bias).len() == 1;
    fits.then(|| (add_pos, bias.clone()))
}

/// Gather nodes reading rows of a float constant table (embeddings): the table's name.
pub(super) fn embedding_tables<'g>(
    graph: &'g pb::GraphProto,
    index: &GraphIndex,
    config: &QuantConfig,
) -> Vec<&'g str> {
    graph
        .node
        .iter()
        .filter(|n| n.op_type == "Gather" && n.domain.is_empty() && !is_kept_float(n, config))
        .filter(|n| onnx::attr_int(n, "axis").unwrap_or(0) == 0)
        .filter_map(|n| {
            let t = &graph.initializer[*index.initializers.get(n.input.first()?)?];
            (t.data_type == pb::tensor_proto::DataType::Float as i32
                && t.dims.len() == 2
                && onnx::element_count(&t.dims) >= EMBEDDING_MIN_ELEMENTS)
                .then_some(n.input[0].as_str())
        })
        .collect()
}

/// Smaller tables (position or type embeddings of a few rows) are not worth a DequantizeLinear.
pub(super) const EMBEDDING_MIN_ELEMENTS: usize = 1024;

/// Embedding tables read by Gather get weight-only int8, one symmetric scale per row (a
/// row is one token's vector): a separate pass after each int8 rewrite. Returns the count.
pub fn quantize_embeddings(graph: &mut pb::GraphProto, config: &QuantConfig) -> Result<usize> {
    let snapshot = graph.clone();
    let mut edit = Edit::new(&snapshot, false);
    let tables = embedding_tables(&snapshot, &edit.index, config);
    for table in &tables {
        edit.dequantize_weight(table, Granularity::Channel(0), QType::Int8, true)?;
    }
    edit.finish_weights_only(graph);
    Ok(tables.len())
}

/// Replaces node inputs by their dequantized names and assembles the new node list.
pub(super) fn finish(
    graph: &mut pb::GraphProto,
    edit_replaced: &HashMap<String, String>,
    weight_nodes: Vec<pb::NodeProto>,
    new_initializers: Vec<pb::TensorProto>,
    activation_nodes: HashMap<String, Vec<pb::NodeProto>>,
    activation_replaced: &HashMap<String, String>,
    graph_input_nodes: Vec<pb::NodeProto>,
) {
    let mut nodes = weight_nodes;
    nodes.extend(graph_input_nodes);
    for mut n in std::mem::take(&mut graph.node) {
        for i in n.input.iter_mut() {
            if let Some(r) = edit_replaced
                .get(i.as_str())
                .or_else(|| activation_replaced.get(i.as_str()))
            {
                *i = r.clone();
            }
        }
        let outputs = n.output.clone();
        nodes.push(n);
        for o in outputs {
            if let Some(extra) = activation_nodes.get(&o) {
                nodes.extend(extra.iter().cloned());
            }
        }
    }
    graph.node = nodes;
    graph.initializer.extend(new_initializers);
    super::prepare::drop_unused_initializers(graph);
}

/// Counts of what a rewrite quantized, for the report.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct RewriteCounts {
    pub weights: usize,
    pub biases: usize,
    pub activations: usize,
    pub nodes_quantized: usize,
    pub nodes_kept_float: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_weights_get_one_scale_per_output_channel() {
        // Two output channels of 2 values: [-1, 0.5] and [0.25, -0.125]
        let q = quantize_weight(
            &[-1.0, 0.5, 0.25, -0.125],
            &[2, 2],
            Granularity::Channel(0),
            QType::Int8,
            true,
            None,
        );
        assert_eq!(q.param_dims, vec![2]);
        assert!((q.scales[0] - 1.0 / 127.0).abs() < 1e-9);
        assert!((q.scales[1] - 0.25 / 127.0).abs() < 1e-9);
        assert_eq!(q.values, vec![-127, 64, 127, -64]); // 63.5 -> 64, -63.5 -> -64 (half to even)
        let t = quantize_weight(
            &[-1.0, 0.5, 0.25, -0.125],
            &[2, 2],
            Granularity::Tensor,
            QType::Int8,
            true,
            None,
        );
        assert_eq!(t.values, vec![-127, 64, 32, -16]);
    }

    #[test]
    fn channel_axis_one_for_matmul_layout() {
        // [K=2, N=3]: columns are the channels.
        let w = [1.0, 2.0, 4.0, -0.5, -1.0, -2.0];
        let q = quantize_weight(
            &w,
            &[2, 3],
            Granularity::Channel(1),
            QType::Int8,
            true,
            None,
        );
        assert_eq!(q.scales.len(), 3);
        assert!((q.scales[2] - 4.0 / 127.0).abs() < 1e-9);
        assert_eq!(q.values[2], 127);
        assert_eq!(q.values[5], -64); // -2 / (4/127) = -63.5 -> -64
    }

    #[test]
    fn blocks_along_the_input_axis() {
        // [O=1, I=4] with blocks of 2 along axis 1: two scales.
        let q = quantize_weight(
            &[1.0, -0.3, 7.0, 3.5],
            &[1, 4],
            Granularity::Block { axis: 1, size: 2 },
            QType::Int4,
            true,
            None,
        );
        assert_eq!(q.param_dims, vec![1, 2]);
        assert!((q.scales[0] - 1.0 / 7.0).abs() < 1e-7);
        assert!((q.scales[1] - 1.0).abs() < 1e-7);
        assert_eq!(q.values, vec![7, -2, 7, 4]); // -0.3·7 = -2.1 -> -2; 3.5 -> 4 (half to even)
    }

    fn linear_graph() -> pb::GraphProto {
        let w = [
            0.5, -1.0, 0.25, 2.0, 0.1, -0.2, 1.0, 0.3, -0.7, 0.05, 0.4, -1.5,
        ];
        let w2 = [1.0, -1.0, 0.5, 0.2, -0.3, 0.9];
        pb::GraphProto {
            node: vec![
                onnx::node("MatMul", "mm", &["x", "w"], &["mm_out"]),
                onnx::node("Add", "add", &["mm_out", "b"], &["h"]),
                onnx::node("MatMul", "mm2", &["h", "w2"], &["y"]),
            ],
            initializer: vec![
                onnx::f32_tensor("w", &[4, 3], &w),
                onnx::f32_tensor("b", &[1, 3], &[0.3, -0.02, 5.0]),
                onnx::f32_tensor("w2", &[3, 2], &w2),
            ],
            input: vec![onnx::float_value("x")],
            output: vec![onnx::float_value("y")],
            ..Default::default()
        }
    }

    #[test]
    fn matmul_plus_add_is_one_linear_layer_with_an_int32_bias() {
        let mut graph = linear_graph();
        let config = QuantConfig {
            mode: Mode::Int8,
            per_channel: true,
            ..Default::default()
        };
        let types = super::super::prepare::tensor_types(&graph);
        let plan = plan_activations(&graph, &config, &types);
        // Nothing between the MatMul and its bias Add.
        assert_eq!(plan.quantized, vec!["x".to_string(), "h".to_string()]);
        let ranges = HashMap::from([
            ("x".to_string(), (-1.0, 1.0)),
            ("h".to_string(), (-4.0, 4.0)),
        ]);
        let counts = insert_qdq(&mut graph, &config, &plan, &ranges, &Default::default()).unwrap();
        assert_eq!(counts.biases, 1);
        let get = |n: &str| graph.initializer.iter().find(|t| t.name == n).unwrap();
        let bias = get("b_quantized");
        assert_eq!(bias.data_type, pb::tensor_proto::DataType::Int32 as i32);
        assert_eq!(bias.dims, vec![1, 3]);
        // Per-channel symmetric weights: s_w[c] = max |w[.., c]| / 127.
        let sx = math::qparams(-1.0, 1.0, QType::Int8, config.activations_symmetric()).scale;
        let sw = [2.0f32 / 127.0, 1.0 / 127.0, 1.5 / 127.0];
        let expected: Vec<i32> = [0.3f32, -0.02, 5.0]
            .iter()
            .zip(sw)
            .map(|(b, s)| (*b as f64 / (sx * s) as f64).round_ties_even() as i32)
            .collect();
        let stored: Vec<i32> = onnx::tensor_to_f32(bias)
            .unwrap()
            .iter()
            .map(|&v| v as i32)
            .collect();
        assert_eq!(stored, expected);
        let dq = graph
            .node
            .iter()
            .find(|n| n.output[0] == "b_dequantized")
            .unwrap();
        assert_eq!(onnx::attr_int(dq, "axis"), Some(1));
        let add = graph.node.iter().find(|n| n.name == "add").unwrap();
        assert_eq!(add.input, vec!["mm_out", "b_dequantized"]);
        assert!(!graph.node.iter().any(
            |n| n.input.first().is_some_and(|i| i == "mm_out") && n.op_type == "QuantizeLinear"
        ));
    }

    #[test]
    fn matmul_weights_of_rank_three_have_channels_on_the_last_axis() {
        let graph = pb::GraphProto {
            node: vec![onnx::node("MatMul", "mm", &["x", "w"], &["y"])],
            initializer: vec![onnx::f32_tensor("w", &[2, 4, 3], &[0.5; 24])],
            ..Default::default()
        };
        let index = GraphIndex::new(&graph);
        let node = &graph.node[0];
        assert_eq!(weight_slot(node, &index, &graph), Some((1, 2)));
        assert_eq!(reduction_axis(node, 2), 1);
    }

    /// PP-OCR's detector has a BatchNormalization variance of 9.8e7: clamped to 65504 in fp16
    /// its output fell to −2.65 dB. A tensor out of range stays float; the others convert.
    #[test]
    fn fp16_keeps_tensors_beyond_its_range_float() {
        let mut graph = pb::GraphProto {
            node: vec![
                onnx::node("Mul", "m", &["x", "big"], &["h"]),
                onnx::node("Add", "a", &["h", "small"], &["y"]),
            ],
            initializer: vec![
                onnx::f32_tensor("big", &[16], &[9.8e7; 16]),
                onnx::f32_tensor("small", &[16], &[0.5; 16]),
            ],
            ..Default::default()
        };
        let config = QuantConfig {
            mode: Mode::Fp16,
            ..Default::default()
        };
        let (counts, kept) = convert_fp16(&mut graph, &config).unwrap();
        assert_eq!(kept, vec!["big".to_string()]);
        assert_eq!(counts.weights, 1);
        assert_eq!(
            graph.node.iter().find(|n| n.name == "m").unwrap().input[1],
            "big"
        );
        assert_eq!(
            graph.node.iter().find(|n| n.name == "a").unwrap().input[1],
            "small_fp32"
        );
    }
}
