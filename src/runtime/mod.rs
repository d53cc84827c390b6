//! Running models: the `Backend` seam and its embedded implementation on tract.
//!
//! tract runs QDQ models as a faithful float simulation of int8 (see NOTES-engine.md); it is
//! always available and is what calibration and per-layer taps use.

pub mod ort;

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use tract_onnx::prelude::*;

use crate::onnx::{self, pb};

/// The single float input a model takes, as declared in its graph.
#[derive(Clone, Debug)]
pub struct InputSpec {
    pub name: String,
    /// `None` where the dimension is a symbol (batch, image size).
    pub dims: Vec<Option<usize>>,
}

pub fn input_spec(model: &pb::ModelProto) -> Result<InputSpec> {
    let graph = onnx::graph(model);
    let inputs = onnx::real_inputs(graph);
    match inputs.as_slice() {
        [one] => {
            let dims = onnx::value_dims(one)
                .into_iter()
                .map(|d| d.ok().map(|n| n as usize))
                .collect();
            let elem = onnx::value_elem_type(one);
            if elem != pb::tensor_proto::DataType::Float as i32 {
                bail!(
                    "input '{}' is {}, quantbench feeds float32 inputs",
                    one.name,
                    onnx::data_type_name(elem)
                );
            }
            Ok(InputSpec {
                name: one.name.clone(),
                dims,
            })
        }
        [] => bail!("the model has no inputs"),
        many => bail!(
            "the model has {} inputs ({}); quantbench handles single-input models",
            many.len(),
            many.iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A model made runnable by tract for one concrete input shape.
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
    states: std::sync::Mutex<Vec<TypedSimpleState>>,
    pub input_shape: Vec<usize>,
    pub output_names: Vec<String>,
}

impl TractModel {
    /// Loads ONNX bytes for `input_shape`. `outputs`: tensor names to expose instead of the
    /// graph's outputs (intermediate taps; chosen before optimisation so the names hold).
    pub fn load(
        model: &pb::ModelProto,
        input_shape: &[usize],
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
        check_ops_supported(model)?;
        // Declared intermediate shapes may carry a symbolic batch that would not unify with the
        // concrete input: let tract infer every shape from the input instead.
        let mut inference = tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .with_ignore_value_info(true)
            .model_for_proto_model(model)
            .map_err(|e| anyhow!("tract cannot load the model: {}", tract_error_text(&e)))?;
        inference = inference
            .with_input_fact(0, f32::fact(input_shape).into())
            .context("setting the input shape")?;
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
        let typed = inference.into_optimized().map_err(|e| {
            anyhow!(
                "tract cannot prepare the model for input shape {input_shape:?}: {}",
                tract_error_text(&e)
            )
        })?;
        let plan = typed
            .into_runnable()
            .map_err(|e| anyhow!("tract: {}", tract_error_text(&e)))?;
        Ok(TractModel {
            plan,
            states: std::sync::Mutex::new(vec![]),
            input_shape: input_shape.to_vec(),
            output_names,
        })
    }

    /// Runs one input on an execution state taken from the pool (tract allocates its
    /// intermediate buffers per state; reusing one per worker saves that on every sample).
    fn execute(&self, input: &[f32]) -> Result<TVec<TValue>> {
        let tensor = Tensor::from_shape(&self.input_shape, input)
            .map_err(|e| anyhow!("input of shape {:?}: {e}", self.input_shape))?;
        let pooled = self.states.lock().ok().and_then(|mut s| s.pop());
        let mut state = match pooled {
            Some(state) => state,
            None => self
                .plan
                .spawn()
                .map_err(|e| anyhow!("tract: {}", tract_error_text(&e)))?,
        };
        let outputs = state
            .run(tvec!(tensor.into()))
            .map_err(|e| anyhow!("tract run failed: {}", tract_error_text(&e)))?;
        if let Ok(mut s) = self.states.lock() {
            s.push(state);
        }
        Ok(outputs)
    }

    /// Runs one input; returns every output flattened to f32, in `output_names` order.
    pub fn run(&self, input: &[f32]) -> Result<Vec<Vec<f32>>> {
        let mut all = vec![];
        self.run_visit(input, &mut |_, values| all.push(values.to_vec()))?;
        Ok(all)
    }

    /// Runs one input and hands each output's values to `visit(index, values)` without copying.
    pub fn run_visit(&self, input: &[f32], visit: &mut dyn FnMut(usize, &[f32])) -> Result<()> {
        for (k, t) in self.execute(input)?.iter().enumerate() {
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

/// A loaded model that maps one input to its first output, from any thread.
pub trait Runner: Send + Sync {
    fn run(&self, input: &[f32]) -> Result<Vec<f32>>;
    fn output_shape(&self) -> Vec<usize>;
    /// Backend name and version, recorded with results.
    fn describe(&self) -> String;
}

impl Runner for TractModel {
    fn run(&self, input: &[f32]) -> Result<Vec<f32>> {
        let mut outputs = TractModel::run(self, input)?;
        if outputs.is_empty() {
            bail!("the model produced no output");
        }
        Ok(outputs.swap_remove(0))
    }

    fn output_shape(&self) -> Vec<usize> {
        self.output_shapes()
            .ok()
            .and_then(|s| s.into_iter().next())
            .unwrap_or_default()
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

    /// Loads `model` for inputs of `input_shape`; `workers`: how many threads will call `run`
    /// at once.
    pub fn load(
        &self,
        model: &pb::ModelProto,
        input_shape: &[usize],
        workers: usize,
    ) -> Result<Box<dyn Runner>> {
        Ok(match self {
            Backend::Tract => Box::new(TractModel::load(model, input_shape, None)?),
            Backend::Ort(options) => Box::new(ort::OrtModel::load(
                &onnx::encode_model(model),
                input_shape,
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

/// Resolves a model's input shape from its declared dims and a sample's shape.
pub fn concrete_input_shape(spec: &InputSpec, sample_shape: &[usize]) -> Result<Vec<usize>> {
    if spec.dims.len() != sample_shape.len()
        || spec
            .dims
            .iter()
            .zip(sample_shape)
            .any(|(d, s)| d.is_some_and(|d| d != *s))
    {
        bail!(
            "samples have shape {sample_shape:?} but input '{}' expects {:?}",
            spec.name,
            spec.dims
                .iter()
                .map(|d| d.map(|d| d as i64).unwrap_or(-1))
                .collect::<Vec<_>>()
        );
    }
    Ok(sample_shape.to_vec())
}
