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
            let values = a.data()?.to_f32();
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

/// How a CSV row is read: its separator, column count, where its label is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CsvFormat {
    separator: char,
    columns: usize,
    pixels: usize,
    label_index: Option<usize>,
}

/// A CSV's pixel rows: in memory (a `.gz`, which has no random access), or on disk with the
/// byte range of each row, read when its sample is asked for.
pub(crate) enum CsvRows {
    Memory(Vec<f32>),
    Disk {
        file: std::sync::Mutex<std::fs::File>,
        lines: Vec<(u64, u32, u32)>,
    },
}

impl CsvRows {
    pub(super) fn len(&self, row_len: usize) -> usize {
        match self {
            CsvRows::Memory(rows) => rows.len() / row_len.max(1),
            CsvRows::Disk { lines, .. } => lines.len(),
        }
    }

    /// Row `index`'s pixels; `None` past the end.
    pub(super) fn row(
        &self,
        index: usize,
        format: &CsvFormat,
        path: &Path,
    ) -> Result<Option<Vec<f32>>> {
        match self {
            CsvRows::Memory(rows) => Ok(rows
                .get(index * format.pixels..(index + 1) * format.pixels)
                .map(<[f32]>::to_vec)),
            CsvRows::Disk { file, lines } => {
                use std::io::{Read, Seek, SeekFrom};
                let Some(&(start, len, line_no)) = lines.get(index) else {
                    return Ok(None);
                };
                let mut bytes = vec![0u8; len as usize];
                {
                    let mut f = file
                        .lock()
                        .map_err(|_| anyhow!("{}: a reader failed", path.display()))?;
                    f.seek(SeekFrom::Start(start))
                        .and_then(|_| f.read_exact(&mut bytes))
                        .with_context(|| {
                            format!(
                                "{}: cannot read line {line_no} (was the file changed?)",
                                path.display()
                            )
                        })?;
                }
                let line = std::str::from_utf8(&bytes).map_err(|_| {
                    anyhow!(
                        "{}: line {line_no} is not text (was the file changed?)",
                        path.display()
                    )
                })?;
                let mut pixels = Vec::with_capacity(format.pixels);
                parse_csv_line(line, line_no as usize, format, path, &mut pixels)?;
                Ok(Some(pixels))
            }
        }
    }
}

/// Parses one CSV line into `pixels` (appended); returns its label.
fn parse_csv_line(
    line: &str,
    line_no: usize,
    format: &CsvFormat,
    path: &Path,
    pixels: &mut Vec<f32>,
) -> Result<Option<usize>> {
    let columns = format.columns;
    let fields = line.trim_end_matches(['\r', '\n']).split(format.separator);
    let mut label = None;
    let mut count = 0;
    for (i, f) in fields.enumerate() {
        let f = f.trim();
        count += 1;
        if count > columns {
            continue;
        }
        if Some(i) == format.label_index {
            label = Some(f.parse::<usize>().map_err(|_| {
                anyhow!(
                    "{}: line {line_no}: label '{f}' is not a class index",
                    path.display()
                )
            })?);
        } else {
            let v: f32 = f.parse().map_err(|_| {
                anyhow!(
                    "{}: line {line_no}, column {}: '{f}' is not a number",
                    path.display(),
                    i + 1
                )
            })?;
            pixels.push(v);
        }
    }
    if count != columns {
        bail!(
            "{}: line {line_no} has {count} columns, expected {columns} ({} pixels{})",
            path.display(),
            format.pixels,
            if format.label_index.is_some() {
                " and a label"
            } else {
                ""
            }
        );
    }
    Ok(label)
}

/// Rows past this size stay on disk (with their byte ranges) instead of in memory.
const CSV_IN_MEMORY_BYTES: u64 = 32 << 20;

pub(super) fn load_csv(
    path: &Path,
    image: ImageSize,
    label_column: Option<&LabelColumn>,
    header: bool,
) -> Result<Loaded> {
    load_csv_within(path, image, label_column, header, CSV_IN_MEMORY_BYTES)
}

/// [`load_csv`], holding in memory only files of at most `in_memory` bytes (or gzipped).
fn load_csv_within(
    path: &Path,
    image: ImageSize,
    label_column: Option<&LabelColumn>,
    header: bool,
    in_memory: u64,
) -> Result<Loaded> {
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
    let format = CsvFormat {
        separator,
        columns,
        pixels,
        label_index: label_column.map(|c| match c {
            LabelColumn::First => 0,
            LabelColumn::Last => columns - 1,
            LabelColumn::Index(i) => *i,
        }),
    };
    let mut labels = label_column.map(|_| Vec::new());
    let compressed = name.ends_with(".gz");
    let size = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot open", path.display()))?
        .len();
    if compressed || size <= in_memory {
        let text = read_text(path)?;
        let mut rows = Vec::new();
        for (line_no, line) in text.lines().enumerate().skip(usize::from(header)) {
            if line.trim().is_empty() {
                continue;
            }
            let label = parse_csv_line(line, line_no + 1, &format, path, &mut rows)?;
            if let (Some(l), Some(label)) = (labels.as_mut(), label) {
                l.push(label);
            }
        }
        return Ok(Loaded::Csv {
            rows: CsvRows::Memory(rows),
            format,
            row_len: pixels,
            labels,
            image,
        });
    }
    // Large: one pass checks every row (an error names the line now, not mid-evaluation) and
    // keeps where each row is; the values are read again when asked for.
    use std::io::BufRead;
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut lines = vec![];
    let (mut offset, mut line_no) = (0u64, 0usize);
    let mut line = String::new();
    let mut scratch = Vec::with_capacity(pixels);
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .with_context(|| format!("{}: cannot read as text", path.display()))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let start = offset;
        offset += n as u64;
        if line_no == 1 && header || line.trim().is_empty() {
            continue;
        }
        if line_no % 4096 == 0 {
            crate::jobs::checkpoint("read a CSV")?;
        }
        scratch.clear();
        let label = parse_csv_line(&line, line_no, &format, path, &mut scratch)?;
        if let (Some(l), Some(label)) = (labels.as_mut(), label) {
            l.push(label);
        }
        let len = u32::try_from(n)
            .map_err(|_| anyhow!("{}: line {line_no} is longer than 4 GB", path.display()))?;
        lines.push((start, len, line_no as u32));
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    Ok(Loaded::Csv {
        rows: CsvRows::Disk {
            file: std::sync::Mutex::new(file),
            lines,
        },
        format,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_csv_is_read_row_by_row_to_the_same_samples() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        let mut text = String::from("label,a,b,c,d\n");
        for r in 0..50 {
            text += &format!("{},{},{}.5,-{},{}\n", r % 10, r, r, r * 2, 255 - r);
            if r == 20 {
                text += "\n";
            }
        }
        std::fs::write(&path, &text).unwrap();
        let image = ImageSize {
            channels: 1,
            height: 2,
            width: 2,
        };
        let label = LabelColumn::First;
        let load = |limit| load_csv_within(&path, image, Some(&label), true, limit).unwrap();
        let (memory, disk) = (load(u64::MAX), load(0));
        let rows = |l: &Loaded| match l {
            Loaded::Csv {
                rows,
                format,
                labels,
                ..
            } => (
                matches!(rows, CsvRows::Disk { .. }),
                (0..rows.len(4))
                    .map(|i| rows.row(i, format, &path).unwrap().unwrap())
                    .collect::<Vec<_>>(),
                labels.clone(),
            ),
            _ => unreachable!(),
        };
        let (m, d) = (rows(&memory), rows(&disk));
        assert!(!m.0 && d.0);
        assert_eq!(m.1.len(), 50);
        assert_eq!(m.1[7], vec![7.0, 7.5, -14.0, 248.0]);
        assert_eq!((m.1, m.2), (d.1, d.2));
        // A bad row is refused at open, naming its line, on either path.
        std::fs::write(&path, text.replace("3,33,33.5", "3,33,x")).unwrap();
        for limit in [u64::MAX, 0] {
            let Err(e) = load_csv_within(&path, image, Some(&label), true, limit) else {
                panic!("accepted a bad row");
            };
            assert!(format!("{e:#}").contains("line 36, column 3: 'x'"), "{e:#}");
        }
    }
}
