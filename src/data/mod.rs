//! Datasets: where samples come from and how they become a model's input tensor.
//!
//! A dataset is described in a small RON file (paths relative to it): a source (a CSV of pixel
//! rows, a folder of images, `.npy` tensors), the preprocessing (resize, crop, colour order,
//! layout, scaling, mean and std), and which rows calibrate and which evaluate. Samples are
//! decoded on demand by index, so a pass over the data holds one sample per worker in memory.

pub mod npy;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

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
    /// Float tensors: one `.npy` file whose first axis indexes samples, or a folder of `.npy`
    /// files, one sample each. Used as they are: no preprocessing.
    Npy { path: String },
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
    /// Resize so that the shorter side has this length (bilinear), keeping the aspect ratio.
    pub resize_shorter: Option<u32>,
    /// Then cut the centre (height, width).
    pub center_crop: Option<(u32, u32)>,
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
            resize_shorter: None,
            center_crop: None,
            color: Color::Rgb,
            layout: Layout::Nchw,
            value_scale: ValueScale::Byte,
            mean: vec![0.0],
            std: vec![1.0],
        }
    }
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
}

/// One decoded sample: the model input (batch of one) and its label, if the dataset has labels.
#[derive(Clone, Debug)]
pub struct Sample {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub label: Option<usize>,
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
}

pub struct Dataset {
    pub desc: DatasetDesc,
    /// The description file (or the source, when opened without one).
    pub path: PathBuf,
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
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read dataset description", path.display()))?;
        let desc: DatasetDesc = ron::from_str(&text)
            .map_err(|e| anyhow!("{}: invalid dataset description: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Dataset::from_desc(desc, base, path)
    }

    pub fn from_desc(desc: DatasetDesc, base: &Path, path: &Path) -> Result<Dataset> {
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        if desc
            .preprocess
            .std
            .iter()
            .any(|&s| s == 0.0 || !s.is_finite())
        {
            bail!(
                "{}: preprocess.std must be finite and non-zero",
                path.display()
            );
        }
        let loaded = match &desc.source {
            Source::Csv {
                path: p,
                image,
                label_column,
                header,
            } => load_csv(&resolve(p), *image, label_column.as_ref(), *header)?,
            Source::ImageFolder { path: p, labels } => load_image_folder(&resolve(p), labels)?,
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
        let dataset = Dataset {
            desc,
            path: path.to_path_buf(),
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

    pub fn len(&self) -> usize {
        match &self.loaded {
            Loaded::Csv { rows, row_len, .. } => rows.len() / row_len.max(&1),
            Loaded::Images { files, .. } => files.len(),
            Loaded::NpyStack { array } => array.shape.first().copied().unwrap_or(0),
            Loaded::NpyFiles { files } => files.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn has_labels(&self) -> bool {
        match &self.loaded {
            Loaded::Csv { labels, .. } => labels.is_some(),
            Loaded::Images { files, .. } => files.first().is_some_and(|f| f.1.is_some()),
            _ => false,
        }
    }

    pub fn class_names(&self) -> Vec<String> {
        match &self.loaded {
            Loaded::Images { classes, .. } => classes.clone(),
            _ => vec![],
        }
    }

    /// The sample indices of a split, clipped to the dataset; an error if that leaves none.
    pub fn indices(&self, purpose: Purpose) -> Result<std::ops::Range<usize>> {
        let split = match purpose {
            Purpose::Calibration => self.desc.calibration,
            Purpose::Evaluation => self.desc.evaluation,
        };
        let n = self.len();
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

    /// Decodes sample `index` into a model input with a batch axis of 1.
    pub fn sample(&self, index: usize) -> Result<Sample> {
        let pre = &self.desc.preprocess;
        let sample = match &self.loaded {
            Loaded::Csv {
                rows,
                row_len,
                labels,
                image,
            } => {
                let row = rows
                    .get(index * row_len..(index + 1) * row_len)
                    .ok_or_else(|| anyhow!("{}: no sample {index}", self.path.display()))?;
                let (data, shape) =
                    normalize_hwc(row, image.height, image.width, image.channels, pre);
                Sample {
                    data,
                    shape,
                    label: labels.as_ref().map(|l| l[index]),
                }
            }
            Loaded::Images { files, .. } => {
                let (file, label) = files
                    .get(index)
                    .ok_or_else(|| anyhow!("{}: no sample {index}", self.path.display()))?;
                let (pixels, h, w, c) = decode_image(file, pre)?;
                let (data, shape) = normalize_hwc(&pixels, h, w, c, pre);
                Sample {
                    data,
                    shape,
                    label: *label,
                }
            }
            Loaded::NpyStack { array } => {
                let per = array.shape[1..].iter().product::<usize>();
                let mut shape = vec![1];
                shape.extend_from_slice(&array.shape[1..]);
                Sample {
                    data: array.data[index * per..(index + 1) * per].to_vec(),
                    shape,
                    label: None,
                }
            }
            Loaded::NpyFiles { files } => {
                let array = npy::read(&files[index])?;
                let mut shape = array.shape.clone();
                if shape.first() != Some(&1) {
                    shape.insert(0, 1);
                }
                Sample {
                    data: array.data,
                    shape,
                    label: None,
                }
            }
        };
        if let Some(bad) = sample.data.iter().position(|v| !v.is_finite()) {
            bail!(
                "{}: sample {index} holds a non-finite value ({}) at element {bad}",
                self.path.display(),
                sample.data[bad]
            );
        }
        Ok(sample)
    }

    /// Decodes the samples of a split (at most `limit`) into one stacked `.npy` file, for
    /// feeding exactly the same inputs to other tools.
    pub fn export_npy(
        &self,
        purpose: Purpose,
        limit: Option<usize>,
        out: &Path,
    ) -> Result<(usize, Vec<usize>)> {
        let indices: Vec<usize> = self
            .indices(purpose)?
            .take(limit.unwrap_or(usize::MAX))
            .collect();
        let mut data = vec![];
        let mut shape = vec![];
        for &i in &indices {
            let s = self.sample(i)?;
            if shape.is_empty() {
                shape = s.shape.clone();
            } else if shape != s.shape {
                bail!(
                    "{}: sample {i} has shape {:?}, earlier ones {:?}",
                    self.path.display(),
                    s.shape,
                    shape
                );
            }
            data.extend(s.data);
        }
        let mut stacked = vec![indices.len()];
        stacked.extend(shape.iter().skip(1));
        npy::write(out, &stacked, &data)?;
        Ok((indices.len(), stacked))
    }

    /// Checks a sample's shape against a model input's declared dimensions (symbols match
    /// anything), with an error that names both.
    pub fn check_shape(&self, input_name: &str, dims: &[Option<usize>]) -> Result<()> {
        let sample = self.sample(0)?;
        let fits = sample.shape.len() == dims.len()
            && sample
                .shape
                .iter()
                .zip(dims)
                .all(|(s, d)| d.is_none_or(|d| d == *s));
        if !fits {
            let want: Vec<String> = dims
                .iter()
                .map(|d| d.map(|d| d.to_string()).unwrap_or("?".into()))
                .collect();
            bail!(
                "{}: samples have shape {:?} but the model input '{input_name}' expects [{}]",
                self.path.display(),
                sample.shape,
                want.join(", ")
            );
        }
        Ok(())
    }
}

fn load_csv(
    path: &Path,
    image: ImageSize,
    label_column: Option<&LabelColumn>,
    header: bool,
) -> Result<Loaded> {
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
    let pixels = image.channels * image.height * image.width;
    let columns = pixels + usize::from(label_column.is_some());
    let mut rows = Vec::new();
    let mut labels = label_column.map(|_| Vec::new());
    for (line_no, line) in text.lines().enumerate().skip(usize::from(header)) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
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

/// Decodes, resizes and crops an image; returns HWC u8 pixels as f32 and (h, w, c).
fn decode_image(path: &Path, pre: &Preprocess) -> Result<(Vec<f32>, usize, usize, usize)> {
    let img =
        image::open(path).map_err(|e| anyhow!("{}: cannot decode image: {e}", path.display()))?;
    let mut img = match pre.color {
        Color::Grayscale => image::DynamicImage::ImageLuma8(img.to_luma8()),
        _ => image::DynamicImage::ImageRgb8(img.to_rgb8()),
    };
    if let Some(short) = pre.resize_shorter {
        let (w, h) = (img.width(), img.height());
        let (nw, nh) = if w <= h {
            (
                short,
                ((h as f64 * short as f64 / w as f64).round() as u32).max(1),
            )
        } else {
            (
                ((w as f64 * short as f64 / h as f64).round() as u32).max(1),
                short,
            )
        };
        img = img.resize_exact(nw, nh, image::imageops::FilterType::Triangle);
    }
    if let Some((ch, cw)) = pre.center_crop {
        if ch > img.height() || cw > img.width() {
            bail!(
                "{}: image is {}x{}, smaller than the centre crop {cw}x{ch}",
                path.display(),
                img.width(),
                img.height()
            );
        }
        let x = (img.width() - cw) / 2;
        let y = (img.height() - ch) / 2;
        img = img.crop_imm(x, y, cw, ch);
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (pixels, c): (Vec<f32>, usize) = match pre.color {
        Color::Grayscale => (
            img.to_luma8()
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
    Ok((pixels, h, w, c))
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
