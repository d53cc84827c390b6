//! Dataset descriptions written from a path and the model, so that nobody writes RON by hand.
//!
//! What the model declares decides what it can: the input size (resize and crop), the layout
//! (NCHW when the channel count sits on axis 1, NHWC on axis 3), the channels (1: gray, 3: RGB),
//! the CSV row length, the names and types of synthetic inputs. What it cannot know, the value
//! normalisation, comes from a named [`Preset`]; every guess is reported as a note.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::{
    Color, DatasetDesc, ImageSize, LabelColumn, Labels, Layout, Preprocess, Source, Split,
    SyntheticInput, ValueScale,
};
use crate::onnx::{self, pb};
use crate::tensor::{self, ElemType, InputSpec};

/// Named value normalisations, as real models' own preprocessing code writes them. Mean and
/// std are in the tensor's channel order (B, G, R for `caffe`), applied after scaling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// torchvision's ImageNet models: RGB / 255, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
    Imagenet,
    /// Inception, MobileNet (TF), PaddleOCR: pixels / 127.5 − 1, in [−1, 1].
    Pm1,
    /// Pixels / 255, in [0, 1].
    Unit,
    /// Caffe / VGG / OpenCV DNN: BGR, 0–255 minus the BGR means (103.939, 116.779, 123.68).
    Caffe,
    /// The raw 0–255 values (MNIST-style models that normalise inside the graph).
    Raw,
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Preset::Imagenet,
        Preset::Pm1,
        Preset::Unit,
        Preset::Caffe,
        Preset::Raw,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Imagenet => "imagenet",
            Preset::Pm1 => "pm1",
            Preset::Unit => "unit",
            Preset::Caffe => "caffe",
            Preset::Raw => "raw",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Preset::Imagenet => "ImageNet mean/std (RGB, 0–1)",
            Preset::Pm1 => "[−1, 1] (x/127.5 − 1)",
            Preset::Unit => "[0, 1] (x/255)",
            Preset::Caffe => "Caffe BGR mean (0–255)",
            Preset::Raw => "raw 0–255",
        }
    }

    /// Sets the value scale, mean, std (and colour order for `caffe`) of `pre`.
    pub fn apply(self, pre: &mut Preprocess) {
        let (scale, mean, std): (ValueScale, Vec<f32>, Vec<f32>) = match self {
            Preset::Imagenet => (
                ValueScale::Unit,
                vec![0.485, 0.456, 0.406],
                vec![0.229, 0.224, 0.225],
            ),
            Preset::Pm1 => (ValueScale::Unit, vec![0.5], vec![0.5]),
            Preset::Unit => (ValueScale::Unit, vec![0.0], vec![1.0]),
            Preset::Caffe => (ValueScale::Byte, vec![103.939, 116.779, 123.68], vec![1.0]),
            Preset::Raw => (ValueScale::Byte, vec![0.0], vec![1.0]),
        };
        pre.value_scale = scale;
        pre.mean = mean;
        pre.std = std;
        if self == Preset::Caffe && pre.color == Color::Rgb {
            pre.color = Color::Bgr;
        }
        // Gray images have one channel: keep one mean/std value.
        if pre.color == Color::Grayscale {
            pre.mean.truncate(1);
            pre.std.truncate(1);
        }
    }

    /// The preset whose values `pre` holds, if any.
    pub fn matching(pre: &Preprocess) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| {
            let mut probe = pre.clone();
            p.apply(&mut probe);
            probe.value_scale == pre.value_scale && probe.mean == pre.mean && probe.std == pre.std
        })
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown preset '{s}' (expected imagenet, pm1, unit, caffe or raw)")
            })
    }
}

/// What the user said; everything left `None` is inferred.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub preset: Option<Preset>,
    /// Resize the shorter side to this length.
    pub resize: Option<u32>,
    /// Centre crop (height, width); also the sample size where the model leaves it open.
    pub crop: Option<(u32, u32)>,
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    pub layout: Option<Layout>,
    pub color: Option<Color>,
    /// A CSV label column: its header name or its 0-based index.
    pub label_column: Option<String>,
    /// Samples of synthetic data.
    pub samples: Option<usize>,
    /// Text: a Hugging Face `tokenizer.json`; with it a CSV/TSV/JSONL holds sentences.
    pub tokenizer: Option<PathBuf>,
    /// Text: the column (or JSONL field) holding the sentences; default `text`.
    pub text_column: Option<String>,
    /// Text: tokens per sample (truncated and padded to it); default the model's fixed
    /// sequence length, else 128.
    pub max_length: Option<usize>,
    /// Images: how a photo becomes the model's size (default: [`Fit::Crop`] for square inputs
    /// of 96 pixels or more, else [`Fit::Stretch`]).
    pub fit: Option<Fit>,
    /// Images: the pixel value (0–255) of padding (letterbox, text lines, oversize crops).
    pub pad_value: Option<f32>,
    /// Image folders: calibration variants per image (1–8), see `DatasetDesc::augment`.
    pub augment: Option<usize>,
}

/// How an image is brought to the model's input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// torchvision's evaluation transform: resize the shorter side (to 256/224 of the crop, or
    /// `--resize`), centre crop.
    Crop,
    /// Resize to exactly the input size, whatever the aspect ratio.
    Stretch,
    /// Keep the aspect ratio, fit inside, pad around (detectors: YOLO's letterbox).
    Letterbox,
    /// Keep the aspect ratio at the input height, pad on the right to the input width (text
    /// recognizers: PP-OCR, CRNN).
    PadWidth,
}

impl Fit {
    pub const ALL: [Fit; 4] = [Fit::Crop, Fit::Stretch, Fit::Letterbox, Fit::PadWidth];

    pub fn name(self) -> &'static str {
        match self {
            Fit::Crop => "crop",
            Fit::Stretch => "stretch",
            Fit::Letterbox => "letterbox",
            Fit::PadWidth => "pad-width",
        }
    }
}

impl std::str::FromStr for Fit {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Fit::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            format!("unknown fit '{s}' (expected crop, stretch, letterbox or pad-width)")
        })
    }
}

/// A description and what was guessed to write it.
pub struct Inferred {
    pub desc: DatasetDesc,
    pub notes: Vec<String>,
}

/// The word `--data` takes for random inputs.
pub const SYNTHETIC: &str = "synthetic";

/// Describes the data at `source` (a folder, a file, or [`SYNTHETIC`]) for `model`.
pub fn describe(source: &Path, model: &pb::ModelProto, options: &Options) -> Result<Inferred> {
    let inputs = tensor::model_inputs(model)?;
    let mut notes = vec![];
    let given = source.display().to_string();
    let name = given.to_ascii_lowercase();
    // Absolute, so that a session holding this description opens from anywhere;
    // `relative_to` makes it relative again for a description file.
    let path_text = match std::path::absolute(source) {
        Ok(p) if given != SYNTHETIC => p.display().to_string(),
        _ => given.clone(),
    };
    let split = Split::default();
    let mut preprocess = Preprocess::default();
    let source_desc = if given == SYNTHETIC {
        let count = options.samples.unwrap_or(32);
        notes.push(format!(
            "synthetic data: {count} random samples; fidelity only, no accuracy"
        ));
        Source::Synthetic {
            inputs: synthetic_inputs(model, &inputs, options, &mut notes)?,
            count,
        }
    } else if !source.exists() {
        bail!("{}: no such file or folder", source.display());
    } else if source.is_dir() {
        describe_folder(
            Path::new(&path_text),
            &inputs,
            options,
            &mut preprocess,
            &mut notes,
        )?
    } else if let Some(tokenizer) = &options.tokenizer {
        if ![".csv", ".tsv", ".jsonl"]
            .iter()
            .any(|e| name.ends_with(e) || name.ends_with(&format!("{e}.gz")))
        {
            bail!(
                "{}: text comes from a .csv, .tsv or .jsonl file",
                source.display()
            );
        }
        describe_text(&path_text, tokenizer, &inputs, options, &mut notes)?
    } else if name.ends_with(".jsonl") || name.ends_with(".jsonl.gz") {
        bail!(
            "{}: a JSONL file holds text: give --tokenizer tokenizer.json (and --text-column)",
            source.display()
        );
    } else if name.ends_with(".npz") {
        Source::Npz { path: path_text }
    } else if name.ends_with(".npy") {
        Source::Npy { path: path_text }
    } else if [".csv", ".tsv", ".csv.gz", ".tsv.gz"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        describe_csv(
            Path::new(&path_text),
            &inputs,
            options,
            &mut preprocess,
            &mut notes,
        )?
    } else if name.ends_with(".ron") {
        bail!(
            "{}: is already a dataset description; open it as it is",
            source.display()
        );
    } else {
        bail!(
            "{}: not a dataset quantbench reads (a folder of images or of test_data_set_*, .csv/.tsv(.gz), .npy, .npz, a .ron description, or 'synthetic')",
            source.display()
        );
    };
    let augment = match (options.augment, &source_desc) {
        (None | Some(0 | 1), _) => 0,
        (Some(n), Source::ImageFolder { .. }) if n <= super::AUGMENT_VARIANTS => {
            notes.push(format!(
                "calibration: {n} variants of each image (itself, mirrored, corner and centre crops); evaluation sees the images as they are"
            ));
            n
        }
        (Some(n), Source::ImageFolder { .. }) => bail!(
            "--augment {n}: at most {} variants per image",
            super::AUGMENT_VARIANTS
        ),
        (Some(_), _) => bail!("--augment applies to a folder of images"),
    };
    Ok(Inferred {
        desc: DatasetDesc {
            source: source_desc,
            preprocess,
            calibration: split,
            evaluation: split,
            augment,
        },
        notes,
    })
}

/// The one input an image or CSV row feeds: (layout, channels, height, width), each `None`
/// where the model leaves it open.
type ImageInput = (Layout, usize, Option<usize>, Option<usize>);

fn image_input(inputs: &[InputSpec]) -> Result<ImageInput> {
    let [input] = inputs else {
        bail!(
            "images feed one input, but the model has {} ({}): give an .npz with one array per input",
            inputs.len(),
            inputs
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    if !input.elem.is_float() && input.elem != ElemType::U8 {
        bail!(
            "input '{}' is {}: images cannot feed it",
            input.name,
            input.elem
        );
    }
    let d = &input.dims;
    let is_channels = |k: usize| {
        d.get(k)
            .copied()
            .flatten()
            .is_some_and(|c| c == 1 || c == 3)
    };
    match d.len() {
        4 if is_channels(1) => Ok((Layout::Nchw, d[1].unwrap_or(3), d[2], d[3])),
        4 if is_channels(3) => Ok((Layout::Nhwc, d[3].unwrap_or(3), d[1], d[2])),
        4 => Ok((Layout::Nchw, 3, d[2], d[3])),
        _ => bail!(
            "input '{}' has shape {}: not an image batch (N, C, H, W or N, H, W, C)",
            input.name,
            input.dims_text()
        ),
    }
}

/// Image preprocessing for the model's input size and the user's options.
fn image_preprocess(
    (layout, channels, height, width): ImageInput,
    options: &Options,
    notes: &mut Vec<String>,
) -> Result<Preprocess> {
    let mut pre = Preprocess {
        layout: options.layout.unwrap_or(layout),
        color: options.color.unwrap_or(if channels == 1 {
            Color::Grayscale
        } else {
            Color::Rgb
        }),
        ..Preprocess::default()
    };
    let size = match (options.crop, height, width) {
        (Some(c), _, _) => c,
        (None, Some(h), Some(w)) => (h as u32, w as u32),
        _ => {
            notes.push(
                "the model leaves the image size open: samples are 224x224 (give --crop HxW)"
                    .into(),
            );
            (224, 224)
        }
    };
    let fit = options.fit.unwrap_or(
        if options.resize.is_some() || (size.0 == size.1 && size.0 >= 96) {
            Fit::Crop
        } else {
            Fit::Stretch
        },
    );
    if options.resize.is_some() && fit != Fit::Crop {
        bail!(
            "--resize sets the shorter side before a centre crop: it goes with --fit crop, not {}",
            fit.name()
        );
    }
    match fit {
        // torchvision's evaluation transform: resize to 256/224 of the crop, centre crop.
        Fit::Crop => {
            pre.resize_shorter = Some(
                options
                    .resize
                    .unwrap_or((size.0 as f64 * 256.0 / 224.0).round() as u32),
            );
            pre.center_crop = Some(size);
        }
        Fit::Stretch => pre.resize_to = Some(size),
        Fit::Letterbox => pre.letterbox = Some(size),
        Fit::PadWidth => pre.pad_to_width = Some(size),
    }
    if let Some(v) = options.pad_value {
        if !(0.0..=255.0).contains(&v) {
            bail!("--pad-value {v}: a pixel value, 0 to 255");
        }
        pre.pad_value = v;
    }
    let preset = options.preset.unwrap_or_else(|| {
        let guess = if channels == 1 {
            Preset::Unit
        } else {
            Preset::Imagenet
        };
        notes.push(format!(
            "normalisation: preset {} ({}) assumed; if the model was trained otherwise, choose another preset (imagenet, pm1, unit, caffe, raw) or give its mean and std",
            guess.name(),
            guess.describe()
        ));
        guess
    });
    preset.apply(&mut pre);
    if let Some(m) = &options.mean {
        pre.mean = m.clone();
    }
    if let Some(s) = &options.std {
        pre.std = s.clone();
    }
    pre.check(channels)?;
    Ok(pre)
}

fn describe_folder(
    dir: &Path,
    inputs: &[InputSpec],
    options: &Options,
    preprocess: &mut Preprocess,
    notes: &mut Vec<String>,
) -> Result<Source> {
    let entries = super::sorted_entries(dir)?;
    let path = dir.display().to_string();
    let is_test_set = |p: &PathBuf| {
        p.is_dir()
            && p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("test_data_set"))
    };
    if dir.join("input_0.pb").is_file() || entries.iter().any(is_test_set) {
        notes.push("ONNX test data: fidelity against the stored outputs".into());
        return Ok(Source::OnnxTestData { path });
    }
    if entries.iter().any(|p| super::is_image(p)) {
        *preprocess = image_preprocess(image_input(inputs)?, options, notes)
            .with_context(|| format!("{}: preprocessing", dir.display()))?;
        return Ok(Source::ImageFolder {
            path,
            labels: Labels::None,
        });
    }
    let class_dirs = entries
        .iter()
        .filter(|p| p.is_dir())
        .filter(|p| {
            super::sorted_entries(p)
                .map(|e| e.iter().any(|f| super::is_image(f)))
                .unwrap_or(false)
        })
        .count();
    if class_dirs > 0 {
        notes.push(format!(
            "labels from {class_dirs} class sub-folders, numbered in sorted order"
        ));
        *preprocess = image_preprocess(image_input(inputs)?, options, notes)
            .with_context(|| format!("{}: preprocessing", dir.display()))?;
        return Ok(Source::ImageFolder {
            path,
            labels: Labels::FromSubfolders,
        });
    }
    if entries
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "npy"))
    {
        return Ok(Source::Npy { path });
    }
    bail!(
        "{}: holds no images (png, jpeg), class sub-folders of images, .npy files or test_data_set_* folders",
        dir.display()
    )
}

/// Which column of a CSV with one more column than pixels holds the labels: the one named by
/// `--label-column` (a number or a header name), else a header named label/class/target/y,
/// else the last (said in a note).
fn csv_label_column(
    path: &Path,
    fields: &[&str],
    header: bool,
    options: &Options,
    notes: &mut Vec<String>,
) -> Result<LabelColumn> {
    if let Some(c) = &options.label_column {
        return Ok(match c.parse::<usize>() {
            Ok(i) => LabelColumn::Index(i),
            Err(_) => LabelColumn::Index(
                fields
                    .iter()
                    .position(|f| f == c)
                    .filter(|_| header)
                    .ok_or_else(|| {
                        anyhow!("{}: no column named '{c}' in the header", path.display())
                    })?,
            ),
        });
    }
    let named = header
        .then(|| {
            fields.iter().position(|f| {
                matches!(
                    f.to_ascii_lowercase().as_str(),
                    "label" | "class" | "target" | "y"
                )
            })
        })
        .flatten();
    Ok(match named {
        Some(i) => LabelColumn::Index(i),
        None => {
            notes.push(format!(
                "labels: the last of {} columns assumed (give --label-column)",
                fields.len()
            ));
            LabelColumn::Last
        }
    })
}

fn describe_csv(
    path: &Path,
    inputs: &[InputSpec],
    options: &Options,
    preprocess: &mut Preprocess,
    notes: &mut Vec<String>,
) -> Result<Source> {
    let (layout, channels, height, width) = image_input(inputs)?;
    let (Some(height), Some(width)) = (height, width) else {
        bail!(
            "{}: the model leaves its input size open, so a CSV row's shape is unknown: write a dataset description",
            path.display()
        );
    };
    let pixels = channels * height * width;
    let first_lines = super::read_text(path)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(2)
        .map(str::to_string)
        .collect::<Vec<_>>();
    let separator = if path.to_string_lossy().to_ascii_lowercase().contains(".tsv") {
        '\t'
    } else {
        ','
    };
    let Some(first) = first_lines.first() else {
        bail!("{}: the file is empty", path.display());
    };
    let fields: Vec<&str> = first.split(separator).map(str::trim).collect();
    let header = fields.iter().any(|f| f.parse::<f64>().is_err());
    let columns = fields.len();
    let label_column = match columns {
        n if n == pixels => None,
        n if n == pixels + 1 => Some(csv_label_column(path, &fields, header, options, notes)?),
        n => bail!(
            "{}: rows have {n} columns, but the model input takes {pixels} values ({channels}x{height}x{width}), or {} with a label",
            path.display(),
            pixels + 1
        ),
    };
    *preprocess = Preprocess {
        layout: options.layout.unwrap_or(layout),
        color: if channels == 1 {
            Color::Grayscale
        } else {
            Color::Rgb
        },
        ..Preprocess::default()
    };
    match (options.preset, &options.mean, &options.std) {
        (Some(p), _, _) => p.apply(preprocess),
        (None, None, None) => notes.push(
            "CSV values are fed as they are (preset raw); choose a preset or give a mean and std to normalise them"
                .into(),
        ),
        _ => {}
    }
    if let Some(m) = &options.mean {
        preprocess.mean = m.clone();
    }
    if let Some(s) = &options.std {
        preprocess.std = s.clone();
    }
    preprocess
        .check(channels)
        .with_context(|| format!("{}: preprocessing", path.display()))?;
    Ok(Source::Csv {
        path: path.display().to_string(),
        image: ImageSize {
            channels,
            height,
            width,
        },
        label_column,
        header,
    })
}

fn describe_text(
    path: &str,
    tokenizer: &Path,
    inputs: &[InputSpec],
    options: &Options,
    notes: &mut Vec<String>,
) -> Result<Source> {
    let fed: Vec<String> = inputs
        .iter()
        .filter(|i| super::text::TEXT_INPUTS.contains(&i.name.as_str()))
        .map(|i| i.name.clone())
        .collect();
    if let Some(other) = inputs
        .iter()
        .find(|i| !super::text::TEXT_INPUTS.contains(&i.name.as_str()))
    {
        bail!(
            "the model input '{}' is not one text feeds (input_ids, attention_mask, token_type_ids): give an .npz",
            other.name
        );
    }
    let fixed = inputs
        .iter()
        .find(|i| i.name == "input_ids")
        .and_then(|i| i.dims.get(1).copied().flatten());
    let max_length = match (options.max_length, fixed) {
        (Some(m), _) => m,
        (None, Some(f)) => f,
        (None, None) => {
            notes.push("text: 128 tokens per sample (give --max-length)".into());
            128
        }
    };
    let tokenizer = std::path::absolute(tokenizer)
        .with_context(|| format!("{}: cannot resolve", tokenizer.display()))?;
    Ok(Source::Text {
        path: path.to_string(),
        tokenizer: tokenizer.display().to_string(),
        text_column: options.text_column.clone().unwrap_or_else(|| "text".into()),
        label_column: options.label_column.clone(),
        max_length,
        inputs: fed,
    })
}

/// Random inputs for every model input: open dimensions become 1 (the first) or a typical
/// size; integer inputs that index an embedding table stay within its rows; masks are ones.
fn synthetic_inputs(
    model: &pb::ModelProto,
    inputs: &[InputSpec],
    options: &Options,
    notes: &mut Vec<String>,
) -> Result<Vec<SyntheticInput>> {
    let graph = onnx::graph(model);
    let table_rows = |name: &str| -> Option<i64> {
        graph
            .node
            .iter()
            .filter(|n| n.op_type == "Gather" && n.input.get(1).is_some_and(|i| i == name))
            .filter_map(|n| graph.initializer.iter().find(|t| t.name == n.input[0]))
            .filter_map(|t| t.dims.first().copied())
            .min()
    };
    inputs
        .iter()
        .map(|input| {
            let rank = input.dims.len();
            let shape: Vec<usize> =
                input
                    .dims
                    .iter()
                    .enumerate()
                    .map(|(k, d)| match d {
                        Some(n) => *n,
                        None if k == 0 => 1,
                        None if rank == 4 && k >= 2 => options.crop.map_or(224, |c| {
                            if k == 2 {
                                c.0 as usize
                            } else {
                                c.1 as usize
                            }
                        }),
                        None => 16,
                    })
                    .collect();
            let lower = input.name.to_ascii_lowercase();
            let (low, high) = if input.elem.is_float() {
                (-1.0, 1.0)
            } else if input.elem == ElemType::Bool || lower.contains("mask") {
                (1.0, 1.0)
            } else if lower.contains("type") || lower.contains("segment") {
                (0.0, 0.0)
            } else if let Some(rows) = table_rows(&input.name) {
                (0.0, (rows - 1).max(0) as f64)
            } else {
                (0.0, 1.0)
            };
            if shape
                != input
                    .dims
                    .iter()
                    .map(|d| d.unwrap_or(0))
                    .collect::<Vec<_>>()
            {
                notes.push(format!(
                    "synthetic input '{}': shape {shape:?} for {}",
                    input.name,
                    input.dims_text()
                ));
            }
            Ok(SyntheticInput {
                name: input.name.clone(),
                elem: input.elem,
                shape,
                low,
                high,
            })
        })
        .collect()
}

/// Writes `desc` (whose relative paths are relative to `base`) to `out` as RON, with paths
/// relative to `out`'s folder; atomically.
pub fn save_description(desc: &DatasetDesc, base: &Path, out: &Path) -> Result<()> {
    let dir = crate::fileio::check_output_dir(out)?.to_path_buf();
    let mut desc = desc.clone();
    for p in desc.paths_mut() {
        if Path::new(p.as_str()).is_relative() {
            *p = base.join(p.as_str()).display().to_string();
        }
    }
    relative_to(&mut desc, &dir)?;
    let text = ron::ser::to_string_pretty(&desc, ron::ser::PrettyConfig::default())
        .map_err(|e| anyhow!("{}: cannot write the description: {e}", out.display()))?;
    crate::fileio::write_atomic(out, text.as_bytes())
}

/// Rewrites the source path of `desc` relative to `dir` (where its `.ron` will live), so that
/// the description keeps working when the folder moves.
pub fn relative_to(desc: &mut DatasetDesc, dir: &Path) -> Result<()> {
    let dir =
        std::path::absolute(dir).with_context(|| format!("{}: cannot resolve", dir.display()))?;
    for p in desc.paths_mut() {
        let abs = crate::paths::absolute(Path::new(p.as_str()));
        *p = crate::paths::relative_path(&abs, &dir)
            .display()
            .to_string();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_set_what_real_preprocessing_code_does() {
        let mut pre = Preprocess::default();
        Preset::Caffe.apply(&mut pre);
        assert_eq!(pre.color, Color::Bgr);
        assert_eq!(pre.value_scale, ValueScale::Byte);
        assert_eq!(pre.mean, vec![103.939, 116.779, 123.68]);
        assert_eq!(Preset::matching(&pre), Some(Preset::Caffe));
        // A white pixel under pm1 is (1 - 0.5) / 0.5 = 1; black is -1.
        let mut pm1 = Preprocess::default();
        Preset::Pm1.apply(&mut pm1);
        let (v, _) = super::super::normalize_hwc(&[255.0, 0.0, 255.0], 1, 1, 3, &pm1);
        assert_eq!(v, vec![1.0, -1.0, 1.0]);
        assert_eq!("imagenet".parse::<Preset>(), Ok(Preset::Imagenet));
        assert!("vgg".parse::<Preset>().is_err());
    }
}
