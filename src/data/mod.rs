//! Datasets: where samples come from and how they become a model's input tensors.
//!
//! A dataset is described in a small RON file (paths relative to it): a source (a CSV of pixel
//! rows, a folder of images, `.npy`/`.npz` tensors, ONNX `test_data_set_*` folders, synthetic
//! inputs), the preprocessing (resize, crop, colour order, layout, scaling, mean and std), and
//! which rows calibrate and which evaluate. [`infer`] writes that description from a path and
//! the model, so no one has to write it by hand. Samples are decoded on demand by index, so a
//! pass over the data holds one sample per worker in memory.

pub mod infer;
pub mod npy;
pub mod text;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::onnx::pb;
use crate::tensor::{ElemType, Feed, InputSpec, TensorData};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LabelColumn {
    First,
    Last,
    Index(usize),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Labels {
    /// No labels: fidelity metrics only.
    None,
    /// One sub-folder per class; classes are numbered in the sorted order of the folder names.
    FromSubfolders,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSize {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Source {
    /// Rows of pixel values (row-major, channels last), optionally with a label column.
    /// `.csv.gz` is read through gzip.
    Csv {
        path: String,
        image: ImageSize,
        label_column: Option<LabelColumn>,
        header: bool,
    },
    /// Image files (png, jpeg), optionally one sub-folder per class.
    ImageFolder { path: String, labels: Labels },
    /// Tensors: one `.npy` file whose first axis indexes samples, or a folder of `.npy`
    /// files, one sample each. Used as they are: no preprocessing.
    Npy { path: String },
    /// A NumPy `.npz` archive: one array per model input, named after it, whose first axis
    /// indexes samples. An array named `label` or `labels` holds class indices.
    Npz { path: String },
    /// ONNX's own test data (the model zoo's format): a folder of `test_data_set_*` folders, or
    /// one of them, each holding `input_N.pb` and `output_N.pb`. The outputs are the reference
    /// that fidelity is measured against when no reference model is given.
    OnnxTestData { path: String },
    /// Sentences (a CSV/TSV column, or a JSONL field) tokenized by a Hugging Face
    /// `tokenizer.json` into the model's `input_ids`, `attention_mask` and `token_type_ids`
    /// (those it has, listed in `inputs`), truncated and padded to `max_length`. An optional
    /// label column holds class indices or class names (numbered in sorted order).
    Text {
        path: String,
        tokenizer: String,
        text_column: String,
        label_column: Option<String>,
        max_length: usize,
        inputs: Vec<String>,
    },
    /// Random inputs of the model's types and shapes: fidelity checks only, no accuracy.
    Synthetic {
        inputs: Vec<SyntheticInput>,
        count: usize,
    },
}

/// One model input filled with deterministic pseudo-random values in `[low, high]` (whole
/// numbers for integer types).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyntheticInput {
    pub name: String,
    pub elem: ElemType,
    pub shape: Vec<usize>,
    pub low: f64,
    pub high: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Color {
    #[default]
    Rgb,
    Bgr,
    Grayscale,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

/// What the raw 0–255 pixel values are divided by before mean and std apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ValueScale {
    /// Values stay 0–255 (mean/std given on that scale, e.g. (x − 127) / 128).
    #[default]
    Byte,
    /// Values become 0–1 (mean/std given on that scale, e.g. ImageNet's 0.485 / 0.229).
    Unit,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preprocess {
    /// Resize to exactly (height, width), whatever the aspect ratio (bilinear).
    pub resize_to: Option<(u32, u32)>,
    /// Resize so that the shorter side has this length (bilinear), keeping the aspect ratio;
    /// the longer side is truncated as torchvision's `Resize(int)` does.
    pub resize_shorter: Option<u32>,
    /// Fit inside (height, width) keeping the aspect ratio, centred on a canvas of
    /// `pad_value` (YOLO's letterbox: `round(side · r)` with `r = min(H/h, W/w)`).
    pub letterbox: Option<(u32, u32)>,
    /// Text lines: resize to `height` keeping the aspect ratio (width `ceil(height · w/h)`, at
    /// most `width`), then pad on the right with `pad_value` to `width` (PP-OCR's recognizer).
    pub pad_to_width: Option<(u32, u32)>,
    /// Then cut the centre (height, width); where the crop exceeds the image, the missing
    /// border is `pad_value` (torchvision's `CenterCrop` pads the same way, with 0).
    pub center_crop: Option<(u32, u32)>,
    /// The pixel value (0–255, before scaling, mean and std) of padding.
    pub pad_value: f32,
    pub color: Color,
    pub layout: Layout,
    pub value_scale: ValueScale,
    /// Per channel (one value applies to all channels).
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            resize_to: None,
            resize_shorter: None,
            letterbox: None,
            pad_to_width: None,
            center_crop: None,
            pad_value: 0.0,
            color: Color::Rgb,
            layout: Layout::Nchw,
            value_scale: ValueScale::Byte,
            mean: vec![0.0],
            std: vec![1.0],
        }
    }
}

impl Preprocess {
    /// How many of the (mutually exclusive) resize settings are given.
    pub fn resizes(&self) -> usize {
        [
            self.resize_to.is_some(),
            self.resize_shorter.is_some(),
            self.letterbox.is_some(),
            self.pad_to_width.is_some(),
        ]
        .into_iter()
        .filter(|&r| r)
        .count()
    }

    /// Mean and std hold one value or one per channel; std is finite and non-zero.
    pub fn check(&self, channels: usize) -> Result<()> {
        for (what, values) in [("mean", &self.mean), ("std", &self.std)] {
            if values.len() != 1 && values.len() != channels {
                bail!(
                    "{what} has {} values; give one, or one per channel ({channels})",
                    values.len()
                );
            }
        }
        if self.std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            bail!("std must be finite and non-zero");
        }
        if self.resizes() > 1 {
            bail!("give one of resize_to, resize_shorter, letterbox and pad_to_width");
        }
        if !(0.0..=255.0).contains(&self.pad_value) {
            bail!(
                "pad_value {} is not a pixel value (0 to 255)",
                self.pad_value
            );
        }
        Ok(())
    }
}

/// "resize 256, crop 224x224, RGB, NCHW, /255, mean [..], std [..]" — one line for people.
pub fn describe_preprocess(p: &Preprocess) -> String {
    let mut parts = vec![];
    if let Some((h, w)) = p.resize_to {
        parts.push(format!("resize to {h}x{w}"));
    }
    if let Some(r) = p.resize_shorter {
        parts.push(format!("resize shorter side to {r}"));
    }
    if let Some((h, w)) = p.letterbox {
        parts.push(format!("letterbox into {h}x{w} (pad {})", p.pad_value));
    }
    if let Some((h, w)) = p.pad_to_width {
        parts.push(format!(
            "text line: height {h}, padded to width {w} (pad {})",
            p.pad_value
        ));
    }
    if let Some((h, w)) = p.center_crop {
        parts.push(format!("centre crop {h}x{w}"));
    }
    parts.push(format!("{:?}", p.color).to_uppercase());
    parts.push(format!("{:?}", p.layout).to_uppercase());
    parts.push(
        match p.value_scale {
            ValueScale::Byte => "0-255",
            ValueScale::Unit => "/255",
        }
        .into(),
    );
    parts.push(format!("mean {:?} std {:?}", p.mean, p.std));
    if let Some(preset) = infer::Preset::matching(p) {
        parts.push(format!("(preset {})", preset.name()));
    }
    parts.join(", ")
}

/// A contiguous run of samples: `start`, then `count` of them (`None`: to the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Split {
    pub start: usize,
    pub count: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetDesc {
    pub source: Source,
    #[serde(default)]
    pub preprocess: Preprocess,
    #[serde(default)]
    pub calibration: Split,
    #[serde(default)]
    pub evaluation: Split,
    /// Image folders: calibrate on up to this many variants of each image (itself, mirrored,
    /// corner and centre crops; at most 8), so that a few photos give enough samples.
    /// Evaluation always sees the images as they are. 0 or 1: no augmentation.
    #[serde(default)]
    pub augment: usize,
}

impl DatasetDesc {
    /// Every file path the description holds (the source, a tokenizer).
    pub fn paths_mut(&mut self) -> Vec<&mut String> {
        match &mut self.source {
            Source::Csv { path, .. }
            | Source::ImageFolder { path, .. }
            | Source::Npy { path }
            | Source::Npz { path }
            | Source::OnnxTestData { path } => vec![path],
            Source::Text {
                path, tokenizer, ..
            } => vec![path, tokenizer],
            Source::Synthetic { .. } => vec![],
        }
    }

    /// The description with every relative path resolved against `base` (absolute).
    pub fn resolved(&self, base: &Path) -> DatasetDesc {
        let mut desc = self.clone();
        for p in desc.paths_mut() {
            *p = crate::paths::resolve(p, &crate::paths::absolute(base));
        }
        desc
    }
}

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

enum Loaded {
    Csv {
        rows: Vec<f32>,
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
        let loaded = match &desc.source {
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
            Source::Synthetic { inputs, count } => Loaded::Synthetic {
                inputs: inputs.clone(),
                count: *count,
            },
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
        };
        let source_files = match (&desc.source, &loaded) {
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
            (
                Source::Csv { path: p, .. } | Source::Npy { path: p } | Source::Npz { path: p },
                _,
            ) => {
                vec![resolve(p)]
            }
            (Source::ImageFolder { .. }, _) => vec![],
        };
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
            Loaded::Csv { rows, row_len, .. } => rows.len() / row_len.max(&1),
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

    /// The description with absolute paths: what a session records, so that it opens from
    /// anywhere (and saves relative to its own file).
    pub fn resolved_desc(&self) -> DatasetDesc {
        self.desc.resolved(&self.base)
    }

    /// Decodes sample `index` into model inputs with a batch axis of 1.
    pub fn sample(&self, index: usize) -> Result<Sample> {
        crate::jobs::checkpoint("decode a sample")?;
        let pre = &self.desc.preprocess;
        let missing = || anyhow!("{}: no sample {index}", self.path.display());
        let one = |shape: Vec<usize>, data: Vec<f32>| vec![Feed::f32("", shape, data)];
        let sample = match &self.loaded {
            Loaded::Csv {
                rows,
                row_len,
                labels,
                image,
            } => {
                let row = rows
                    .get(index * row_len..(index + 1) * row_len)
                    .ok_or_else(missing)?;
                let (data, shape) =
                    normalize_hwc(row, image.height, image.width, image.channels, pre);
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
            Loaded::NpyStack { array } => {
                let (shape, data) = array.sample(index).ok_or_else(missing)?;
                Sample {
                    inputs: vec![Feed {
                        name: String::new(),
                        shape,
                        data,
                    }],
                    label: None,
                    expected: None,
                }
            }
            Loaded::NpyFiles { files } => {
                let array = npy::read(files.get(index).ok_or_else(missing)?)?;
                let mut shape = array.shape.clone();
                if shape.first() != Some(&1) {
                    shape.insert(0, 1);
                }
                Sample {
                    inputs: vec![Feed {
                        name: String::new(),
                        shape,
                        data: array.data,
                    }],
                    label: None,
                    expected: None,
                }
            }
            Loaded::Npz { arrays, labels, .. } => Sample {
                inputs: arrays
                    .iter()
                    .map(|(name, a)| {
                        let (shape, data) = a.sample(index).ok_or_else(missing)?;
                        Ok(Feed {
                            name: name.clone(),
                            shape,
                            data,
                        })
                    })
                    .collect::<Result<_>>()?,
                label: labels.as_ref().and_then(|l| l.get(index).copied()),
                expected: None,
            },
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
                Sample {
                    inputs,
                    label,
                    expected: None,
                }
            }
            Loaded::Synthetic { inputs, count } => {
                if index >= *count {
                    return Err(missing());
                }
                Sample {
                    inputs: inputs
                        .iter()
                        .enumerate()
                        .map(|(k, s)| synthetic_feed(s, index, k))
                        .collect(),
                    label: None,
                    expected: None,
                }
            }
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
        let indices: Vec<usize> = self
            .indices(purpose)?
            .take(limit.unwrap_or(usize::MAX))
            .collect();
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

/// Deterministic values for synthetic input `k` of sample `index` (xorshift, seeded by both).
fn synthetic_feed(s: &SyntheticInput, index: usize, k: usize) -> Feed {
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

fn load_npz(path: &Path) -> Result<Loaded> {
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
fn load_test_data(dir: &Path) -> Result<Loaded> {
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
fn read_text(path: &Path) -> Result<String> {
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

fn load_csv(
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

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

fn load_image_folder(dir: &Path, labels: &Labels) -> Result<Loaded> {
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
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
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

/// Calibration variants of an image (`DatasetDesc::augment`): 0 is the image itself.
pub const AUGMENT_VARIANTS: usize = 8;

/// Variant `k` of an image, before any resize: 1 mirrored, 2–5 the four corner crops of 80%
/// of each side, 6 the centre crop of 80%, 7 that crop mirrored.
fn augmented(img: image::DynamicImage, variant: usize) -> image::DynamicImage {
    let (w, h) = (img.width(), img.height());
    let (cw, ch) = ((w * 4 / 5).max(1), (h * 4 / 5).max(1));
    let crop = |x: u32, y: u32| img.crop_imm(x, y, cw, ch);
    match variant {
        1 => img.fliph(),
        2 => crop(0, 0),
        3 => crop(w - cw, 0),
        4 => crop(0, h - ch),
        5 => crop(w - cw, h - ch),
        6 => crop((w - cw) / 2, (h - ch) / 2),
        7 => crop((w - cw) / 2, (h - ch) / 2).fliph(),
        _ => img,
    }
}

/// Decodes, resizes and crops an image (its calibration `variant`, 0 for itself); returns HWC
/// pixel values (0–255 as f32, padding at `pad_value`) and (h, w, c).
fn decode_image(
    path: &Path,
    pre: &Preprocess,
    variant: usize,
) -> Result<(Vec<f32>, usize, usize, usize)> {
    let img =
        image::open(path).map_err(|e| anyhow!("{}: cannot decode image: {e}", path.display()))?;
    let img = augmented(img, variant);
    let mut img = match pre.color {
        Color::Grayscale => image::DynamicImage::ImageLuma8(pil_gray(&img.to_rgb8())),
        _ => image::DynamicImage::ImageRgb8(img.to_rgb8()),
    };
    let (iw, ih) = (img.width().max(1), img.height().max(1));
    let resize = |img: &image::DynamicImage, w: u32, h: u32| {
        img.resize_exact(w.max(1), h.max(1), image::imageops::FilterType::Triangle)
    };
    // The canvas the resized image is placed on: (height, width, top, left).
    let mut canvas = None;
    if let Some((h, w)) = pre.resize_to {
        img = resize(&img, w, h);
    } else if let Some(short) = pre.resize_shorter {
        let (nw, nh) = resized_size(iw, ih, short);
        img = resize(&img, nw, nh);
    } else if let Some((h, w)) = pre.letterbox {
        let r = (h as f64 / ih as f64).min(w as f64 / iw as f64);
        let (nw, nh) = (
            ((iw as f64 * r).round() as u32).clamp(1, w),
            ((ih as f64 * r).round() as u32).clamp(1, h),
        );
        img = resize(&img, nw, nh);
        // Ultralytics' split of the border: round(d/2 − 0.1) before, the rest after.
        let top = ((h - nh) as f64 / 2.0 - 0.1).round().max(0.0) as u32;
        let left = ((w - nw) as f64 / 2.0 - 0.1).round().max(0.0) as u32;
        canvas = Some((h, w, top, left));
    } else if let Some((h, w)) = pre.pad_to_width {
        let nw = ((h as f64 * iw as f64 / ih as f64).ceil() as u32).clamp(1, w);
        img = resize(&img, nw, h);
        canvas = Some((h, w, 0, 0));
    }
    if let Some((ch, cw)) = pre.center_crop {
        if ch > img.height() || cw > img.width() {
            // torchvision pads the short sides, then crops: the image centred on the crop.
            let top = ch.saturating_sub(img.height()) / 2;
            let left = cw.saturating_sub(img.width()) / 2;
            let (x, y) = (
                crop_offset(img.width(), cw.min(img.width())),
                crop_offset(img.height(), ch.min(img.height())),
            );
            img = img.crop_imm(x, y, cw.min(img.width()), ch.min(img.height()));
            canvas = Some((ch, cw, top, left));
        } else {
            let x = crop_offset(img.width(), cw);
            let y = crop_offset(img.height(), ch);
            img = img.crop_imm(x, y, cw, ch);
        }
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (pixels, c): (Vec<f32>, usize) = match pre.color {
        Color::Grayscale => (
            img.into_luma8()
                .into_raw()
                .into_iter()
                .map(f32::from)
                .collect(),
            1,
        ),
        Color::Rgb => (
            img.to_rgb8()
                .into_raw()
                .into_iter()
                .map(f32::from)
                .collect(),
            3,
        ),
        Color::Bgr => {
            let rgb = img.to_rgb8().into_raw();
            (
                rgb.chunks_exact(3)
                    .flat_map(|p| [p[2], p[1], p[0]])
                    .map(f32::from)
                    .collect(),
                3,
            )
        }
    };
    let Some((ch, cw, top, left)) = canvas else {
        return Ok((pixels, h, w, c));
    };
    let (ch, cw, top, left) = (ch as usize, cw as usize, top as usize, left as usize);
    let mut out = vec![pre.pad_value; ch * cw * c];
    for y in 0..h.min(ch.saturating_sub(top)) {
        let row = (w * c).min((cw.saturating_sub(left)) * c);
        let dst = ((top + y) * cw + left) * c;
        out[dst..dst + row].copy_from_slice(&pixels[y * w * c..y * w * c + row]);
    }
    Ok((out, ch, cw, c))
}

/// RGB to gray as PIL's `convert("L")` computes it (ITU-R 601-2 luma in 16-bit fixed point:
/// `L = (19595 R + 38470 G + 7471 B + 2^15) >> 16`); the image crate's `to_luma8` weighs by
/// Rec. 709 instead, which shifts a typical photo's gray levels by several units.
fn pil_gray(rgb: &image::RgbImage) -> image::GrayImage {
    image::GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0.map(u32::from);
        image::Luma([((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16) as u8])
    })
}

/// (width, height) after resizing the shorter side to `short`: the longer side is
/// `int(short * long / short_side)`, truncated, as torchvision computes it.
fn resized_size(w: u32, h: u32, short: u32) -> (u32, u32) {
    let scaled =
        |long: u32, side: u32| ((short as u64 * long as u64) / side.max(1) as u64).max(1) as u32;
    if w <= h {
        (short, scaled(h, w))
    } else {
        (scaled(w, h), short)
    }
}

/// torchvision's centre-crop offset: `int(round((size - crop) / 2))`, Python's round (half to
/// even).
fn crop_offset(size: u32, crop: u32) -> u32 {
    let d = size - crop;
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// Scales, normalises and lays out HWC pixel values as a batch-of-one tensor.
fn normalize_hwc(
    pixels: &[f32],
    h: usize,
    w: usize,
    c: usize,
    pre: &Preprocess,
) -> (Vec<f32>, Vec<usize>) {
    let divisor = match pre.value_scale {
        ValueScale::Byte => 1.0,
        ValueScale::Unit => 255.0,
    };
    let mean = |ch: usize| {
        pre.mean
            .get(ch)
            .or(pre.mean.first())
            .copied()
            .unwrap_or(0.0)
    };
    let std = |ch: usize| pre.std.get(ch).or(pre.std.first()).copied().unwrap_or(1.0);
    let value = |y: usize, x: usize, ch: usize| {
        (pixels[(y * w + x) * c + ch] / divisor - mean(ch)) / std(ch)
    };
    let mut out = Vec::with_capacity(h * w * c);
    match pre.layout {
        Layout::Nchw => {
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        out.push(value(y, x, ch));
                    }
                }
            }
            (out, vec![1, c, h, w])
        }
        Layout::Nhwc => {
            for y in 0..h {
                for x in 0..w {
                    for ch in 0..c {
                        out.push(value(y, x, ch));
                    }
                }
            }
            (out, vec![1, h, w, c])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PIL resamples in fixed point, the image crate in float: at most one level apart, and
    /// apart on under 10% of the pixels (measured: 0 on the 256/224 crops, 0.06-0.085 mean).
    const PIL_MAX_DIFF: f32 = 1.0;
    const PIL_MEAN_DIFF: f32 = 0.1;

    #[test]
    fn imagenet_normalisation_and_layouts() {
        // One 1x2 RGB image: pixels (255, 0, 51) and (0, 255, 102).
        let pixels = [255.0, 0.0, 51.0, 0.0, 255.0, 102.0];
        let pre = Preprocess {
            value_scale: ValueScale::Unit,
            mean: vec![0.5, 0.5, 0.2],
            std: vec![0.5, 0.25, 0.1],
            ..Default::default()
        };
        let (chw, shape) = normalize_hwc(&pixels, 1, 2, 3, &pre);
        assert_eq!(shape, vec![1, 3, 1, 2]);
        // R: (1-0.5)/0.5=1, (0-0.5)/0.5=-1; G: -2, 2; B: (0.2-0.2)/0.1=0, (0.4-0.2)/0.1=2
        let expect = [1.0, -1.0, -2.0, 2.0, 0.0, 2.0];
        for (a, b) in chw.iter().zip(expect) {
            assert!((a - b).abs() < 1e-5, "{chw:?}");
        }
        let (hwc, shape) = normalize_hwc(
            &pixels,
            1,
            2,
            3,
            &Preprocess {
                layout: Layout::Nhwc,
                ..pre
            },
        );
        assert_eq!(shape, vec![1, 1, 2, 3]);
        let expect = [1.0, -2.0, 0.0, -1.0, 2.0, 2.0];
        for (a, b) in hwc.iter().zip(expect) {
            assert!((a - b).abs() < 1e-5, "{hwc:?}");
        }
    }

    /// Decoded, resized, cropped and gray pixels against PIL's on the sample photos
    /// (`tests/data/pil_reference.npz`, from `tests/data/make_pil_reference.py`).
    #[test]
    fn preprocessing_matches_pil() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let reference = npy::read_npz(&root.join("tests/data/pil_reference.npz")).unwrap();
        assert_eq!(reference.len(), 9);
        for (name, array) in reference {
            let (photo, case) = name.split_once('_').unwrap();
            let pre = match case {
                "shorter256_crop224" => Preprocess {
                    resize_shorter: Some(256),
                    center_crop: Some((224, 224)),
                    ..Default::default()
                },
                "to48x64" => Preprocess {
                    resize_to: Some((48, 64)),
                    ..Default::default()
                },
                "gray_to28x28" => Preprocess {
                    resize_to: Some((28, 28)),
                    color: Color::Grayscale,
                    ..Default::default()
                },
                other => panic!("unknown case {other}"),
            };
            let path = root.join(format!("sample_data/photos/{photo}.png"));
            let (pixels, h, w, c) = decode_image(&path, &pre, 0).unwrap();
            let expected: Vec<f32> = match &array.data {
                TensorData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
                other => panic!("{name}: {other:?}"),
            };
            let shape: Vec<usize> = if c == 1 { vec![h, w] } else { vec![h, w, c] };
            assert_eq!(shape, array.shape, "{name}");
            let diffs: Vec<f32> = pixels
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .collect();
            let max = diffs.iter().fold(0.0f32, |m, &d| m.max(d));
            let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
            eprintln!("{name}: max {max}, mean {mean}");
            assert!(
                max <= PIL_MAX_DIFF && mean <= PIL_MEAN_DIFF,
                "{name}: max {max}, mean {mean}"
            );
        }
    }

    /// A 40x20 (w x h) image whose red channel is the column index · 5 and green is 100.
    fn gradient_png(dir: &Path, name: &str) -> PathBuf {
        let img = image::RgbImage::from_fn(40, 20, |x, _| image::Rgb([(x * 5) as u8, 100, 0]));
        let path = dir.join(name);
        img.save(&path).unwrap();
        path
    }

    #[test]
    fn letterbox_text_lines_and_oversize_crops_pad_where_the_image_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let png = gradient_png(dir.path(), "g.png");
        let green = |px: &[f32], h: usize, w: usize, y: usize, x: usize| {
            assert!(y < h && x < w);
            px[(y * w + x) * 3 + 1]
        };
        // Letterbox into 32x32: r = min(32/20, 32/40) = 0.8, image 32x16 at rows 8..24.
        let pre = Preprocess {
            letterbox: Some((32, 32)),
            pad_value: 114.0,
            ..Default::default()
        };
        let (px, h, w, _) = decode_image(&png, &pre, 0).unwrap();
        assert_eq!((h, w), (32, 32));
        for (y, expected) in [
            (0, 114.0),
            (7, 114.0),
            (8, 100.0),
            (23, 100.0),
            (24, 114.0),
            (31, 114.0),
        ] {
            assert_eq!(green(&px, h, w, y, 16), expected, "row {y}");
        }
        // Text line 16x64: width ceil(16 · 40/20) = 32, padded on the right.
        let pre = Preprocess {
            pad_to_width: Some((16, 64)),
            pad_value: 127.5,
            ..Default::default()
        };
        let (px, h, w, _) = decode_image(&png, &pre, 0).unwrap();
        assert_eq!((h, w), (16, 64));
        assert_eq!(green(&px, h, w, 8, 31), 100.0);
        assert_eq!(green(&px, h, w, 8, 32), 127.5);
        // A 30x50 centre crop of the 20x40 image: centred, 5 pixels of padding on each side.
        let pre = Preprocess {
            center_crop: Some((30, 50)),
            ..Default::default()
        };
        let (px, h, w, _) = decode_image(&png, &pre, 0).unwrap();
        assert_eq!((h, w), (30, 50));
        assert_eq!(green(&px, h, w, 4, 25), 0.0);
        assert_eq!(green(&px, h, w, 5, 5), 100.0);
        assert_eq!(green(&px, h, w, 24, 44), 100.0);
        assert_eq!(green(&px, h, w, 25, 44), 0.0);
        assert_eq!(green(&px, h, w, 15, 45), 0.0);
        // Two resizes at once are refused.
        let both = Preprocess {
            letterbox: Some((32, 32)),
            resize_to: Some((32, 32)),
            ..Default::default()
        };
        assert!(both.check(3).is_err());
    }

    #[test]
    fn augmentation_adds_calibration_variants_only() {
        let dir = tempfile::tempdir().unwrap();
        gradient_png(dir.path(), "a.png");
        gradient_png(dir.path(), "b.png");
        let desc = DatasetDesc {
            source: Source::ImageFolder {
                path: dir.path().display().to_string(),
                labels: Labels::None,
            },
            preprocess: Preprocess {
                value_scale: ValueScale::Byte,
                ..Default::default()
            },
            calibration: Split::default(),
            evaluation: Split::default(),
            augment: 3,
        };
        let data = Dataset::from_desc(desc, Path::new(""), Path::new("d.ron")).unwrap();
        assert_eq!(data.indices(Purpose::Calibration).unwrap(), 0..6);
        assert_eq!(data.indices(Purpose::Evaluation).unwrap(), 0..2);
        // Sample 3 = image 1, variant 1: mirrored (red falls from left to right).
        let (shape, plain) = data.sample(1).unwrap().first_f32();
        let (_, mirrored) = data.sample(3).unwrap().first_f32();
        assert_eq!(shape, vec![1, 3, 20, 40]);
        assert_eq!(plain[0], 0.0);
        assert_eq!(mirrored[0], 195.0);
        // Variant 2, the top-left 80% crop: 32x16.
        let (shape, _) = data.sample(4).unwrap().first_f32();
        assert_eq!(shape, vec![1, 3, 16, 32]);
        assert!(data.sample(6).is_err());
    }

    #[test]
    fn resize_and_crop_arithmetic_follows_torchvision() {
        // torchvision: Resize(256) of 500x375 (w x h) gives int(256 * 500 / 375) = 341 wide.
        assert_eq!(resized_size(500, 375, 256), (341, 256));
        assert_eq!(resized_size(375, 500, 256), (256, 341));
        // CenterCrop(224) of 341: int(round(117 / 2)) = round(58.5) = 58 (half to even).
        assert_eq!(crop_offset(341, 224), 58);
        // of 343: round(59.5) = 60.
        assert_eq!(crop_offset(343, 224), 60);
        assert_eq!(crop_offset(256, 224), 16);
    }

    #[test]
    fn mean_and_std_of_the_wrong_length_are_refused() {
        let pre = Preprocess {
            mean: vec![0.1, 0.2],
            ..Default::default()
        };
        let e = pre.check(3).unwrap_err().to_string();
        assert!(e.contains("mean has 2 values") && e.contains("(3)"), "{e}");
        assert!(Preprocess::default().check(3).is_ok());
    }

    #[test]
    fn byte_scale_with_one_mean_for_all_channels() {
        let pre = Preprocess {
            mean: vec![127.0],
            std: vec![128.0],
            ..Default::default()
        };
        let (v, _) = normalize_hwc(&[255.0, 127.0, 0.0], 1, 1, 3, &pre);
        assert_eq!(v, vec![1.0, 0.0, -127.0 / 128.0]);
    }
}
