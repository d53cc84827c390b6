//! Reading each kind of source into samples: CSV rows, image folders, `.npz` archives, ONNX
//! test data, synthetic inputs.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::desc::{ImageSize, LabelColumn, Labels, SyntheticInput};
use super::{npy, Loaded};
use crate::onnx::pb;
use crate::tensor::{Feed, TensorData};

/// Deterministic values for synthetic input `k` of sample `index` (xorshift, seeded by both).
pub(super) fn synthetic_feed(s: &SyntheticInput, index: usize, k: usize) -> Feed {
    let n: usize = s.shape.iter().product();
    let mut state = (index as u64 + 1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(k as u64 * 0xBF58_476D_1CE4_E5B9)
        | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let span = s.high - s.low;
    let data = if s.elem.is_float() {
        TensorData::F64((0..n).map(|_| s.low + next() * span).collect())
    } else {
        TensorData::I64(
            (0..n)
                .map(|_| (s.low + (next() * (span + 1.0)).floor()).min(s.high) as i64)
                .collect(),
        )
    };
    Feed {
        name: s.name.clone(),
        shape: s.shape.clone(),
        // Values are drawn within the type's range, so the conversion cannot fail.
        data: data.clone().convert(s.elem).unwrap_or(data),
    }
}

pub(super) fn load_npz(path: &Path) -> Result<Loaded> {
    let mut arrays = npy::read_npz(path)?;
    let labels = match arrays
        .iter()
        .position(|(n, _)| n == "label" || n == "labels")
    {
        Some(k) => {
            let (name, a) = arrays.remove(k);
            let values = a.data.to_f32();
            let labels = values
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if v >= 0.0 && v.fract() == 0.0 {
                        Ok(v as usize)
                    } else {
                        Err(anyhow!(
                            "{}: '{name}'[{i}] = {v} is not a class index",
                            path.display()
                        ))
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            Some(labels)
        }
        None => None,
    };
    if arrays.is_empty() {
        bail!("{}: the archive holds labels but no inputs", path.display());
    }
    let rows = arrays[0].1.shape.first().copied().unwrap_or(0);
    for (name, a) in &arrays {
        if a.shape.first().copied().unwrap_or(0) != rows {
            bail!(
                "{}: array '{name}' has shape {:?}, but '{}' has {rows} samples along its first axis: every array needs the same leading sample axis",
                path.display(),
                a.shape,
                arrays[0].0
            );
        }
    }
    if let Some(l) = &labels {
        if l.len() != rows {
            bail!("{}: {} labels for {rows} samples", path.display(), l.len());
        }
    }
    Ok(Loaded::Npz {
        arrays,
        labels,
        rows,
    })
}

/// `test_data_set_*` folders under `dir` (or `dir` itself when it holds `input_0.pb`), each
/// read whole: the model zoo ships one to three small sets.
pub(super) fn load_test_data(dir: &Path) -> Result<Loaded> {
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

/// A text file's contents, through gzip when it ends in `.gz`.
pub(super) fn read_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut text = String::new();
    let read = if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file).read_to_string(&mut text)
    } else {
        std::io::BufReader::new(file).read_to_string(&mut text)
    };
    read.with_context(|| format!("{}: cannot read as text", path.display()))?;
    Ok(text)
}

pub(super) fn load_csv(
    path: &Path,
    image: ImageSize,
    label_column: Option<&LabelColumn>,
    header: bool,
) -> Result<Loaded> {
    let text = read_text(path)?;
    let pixels = image.channels * image.height * image.width;
    let columns = pixels + usize::from(label_column.is_some());
    if let Some(LabelColumn::Index(i)) = label_column {
        if *i >= columns {
            bail!(
                "{}: label column {i} is out of range: rows have {columns} columns (0..{})",
                path.display(),
                columns - 1
            );
        }
    }
    let name = path.to_string_lossy().to_ascii_lowercase();
    let separator = if name.ends_with(".tsv") || name.ends_with(".tsv.gz") {
        '\t'
    } else {
        ','
    };
    let mut rows = Vec::new();
    let mut labels = label_column.map(|_| Vec::new());
    for (line_no, line) in text.lines().enumerate().skip(usize::from(header)) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(separator).map(str::trim).collect();
        if fields.len() != columns {
            bail!(
                "{}: line {} has {} columns, expected {columns} ({pixels} pixels{})",
                path.display(),
                line_no + 1,
                fields.len(),
                if label_column.is_some() {
                    " and a label"
                } else {
                    ""
                }
            );
        }
        let label_index = label_column.map(|c| match c {
            LabelColumn::First => 0,
            LabelColumn::Last => columns - 1,
            LabelColumn::Index(i) => *i,
        });
        for (i, f) in fields.iter().enumerate() {
            if Some(i) == label_index {
                let label: usize = f.parse().map_err(|_| {
                    anyhow!(
                        "{}: line {}: label '{f}' is not a class index",
                        path.display(),
                        line_no + 1
                    )
                })?;
                if let Some(l) = labels.as_mut() {
                    l.push(label);
                }
            } else {
                let v: f32 = f.parse().map_err(|_| {
                    anyhow!(
                        "{}: line {}, column {}: '{f}' is not a number",
                        path.display(),
                        line_no + 1,
                        i + 1
                    )
                })?;
                rows.push(v);
            }
        }
    }
    Ok(Loaded::Csv {
        rows,
        row_len: pixels,
        labels,
        image,
    })
}

pub(super) fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

pub(super) fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

pub(super) fn load_image_folder(dir: &Path, labels: &Labels) -> Result<Loaded> {
    let mut files = vec![];
    let mut classes = vec![];
    match labels {
        Labels::None => {
            files = sorted_entries(dir)?
                .into_iter()
                .filter(|p| is_image(p))
                .map(|p| (p, None))
                .collect();
        }
        Labels::FromSubfolders => {
            for sub in sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()) {
                let class = classes.len();
                classes.push(
                    sub.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                );
                files.extend(
                    sorted_entries(&sub)?
                        .into_iter()
                        .filter(|p| is_image(p))
                        .map(|p| (p, Some(class))),
                );
            }
        }
    }
    Ok(Loaded::Images { files, classes })
}

/// Every file under `dir`, sorted, recursively.
pub(super) fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        collect_files(&e, out)?;
    }
    Ok(())
}
