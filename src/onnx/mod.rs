//! Reading, editing and writing ONNX files.
//!
//! quantbench edits models at the protobuf level (`tract_onnx::pb`, prost types) so that what it
//! writes is a standard ONNX file: the graph, the initializers and the opset are ours to change,
//! everything else in the file is carried through. This module owns decoding (with errors that
//! name the file), tensor conversion between `TensorProto` and `Vec<f32>`, small graph queries,
//! and atomic writes.

pub mod inspect;
pub mod opset;

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use pb::tensor_proto::DataType;
use prost::Message;
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

/// Decodes an ONNX file, with an error that names the file and says what is wrong with it.
/// Weights stored in external data files beside the model are read into the model (files
/// outside the model's folder are refused).
pub fn read_model(path: &Path) -> Result<pb::ModelProto> {
    crate::jobs::checkpoint("read a model")?;
    let bytes =
        std::fs::read(path).with_context(|| format!("{}: cannot read file", path.display()))?;
    let mut model = decode_model(&bytes)
        .with_context(|| format!("{}: not a valid ONNX model", path.display()))?;
    crate::jobs::checkpoint("read a model: external data")?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    load_external_data(&mut model, dir)
        .with_context(|| format!("{}: external data", path.display()))?;
    Ok(model)
}

/// The external data files the model at `path` keeps weights in (beside it), each once.
pub fn external_data_files(path: &Path) -> Result<Vec<std::path::PathBuf>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("{}: cannot read file", path.display()))?;
    let mut model = decode_model(&bytes)
        .with_context(|| format!("{}: not a valid ONNX model", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut files = vec![];
    if let Some(graph) = model.graph.as_mut() {
        for_each_tensor_mut(graph, &mut |t| {
            if let Some(e) = t.external_data.iter().find(|e| e.key == "location") {
                let file = external_data_path(dir, &e.value)?;
                if is_external(t) && !files.contains(&file) {
                    files.push(file);
                }
            }
            Ok(())
        })
        .with_context(|| format!("{}: external data", path.display()))?;
    }
    Ok(files)
}

/// Calls `f` on every tensor of `graph` and of its subgraphs: initializers and the values of
/// Constant nodes (and any tensor attribute).
pub fn for_each_tensor_mut(
    graph: &mut pb::GraphProto,
    f: &mut dyn FnMut(&mut pb::TensorProto) -> Result<()>,
) -> Result<()> {
    for t in &mut graph.initializer {
        f(t)?;
    }
    for n in &mut graph.node {
        for a in &mut n.attribute {
            if let Some(t) = a.t.as_mut() {
                f(t)?;
            }
            for t in &mut a.tensors {
                f(t)?;
            }
            if let Some(g) = a.g.as_mut() {
                for_each_tensor_mut(g, f)?;
            }
            for g in &mut a.graphs {
                for_each_tensor_mut(g, f)?;
            }
        }
    }
    Ok(())
}

fn is_external(t: &pb::TensorProto) -> bool {
    t.data_location == Some(pb::tensor_proto::DataLocation::External as i32)
}

/// The file an external-data `location` names, which must lie inside `dir` (after resolving
/// `..` and symbolic links).
fn external_data_path(dir: &Path, location: &str) -> Result<std::path::PathBuf> {
    let relative = Path::new(location);
    if relative.is_absolute() {
        bail!("'{location}' is an absolute path; external data must lie beside the model");
    }
    let root = dir
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve the model's folder", dir.display()))?;
    let file = dir
        .join(relative)
        .canonicalize()
        .with_context(|| format!("'{location}': cannot open the external data file"))?;
    if !file.starts_with(&root) {
        bail!(
            "'{location}' resolves to {}, outside the model's folder {}: refused",
            file.display(),
            root.display()
        );
    }
    Ok(file)
}

fn load_external_data(model: &mut pb::ModelProto, dir: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let Some(graph) = model.graph.as_mut() else {
        return Ok(());
    };
    let mut files: HashMap<String, std::fs::File> = HashMap::new();
    for_each_tensor_mut(graph, &mut |t| {
        if !is_external(t) {
            return Ok(());
        }
        let get = |key: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.clone())
        };
        let location = get("location")
            .ok_or_else(|| anyhow!("tensor '{}': external data without a location", t.name))?;
        let number = |key: &str| -> Result<Option<u64>> {
            get(key)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| anyhow!("tensor '{}': {key} '{v}' is not a number", t.name))
                })
                .transpose()
        };
        let offset = number("offset")?.unwrap_or(0);
        let expected = (element_count(&t.dims) * element_size(t.data_type)) as u64;
        let length = number("length")?.unwrap_or(expected);
        if length != expected {
            bail!(
                "tensor '{}': {length} bytes in '{location}', but {:?} {} needs {expected}",
                t.name,
                t.dims,
                data_type_name(t.data_type)
            );
        }
        if !files.contains_key(&location) {
            let path = external_data_path(dir, &location)?;
            let file = std::fs::File::open(&path)
                .with_context(|| format!("{}: cannot open", path.display()))?;
            files.insert(location.clone(), file);
        }
        let file = files.get_mut(&location).expect("inserted above");
        let size = file.metadata()?.len();
        if offset.saturating_add(length) > size {
            bail!(
                "tensor '{}': bytes {offset}..{} of '{location}', which holds {size}",
                t.name,
                offset + length
            );
        }
        let mut bytes = vec![0u8; length as usize];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut bytes)
            .with_context(|| format!("tensor '{}': cannot read '{location}'", t.name))?;
        t.raw_data = bytes;
        t.external_data.clear();
        t.data_location = None;
        Ok(())
    })
}

/// The largest model written as one protobuf file: protobuf cannot encode a message of 2 GiB
/// or more.
pub const SINGLE_FILE_LIMIT: u64 = (2 << 30) - (64 << 20);

/// Writes a model to `path` atomically. Models larger than `limit` bytes (use
/// [`SINGLE_FILE_LIMIT`]) keep every tensor of 1 KiB or more in `<file name>.data` beside them,
/// as ONNX's external data, written (atomically) before the model that names it.
pub fn write_model(path: &Path, model: &pb::ModelProto, limit: u64) -> Result<()> {
    let size = model.encoded_len() as u64;
    if size <= limit {
        return write_atomic(path, &encode_model(model));
    }
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file path", path.display()))?
        .to_string_lossy()
        .into_owned();
    let location = format!("{file_name}.data");
    let mut data: Vec<u8> = Vec::new();
    let mut model = model.clone();
    if let Some(graph) = model.graph.as_mut() {
        for_each_tensor_mut(graph, &mut |t| {
            if is_external(t) || tensor_bytes(t) < 1024 {
                return Ok(());
            }
            let bytes = raw_bytes(t)?;
            // Aligned to 4 KiB, as ONNX's own writer does, so runtimes can map the tensors.
            data.resize(data.len().next_multiple_of(4096), 0);
            let offset = data.len();
            data.extend_from_slice(&bytes);
            t.raw_data.clear();
            t.float_data.clear();
            t.int32_data.clear();
            t.int64_data.clear();
            t.double_data.clear();
            t.uint64_data.clear();
            t.data_location = Some(pb::tensor_proto::DataLocation::External as i32);
            t.external_data = [
                ("location", location.clone()),
                ("offset", offset.to_string()),
                ("length", bytes.len().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| pb::StringStringEntryProto {
                key: k.into(),
                value: v,
            })
            .collect();
            Ok(())
        })?;
    }
    let encoded = encode_model(&model);
    if encoded.len() as u64 > limit.max(SINGLE_FILE_LIMIT) {
        bail!(
            "{}: the graph alone is {} bytes, too large for one ONNX file",
            path.display(),
            encoded.len()
        );
    }
    write_atomic(&path.with_file_name(&location), &data)?;
    write_atomic(path, &encoded)
}

/// A tensor's values as little-endian bytes, the way `raw_data` holds them.
fn raw_bytes(t: &pb::TensorProto) -> Result<Vec<u8>> {
    if !t.raw_data.is_empty() {
        return Ok(t.raw_data.clone());
    }
    Ok(
        match DataType::try_from(t.data_type).unwrap_or(DataType::Undefined) {
            DataType::Float => t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DataType::Double => t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DataType::Int64 => t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DataType::Uint64 => t.uint64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DataType::Int32 => t.int32_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DataType::Int8 | DataType::Uint8 | DataType::Bool => {
                t.int32_data.iter().map(|&v| v as u8).collect()
            }
            DataType::Int16 | DataType::Uint16 | DataType::Float16 | DataType::Bfloat16 => t
                .int32_data
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes())
                .collect(),
            other => bail!(
                "tensor '{}': {} cannot be moved to external data",
                t.name,
                other.as_str_name()
            ),
        },
    )
}

/// Decodes ONNX bytes and checks the parts quantbench relies on (a graph with nodes and outputs).
pub fn decode_model(bytes: &[u8]) -> Result<pb::ModelProto> {
    if bytes.is_empty() {
        bail!("the file is empty");
    }
    let model = pb::ModelProto::decode(bytes).map_err(|e| {
        anyhow!("protobuf decoding failed ({e}); the file is truncated or not ONNX")
    })?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| anyhow!("the file holds no graph"))?;
    if graph.node.is_empty() {
        bail!("the graph has no nodes");
    }
    if graph.output.is_empty() {
        bail!("the graph has no outputs");
    }
    if model.ir_version <= 0 || model.opset_import.is_empty() {
        bail!("missing ir_version or opset_import; the file is truncated or not ONNX");
    }
    validate_graph(graph)?;
    Ok(model)
}

/// Checks what the rewrite and the runtimes index into: every initializer holds as many bytes
/// as its dimensions say (negative or overflowing dimensions refused before any allocation),
/// and every node input names something (a graph input, an initializer or a node's output).
fn validate_graph(graph: &pb::GraphProto) -> Result<()> {
    validate_scope(graph, &std::collections::HashSet::new(), 0)
}

/// `validate_graph` for a graph whose nodes may also read the names `outer` holds (the scopes
/// around a subgraph).
fn validate_scope<'a>(
    graph: &'a pb::GraphProto,
    outer: &std::collections::HashSet<&'a str>,
    depth: usize,
) -> Result<()> {
    use std::collections::HashSet;
    if depth > 64 {
        bail!("subgraphs nested more than 64 deep");
    }
    for t in &graph.initializer {
        if let Some(d) = t.dims.iter().find(|&&d| d < 0) {
            bail!("initializer '{}' has a negative dimension ({d})", t.name);
        }
        let count = t
            .dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .filter(|&n| n <= (1u64 << 40))
            .ok_or_else(|| {
                anyhow!(
                    "initializer '{}' has dimensions {:?}: more elements than any machine holds",
                    t.name,
                    t.dims
                )
            })?;
        let external = t.data_location == Some(pb::tensor_proto::DataLocation::External as i32);
        let sized = !matches!(
            DataType::try_from(t.data_type).unwrap_or(DataType::Undefined),
            DataType::String | DataType::Int4 | DataType::Uint4 | DataType::Undefined
        );
        if external || !sized {
            continue;
        }
        let held = if !t.raw_data.is_empty() {
            t.raw_data.len() as u64 / element_size(t.data_type) as u64
        } else {
            [
                t.float_data.len(),
                t.int32_data.len(),
                t.int64_data.len(),
                t.double_data.len(),
                t.uint64_data.len(),
            ]
            .into_iter()
            .max()
            .unwrap_or(0) as u64
        };
        if held != count {
            bail!(
                "initializer '{}' holds {held} values, but its dimensions {:?} need {count}",
                t.name,
                t.dims
            );
        }
    }
    let mut known: HashSet<&str> = outer.clone();
    known.extend(graph.input.iter().map(|v| v.name.as_str()));
    known.extend(graph.initializer.iter().map(|t| t.name.as_str()));
    known.extend(
        graph
            .sparse_initializer
            .iter()
            .filter_map(|t| t.values.as_ref().map(|v| v.name.as_str())),
    );
    known.extend(
        graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(|o| o.as_str())),
    );
    for n in &graph.node {
        if let Some(missing) = n
            .input
            .iter()
            .find(|i| !i.is_empty() && !known.contains(i.as_str()))
        {
            bail!(
                "node '{}' ({}) reads '{missing}', which no graph input, initializer or node provides",
                n.name,
                n.op_type
            );
        }
        check_arity(n)?;
        for a in &n.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                validate_scope(g, &known, depth + 1).with_context(|| {
                    format!(
                        "in the subgraph '{}' of node '{}' ({})",
                        a.name, n.name, n.op_type
                    )
                })?;
            }
        }
    }
    check_weights(graph)?;
    Ok(())
}

/// Inputs (fewest, most) and outputs (fewest, most) of the default-domain ops the rewrite and
/// the evaluation index into; other ops are left to the runtimes.
fn arity(op: &str) -> Option<((usize, usize), (usize, usize))> {
    const ANY: usize = usize::MAX;
    Some(match op {
        "Conv" | "ConvTranspose" | "Gemm" => ((2, 3), (1, 1)),
        "MatMul" | "Add" | "Sub" | "Mul" | "Div" | "Pow" | "PRelu" | "Gather" | "Reshape"
        | "Expand" | "Tile" => ((2, 2), (1, 1)),
        "MatMulInteger" | "ConvInteger" => ((2, 4), (1, 1)),
        "QuantizeLinear" | "DequantizeLinear" => ((2, 3), (1, 1)),
        "BatchNormalization" => ((5, 5), (1, 3)),
        "LayerNormalization" => ((2, 3), (1, 3)),
        "Relu" | "Sigmoid" | "Tanh" | "Softmax" | "HardSwish" | "HardSigmoid" | "Erf" | "Sqrt"
        | "Exp" | "Log" | "Neg" | "Abs" | "Identity" | "Flatten" | "Transpose"
        | "GlobalAveragePool" | "GlobalMaxPool" | "AveragePool" | "LeakyRelu" | "Gelu" | "Cast"
        | "Shape" | "Reciprocal" => ((1, 1), (1, 1)),
        "MaxPool" => ((1, 1), (1, 2)),
        "Clip" => ((1, 3), (1, 1)),
        "Squeeze" | "Unsqueeze" | "ReduceMean" | "ReduceSum" | "ReduceMax" => ((1, 2), (1, 1)),
        "Split" => ((1, 2), (1, ANY)),
        "Concat" | "Sum" | "Max" | "Min" | "Mean" => ((1, ANY), (1, 1)),
        "Resize" => ((1, 4), (1, 1)),
        "Upsample" => ((1, 2), (1, 1)),
        "Slice" => ((1, 5), (1, 1)),
        "Pad" => ((1, 4), (1, 1)),
        "DynamicQuantizeLinear" => ((1, 1), (3, 3)),
        _ => return None,
    })
}

fn check_arity(n: &pb::NodeProto) -> Result<()> {
    if n.output.is_empty() || n.output.iter().all(|o| o.is_empty()) {
        bail!("node '{}' ({}) has no output", n.name, n.op_type);
    }
    if !(n.domain.is_empty() || n.domain == "ai.onnx") {
        return Ok(());
    }
    let Some(((imin, imax), (omin, omax))) = arity(&n.op_type) else {
        return Ok(());
    };
    // Trailing empty names are optional inputs left out.
    let inputs = n.input.len() - n.input.iter().rev().take_while(|i| i.is_empty()).count();
    let outputs = n.output.len();
    let first_missing = n.input.iter().take(imin).position(|i| i.is_empty());
    if inputs < imin || inputs > imax || first_missing.is_some() {
        bail!(
            "node '{}' ({}) has {inputs} inputs; {} takes {}",
            n.name,
            n.op_type,
            n.op_type,
            range_text(imin, imax)
        );
    }
    if outputs < omin || outputs > omax {
        bail!(
            "node '{}' ({}) has {outputs} outputs; {} gives {}",
            n.name,
            n.op_type,
            n.op_type,
            range_text(omin, omax)
        );
    }
    Ok(())
}

fn range_text(lo: usize, hi: usize) -> String {
    match (lo, hi) {
        (l, h) if l == h => format!("{l}"),
        (l, usize::MAX) => format!("{l} or more"),
        (l, h) => format!("{l} to {h}"),
    }
}

/// Weights the rewrite divides by or indexes along: a Conv/ConvTranspose weight of rank 3 or
/// more, a Gemm/MatMul constant operand of rank 1 or more, and none of them with a zero-sized
/// dimension.
fn check_weights(graph: &pb::GraphProto) -> Result<()> {
    let inits: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    for n in &graph.node {
        let (weights, min_rank): (&[String], usize) = match n.op_type.as_str() {
            "Conv" | "ConvTranspose" => (&n.input[1..2.min(n.input.len())], 3),
            "Gemm" | "MatMul" => (&n.input[..2.min(n.input.len())], 1),
            _ => continue,
        };
        for w in weights {
            let Some(t) = inits.get(w.as_str()) else {
                continue;
            };
            if t.dims.len() < min_rank {
                bail!(
                    "node '{}' ({}): weight '{}' has rank {} ({:?}); {} needs at least {min_rank}",
                    n.name,
                    n.op_type,
                    t.name,
                    t.dims.len(),
                    t.dims,
                    n.op_type
                );
            }
            if t.dims.contains(&0) {
                bail!(
                    "node '{}' ({}): weight '{}' has a zero-sized dimension {:?}",
                    n.name,
                    n.op_type,
                    t.name,
                    t.dims
                );
            }
        }
    }
    Ok(())
}

pub fn encode_model(model: &pb::ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// The directory `path` will be written in, or an error naming both when it does not exist;
/// called before long work so that it does not fail at the end.
pub fn check_output_dir(path: &Path) -> Result<&Path> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "{}: the output directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    Ok(dir)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, flushed to disk,
/// then renamed over `path` (and the directory flushed), so that a failure, a cancelled job or
/// a killed process leaves either the old file or the complete new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::jobs::checkpoint("write a file")?;
    replace_atomic(path, |f| {
        use std::io::Write;
        f.write_all(bytes)
    })
}

/// Copies `from` to `to` the way [`write_atomic`] writes.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    crate::jobs::checkpoint("copy a file")?;
    let mut source =
        std::fs::File::open(from).with_context(|| format!("{}: cannot open", from.display()))?;
    replace_atomic(to, |f| std::io::copy(&mut source, f).map(|_| ()))
        .with_context(|| format!("copying {}", from.display()))
}

/// Removes the temporary files that writers of `file_name` killed mid-write left in `dir`
/// (`.NAME.PID-N.tmp` of a process that no longer runs).
fn remove_stale_temporaries(dir: &Path, file_name: &str) {
    let prefix = format!(".{file_name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()));
        let gone = pid.is_some_and(|pid| {
            pid != std::process::id()
                && cfg!(target_os = "linux")
                && !Path::new(&format!("/proc/{pid}")).exists()
        });
        if gone {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn replace_atomic(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    // Unique per write: two writes to one path at once (an autosave and a save) never share
    // a temporary file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let dir = check_output_dir(path)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file path", path.display()))?
        .to_string_lossy();
    remove_stale_temporaries(dir, &file_name);
    let tmp = dir.join(format!(
        ".{file_name}.{}-{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename itself survives a power loss once the directory is on disk too.
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow!("{}: cannot write ({e})", path.display()));
    }
    Ok(())
}

/// The default-domain opset the model imports.
pub fn default_opset(model: &pb::ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(1)
}

pub fn set_default_opset(model: &mut pb::ModelProto, version: i64) {
    match model
        .opset_import
        .iter_mut()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
    {
        Some(o) => o.version = version,
        None => model.opset_import.push(pb::OperatorSetIdProto {
            domain: String::new(),
            version,
        }),
    }
    model.ir_version = model.ir_version.max(ir_version_for_opset(version));
}

pub fn graph(model: &pb::ModelProto) -> &pb::GraphProto {
    model
        .graph
        .as_ref()
        .expect("decode_model guarantees a graph")
}

pub fn graph_mut(model: &mut pb::ModelProto) -> &mut pb::GraphProto {
    model
        .graph
        .as_mut()
        .expect("decode_model guarantees a graph")
}

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

pub fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub fn attr_int(node: &pb::NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

pub fn attr_ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

pub fn attr_float(node: &pb::NodeProto, name: &str) -> Option<f32> {
    attr(node, name).map(|a| a.f)
}

pub fn int_attr(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

pub fn ints_attr(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// A float tensor value of unknown shape (a graph input or output to declare).
pub fn float_value(name: &str) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A float tensor value of fixed shape `dims`.
pub fn float_value_shaped(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    let mut v = float_value(name);
    if let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape = Some(pb::TensorShapeProto {
            dim: dims
                .iter()
                .map(|&d| pb::tensor_shape_proto::Dimension {
                    value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d)),
                    ..Default::default()
                })
                .collect(),
        });
    }
    v
}

pub fn node(op_type: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op_type.to_string(),
        name: name.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Every tensor name the subgraphs of `node` read (recursively), including outer-scope names.
pub fn subgraph_inputs(node: &pb::NodeProto) -> Vec<&String> {
    node.attribute
        .iter()
        .flat_map(|a| a.g.iter().chain(&a.graphs))
        .flat_map(|g| {
            g.node
                .iter()
                .flat_map(|n| n.input.iter().chain(subgraph_inputs(n)))
                .chain(g.output.iter().map(|o| &o.name))
        })
        .collect()
}

/// Name lookups over a graph, built once per pass.
pub struct GraphIndex {
    /// initializer name -> index in `graph.initializer`
    pub initializers: HashMap<String, usize>,
    /// tensor name -> index of the node producing it
    pub producer: HashMap<String, usize>,
    /// tensor name -> indices of the nodes consuming it, in graph order
    pub consumers: HashMap<String, Vec<usize>>,
    pub graph_outputs: Vec<String>,
}

impl GraphIndex {
    pub fn new(graph: &pb::GraphProto) -> Self {
        let initializers = graph
            .initializer
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let mut producer = HashMap::new();
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                producer.insert(o.clone(), i);
            }
            // A node with a body consumes what the body reads from outside, so no fold treats
            // such a tensor as unused or single-use.
            let mut read: Vec<&String> = n.input.iter().filter(|o| !o.is_empty()).collect();
            read.extend(subgraph_inputs(n));
            read.sort();
            read.dedup();
            for inp in read {
                consumers.entry(inp.clone()).or_default().push(i);
            }
        }
        let graph_outputs = graph.output.iter().map(|o| o.name.clone()).collect();
        GraphIndex {
            initializers,
            producer,
            consumers,
            graph_outputs,
        }
    }

    pub fn is_initializer(&self, name: &str) -> bool {
        self.initializers.contains_key(name)
    }

    pub fn consumers_of(&self, name: &str) -> &[usize] {
        self.consumers
            .get(name)
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    pub fn is_graph_output(&self, name: &str) -> bool {
        self.graph_outputs.iter().any(|o| o == name)
    }
}

/// Dimensions of a value's declared type: `Ok(n)` for a number, `Err(symbol)` for a symbol.
pub fn value_dims(v: &pb::ValueInfoProto) -> Vec<std::result::Result<i64, String>> {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_ref().and_then(|t| t.value.clone())
    else {
        return vec![];
    };
    t.shape
        .map(|s| {
            s.dim
                .iter()
                .enumerate()
                .map(|(i, d)| match &d.value {
                    Some(Value::DimValue(n)) if *n > 0 => Ok(*n),
                    Some(Value::DimParam(p)) if !p.is_empty() => Err(p.clone()),
                    _ => Err(format!("d{i}")),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn value_elem_type(v: &pb::ValueInfoProto) -> i32 {
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t.elem_type,
        None => 0,
    }
}

/// Graph inputs that are real inputs (IR < 4 files also list every initializer as an input).
pub fn real_inputs(graph: &pb::GraphProto) -> Vec<&pb::ValueInfoProto> {
    let inits: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .collect()
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    fn model(graph: pb::GraphProto) -> Vec<u8> {
        encode_model(&pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(graph),
            ..Default::default()
        })
    }

    fn graph(init: pb::TensorProto, inputs: &[&str]) -> pb::GraphProto {
        pb::GraphProto {
            node: vec![node("MatMul", "mm", inputs, &["y"])],
            initializer: vec![init],
            input: vec![pb::ValueInfoProto {
                name: "x".into(),
                ..Default::default()
            }],
            output: vec![pb::ValueInfoProto {
                name: "y".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn malformed_graphs_are_refused_with_what_is_wrong() {
        let ok = f32_tensor("w", &[2, 3], &[0.5; 6]);
        assert!(decode_model(&model(graph(ok.clone(), &["x", "w"]))).is_ok());
        // Fewer bytes than the dimensions say.
        let mut short = ok.clone();
        short.raw_data.truncate(8);
        let e = decode_model(&model(graph(short, &["x", "w"])))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'w' holds 2 values") && e.contains("need 6"),
            "{e}"
        );
        // Dimensions no machine holds: refused before anything is allocated.
        let mut huge = ok.clone();
        huge.dims = vec![1 << 31, 1 << 31, 1 << 31];
        let e = decode_model(&model(graph(huge, &["x", "w"])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("more elements than any machine holds"), "{e}");
        let mut negative = ok.clone();
        negative.dims = vec![-2, 3];
        assert!(decode_model(&model(graph(negative, &["x", "w"]))).is_err());
        // A node input nothing provides.
        let e = decode_model(&model(graph(ok, &["x", "missing"])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("node 'mm' (MatMul) reads 'missing'"), "{e}");
    }
}
