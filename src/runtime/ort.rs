//! ONNX Runtime, the runtime most users deploy int8 ONNX on, loaded at run time from
//! `libonnxruntime.so` (`ORT_DYLIB_PATH`, or the library inside an installed Python
//! `onnxruntime` package). Its absence is an error value, never a panic: the `ort` crate panics
//! inside `build()` on a missing library, so the path is checked first.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{anyhow, Result};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use serde::{Deserialize, Serialize};

use super::Runner;
use crate::tensor::{Feed, TensorData};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum OptLevel {
    /// No graph rewrites: a QDQ model runs as written (matches tract's simulation).
    Disabled,
    Basic,
    Extended,
    /// Everything, including the fused int8 kernels for QDQ models.
    #[default]
    All,
}

impl OptLevel {
    /// The name `--ort-opt` takes.
    pub fn name(self) -> &'static str {
        match self {
            OptLevel::Disabled => "disabled",
            OptLevel::Basic => "basic",
            OptLevel::Extended => "extended",
            OptLevel::All => "all",
        }
    }
}

impl std::str::FromStr for OptLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "disabled" | "disable" => Ok(OptLevel::Disabled),
            "basic" => Ok(OptLevel::Basic),
            "extended" => Ok(OptLevel::Extended),
            "all" => Ok(OptLevel::All),
            _ => Err(format!(
                "unknown optimization level '{s}' (expected disabled, basic, extended or all)"
            )),
        }
    }
}

/// Session options that change int8 results, recorded with every result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrtOptions {
    pub optimization: OptLevel,
    /// `session.x64quantprecision = 1`: exact int8 kernels on x86 CPUs without VNNI, where the
    /// default kernels saturate 16-bit intermediate sums (vpmaddubsw) and lose accuracy.
    pub x64_quant_precision: bool,
}

impl Default for OrtOptions {
    fn default() -> Self {
        OrtOptions {
            optimization: OptLevel::All,
            x64_quant_precision: false,
        }
    }
}

impl std::fmt::Display for OrtOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "opt={:?}", self.optimization)?;
        if self.x64_quant_precision {
            f.write_str(", x64quantprecision=1")?;
        }
        Ok(())
    }
}

struct Loaded {
    env: ort::environment::Environment,
    version: String,
    path: PathBuf,
}

static RUNTIME: OnceLock<std::result::Result<Loaded, Unavailable>> = OnceLock::new();

const INSTALL_HINT: &str =
    "install it with `pip install onnxruntime`, or set ORT_DYLIB_PATH to libonnxruntime.so";

/// Why ONNX Runtime cannot be used in this process (looked for once, then remembered).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("ONNX Runtime: ORT_DYLIB_PATH={} is not a file; {INSTALL_HINT}", path.display())]
    NotAFile { path: PathBuf },
    #[error("ONNX Runtime library not found; {INSTALL_HINT}")]
    NotFound,
    #[error("ONNX Runtime: cannot load {}: {reason}; {INSTALL_HINT}", path.display())]
    CannotLoad { path: PathBuf, reason: String },
    #[error("ONNX Runtime: {reason}")]
    NoEnvironment { reason: String },
}

/// Where `libonnxruntime.so` is: `ORT_DYLIB_PATH`, else the Python package's `capi/` folder.
pub fn find_library() -> std::result::Result<PathBuf, Unavailable> {
    if let Ok(p) = std::env::var("ORT_DYLIB_PATH") {
        let path = PathBuf::from(p);
        if path.is_file() {
            return Ok(path);
        }
        return Err(Unavailable::NotAFile { path });
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stderr(std::process::Stdio::null())
        .output();
    if let Ok(out) = out {
        if out.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("capi");
            if let Some(lib) = library_in(&dir) {
                return Ok(lib);
            }
        }
    }
    Err(Unavailable::NotFound)
}

fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    found.sort();
    found.pop()
}

fn load() -> std::result::Result<Loaded, Unavailable> {
    let path = find_library()?;
    let builder = ort::init_from(&path).map_err(|e| Unavailable::CannotLoad {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let env = builder
        .with_name("quantbench")
        .build()
        .map_err(|e| Unavailable::NoEnvironment {
            reason: e.to_string(),
        })?;
    let version = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("libonnxruntime.so."))
        .map(str::to_string)
        .unwrap_or_else(|| ort::info().to_string());
    Ok(Loaded { env, version, path })
}

fn runtime() -> Result<&'static Loaded> {
    RUNTIME
        .get_or_init(load)
        .as_ref()
        .map_err(|e| anyhow::Error::new(e.clone()))
}

/// `ONNX Runtime 1.32.0`, or why it is not available.
pub fn version() -> Result<String> {
    runtime().map(|r| format!("onnxruntime {}", r.version))
}

pub fn library_path() -> Result<PathBuf> {
    runtime().map(|r| r.path.clone())
}

/// A model in ONNX Runtime: one session per worker, each single-threaded, so that parallel
/// evaluation scales by samples as a serving loop does.
pub struct OrtModel {
    sessions: Vec<Mutex<Session>>,
    output_names: Vec<String>,
    output_shapes: Vec<Vec<usize>>,
    options: OrtOptions,
    version: String,
}

type NamedOutput = (String, Vec<usize>, Vec<f32>);

fn ort_value(feed: &Feed) -> Result<ort::value::DynValue> {
    let shape = feed.shape.clone();
    let value = match &feed.data {
        TensorData::F32(v) => Tensor::from_array((shape, v.clone())).map(|t| t.into_dyn()),
        TensorData::F16(v) => Tensor::from_array((shape, v.clone())).map(|t| t.into_dyn()),
        TensorData::F64(v) => Tensor::from_array((shape, v.clone())).map(|t| t.into_dyn()),
        TensorData::I64(v) => Tensor::from_array((shape, v.clone())).map(|t| t.into_dyn()),
        TensorData::I32(v) => Tensor::from_array((shape, v.clone())).map(|t| t.into_dyn()),
        TensorData::I8(v) => Tensor::from_array((shape, v.clone())).map(|t| t.into_dyn()),
        TensorData::U8(v) => Tensor::from_array((shape, v.clone())).map(|t| t.into_dyn()),
        TensorData::Bool(v) => Tensor::from_array((shape, v.clone())).map(|t| t.into_dyn()),
    };
    value.map_err(|e| anyhow!("ONNX Runtime input '{}': {e}", feed.name))
}

/// An output of any numeric type, flattened to f32, with its shape.
fn output_f32(value: &ort::value::DynValueRef<'_>) -> Result<(Vec<usize>, Vec<f32>)> {
    fn take<T: ort::value::PrimitiveTensorElementType + Copy + std::fmt::Debug>(
        value: &ort::value::DynValueRef<'_>,
        to_f32: impl Fn(T) -> f32,
    ) -> Option<(Vec<usize>, Vec<f32>)> {
        let (shape, data) = value.try_extract_tensor::<T>().ok()?;
        Some((
            shape.iter().map(|&d| d.max(0) as usize).collect(),
            data.iter().map(|&v| to_f32(v)).collect(),
        ))
    }
    take::<f32>(value, |v| v)
        .or_else(|| take::<half::f16>(value, |v| v.to_f32()))
        .or_else(|| take::<f64>(value, |v| v as f32))
        .or_else(|| take::<i64>(value, |v| v as f32))
        .or_else(|| take::<i32>(value, |v| v as f32))
        .or_else(|| take::<i8>(value, f32::from))
        .or_else(|| take::<u8>(value, f32::from))
        .or_else(|| take::<bool>(value, |v| f32::from(u8::from(v))))
        .ok_or_else(|| {
            anyhow!(
                "ONNX Runtime output of type {:?} is not numeric",
                value.dtype()
            )
        })
}

impl OrtModel {
    pub fn load(
        model_bytes: &[u8],
        example: &[Feed],
        options: OrtOptions,
        workers: usize,
    ) -> Result<Self> {
        crate::jobs::checkpoint("ONNX Runtime: create a session")?;
        let rt = runtime()?;
        let level = match options.optimization {
            OptLevel::Disabled => GraphOptimizationLevel::Disable,
            OptLevel::Basic => GraphOptimizationLevel::Level1,
            OptLevel::Extended => GraphOptimizationLevel::Level2,
            OptLevel::All => GraphOptimizationLevel::All,
        };
        let make = || -> Result<Session> {
            let mut builder = Session::builder(&rt.env)
                .map_err(|e| anyhow!("ONNX Runtime: {e}"))?
                .with_optimization_level(level)
                .map_err(|e| anyhow!("ONNX Runtime: {e}"))?
                .with_intra_threads(1)
                .map_err(|e| anyhow!("ONNX Runtime: {e}"))?;
            if options.x64_quant_precision {
                builder = builder
                    .with_config_entry("session.x64quantprecision", "1")
                    .map_err(|e| anyhow!("ONNX Runtime: {e}"))?;
            }
            builder
                .commit_from_memory(model_bytes)
                .map_err(|e| anyhow!("ONNX Runtime cannot load the model: {e}"))
        };
        use rayon::prelude::*;
        let sessions = (0..workers.max(1))
            .into_par_iter()
            .map(|_| make().map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        crate::jobs::checkpoint("ONNX Runtime: run a first sample")?;
        let mut model = OrtModel {
            sessions,
            output_names: vec![],
            output_shapes: vec![],
            options,
            version: rt.version.clone(),
        };
        let shaped = model.run_shaped(example)?;
        model.output_names = shaped.iter().map(|o| o.0.clone()).collect();
        model.output_shapes = shaped.into_iter().map(|o| o.1).collect();
        Ok(model)
    }

    /// (name, shape, values) of every output.
    fn run_shaped(&self, inputs: &[Feed]) -> Result<Vec<NamedOutput>> {
        let worker = rayon::current_thread_index().unwrap_or(0) % self.sessions.len();
        let mut session = self.sessions[worker]
            .lock()
            .map_err(|_| anyhow!("ONNX Runtime session poisoned"))?;
        let values = inputs
            .iter()
            .map(|f| Ok((f.name.clone(), ort_value(f)?)))
            .collect::<Result<Vec<_>>>()?;
        let outputs = session
            .run(values)
            .map_err(|e| anyhow!("ONNX Runtime run failed: {e}"))?;
        outputs
            .iter()
            .map(|(name, value)| {
                let (shape, data) =
                    output_f32(&value).map_err(|e| anyhow!("output '{name}': {e}"))?;
                Ok((name.to_string(), shape, data))
            })
            .collect()
    }
}

impl Runner for OrtModel {
    fn run(&self, inputs: &[Feed]) -> Result<Vec<Vec<f32>>> {
        Ok(self.run_shaped(inputs)?.into_iter().map(|o| o.2).collect())
    }

    fn output_names(&self) -> Vec<String> {
        self.output_names.clone()
    }

    fn output_shapes(&self) -> Vec<Vec<usize>> {
        self.output_shapes.clone()
    }

    fn describe(&self) -> String {
        format!("onnxruntime {} ({})", self.version, self.options)
    }
}
