//! Datasets: where samples come from and how they become a model's input tensors.
//!
//! A dataset is described in a small RON file (paths relative to it): a source (a CSV of pixel
//! rows, a folder of images, `.npy`/`.npz` tensors, ONNX `test_data_set_*` folders, synthetic
//! inputs), the preprocessing (resize, crop, colour order, layout, scaling, mean and std), and
//! which rows calibrate and which evaluate. [`infer`] writes that description from a path and
//! the model, so no one has to write it by hand. Samples are decoded on demand by index, so a
//! pass over the data holds one sample per worker in memory.

mod desc;
pub mod infer;
pub mod npy;
mod preprocess;
mod selection;
mod sources;
pub mod text;

pub use desc::*;
pub use preprocess::AUGMENT_VARIANTS;
use preprocess::*;
pub use selection::{Selection, Shard};
use sources::*;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::onnx::pb;
use crate::tensor::{Feed, InputSpec, TensorData};

/// One decoded sample: the model inputs (each a batch of one), its label if the dataset has
/// labels, and the expected outputs if the dataset ships them.
#[derive(Clone, Debug)]
pub struct Sample {
    pub inputs: Vec<Feed>,
    pub label: Option<usize>,
    pub expected: Option<Vec<Vec<f32>>>,
}

impl Sample {
    /// The first input's values as f32 (previews, single-input tools).
    pub fn first_f32(&self) -> (Vec<usize>, Vec<f32>) {
        self.inputs
            .first()
            .map(|f| (f.shape.clone(), f.data.to_f32()))
            .unwrap_or_default()
    }
}

pub(super) enum Loaded {
    Csv {
        rows: CsvRows,
        format: CsvFormat,
        row_len: usize,
        labels: Option<Vec<usize>>,
        image: ImageSize,
    },
    Images {
        files: Vec<(PathBuf, Option<usize>)>,
        classes: Vec<String>,
    },
    NpyStack {
        array: npy::Array,
    },
    NpyFiles {
        files: Vec<PathBuf>,
    },
    Npz {
        arrays: Vec<(String, npy::Array)>,
        labels: Option<Vec<usize>>,
        rows: usize,
    },
    TestData {
        sets: Vec<(Vec<Feed>, Vec<Vec<f32>>)>,
    },
    Text(text::Loaded),
    Synthetic {
        inputs: Vec<SyntheticInput>,
        count: usize,
    },
}

pub struct Dataset {
    pub desc: DatasetDesc,
    /// The description file (or the source, when opened without one).
    pub path: PathBuf,
    /// The folder the description's relative paths are relative to.
    pub base: PathBuf,
    /// The files the samples come from (resolved), for the content hash; empty for synthetic.
    source_files: Vec<PathBuf>,
    /// [`Dataset::content_sha256`], computed once.
    content_hash: std::sync::OnceLock<String>,
    loaded: Loaded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Calibration,
    Evaluation,
}

impl Dataset {
    /// Opens a dataset description (`.ron`).
    pub fn open(path: &Path) -> Result<Dataset> {
        if path.is_dir() {
            bail!(
                "{}: is a folder, not a dataset description; open it for a model (quantbench dataset new {} --model MODEL.onnx)",
                path.display(),
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read dataset description", path.display()))?;
        let desc: DatasetDesc = ron::from_str(&text)
            .map_err(|e| anyhow!("{}: invalid dataset description: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Dataset::from_desc(desc, base, path)
    }

    /// Opens whatever `--data` names for `model`: a `.ron` description as it is; a folder, a
    /// CSV/TSV, `.npy`, `.npz` or `synthetic` through a description inferred from the model
    /// (returned with the notes that say what was guessed).
    pub fn open_for(
        path: &Path,
        model: &pb::ModelProto,
        options: &infer::Options,
    ) -> Result<(Dataset, Vec<String>)> {
        if path.extension().is_some_and(|e| e == "ron") {
            return Ok((Dataset::open(path)?, vec![]));
        }
        let inferred = infer::describe(path, model, options)?;
        let dataset = Dataset::from_desc(inferred.desc, Path::new(""), path)?;
        Ok((dataset, inferred.notes))
    }

    pub fn from_desc(desc: DatasetDesc, base: &Path, path: &Path) -> Result<Dataset> {
        crate::jobs::checkpoint("open a dataset")?;
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let channels = match (&desc.source, desc.preprocess.color) {
            (Source::Csv { image, .. }, _) => image.channels,
            (_, Color::Grayscale) => 1,
            _ => 3,
        };
        desc.preprocess
            .check(channels)
            .with_context(|| format!("{}: preprocess", path.display()))?;
        let loaded = load_source(&desc.source, &resolve, path)?;
        let source_files = source_files(&desc.source, &loaded, &resolve)?;
        let dataset = Dataset {
            desc,
            path: path.to_path_buf(),
            base: base.to_path_buf(),
            source_files,
            content_hash: Default::default(),
            loaded,
        };
        if dataset.is_empty() {
            bail!(
                "{}: the dataset is empty (no samples found)",
                dataset.path.display()
            );
        }
        Ok(dataset)
    }

    /// SHA-256 over the description (source, preprocessing, splits, augmentation) and the bytes
    /// of every file the samples come from, each with its name relative to the first: the
    /// same figure means the same samples, wherever the files were moved.
    pub fn content_sha256(&self) -> Result<String> {
        if let Some(h) = self.content_hash.get() {
            return Ok(h.clone());
        }
        let h = self.compute_content_sha256()?;
        Ok(self.content_hash.get_or_init(|| h).clone())
    }

    fn compute_content_sha256(&self) -> Result<String> {
        crate::jobs::checkpoint("hash a dataset")?;
        use sha2::Digest;
        use std::io::Read;
        let mut hash = sha2::Sha256::new();
        let mut desc = self.desc.clone();
        // Where the files are is not what they hold: the description without its paths.
        for p in desc.paths_mut() {
            p.clear();
        }
        hash.update(
            ron::to_string(&desc)
                .map_err(|e| anyhow!("{e}"))?
                .as_bytes(),
        );
        let root = self
            .source_files
            .first()
            .and_then(|f| f.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut buf = vec![0u8; 1 << 16];
        for f in &self.source_files {
            let name = f.strip_prefix(&root).unwrap_or(f);
            hash.update(name.to_string_lossy().as_bytes());
            let mut file =
                std::fs::File::open(f).with_context(|| format!("{}: cannot read", f.display()))?;
            loop {
                let n = file
                    .read(&mut buf)
                    .with_context(|| format!("{}: cannot read", f.display()))?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
            }
        }
        Ok(format!("{:x}", hash.finalize()))
    }

    pub fn len(&self) -> usize {
        match &self.loaded {
            Loaded::Csv { rows, row_len, .. } => rows.len(*row_len),
            Loaded::Images { files, .. } => files.len(),
            Loaded::NpyStack { array } => array.shape.first().copied().unwrap_or(0),
            Loaded::NpyFiles { files } => files.len(),
            Loaded::Npz { rows, .. } => *rows,
            Loaded::TestData { sets } => sets.len(),
            Loaded::Text(t) => t.len(),
            Loaded::Synthetic { count, .. } => *count,
        }
    }

    /// Whether the samples are random inputs rather than data (fidelity only, said so).
    pub fn is_synthetic(&self) -> bool {
        matches!(self.loaded, Loaded::Synthetic { .. })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn has_labels(&self) -> bool {
        match &self.loaded {
            Loaded::Csv { labels, .. } => labels.is_some(),
            Loaded::Images { files, .. } => files.first().is_some_and(|f| f.1.is_some()),
            Loaded::Npz { labels, .. } => labels.is_some(),
            Loaded::Text(t) => t.has_labels(),
            _ => false,
        }
    }

    pub fn class_names(&self) -> Vec<String> {
        match &self.loaded {
            Loaded::Images { classes, .. } => classes.clone(),
            Loaded::Text(t) => t.class_names(),
            _ => vec![],
        }
    }

    /// The sample indices of a split, clipped to the dataset; an error if that leaves none.
    pub fn indices(&self, purpose: Purpose) -> Result<std::ops::Range<usize>> {
        let split = match purpose {
            Purpose::Calibration => self.desc.calibration,
            Purpose::Evaluation => self.desc.evaluation,
        };
        let n = match (&self.loaded, purpose) {
            (Loaded::Images { files, .. }, Purpose::Calibration) => {
                files.len() * self.desc.augment.clamp(1, AUGMENT_VARIANTS)
            }
            _ => self.len(),
        };
        let start = split.start.min(n);
        let end = split
            .count
            .map(|c| start.saturating_add(c).min(n))
            .unwrap_or(n);
        if start >= end {
            bail!(
                "{}: the {} split (start {}, count {:?}) holds no samples; the dataset has {n}",
                self.path.display(),
                if purpose == Purpose::Calibration {
                    "calibration"
                } else {
                    "evaluation"
                },
                split.start,
                split.count
            );
        }
        Ok(start..end)
    }

    /// How many samples of the evaluation split calibration also reads (a calibration variant
    /// of a photo counts as that photo): figures measured on those flatter a quantized model.
    pub fn shared_samples(&self) -> usize {
        let (Ok(calibration), Ok(evaluation)) = (
            self.indices(Purpose::Calibration),
            self.indices(Purpose::Evaluation),
        ) else {
            return 0;
        };
        match &self.loaded {
            Loaded::Images { files, .. } => {
                let n = files.len().max(1);
                let seen: std::collections::HashSet<usize> = calibration.map(|k| k % n).collect();
                evaluation.filter(|k| seen.contains(k)).count()
            }
            _ => evaluation
                .end
                .min(calibration.end)
                .saturating_sub(evaluation.start.max(calibration.start)),
        }
    }

    /// "calibration and evaluation share 7 of the 7 evaluation samples: …", when they do.
    pub fn overlap_note(&self) -> Option<String> {
        let shared = self.shared_samples();
        let evaluated = self.indices(Purpose::Evaluation).map_or(0, |r| r.len());
        (shared > 0).then(|| {
            format!(
                "calibration and evaluation share {shared} of the {evaluated} evaluation samples: figures on them flatter the quantized models"
            )
        })
    }

    /// The evaluation samples `selection` picks: the split, or one contiguous slice of it
    /// (`shard`), thinned to at most `limit` samples spread evenly over it, so that a subset of
    /// a folder sorted by class still holds every class. Deterministic: the same selection of
    /// the same dataset is the same samples, on any machine.
    pub fn evaluation_indices(&self, selection: Selection) -> Result<Vec<usize>> {
        let split = self.indices(Purpose::Evaluation)?;
        let picked = selection.pick(split.clone());
        if picked.is_empty() {
            bail!(
                "{}: {} leaves no samples of the {} in the evaluation split",
                self.path.display(),
                selection.describe(),
                split.len()
            );
        }
        Ok(picked)
    }

    /// At most `limit` samples of a split: the first ones of the calibration split (as
    /// calibration takes them), spread evenly over the evaluation split (as `--limit` picks).
    pub fn samples_of(&self, purpose: Purpose, limit: Option<usize>) -> Result<Vec<usize>> {
        match purpose {
            Purpose::Calibration => Ok(self
                .indices(purpose)?
                .take(limit.unwrap_or(usize::MAX))
                .collect()),
            Purpose::Evaluation => self.evaluation_indices(Selection::limit(limit)),
        }
    }

    /// The description with absolute paths: what a session records, so that it opens from
    /// anywhere (and saves relative to its own file).
    pub fn resolved_desc(&self) -> DatasetDesc {
        self.desc.resolved(&self.base)
    }

    /// Decodes sample `index` into model inputs with a batch axis of 1.
    pub fn sample(&self, index: usize) -> Result<Sample> {
        crate::jobs::checkpoint("decode a sample")?;
        let sample = match &self.loaded {
            Loaded::Csv { .. } | Loaded::Images { .. } => self.pixel_sample(index)?,
            _ => self.tensor_sample(index)?,
        };
        for feed in &sample.inputs {
            if let Some((bad, value)) = feed.data.first_non_finite() {
                bail!(
                    "{}: sample {index}{} holds a non-finite value ({value}) at element {bad}",
                    self.path.display(),
                    if feed.name.is_empty() {
                        String::new()
                    } else {
                        format!(", input '{}',", feed.name)
                    }
                );
            }
        }
        Ok(sample)
    }

    fn missing(&self, index: usize) -> anyhow::Error {
        anyhow!("{}: no sample {index}", self.path.display())
    }

    /// A sample of pixels (a CSV row, an image), preprocessed.
    fn pixel_sample(&self, index: usize) -> Result<Sample> {
        let pre = &self.desc.preprocess;
        let missing = || self.missing(index);
        let one = |shape: Vec<usize>, data: Vec<f32>| vec![Feed::f32("", shape, data)];
        Ok(match &self.loaded {
            Loaded::Csv {
                rows,
                format,
                labels,
                image,
                ..
            } => {
                let row = rows.row(index, format, &self.path)?.ok_or_else(missing)?;
                let (data, shape) =
                    normalize_hwc(&row, image.height, image.width, image.channels, pre);
                Sample {
                    inputs: one(shape, data),
                    label: labels.as_ref().and_then(|l| l.get(index).copied()),
                    expected: None,
                }
            }
            Loaded::Images { files, .. } => {
                // Indices past the files are calibration variants (`augment`).
                let n = files.len().max(1);
                if index / n >= self.desc.augment.clamp(1, AUGMENT_VARIANTS) {
                    return Err(missing());
                }
                let (file, label) = files.get(index % n).ok_or_else(missing)?;
                let (pixels, h, w, c) = decode_image(file, pre, index / n)?;
                let (data, shape) = normalize_hwc(&pixels, h, w, c, pre);
                Sample {
                    inputs: one(shape, data),
                    label: *label,
                    expected: None,
                }
            }
            _ => return self.tensor_sample(index),
        })
    }

    /// A sample of tensors fed as they are (`.npy`, `.npz`, ONNX test data, tokenized text,
    /// synthetic inputs).
    fn tensor_sample(&self, index: usize) -> Result<Sample> {
        let missing = || self.missing(index);
        let plain = |inputs: Vec<Feed>, label: Option<usize>| Sample {
            inputs,
            label,
            expected: None,
        };
        Ok(match &self.loaded {
            Loaded::NpyStack { array } => {
                let (shape, data) = array.sample(index)?.ok_or_else(missing)?;
                plain(
                    vec![Feed {
                        name: String::new(),
                        shape,
                        data,
                    }],
                    None,
                )
            }
            Loaded::NpyFiles { files } => {
                let array = npy::read(files.get(index).ok_or_else(missing)?)?;
                let mut shape = array.shape.clone();
                if shape.first() != Some(&1) {
                    shape.insert(0, 1);
                }
                let data = array.data()?;
                plain(
                    vec![Feed {
                        name: String::new(),
                        shape,
                        data,
                    }],
                    None,
                )
            }
            Loaded::Npz { arrays, labels, .. } => plain(
                arrays
                    .iter()
                    .map(|(name, a)| {
                        let (shape, data) = a.sample(index)?.ok_or_else(missing)?;
                        Ok(Feed {
                            name: name.clone(),
                            shape,
                            data,
                        })
                    })
                    .collect::<Result<_>>()?,
                labels.as_ref().and_then(|l| l.get(index).copied()),
            ),
            Loaded::TestData { sets } => {
                let (inputs, outputs) = sets.get(index).ok_or_else(missing)?;
                Sample {
                    inputs: inputs.clone(),
                    label: None,
                    expected: Some(outputs.clone()),
                }
            }
            Loaded::Text(t) => {
                let (inputs, label) = t.sample(index).ok_or_else(missing)?;
                plain(inputs, label)
            }
            Loaded::Synthetic { inputs, count } => {
                if index >= *count {
                    return Err(missing());
                }
                plain(
                    inputs
                        .iter()
                        .enumerate()
                        .map(|(k, s)| synthetic_feed(s, index, k))
                        .collect(),
                    None,
                )
            }
            Loaded::Csv { .. } | Loaded::Images { .. } => return self.pixel_sample(index),
        })
    }

    /// Sample `index` with its inputs bound to the model's (named, typed, in model order).
    pub fn bound(&self, index: usize, inputs: &[InputSpec]) -> Result<Sample> {
        let mut sample = self.sample(index)?;
        sample.inputs = crate::tensor::bind(inputs, &sample.inputs).with_context(|| {
            format!(
                "{}: sample {index} does not fit the model",
                self.path.display()
            )
        })?;
        Ok(sample)
    }

    /// Decodes the samples of a split (at most `limit`) and writes them stacked along a new
    /// first axis, for feeding exactly the same inputs to other tools: `.npz` (one array per
    /// input, named after the model's inputs when `inputs` is given) or `.npy` (one input).
    /// Returns the sample count and each array's name and shape.
    pub fn export(
        &self,
        purpose: Purpose,
        limit: Option<usize>,
        inputs: Option<&[InputSpec]>,
        out: &Path,
    ) -> Result<(usize, Vec<ArrayShape>)> {
        let indices = self.samples_of(purpose, limit)?;
        let mut stacked: Vec<Feed> = vec![];
        for &i in &indices {
            let mut s = match inputs {
                Some(inputs) => self.bound(i, inputs)?,
                None => self.sample(i)?,
            };
            // Inputs without a batch axis of 1 (a [5, 1, 4] sequence) get a new sample axis.
            for f in &mut s.inputs {
                if f.shape.first() != Some(&1) {
                    f.shape.insert(0, 1);
                }
            }
            if stacked.is_empty() {
                stacked = s.inputs;
                continue;
            }
            for (acc, f) in stacked.iter_mut().zip(s.inputs) {
                if acc.shape[1..] != f.shape[1..] || f.shape.first() != Some(&1) {
                    bail!(
                        "{}: sample {i} has shape {:?} for '{}', earlier ones {:?}: samples of different shapes cannot be stacked",
                        self.path.display(),
                        f.shape,
                        f.name,
                        &acc.shape[1..]
                    );
                }
                acc.shape[0] += 1;
                acc.data.extend(f.data)?;
            }
        }
        let arrays: Vec<(String, Vec<usize>, TensorData)> = stacked
            .into_iter()
            .enumerate()
            .map(|(k, f)| {
                let name = if f.name.is_empty() {
                    format!("input_{k}")
                } else {
                    f.name
                };
                (name, f.shape, f.data)
            })
            .collect();
        let is_npz = out.extension().is_some_and(|e| e == "npz");
        match arrays.as_slice() {
            [(_, shape, data)] if !is_npz => npy::write_data(out, shape, data)?,
            _ if !is_npz => bail!(
                "{}: samples have {} inputs; a .npy holds one: write an .npz",
                out.display(),
                arrays.len()
            ),
            _ => npy::write_npz(out, &arrays)?,
        }
        Ok((
            indices.len(),
            arrays.into_iter().map(|(n, s, _)| (n, s)).collect(),
        ))
    }

    /// Checks that the first sample fits the model's inputs, with an error that names both.
    pub fn check_fits(&self, inputs: &[InputSpec]) -> Result<()> {
        self.bound(0, inputs).map(|_| ())
    }
}

/// An exported array's name and shape.
pub type ArrayShape = (String, Vec<usize>);

/// Opens the samples `source` names (paths resolved by `resolve`); `path` names the dataset
/// in errors.
fn load_source(source: &Source, resolve: &dyn Fn(&str) -> PathBuf, path: &Path) -> Result<Loaded> {
    Ok(match source {
        Source::Csv {
            path: p,
            image,
            label_column,
            header,
        } => load_csv(&resolve(p), *image, label_column.as_ref(), *header)?,
        Source::ImageFolder { path: p, labels } => load_image_folder(&resolve(p), labels)?,
        Source::Npz { path: p } => load_npz(&resolve(p))?,
        Source::OnnxTestData { path: p } => load_test_data(&resolve(p))?,
        Source::Text {
            path: p,
            tokenizer,
            text_column,
            label_column,
            max_length,
            inputs,
        } => Loaded::Text(text::load(
            &resolve(p),
            &resolve(tokenizer),
            text_column,
            label_column.as_deref(),
            *max_length,
            inputs,
        )?),
        Source::Synthetic { inputs, count } => {
            for s in inputs {
                check_synthetic(s, path)?;
            }
            Loaded::Synthetic {
                inputs: inputs.clone(),
                count: *count,
            }
        }
        Source::Npy { path: p } => {
            let p = resolve(p);
            if p.is_dir() {
                let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
                    .with_context(|| format!("{}: cannot list folder", p.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|e| e == "npy"))
                    .collect();
                files.sort();
                Loaded::NpyFiles { files }
            } else {
                Loaded::NpyStack {
                    array: npy::read(&p)?,
                }
            }
        }
    })
}

/// A synthetic input a machine can hold, over a finite interval.
fn check_synthetic(s: &SyntheticInput, path: &Path) -> Result<()> {
    let bytes = s
        .shape
        .iter()
        .try_fold(8u64, |n, &d| n.checked_mul(d as u64))
        .ok_or_else(|| {
            anyhow!(
                "{}: synthetic input '{}' of shape {:?}: more values than any machine holds",
                path.display(),
                s.name,
                s.shape
            )
        })?;
    crate::host::check_fits_in_memory(
        bytes,
        &format!(
            "{}: a sample of synthetic input '{}' {:?}",
            path.display(),
            s.name,
            s.shape
        ),
    )?;
    if !(s.low.is_finite() && s.high.is_finite() && s.low <= s.high) {
        bail!(
            "{}: synthetic input '{}': the range {}..{} is not a finite interval",
            path.display(),
            s.name,
            s.low,
            s.high
        );
    }
    Ok(())
}

/// The files the samples come from (what the content hash covers).
fn source_files(
    source: &Source,
    loaded: &Loaded,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Vec<PathBuf>> {
    Ok(match (source, loaded) {
        (_, Loaded::Images { files, .. }) => files.iter().map(|(f, _)| f.clone()).collect(),
        (_, Loaded::NpyFiles { files }) => files.clone(),
        (
            Source::Text {
                path: p, tokenizer, ..
            },
            _,
        ) => vec![resolve(p), resolve(tokenizer)],
        (Source::Synthetic { .. }, _) => vec![],
        (Source::OnnxTestData { path: p }, _) => {
            let mut files = vec![];
            collect_files(&resolve(p), &mut files)?;
            files
        }
        (Source::Csv { path: p, .. } | Source::Npy { path: p } | Source::Npz { path: p }, _) => {
            vec![resolve(p)]
        }
        (Source::ImageFolder { .. }, _) => vec![],
    })
}
