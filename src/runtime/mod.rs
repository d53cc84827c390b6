//! Running models: the `Backend` seam and its embedded implementation on tract.
//!
//! tract runs QDQ models as a faithful float simulation of int8 (see NOTES-engine.md); it is
//! always available and is what calibration and per-layer taps use.

pub mod ort;

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use tract_onnx::prelude::*;

use crate::onnx::{self, pb};
use crate::tensor::{ElemType, Feed, TensorData};

/// Operators whose tract state can carry values from one run into the next (recurrent state
/// initialised from `ConstantOfShape`, loop carries): models with them get a fresh execution
/// state per run, so that the same input gives the same output whatever ran before.
const STATEFUL_OPS: &[&str] = &["LSTM", "GRU", "RNN", "Scan", "Loop"];

fn has_stateful_ops(graph: &pb::GraphProto) -> bool {
    graph.node.iter().any(|n| {
        STATEFUL_OPS.contains(&n.op_type.as_str())
            || n.attribute
                .iter()
                .filter_map(|a| a.g.as_ref())
                .chain(n.attribute.iter().flat_map(|a| &a.graphs))
                .any(has_stateful_ops)
    })
}

fn tract_datum(elem: ElemType) -> DatumType {
    match elem {
        ElemType::F32 => f32::datum_type(),
        ElemType::F16 => f16::datum_type(),
        ElemType::F64 => f64::datum_type(),
        ElemType::I64 => i64::datum_type(),
        ElemType::I32 => i32::datum_type(),
        ElemType::I8 => i8::datum_type(),
        ElemType::U8 => u8::datum_type(),
        ElemType::Bool => bool::datum_type(),
    }
}

fn tract_tensor(feed: &Feed) -> Result<Tensor> {
    let shape = &feed.shape;
    let t = match &feed.data {
        TensorData::F32(v) => Tensor::from_shape(shape, v),
        TensorData::F16(v) => Tensor::from_shape(shape, v),
        TensorData::F64(v) => Tensor::from_shape(shape, v),
        TensorData::I64(v) => Tensor::from_shape(shape, v),
        TensorData::I32(v) => Tensor::from_shape(shape, v),
        TensorData::I8(v) => Tensor::from_shape(shape, v),
        TensorData::U8(v) => Tensor::from_shape(shape, v),
        TensorData::Bool(v) => Tensor::from_shape(shape, v),
    };
    t.map_err(|e| anyhow!("input '{}' of shape {shape:?}: {e}", feed.name))
}

/// A model made runnable by tract for one concrete input shape.
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
    /// Execution states kept between runs (tract allocates its buffers per state); `None` for
    /// models whose states carry values between runs.
    states: Option<std::sync::Mutex<Vec<TypedSimpleState>>>,
    pub input_shapes: Vec<Vec<usize>>,
    pub output_names: Vec<String>,
}

impl TractModel {
    /// Loads a model for inputs shaped and typed like `example` (bound feeds, one per model
    /// input, in order). `outputs`: tensor names to expose instead of the graph's outputs
    /// (intermediate taps; chosen before optimisation so the names hold).
    pub fn load(
        model: &pb::ModelProto,
        example: &[Feed],
        outputs: Option<&[String]>,
    ) -> Result<Self> {
        crate::jobs::catch_panics("loading the model", || {
            Self::load_unguarded(model, example, outputs)
        })
    }

    fn load_unguarded(
        model: &pb::ModelProto,
        example: &[Feed],
        outputs: Option<&[String]>,
    ) -> Result<Self> {
        let int4 = [
            pb::tensor_proto::DataType::Int4 as i32,
            pb::tensor_proto::DataType::Uint4 as i32,
        ];
        if let Some(t) = onnx::graph(model)
            .initializer
            .iter()
            .find(|t| int4.contains(&t.data_type))
        {
            bail!(
                "tract cannot run ONNX INT4 tensors ('{}'); run this model with --backend ort, or store int4 weights in int8 (int4_storage: Int8Container, per-channel)",
                t.name
            );
        }
        let sixteen = [
            pb::tensor_proto::DataType::Int16 as i32,
            pb::tensor_proto::DataType::Uint16 as i32,
        ];
        let index = onnx::GraphIndex::new(onnx::graph(model));
        if let Some(q) = onnx::graph(model).node.iter().find(|n| {
            n.op_type == "QuantizeLinear"
                && n.input
                    .get(2)
                    .and_then(|z| index.initializers.get(z))
                    .is_some_and(|&i| {
                        sixteen.contains(&onnx::graph(model).initializer[i].data_type)
                    })
        }) {
            bail!(
                "tract cannot run 16-bit QuantizeLinear ('{}', int16_activations); run this model with --backend ort",
                q.name
            );
        }
        crate::jobs::checkpoint("tract: load a model")?;
        check_ops_supported(model)?;
        // Declared intermediate shapes may carry a symbolic batch that would not unify with the
        // concrete input: let tract infer every shape from the input instead.
        let mut inference = tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .with_ignore_value_info(true)
            .model_for_proto_model(model)
            .map_err(|e| anyhow!("tract cannot load the model: {}", tract_error_text(&e)))?;
        for (k, feed) in example.iter().enumerate() {
            let fact = InferenceFact::dt_shape(tract_datum(feed.data.elem_type()), &feed.shape);
            inference = inference
                .with_input_fact(k, fact)
                .with_context(|| format!("setting the shape of input '{}'", feed.name))?;
        }
        let output_names = match outputs {
            Some(names) => {
                inference = inference
                    .with_outputs_by_name(names)
                    .map_err(|e| anyhow!("exposing intermediate tensors: {e}"))?;
                names.to_vec()
            }
            None => onnx::graph(model)
                .output
                .iter()
                .map(|o| o.name.clone())
                .collect(),
        };
        crate::jobs::checkpoint("tract: optimize a model")?;
        let typed = inference.into_optimized().map_err(|e| {
            anyhow!(
                "tract cannot prepare the model for inputs {}: {}",
                crate::tensor::describe_feeds(example),
                tract_error_text(&e)
            )
        })?;
        crate::jobs::checkpoint("tract: make a model runnable")?;
        let plan = typed
            .into_runnable()
            .map_err(|e| anyhow!("tract: {}", tract_error_text(&e)))?;
        let reusable = !has_stateful_ops(onnx::graph(model));
        Ok(TractModel {
            plan,
            states: reusable.then(|| std::sync::Mutex::new(vec![])),
            input_shapes: example.iter().map(|f| f.shape.clone()).collect(),
            output_names,
        })
    }

    /// Runs one set of inputs on an execution state taken from the pool (tract allocates its
    /// intermediate buffers per state; reusing one per worker saves that on every sample).
    fn execute(&self, inputs: &[Feed]) -> Result<TVec<TValue>> {
        let shapes: Vec<&Vec<usize>> = inputs.iter().map(|f| &f.shape).collect();
        if shapes.len() != self.input_shapes.len()
            || shapes.iter().zip(&self.input_shapes).any(|(a, b)| *a != b)
        {
            bail!(
                "inputs {} differ from the shapes the model was prepared for ({:?}): samples must all have one shape",
                crate::tensor::describe_feeds(inputs),
                self.input_shapes
            );
        }
        let tensors = inputs
            .iter()
            .map(|f| tract_tensor(f).map(TValue::from))
            .collect::<Result<TVec<_>>>()?;
        let pooled = self
            .states
            .as_ref()
            .and_then(|p| p.lock().ok().and_then(|mut s| s.pop()));
        let mut state = match pooled {
            Some(state) => state,
            None => self
                .plan
                .spawn()
                .map_err(|e| anyhow!("tract: {}", tract_error_text(&e)))?,
        };
        let outputs = crate::jobs::catch_panics("running the model", || {
            state
                .run(tensors)
                .map_err(|e| anyhow!("tract run failed: {}", tract_error_text(&e)))
        })?;
        if let Some(Ok(mut s)) = self.states.as_ref().map(|p| p.lock()) {
            s.push(state);
        }
        Ok(outputs)
    }

    /// Runs one set of inputs; returns every output flattened to f32, in `output_names` order.
    pub fn run(&self, inputs: &[Feed]) -> Result<Vec<Vec<f32>>> {
        let mut all = vec![];
        self.run_visit(inputs, &mut |_, values| all.push(values.to_vec()))?;
        Ok(all)
    }

    /// Runs one set of inputs and hands each output's values to `visit(index, values)`.
    pub fn run_visit(&self, inputs: &[Feed], visit: &mut dyn FnMut(usize, &[f32])) -> Result<()> {
        for (k, t) in self.execute(inputs)?.iter().enumerate() {
            let t = t
                .cast_to::<f32>()
                .map_err(|e| anyhow!("output is not numeric: {e}"))?;
            let view = t.try_as_plain_ram().map_err(|e| anyhow!("{e}"))?;
            visit(k, view.as_slice::<f32>().map_err(|e| anyhow!("{e}"))?);
        }
        Ok(())
    }

    /// Output shapes as tract inferred them for this input shape.
    pub fn output_shapes(&self) -> Result<Vec<Vec<usize>>> {
        let model = self.plan.model();
        model
            .output_outlets()?
            .iter()
            .map(|o| {
                let fact = model.outlet_fact(*o)?;
                fact.shape
                    .as_concrete()
                    .map(|s| s.to_vec())
                    .ok_or_else(|| anyhow!("output shape {:?} is not concrete", fact.shape))
            })
            .collect()
    }
}

/// A loaded model that maps a sample's inputs to all its outputs, from any thread.
pub trait Runner: Send + Sync {
    /// Every output flattened to f32, in graph order.
    fn run(&self, inputs: &[Feed]) -> Result<Vec<Vec<f32>>>;
    fn output_names(&self) -> Vec<String>;
    fn output_shapes(&self) -> Vec<Vec<usize>>;
    /// Backend name and version, recorded with results.
    fn describe(&self) -> String;
}

impl Runner for TractModel {
    fn run(&self, inputs: &[Feed]) -> Result<Vec<Vec<f32>>> {
        TractModel::run(self, inputs)
    }

    fn output_names(&self) -> Vec<String> {
        self.output_names.clone()
    }

    fn output_shapes(&self) -> Vec<Vec<usize>> {
        TractModel::output_shapes(self).unwrap_or_default()
    }

    fn describe(&self) -> String {
        format!("tract {}", TRACT_VERSION)
    }
}

pub const TRACT_VERSION: &str = "0.23.9";

/// Which runtime runs a model, with the options that change its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
pub enum Backend {
    /// tract, embedded: a faithful float simulation of QDQ models.
    #[default]
    Tract,
    /// ONNX Runtime, loaded at run time: the fused int8 kernels users deploy on.
    Ort(ort::OrtOptions),
}

impl Backend {
    /// `tract` or `ort` (with the given ONNX Runtime options).
    pub fn parse(name: &str, ort_options: ort::OrtOptions) -> Result<Backend> {
        match name {
            "tract" => Ok(Backend::Tract),
            "ort" => Ok(Backend::Ort(ort_options)),
            other => bail!("unknown backend '{other}' (expected tract or ort)"),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Tract => "tract",
            Backend::Ort(_) => "ort",
        }
    }

    /// Loads `model` for inputs like `example` (bound feeds); `workers`: how many threads will
    /// call `run` at once.
    pub fn load(
        &self,
        model: &pb::ModelProto,
        example: &[Feed],
        workers: usize,
    ) -> Result<Box<dyn Runner>> {
        Ok(match self {
            Backend::Tract => Box::new(TractModel::load(model, example, None)?),
            Backend::Ort(options) => Box::new(ort::OrtModel::load(
                &onnx::encode_model(model),
                example,
                *options,
                workers,
            )?),
        })
    }
}

/// Names the first node whose operator tract does not implement, before tract fails deep inside.
pub fn check_ops_supported(model: &pb::ModelProto) -> Result<()> {
    let known = tract_onnx::onnx().op_register;
    for n in &onnx::graph(model).node {
        if !known.0.contains_key(&n.op_type) {
            let op = if n.domain.is_empty() {
                n.op_type.clone()
            } else {
                format!("{}.{}", n.domain, n.op_type)
            };
            bail!(
                "node '{}' uses operator {op}, which tract (the embedded runtime) does not support; ONNX Runtime may run it (--backend ort)",
                n.name
            );
        }
    }
    Ok(())
}

/// tract's error chain on one line, innermost cause last.
pub fn tract_error_text(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}
