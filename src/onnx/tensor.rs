//! `TensorProto` to and from plain vectors, and the builders the rewrite makes tensors with.

use anyhow::{bail, Result};

use super::pb;
use super::pb::tensor_proto::DataType;

pub fn data_type_name(data_type: i32) -> &'static str {
    DataType::try_from(data_type)
        .map(|d| d.as_str_name())
        .unwrap_or("UNKNOWN")
}

/// Bytes one element of `data_type` takes in a file (int4 packs two to a byte: reported as 1).
pub fn element_size(data_type: i32) -> usize {
    match DataType::try_from(data_type).unwrap_or(DataType::Undefined) {
        DataType::Float | DataType::Int32 | DataType::Uint32 => 4,
        DataType::Double | DataType::Int64 | DataType::Uint64 | DataType::Complex64 => 8,
        DataType::Float16 | DataType::Bfloat16 | DataType::Int16 | DataType::Uint16 => 2,
        DataType::Complex128 => 16,
        _ => 1,
    }
}

pub fn element_count(dims: &[i64]) -> usize {
    dims.iter().map(|&d| d.max(0) as usize).product()
}

/// Bytes a tensor's data takes in the file.
pub fn tensor_bytes(t: &pb::TensorProto) -> usize {
    if !t.raw_data.is_empty() {
        return t.raw_data.len();
    }
    let n = element_count(&t.dims);
    if t.data_type == DataType::Int4 as i32 || t.data_type == DataType::Uint4 as i32 {
        n.div_ceil(2)
    } else {
        n * element_size(t.data_type)
    }
}

/// Reads a numeric tensor as f32 values, whatever its storage (raw bytes or typed fields).
pub fn tensor_to_f32(t: &pb::TensorProto) -> Result<Vec<f32>> {
    let n = element_count(&t.dims);
    let raw = &t.raw_data;
    let dt = DataType::try_from(t.data_type).unwrap_or(DataType::Undefined);
    let values: Vec<f32> = if !raw.is_empty() {
        match dt {
            DataType::Float => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            DataType::Double => raw
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("chunk of 8")) as f32)
                .collect(),
            DataType::Float16 => raw
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            DataType::Int64 => raw
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("chunk of 8")) as f32)
                .collect(),
            DataType::Int32 => raw
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                .collect(),
            DataType::Int8 => raw.iter().map(|&b| b as i8 as f32).collect(),
            DataType::Uint8 => raw.iter().map(|&b| b as f32).collect(),
            DataType::Int16 => raw
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
                .collect(),
            DataType::Uint16 => raw
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as f32)
                .collect(),
            other => bail!(
                "tensor '{}': element type {} is not supported here",
                t.name,
                other.as_str_name()
            ),
        }
    } else {
        match dt {
            DataType::Float => t.float_data.clone(),
            DataType::Double => t.double_data.iter().map(|&v| v as f32).collect(),
            DataType::Int64 => t.int64_data.iter().map(|&v| v as f32).collect(),
            DataType::Int32 | DataType::Int8 | DataType::Uint8 | DataType::Int16 => {
                t.int32_data.iter().map(|&v| v as f32).collect()
            }
            DataType::Float16 => t
                .int32_data
                .iter()
                .map(|&v| half::f16::from_bits(v as u16).to_f32())
                .collect(),
            other => bail!(
                "tensor '{}': element type {} is not supported here",
                t.name,
                other.as_str_name()
            ),
        }
    };
    if values.len() != n {
        bail!(
            "tensor '{}': holds {} values but its shape {:?} needs {n}",
            t.name,
            values.len(),
            t.dims
        );
    }
    Ok(values)
}

/// Reads an integer tensor (shape constants, axes) as i64 values.
pub fn tensor_to_i64(t: &pb::TensorProto) -> Result<Vec<i64>> {
    let dt = DataType::try_from(t.data_type).unwrap_or(DataType::Undefined);
    if dt == DataType::Int64 {
        if !t.raw_data.is_empty() {
            return Ok(t
                .raw_data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("chunk of 8")))
                .collect());
        }
        return Ok(t.int64_data.clone());
    }
    Ok(tensor_to_f32(t)?.into_iter().map(|v| v as i64).collect())
}

pub fn f32_tensor(name: &str, dims: &[i64], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub fn i64_tensor(name: &str, dims: &[i64], values: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: DataType::Int64 as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub fn i32_tensor(name: &str, dims: &[i64], values: &[i32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: DataType::Int32 as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub fn f16_tensor(name: &str, dims: &[i64], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: DataType::Float16 as i32,
        raw_data: values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        ..Default::default()
    }
}

/// An 8-bit tensor (`Int8` or `Uint8`), values already in range.
pub fn byte_tensor(name: &str, dims: &[i64], values: &[i32], signed: bool) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: if signed {
            DataType::Int8 as i32
        } else {
            DataType::Uint8 as i32
        },
        raw_data: values
            .iter()
            .map(|&v| if signed { v as i8 as u8 } else { v as u8 })
            .collect(),
        ..Default::default()
    }
}

/// A 16-bit tensor (`Int16` or `Uint16`), values already in range.
pub fn short_tensor(name: &str, dims: &[i64], values: &[i32], signed: bool) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: if signed {
            DataType::Int16 as i32
        } else {
            DataType::Uint16 as i32
        },
        raw_data: values
            .iter()
            .flat_map(|&v| {
                if signed {
                    (v as i16).to_le_bytes()
                } else {
                    (v as u16).to_le_bytes()
                }
            })
            .collect(),
        ..Default::default()
    }
}

/// An ONNX INT4/UINT4 tensor: two values a byte, the first in the low nibble (ONNX IR spec).
pub fn nibble_tensor(name: &str, dims: &[i64], values: &[i32], signed: bool) -> pb::TensorProto {
    let raw = values
        .chunks(2)
        .map(|pair| {
            let lo = (pair[0] as u8) & 0x0F;
            let hi = pair.get(1).map(|&v| (v as u8) & 0x0F).unwrap_or(0);
            lo | (hi << 4)
        })
        .collect();
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: if signed {
            DataType::Int4 as i32
        } else {
            DataType::Uint4 as i32
        },
        raw_data: raw,
        ..Default::default()
    }
}
