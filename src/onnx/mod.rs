//! Reading, editing and writing ONNX files.
//!
//! quantbench edits models at the protobuf level (`tract_onnx::pb`, prost types) so that what it
//! writes is a standard ONNX file: the graph, the initializers and the opset are ours to change,
//! everything else in the file is carried through. The parts: [`io`] (decoding with errors that
//! name the file, external data, writing), [`validate`] (what a decoded graph must satisfy),
//! [`tensor`] (`TensorProto` to and from vectors), [`index`] (graph queries and builders).

pub mod index;
pub mod inspect;
pub mod io;
pub mod opset;
pub mod tensor;
mod validate;

pub use index::{
    attr, attr_float, attr_int, attr_ints, default_opset, float_value, float_value_shaped, graph,
    graph_mut, int_attr, ints_attr, node, real_inputs, set_default_opset, subgraph_inputs,
    value_dims, value_elem_type, GraphIndex,
};
pub use io::{
    decode_model, encode_model, external_data_files, for_each_tensor_mut, read_model, write_model,
    SINGLE_FILE_LIMIT,
};
pub use tensor::{
    byte_tensor, data_type_name, element_count, element_size, f16_tensor, f32_tensor, i32_tensor,
    i64_tensor, nibble_tensor, short_tensor, tensor_bytes, tensor_to_f32, tensor_to_i64,
};
pub use tract_onnx::pb;

/// Largest `ir_version` quantbench writes; its opset is what the model's highest feature needs.
pub fn ir_version_for_opset(opset: i64) -> i64 {
    match opset {
        ..=8 => 3,
        9 => 4,
        10 => 5,
        11 => 6,
        12..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}
