//! CSV/TSV (optionally gzipped) of pixel rows, read row by row from disk.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::read_text;
use crate::data::Loaded;
use crate::data::{ImageSize, LabelColumn};

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
    pub(crate) fn len(&self, row_len: usize) -> usize {
        match self {
            CsvRows::Memory(rows) => rows.len() / row_len.max(1),
            CsvRows::Disk { lines, .. } => lines.len(),
        }
    }

    /// Row `index`'s pixels; `None` past the end.
    pub(crate) fn row(
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

pub(crate) fn load_csv(
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
