//! The option groups several commands share: how to read data without a description
//! (`InferArgs`, `ReadArgs`), which runtime to use (`BackendArgs`), how much to measure
//! (`ProfileArgs`) and where latency is timed (`RemoteArgs`).

use std::path::{Path, PathBuf};

use anyhow::Result;

use quantbench::data::Dataset;
use quantbench::onnx;
use quantbench::profile::{BackendSet, Profile};
use quantbench::runtime::Backend;

/// How to read data that has no description (a folder, a CSV...): what the model cannot say.
#[derive(clap::Args, Clone, Default)]
pub struct InferArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Value normalisation: imagenet, pm1 ([-1, 1]), unit ([0, 1]), caffe (BGR mean), raw.
    #[arg(long)]
    pub preset: Option<quantbench::data::infer::Preset>,
}

/// The data options other than the preset (sweep's --preset also names its experiments).
#[derive(clap::Args, Clone, Default)]
pub struct ReadArgs {
    /// Resize the shorter side to N pixels (then centre-crop to the model's size).
    #[arg(long)]
    pub resize: Option<u32>,
    /// Centre crop HxW; also the sample size where the model leaves it open.
    #[arg(long, value_parser = parse_hw)]
    pub crop: Option<(u32, u32)>,
    /// Per-channel mean (after scaling), comma-separated.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub mean: Option<Vec<f32>>,
    /// Per-channel std, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub std: Option<Vec<f32>>,
    /// nchw or nhwc.
    #[arg(long, value_parser = parse_layout)]
    pub layout: Option<quantbench::data::Layout>,
    /// rgb, bgr or gray.
    #[arg(long, value_parser = parse_color)]
    pub color: Option<quantbench::data::Color>,
    /// CSV: the label column, by header name or 0-based index.
    #[arg(long)]
    pub label_column: Option<String>,
    /// synthetic: how many random samples.
    #[arg(long)]
    pub synthetic_samples: Option<usize>,
    /// Text: a Hugging Face tokenizer.json; the data is then a .csv/.tsv/.jsonl of sentences.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Text: the column (or JSONL field) with the sentences (default: text).
    #[arg(long)]
    pub text_column: Option<String>,
    /// Text: tokens per sample, truncated and padded to it.
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Images: crop (resize the shorter side, centre crop), stretch, letterbox (keep the
    /// aspect ratio, pad around) or pad-width (text lines: the input height, padded on the
    /// right to its width).
    #[arg(long)]
    pub fit: Option<quantbench::data::infer::Fit>,
    /// Images: pixel value (0-255) of padding.
    #[arg(long)]
    pub pad_value: Option<f32>,
    /// Image folders: calibrate on N variants of each image (1-8: itself, mirrored, corner
    /// and centre crops).
    #[arg(long)]
    pub augment: Option<usize>,
}

impl InferArgs {
    pub fn options(&self) -> quantbench::data::infer::Options {
        let s = &self.read;
        quantbench::data::infer::Options {
            preset: self.preset,
            resize: s.resize,
            crop: s.crop,
            mean: s.mean.clone(),
            std: s.std.clone(),
            layout: s.layout,
            color: s.color,
            label_column: s.label_column.clone(),
            samples: s.synthetic_samples,
            tokenizer: s.tokenizer.clone(),
            text_column: s.text_column.clone(),
            max_length: s.max_length,
            fit: s.fit,
            pad_value: s.pad_value,
            augment: s.augment,
        }
    }
}

pub fn parse_hw(s: &str) -> std::result::Result<(u32, u32), String> {
    s.split_once(['x', 'X'])
        .and_then(|(h, w)| Some((h.trim().parse().ok()?, w.trim().parse().ok()?)))
        .ok_or_else(|| format!("'{s}' is not HxW, e.g. 224x224"))
}

pub fn parse_layout(s: &str) -> std::result::Result<quantbench::data::Layout, String> {
    match s.to_ascii_lowercase().as_str() {
        "nchw" => Ok(quantbench::data::Layout::Nchw),
        "nhwc" => Ok(quantbench::data::Layout::Nhwc),
        _ => Err(format!("'{s}': expected nchw or nhwc")),
    }
}

pub fn parse_color(s: &str) -> std::result::Result<quantbench::data::Color, String> {
    match s.to_ascii_lowercase().as_str() {
        "rgb" => Ok(quantbench::data::Color::Rgb),
        "bgr" => Ok(quantbench::data::Color::Bgr),
        "gray" | "grey" | "grayscale" => Ok(quantbench::data::Color::Grayscale),
        _ => Err(format!("'{s}': expected rgb, bgr or gray")),
    }
}

/// Opens `--data` for `model`, printing on stderr what had to be guessed.
pub fn open_data(path: &Path, model: &onnx::pb::ModelProto, infer: &InferArgs) -> Result<Dataset> {
    let (dataset, notes) = Dataset::open_for(path, model, &infer.options())?;
    for n in notes {
        eprintln!("data: {n}");
    }
    Ok(dataset)
}

#[derive(clap::Args, Clone)]
pub struct BackendArgs {
    /// tract (embedded) or ort (ONNX Runtime, loaded from ORT_DYLIB_PATH or the Python
    /// package); default: ort when ONNX Runtime is found (the runtime int8 files are deployed
    /// on), else tract, said on stderr.
    #[arg(long)]
    pub backend: Option<String>,
    /// ONNX Runtime graph optimization level: disabled, basic, extended, all.
    #[arg(long, default_value = "all")]
    pub ort_opt: quantbench::runtime::ort::OptLevel,
    /// ONNX Runtime: exact int8 kernels on CPUs without VNNI (session.x64quantprecision=1).
    #[arg(long)]
    pub x64_quant_precision: bool,
}

impl BackendArgs {
    pub fn backend(&self) -> Result<Backend> {
        let options = ort_options(self.ort_opt, self.x64_quant_precision);
        match &self.backend {
            Some(name) => Backend::parse(name, options),
            None => {
                let (found, note) =
                    quantbench::runner::detect_backends(BackendSet::Deployment, options);
                if let Some(note) = note {
                    eprintln!("note: {note}");
                }
                Ok(found.first().copied().unwrap_or(Backend::Tract))
            }
        }
    }
}

/// How much a command measures: a named profile, then single fields.
#[derive(clap::Args, Clone, Copy)]
pub struct ProfileArgs {
    /// quick (seconds, a few samples), standard or thorough (figures for a report): sets the
    /// calibration samples, evaluation limit, per-layer samples, benchmark runs and warm-up
    /// that the flags below do not set.
    #[arg(long, default_value_t = Profile::Standard)]
    pub profile: Profile,
}

pub fn ort_options(
    optimization: quantbench::runtime::ort::OptLevel,
    x64_quant_precision: bool,
) -> quantbench::runtime::ort::OrtOptions {
    quantbench::runtime::ort::OrtOptions {
        optimization,
        x64_quant_precision,
    }
}

/// Where benchmarks run: here, or on a device over SSH.
#[derive(clap::Args, Clone, Default)]
pub struct RemoteArgs {
    /// Measure latency on this device instead, over SSH: [user@]host[:port]. The model and its
    /// input are copied to a temporary folder there, timed by quantbench there (or by ONNX
    /// Runtime's Python package where quantbench is missing), and removed.
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    remote: Option<quantbench::bench::remote::Remote>,
    /// quantbench on the device (a path, or a name on its PATH).
    #[arg(long, default_value = "quantbench", requires = "remote")]
    remote_bin: String,
    /// An option for ssh and scp, e.g. --ssh-arg=-i --ssh-arg=KEY, --ssh-arg=-oPort=22.
    #[arg(long, allow_hyphen_values = true, requires = "remote")]
    ssh_arg: Vec<String>,
}

impl RemoteArgs {
    pub fn remote(&self) -> Option<quantbench::bench::remote::Remote> {
        self.remote.clone().map(|mut r| {
            r.binary = self.remote_bin.clone();
            r.ssh_args = self.ssh_arg.clone();
            r
        })
    }
}
