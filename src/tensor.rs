//! Named, typed tensors: what a dataset feeds a model and what both runtimes take.
//!
//! Models take inputs of many element types (float32 images, int64 token ids, bool masks,
//! float16 features); a [`Feed`] carries one of them by name, and [`bind`] matches a sample's
//! feeds to a model's declared inputs, converting where the conversion is exact and binding
//! symbolic dimensions from the data.

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

use crate::onnx::{self, pb};
use pb::tensor_proto::DataType;

/// Element types a model input can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ElemType {
    F32,
    F16,
    F64,
    I64,
    I32,
    I8,
    U8,
    Bool,
}

impl ElemType {
    /// The ONNX element type, or `None` for one quantbench cannot feed (strings, complex...).
    pub fn from_onnx(data_type: i32) -> Option<ElemType> {
        Some(match DataType::try_from(data_type).ok()? {
            DataType::Float => ElemType::F32,
            DataType::Float16 => ElemType::F16,
            DataType::Double => ElemType::F64,
            DataType::Int64 => ElemType::I64,
            DataType::Int32 => ElemType::I32,
            DataType::Int8 => ElemType::I8,
            DataType::Uint8 => ElemType::U8,
            DataType::Bool => ElemType::Bool,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "float32",
            ElemType::F16 => "float16",
            ElemType::F64 => "float64",
            ElemType::I64 => "int64",
            ElemType::I32 => "int32",
            ElemType::I8 => "int8",
            ElemType::U8 => "uint8",
            ElemType::Bool => "bool",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, ElemType::F32 | ElemType::F16 | ElemType::F64)
    }
}

impl std::fmt::Display for ElemType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The values of a tensor, in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
}

impl TensorData {
    pub fn elem_type(&self) -> ElemType {
        match self {
            TensorData::F32(_) => ElemType::F32,
            TensorData::F16(_) => ElemType::F16,
            TensorData::F64(_) => ElemType::F64,
            TensorData::I64(_) => ElemType::I64,
            TensorData::I32(_) => ElemType::I32,
            TensorData::I8(_) => ElemType::I8,
            TensorData::U8(_) => ElemType::U8,
            TensorData::Bool(_) => ElemType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `other`'s values (of the same element type).
    pub fn extend(&mut self, other: TensorData) -> Result<()> {
        match (self, other) {
            (TensorData::F32(a), TensorData::F32(b)) => a.extend(b),
            (TensorData::F16(a), TensorData::F16(b)) => a.extend(b),
            (TensorData::F64(a), TensorData::F64(b)) => a.extend(b),
            (TensorData::I64(a), TensorData::I64(b)) => a.extend(b),
            (TensorData::I32(a), TensorData::I32(b)) => a.extend(b),
            (TensorData::I8(a), TensorData::I8(b)) => a.extend(b),
            (TensorData::U8(a), TensorData::U8(b)) => a.extend(b),
            (TensorData::Bool(a), TensorData::Bool(b)) => a.extend(b),
            (a, b) => bail!(
                "cannot append {} values to {} values",
                b.elem_type(),
                a.elem_type()
            ),
        }
        Ok(())
    }

    /// Every value as f32 (for statistics, previews and the float path).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            TensorData::F32(v) => v.clone(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            TensorData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            TensorData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
        }
    }

    /// The first element that is NaN or infinite, if any (floats only).
    pub fn first_non_finite(&self) -> Option<(usize, f64)> {
        let find = |it: &mut dyn Iterator<Item = f64>| it.enumerate().find(|(_, v)| !v.is_finite());
        match self {
            TensorData::F32(v) => find(&mut v.iter().map(|&x| f64::from(x))),
            TensorData::F16(v) => find(&mut v.iter().map(|x| f64::from(x.to_f32()))),
            TensorData::F64(v) => find(&mut v.iter().copied()),
            _ => None,
        }
    }

    /// Converts to `to` where every value survives exactly (integers between integer types
    /// when they fit, float32 to float16/float64, whole floats to integers); an error naming
    /// the first value that would change otherwise.
    pub fn convert(self, to: ElemType) -> Result<TensorData> {
        if self.elem_type() == to {
            return Ok(self);
        }
        let from = self.elem_type();
        if to.is_float() {
            let values = self.to_f32();
            return Ok(match to {
                ElemType::F32 => TensorData::F32(values),
                ElemType::F64 => TensorData::F64(values.into_iter().map(f64::from).collect()),
                _ => TensorData::F16(values.into_iter().map(half::f16::from_f32).collect()),
            });
        }
        let wide: Vec<i64> = match &self {
            TensorData::I64(v) => v.clone(),
            TensorData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| i64::from(x)).collect(),
            _ => {
                let values = self.to_f32();
                if let Some((i, v)) = values
                    .iter()
                    .enumerate()
                    .find(|(_, v)| v.fract() != 0.0 || !v.is_finite())
                {
                    bail!("{from} value {v} at element {i} is not a whole number: cannot feed it as {to}");
                }
                values.into_iter().map(|v| v as i64).collect()
            }
        };
        let fits = |lo: i64, hi: i64| -> Result<()> {
            if let Some((i, v)) = wide.iter().enumerate().find(|(_, v)| **v < lo || **v > hi) {
                bail!("value {v} at element {i} does not fit in {to}");
            }
            Ok(())
        };
        Ok(match to {
            ElemType::I64 => TensorData::I64(wide),
            ElemType::I32 => {
                fits(i32::MIN.into(), i32::MAX.into())?;
                TensorData::I32(wide.into_iter().map(|v| v as i32).collect())
            }
            ElemType::I8 => {
                fits(-128, 127)?;
                TensorData::I8(wide.into_iter().map(|v| v as i8).collect())
            }
            ElemType::U8 => {
                fits(0, 255)?;
                TensorData::U8(wide.into_iter().map(|v| v as u8).collect())
            }
            ElemType::Bool => {
                fits(0, 1)?;
                TensorData::Bool(wide.into_iter().map(|v| v != 0).collect())
            }
            _ => unreachable!("float targets are handled above"),
        })
    }
}

/// One named input tensor. An empty name stands for "the model's only data input" (sources
/// that give one tensor per sample: images, CSV rows, a single `.npy`).
#[derive(Clone, Debug, PartialEq)]
pub struct Feed {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Feed {
    pub fn f32(name: &str, shape: Vec<usize>, values: Vec<f32>) -> Feed {
        Feed {
            name: name.to_string(),
            shape,
            data: TensorData::F32(values),
        }
    }

    /// Reads an ONNX `TensorProto` (the model zoo's `input_N.pb`).
    pub fn from_tensor_proto(t: &pb::TensorProto) -> Result<Feed> {
        let elem = ElemType::from_onnx(t.data_type).ok_or_else(|| {
            anyhow!(
                "tensor '{}' is {}, which quantbench cannot feed",
                t.name,
                onnx::data_type_name(t.data_type)
            )
        })?;
        let shape: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
        let n: usize = shape.iter().product();
        let raw = &t.raw_data;
        let data = match elem {
            ElemType::I64 => TensorData::I64(onnx::tensor_to_i64(t)?),
            ElemType::I32 | ElemType::I8 | ElemType::U8 | ElemType::Bool if raw.is_empty() => {
                // Typed storage keeps these in int32_data.
                TensorData::I64(t.int32_data.iter().map(|&v| i64::from(v)).collect())
                    .convert(elem)?
            }
            ElemType::I32 => TensorData::I32(
                raw.chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            ElemType::I8 => TensorData::I8(raw.iter().map(|&b| b as i8).collect()),
            ElemType::U8 => TensorData::U8(raw.clone()),
            ElemType::Bool => TensorData::Bool(raw.iter().map(|&b| b != 0).collect()),
            ElemType::F64 if raw.is_empty() => TensorData::F64(t.double_data.clone()),
            ElemType::F64 => TensorData::F64(
                raw.chunks_exact(8)
                    .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect(),
            ),
            ElemType::F16 => TensorData::F16(
                onnx::tensor_to_f32(t)?
                    .into_iter()
                    .map(half::f16::from_f32)
                    .collect(),
            ),
            ElemType::F32 => TensorData::F32(onnx::tensor_to_f32(t)?),
        };
        if data.len() != n {
            bail!(
                "tensor '{}' declares shape {shape:?} ({n} values) but holds {}",
                t.name,
                data.len()
            );
        }
        Ok(Feed {
            name: t.name.clone(),
            shape,
            data,
        })
    }
}

/// A model input as declared in its graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    pub elem: ElemType,
    /// `None` where the dimension is a symbol (batch, image size, sequence length).
    pub dims: Vec<Option<usize>>,
    /// The symbol's name where there is one (`batch`, `seq`), else an empty string.
    pub symbols: Vec<String>,
}

impl InputSpec {
    /// `[batch, 3, 224, 224]` style, symbols by name.
    pub fn dims_text(&self) -> String {
        let dims: Vec<String> = self
            .dims
            .iter()
            .zip(&self.symbols)
            .map(|(d, s)| match d {
                Some(n) => n.to_string(),
                None if s.is_empty() => "?".into(),
                None => s.clone(),
            })
            .collect();
        format!("[{}]", dims.join(", "))
    }
}

/// The data inputs of a model (not initializers), in graph order, with their element types.
pub fn model_inputs(model: &pb::ModelProto) -> Result<Vec<InputSpec>> {
    let graph = onnx::graph(model);
    let inputs = onnx::real_inputs(graph);
    if inputs.is_empty() {
        bail!("the model has no inputs");
    }
    inputs
        .into_iter()
        .map(|v| {
            let elem_code = onnx::value_elem_type(v);
            let elem = ElemType::from_onnx(elem_code).ok_or_else(|| {
                anyhow!(
                    "input '{}' is {}, which quantbench cannot feed",
                    v.name,
                    onnx::data_type_name(elem_code)
                )
            })?;
            let (dims, symbols) = declared_dims(v);
            Ok(InputSpec {
                name: v.name.clone(),
                elem,
                dims,
                symbols,
            })
        })
        .collect()
}

/// A value's declared dimensions: numbers, and for the others the symbol's name (or "").
fn declared_dims(v: &pb::ValueInfoProto) -> (Vec<Option<usize>>, Vec<String>) {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return (vec![], vec![]);
    };
    t.shape
        .iter()
        .flat_map(|s| &s.dim)
        .map(|d| match &d.value {
            Some(Value::DimValue(n)) if *n > 0 => (Some(*n as usize), String::new()),
            // "?" is paddle2onnx's (and others') word for "unknown", not a shared symbol: an
            // input [N, 3, ?, ?] takes any height and width, not only square images.
            Some(Value::DimParam(p)) if p != "?" => (None, p.clone()),
            _ => (None, String::new()),
        })
        .unzip()
}

/// The graph's output names, in order.
pub fn model_output_names(model: &pb::ModelProto) -> Vec<String> {
    onnx::graph(model)
        .output
        .iter()
        .map(|o| o.name.clone())
        .collect()
}

/// Matches a sample's feeds to the model's inputs: returns one feed per model input, in the
/// model's order, converted to its element type, with its shape checked against the declared
/// dimensions (a symbol takes whatever the data has, the same symbol the same value).
/// An unnamed feed goes to the one input no named feed covers.
pub fn bind(inputs: &[InputSpec], feeds: &[Feed]) -> Result<Vec<Feed>> {
    let mut remaining: Vec<Option<&Feed>> = feeds.iter().map(Some).collect();
    let mut chosen: Vec<Option<Feed>> = vec![None; inputs.len()];
    for (k, input) in inputs.iter().enumerate() {
        if let Some(slot) = remaining
            .iter_mut()
            .find(|f| f.is_some_and(|f| f.name == input.name))
        {
            chosen[k] = slot.take().cloned();
        }
    }
    let unnamed: Vec<&Feed> = remaining
        .iter()
        .flatten()
        .filter(|f| f.name.is_empty())
        .copied()
        .collect();
    let open: Vec<usize> = (0..inputs.len()).filter(|&k| chosen[k].is_none()).collect();
    match (unnamed.as_slice(), open.as_slice()) {
        ([], _) => {}
        ([one], [k]) => chosen[*k] = Some((*one).clone()),
        ([_], []) => bail!(
            "the data gives one unnamed tensor but every model input ({}) is already given by name",
            names(inputs)
        ),
        (_, _) => bail!(
            "the data gives {} unnamed tensor(s) for {} model inputs ({}): name each tensor after its input (an .npz with those names)",
            unnamed.len(),
            open.len(),
            open.iter().map(|&k| inputs[k].name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
    if let Some(extra) = remaining.iter().flatten().find(|f| !f.name.is_empty()) {
        bail!(
            "the data has a tensor '{}' that is not a model input (inputs: {})",
            extra.name,
            names(inputs)
        );
    }
    let mut symbols: std::collections::HashMap<&str, usize> = Default::default();
    inputs
        .iter()
        .zip(chosen)
        .map(|(input, feed)| {
            let feed = feed.ok_or_else(|| {
                anyhow!(
                    "the data gives nothing for model input '{}' ({} {}); inputs: {}",
                    input.name,
                    input.elem,
                    input.dims_text(),
                    names(inputs)
                )
            })?;
            // A leading sample axis of 1 (an .npz row of a model input without a batch axis
            // of 1) is dropped.
            let mut feed = feed;
            if feed.shape.len() == input.dims.len() + 1 && feed.shape[0] == 1 {
                feed.shape.remove(0);
            }
            let fits = feed.shape.len() == input.dims.len()
                && feed.shape.iter().zip(&input.dims).zip(&input.symbols).all(
                    |((&have, want), symbol)| match want {
                        Some(w) => *w == have,
                        None if symbol.is_empty() => true,
                        None => *symbols.entry(symbol.as_str()).or_insert(have) == have,
                    },
                );
            if !fits {
                bail!(
                    "samples have shape {:?} but the model input '{}' expects {}",
                    feed.shape,
                    input.name,
                    input.dims_text()
                );
            }
            let data = feed
                .data
                .convert(input.elem)
                .map_err(|e| anyhow!("model input '{}' ({}): {e:#}", input.name, input.elem))?;
            Ok(Feed {
                name: input.name.clone(),
                shape: feed.shape,
                data,
            })
        })
        .collect()
}

fn names(inputs: &[InputSpec]) -> String {
    inputs
        .iter()
        .map(|i| format!("{} {} {}", i.name, i.elem, i.dims_text()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "x: float32 [1, 3, 224, 224]; mask: int64 [1, 16]".
pub fn describe_feeds(feeds: &[Feed]) -> String {
    feeds
        .iter()
        .map(|f| {
            format!(
                "{}: {} {:?}",
                if f.name.is_empty() { "input" } else { &f.name },
                f.data.elem_type(),
                f.shape
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, elem: ElemType, dims: &[Option<usize>], symbols: &[&str]) -> InputSpec {
        InputSpec {
            name: name.into(),
            elem,
            dims: dims.to_vec(),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// paddle2onnx writes [-1, 3, "?", "?"] for "any size": "?" ties nothing together.
    #[test]
    fn question_mark_dimensions_are_anonymous() {
        use pb::tensor_shape_proto::{dimension::Value, Dimension};
        let dim = |v: Value| Dimension {
            value: Some(v),
            ..Default::default()
        };
        let value = pb::ValueInfoProto {
            name: "x".into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: pb::tensor_proto::DataType::Float as i32,
                    shape: Some(pb::TensorShapeProto {
                        dim: vec![
                            dim(Value::DimValue(-1)),
                            dim(Value::DimValue(3)),
                            dim(Value::DimParam("?".into())),
                            dim(Value::DimParam("?".into())),
                        ],
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (dims, symbols) = declared_dims(&value);
        assert_eq!(dims, vec![None, Some(3), None, None]);
        let input = spec("x", ElemType::F32, &dims, &[]);
        let input = InputSpec { symbols, ..input };
        let feed = Feed::f32("x", vec![1, 3, 48, 192], vec![0.0; 3 * 48 * 192]);
        assert!(bind(&[input], &[feed]).is_ok());
    }

    #[test]
    fn binds_by_name_converts_exactly_and_ties_symbols() {
        let inputs = [
            spec("ids", ElemType::I64, &[None, None], &["batch", "seq"]),
            spec("mask", ElemType::I64, &[None, None], &["batch", "seq"]),
        ];
        let feeds = [
            Feed {
                name: "mask".into(),
                shape: vec![1, 3],
                data: TensorData::I32(vec![1, 1, 0]),
            },
            Feed {
                name: "ids".into(),
                shape: vec![1, 3],
                data: TensorData::F32(vec![101.0, 7.0, 0.0]),
            },
        ];
        let bound = bind(&inputs, &feeds).unwrap();
        assert_eq!(bound[0].name, "ids");
        assert_eq!(bound[0].data, TensorData::I64(vec![101, 7, 0]));
        assert_eq!(bound[1].data, TensorData::I64(vec![1, 1, 0]));

        // The same symbol must take the same value in every input.
        let mut bad = feeds.clone();
        bad[0].shape = vec![1, 4];
        bad[0].data = TensorData::I32(vec![1, 1, 1, 0]);
        let e = bind(&inputs, &bad).unwrap_err().to_string();
        assert!(e.contains("'ids'") || e.contains("'mask'"), "{e}");

        // A fractional value cannot become a token id.
        let mut frac = feeds.clone();
        frac[1].data = TensorData::F32(vec![1.5, 0.0, 0.0]);
        let e = format!("{:#}", bind(&inputs, &frac).unwrap_err());
        assert!(e.contains("'ids'") && e.contains("1.5"), "{e}");

        // A missing input is named.
        let e = bind(&inputs, &feeds[..1]).unwrap_err().to_string();
        assert!(e.contains("'ids'"), "{e}");
    }

    #[test]
    fn one_unnamed_feed_goes_to_the_one_open_input() {
        let inputs = [spec("x", ElemType::F32, &[None, Some(3)], &["n", ""])];
        let feeds = [Feed::f32("", vec![2, 3], vec![0.0; 6])];
        assert_eq!(bind(&inputs, &feeds).unwrap()[0].name, "x");
        let two = [
            spec("a", ElemType::F32, &[Some(1)], &[""]),
            spec("b", ElemType::F32, &[Some(1)], &[""]),
        ];
        let e = bind(&two, &[Feed::f32("", vec![1], vec![0.0])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("a, b"), "{e}");
        // Wrong shape names both.
        let e = bind(&inputs, &[Feed::f32("", vec![2, 4], vec![0.0; 8])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("[2, 4]") && e.contains("[n, 3]"), "{e}");
    }

    #[test]
    fn integer_conversions_refuse_values_that_do_not_fit() {
        assert!(TensorData::I64(vec![300]).convert(ElemType::U8).is_err());
        assert_eq!(
            TensorData::I64(vec![0, 1]).convert(ElemType::Bool).unwrap(),
            TensorData::Bool(vec![false, true])
        );
        assert!(TensorData::I64(vec![2]).convert(ElemType::Bool).is_err());
        assert_eq!(
            TensorData::F32(vec![0.5]).convert(ElemType::F16).unwrap(),
            TensorData::F16(vec![half::f16::from_f32(0.5)])
        );
    }
}
