//! Text datasets: sentences from a CSV/TSV column or a JSONL field, tokenized by a Hugging Face
//! `tokenizer.json` (the `tokenizers` crate, the same code the Python package runs) into the
//! tensors transformer models take, every sample truncated and padded to one length.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::tensor::{Feed, TensorData};

/// The tokenized samples, held whole: token ids are small next to images.
pub struct Loaded {
    /// Per sample: ids, attention mask, type ids.
    rows: Vec<[Vec<i64>; 3]>,
    labels: Option<Vec<usize>>,
    classes: Vec<String>,
    inputs: Vec<String>,
    max_length: usize,
}

/// The tensor names tokenized text can feed, in the order `Loaded` keeps them.
pub const TEXT_INPUTS: [&str; 3] = ["input_ids", "attention_mask", "token_type_ids"];

impl Loaded {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn has_labels(&self) -> bool {
        self.labels.is_some()
    }

    pub fn class_names(&self) -> Vec<String> {
        self.classes.clone()
    }

    pub fn sample(&self, index: usize) -> Option<(Vec<Feed>, Option<usize>)> {
        let row = self.rows.get(index)?;
        let feeds = self
            .inputs
            .iter()
            .filter_map(|name| {
                let k = TEXT_INPUTS.iter().position(|t| t == name)?;
                Some(Feed {
                    name: name.clone(),
                    shape: vec![1, self.max_length],
                    data: TensorData::I64(row[k].clone()),
                })
            })
            .collect();
        Some((feeds, self.labels.as_ref().map(|l| l[index])))
    }
}

/// Reads the texts (and labels) of `path`: `.jsonl` (one object per line), `.tsv` or `.csv`
/// (`.gz` too) with a header row; columns by name or 0-based index.
pub fn read_rows(
    path: &Path,
    text_column: &str,
    label_column: Option<&str>,
) -> Result<Vec<(String, Option<String>)>> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    let text = super::read_text(path)?;
    if name.ends_with(".jsonl") || name.ends_with(".jsonl.gz") {
        return text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, line)| {
                let v: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| anyhow!("{}: line {}: not JSON ({e})", path.display(), i + 1))?;
                let field = |key: &str| -> Result<String> {
                    match v.get(key) {
                        Some(serde_json::Value::String(s)) => Ok(s.clone()),
                        Some(other) => Ok(other.to_string()),
                        None => bail!("{}: line {} has no field '{key}'", path.display(), i + 1),
                    }
                };
                Ok((field(text_column)?, label_column.map(field).transpose()?))
            })
            .collect();
    }
    let delimiter = if name.contains(".tsv") { b'\t' } else { b',' };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .clone();
    let column = |c: &str| -> Result<usize> {
        headers
            .iter()
            .position(|h| h == c)
            .or_else(|| c.parse().ok().filter(|&i: &usize| i < headers.len()))
            .ok_or_else(|| {
                anyhow!(
                    "{}: no column '{c}' (columns: {})",
                    path.display(),
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
            })
    };
    let t = column(text_column)?;
    let l = label_column.map(column).transpose()?;
    reader
        .records()
        .enumerate()
        .map(|(i, r)| {
            let r = r.map_err(|e| anyhow!("{}: row {}: {e}", path.display(), i + 2))?;
            let get = |k: usize| {
                r.get(k).map(str::to_string).ok_or_else(|| {
                    anyhow!("{}: row {} has {} fields", path.display(), i + 2, r.len())
                })
            };
            Ok((get(t)?, l.map(get).transpose()?))
        })
        .collect()
}

pub fn load(
    path: &Path,
    tokenizer: &Path,
    text_column: &str,
    label_column: Option<&str>,
    max_length: usize,
    inputs: &[String],
) -> Result<Loaded> {
    if max_length == 0 {
        bail!("{}: max_length must be at least 1", path.display());
    }
    if let Some(bad) = inputs.iter().find(|i| !TEXT_INPUTS.contains(&i.as_str())) {
        bail!(
            "text feeds input_ids, attention_mask and token_type_ids, not '{bad}': give an .npz for other inputs"
        );
    }
    let mut tok = tokenizers::Tokenizer::from_file(tokenizer).map_err(|e| {
        anyhow!(
            "{}: not a readable tokenizer.json ({e})",
            tokenizer.display()
        )
    })?;
    tok.with_truncation(Some(tokenizers::TruncationParams {
        max_length,
        ..Default::default()
    }))
    .map_err(|e| anyhow!("{}: {e}", tokenizer.display()))?;
    tok.with_padding(Some(tokenizers::PaddingParams {
        strategy: tokenizers::PaddingStrategy::Fixed(max_length),
        ..Default::default()
    }));
    let rows = read_rows(path, text_column, label_column)?;
    let texts: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    let encodings = tok
        .encode_batch(texts, true)
        .map_err(|e| anyhow!("{}: tokenizing failed: {e}", path.display()))?;
    let as_i64 = |v: &[u32]| v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>();
    let tokenized: Vec<[Vec<i64>; 3]> = encodings
        .iter()
        .map(|e| {
            [
                as_i64(e.get_ids()),
                as_i64(e.get_attention_mask()),
                as_i64(e.get_type_ids()),
            ]
        })
        .collect();
    let (labels, classes) = match label_column {
        None => (None, vec![]),
        Some(_) => {
            let raw: Vec<&str> = rows
                .iter()
                .map(|(_, l)| l.as_deref().unwrap_or("").trim())
                .collect();
            if raw.iter().all(|l| l.parse::<usize>().is_ok()) {
                (
                    Some(raw.iter().map(|l| l.parse().unwrap_or(0)).collect()),
                    vec![],
                )
            } else {
                let classes: Vec<String> = raw
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let labels = raw
                    .iter()
                    .map(|l| classes.iter().position(|c| c == l).unwrap_or(0))
                    .collect();
                (Some(labels), classes)
            }
        }
    };
    Ok(Loaded {
        rows: tokenized,
        labels,
        classes,
        inputs: inputs.to_vec(),
        max_length,
    })
}
