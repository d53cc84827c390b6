//! ONNX `test_data_set_*` folders: inputs and the outputs stored with them.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::sorted_entries;
use crate::data::Loaded;
use crate::onnx::pb;
use crate::tensor::Feed;

/// `test_data_set_*` folders under `dir` (or `dir` itself when it holds `input_0.pb`), each
/// read whole: the model zoo ships one to three small sets.
pub(crate) fn load_test_data(dir: &Path) -> Result<Loaded> {
    let set_dirs: Vec<PathBuf> = if dir.join("input_0.pb").is_file() {
        vec![dir.to_path_buf()]
    } else {
        sorted_entries(dir)?
            .into_iter()
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("test_data_set"))
            })
            .collect()
    };
    let read_numbered = |set: &Path, prefix: &str| -> Result<Vec<pb::TensorProto>> {
        let mut out = vec![];
        for k in 0.. {
            let file = set.join(format!("{prefix}_{k}.pb"));
            if !file.is_file() {
                break;
            }
            let bytes =
                std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?;
            let t = <pb::TensorProto as prost::Message>::decode(bytes.as_slice())
                .map_err(|e| anyhow!("{}: not an ONNX TensorProto ({e})", file.display()))?;
            out.push(t);
        }
        Ok(out)
    };
    let mut sets = vec![];
    for set in &set_dirs {
        let inputs = read_numbered(set, "input")?
            .iter()
            .map(Feed::from_tensor_proto)
            .collect::<Result<Vec<_>>>()
            .with_context(|| set.display().to_string())?;
        if inputs.is_empty() {
            bail!("{}: holds no input_0.pb", set.display());
        }
        let outputs = read_numbered(set, "output")?
            .iter()
            .map(crate::onnx::tensor_to_f32)
            .collect::<Result<Vec<_>>>()
            .with_context(|| set.display().to_string())?;
        sets.push((inputs, outputs));
    }
    Ok(Loaded::TestData { sets })
}
