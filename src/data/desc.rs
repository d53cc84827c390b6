//! What a dataset description (`dataset.ron`) says: where the samples come from (the
//! source), how pixels become a model's input (the preprocessing), and which samples calibrate
//! and which evaluate.

use std::path::Path;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::infer;
use crate::tensor::ElemType;

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
        let sizes = [
            ("resize_to", self.resize_to),
            ("letterbox", self.letterbox),
            ("pad_to_width", self.pad_to_width),
            ("center_crop", self.center_crop),
            ("resize_shorter", self.resize_shorter.map(|s| (s, s))),
        ];
        for (what, size) in sizes {
            if let Some((h, w)) = size.filter(|&(h, w)| h == 0 || w == 0) {
                bail!("{what} ({h}, {w}): sizes must be at least 1 pixel");
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
