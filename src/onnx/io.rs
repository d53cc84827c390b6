//! Reading and writing ONNX files: decoding with errors that name the file, external data
//! read from beside the model and written beside it for models over 2 GB.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use prost::Message;

use super::pb;
use super::pb::tensor_proto::DataType;
use super::tensor::{data_type_name, element_count, element_size, tensor_bytes};

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
    let dir = crate::fileio::folder_of(path);
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
    let dir = crate::fileio::folder_of(path);
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
/// [`SINGLE_FILE_LIMIT`]) keep every tensor of 1 KiB or more in ONNX external data beside
/// them, in `<file name>.<hash>.data`: a name of its own for each content, written before the
/// model that names it, so that a kill at any moment leaves the old pair (the old model names
/// the old data file, still there) or the new one, never new weights beside an old graph.
/// Afterwards the data files of earlier writes to `path` (`<file name>[.<hash>].data`, the
/// only names removed) are.
pub fn write_model(path: &Path, model: &pb::ModelProto, limit: u64) -> Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file path", path.display()))?
        .to_string_lossy()
        .into_owned();
    let written = if model.encoded_len() as u64 <= limit {
        crate::fileio::write_atomic(path, &encode_model(model))?;
        None
    } else {
        Some(write_split(path, &file_name, model, limit)?)
    };
    remove_earlier_data(path, &file_name, written.as_deref());
    Ok(())
}

/// Writes the data file, then the model naming it; returns the data file's name.
fn write_split(path: &Path, file_name: &str, model: &pb::ModelProto, limit: u64) -> Result<String> {
    const PENDING: &str = "qb.pending-location";
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
                ("location", PENDING.to_string()),
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
    let location = format!(
        "{file_name}.{}.data",
        crate::fileio::short_hash(&crate::fileio::sha256_hex(&data))
    );
    if let Some(graph) = model.graph.as_mut() {
        for_each_tensor_mut(graph, &mut |t| {
            for e in t.external_data.iter_mut() {
                if e.key == "location" && e.value == PENDING {
                    e.value = location.clone();
                }
            }
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
    crate::fileio::write_atomic(&path.with_file_name(&location), &data)?;
    crate::fileio::write_atomic(path, &encoded)?;
    Ok(location)
}

/// Removes the data files earlier writes of `file_name` left beside it (`<file name>.data`,
/// `<file name>.<12 hex digits>.data`), all but `keep`. Best effort: a file that cannot be
/// removed stays, named by nothing.
fn remove_earlier_data(path: &Path, file_name: &str, keep: Option<&str>) {
    let dir = crate::fileio::folder_of(path);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(middle) = name
            .strip_prefix(file_name)
            .and_then(|rest| rest.strip_suffix(".data"))
        else {
            continue;
        };
        let ours = middle.is_empty()
            || middle
                .strip_prefix('.')
                .is_some_and(|h| h.len() == 12 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if ours && keep != Some(name.as_str()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
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
    super::validate::validate_graph(graph)?;
    Ok(model)
}

pub fn encode_model(model: &pb::ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}
