//! The element type of every tensor of a graph: what decides which tensors get Q/DQ (integer
//! and bool tensors never do).

use std::collections::HashMap;

use crate::onnx::{self, pb};

/// Element type of every tensor of `model` (ONNX DataType numbers), so that integer and bool
/// tensors are never quantized: what tract's type inference concludes, and where it cannot
/// conclude (an op it does not know), what the file declares or [`tensor_types`] derives.
pub fn model_tensor_types(model: &pb::ModelProto) -> HashMap<String, i32> {
    let mut types = tensor_types(onnx::graph(model));
    use tract_onnx::prelude::{Framework, InferenceModelExt};
    use tract_onnx::tract_hir::infer::Factoid;
    // tract can panic on a malformed graph: then the declared and derived types stand alone.
    let analysed = crate::jobs::catch_panics("type inference", || {
        let mut inference = tract_onnx::onnx().model_for_proto_model(model)?;
        // Partial facts are still facts: a failure further down leaves the rest typed.
        let _ = inference.analyse(false);
        Ok(inference)
    });
    let Ok(inference) = analysed else {
        return types;
    };
    for node in inference.nodes() {
        for (slot, output) in node.outputs.iter().enumerate() {
            let outlet = tract_onnx::prelude::OutletId::new(node.id, slot);
            let Some(name) = inference.outlet_label(outlet) else {
                continue;
            };
            if let Some(dt) = output.fact.datum_type.concretize().and_then(onnx_data_type) {
                types.insert(name.to_string(), dt);
            }
        }
    }
    types
}

fn onnx_data_type(dt: tract_onnx::prelude::DatumType) -> Option<i32> {
    use pb::tensor_proto::DataType as D;
    use tract_onnx::prelude::DatumType as T;
    Some(match dt {
        T::F32 => D::Float,
        T::F16 => D::Float16,
        T::F64 => D::Double,
        T::I8 => D::Int8,
        T::U8 => D::Uint8,
        T::I16 => D::Int16,
        T::U16 => D::Uint16,
        T::I32 => D::Int32,
        T::U32 => D::Uint32,
        T::I64 => D::Int64,
        T::U64 => D::Uint64,
        T::Bool => D::Bool,
        T::String => D::String,
        _ => return None,
    } as i32)
}

/// Element type of every tensor, from the file's declarations and propagated through the graph
/// by each op's typing rule (the fallback of [`model_tensor_types`]).
pub fn tensor_types(graph: &pb::GraphProto) -> HashMap<String, i32> {
    use pb::tensor_proto::DataType as D;
    let mut types: HashMap<String, i32> = HashMap::new();
    for i in &graph.input {
        types.insert(i.name.clone(), onnx::value_elem_type(i));
    }
    for v in graph.value_info.iter().chain(&graph.output) {
        let t = onnx::value_elem_type(v);
        if t != 0 {
            types.insert(v.name.clone(), t);
        }
    }
    for t in &graph.initializer {
        types.insert(t.name.clone(), t.data_type);
    }
    for n in &graph.node {
        let input_type = |k: usize| {
            n.input
                .get(k)
                .and_then(|i| types.get(i))
                .copied()
                .unwrap_or(D::Float as i32)
        };
        let out = match n.op_type.as_str() {
            "Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin" => D::Int64 as i32,
            "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or"
            | "Not" | "Xor" | "IsNaN" | "IsInf" => D::Bool as i32,
            "Cast" => onnx::attr_int(n, "to").unwrap_or(1) as i32,
            "Constant" | "ConstantOfShape" => onnx::attr(n, "value")
                .and_then(|a| a.t.as_ref())
                .map(|t| t.data_type)
                .unwrap_or(D::Float as i32),
            "Where" => input_type(1),
            _ => input_type(0),
        };
        for (k, o) in n.output.iter().enumerate() {
            let t = if n.op_type == "TopK" && k == 1 {
                D::Int64 as i32
            } else {
                out
            };
            types.entry(o.clone()).or_insert(t);
        }
    }
    types
}
