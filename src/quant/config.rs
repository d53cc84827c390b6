//! `QuantConfig`: every quantization setting, as one serde type shared by the RON config file,
//! the CLI flags (which override the file) and the GUI.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Mode {
    /// Weights stored as float16, followed by a Cast to float: half the size, float compute.
    Fp16,
    /// TFLite's "dynamic range": int8 weights with a DequantizeLinear each, float activations.
    Int8Weights,
    /// Full static int8 in QDQ form: weights and calibrated activations quantized.
    #[default]
    Int8,
    /// 4-bit weights (per channel or per block), float activations.
    Int4Weights,
    /// ONNX Runtime's dynamic quantization (what `quantize_dynamic` writes): int8 weights,
    /// activations quantized at run time by `DynamicQuantizeLinear`, integer
    /// `MatMulInteger`/`ConvInteger`. No calibration; the usual choice for transformers on CPU.
    Int8Dynamic,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Fp16,
        Mode::Int8Weights,
        Mode::Int8,
        Mode::Int4Weights,
        Mode::Int8Dynamic,
    ];

    pub fn cli_name(self) -> &'static str {
        match self {
            Mode::Fp16 => "fp16",
            Mode::Int8Weights => "int8-weights",
            Mode::Int8 => "int8",
            Mode::Int4Weights => "int4-weights",
            Mode::Int8Dynamic => "int8-dynamic",
        }
    }

    pub fn needs_calibration(self) -> bool {
        self == Mode::Int8
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.cli_name() == s)
            .ok_or_else(|| {
                format!("unknown mode '{s}' (expected fp16, int8-weights, int8, int4-weights or int8-dynamic)")
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ActivationType {
    Int8,
    /// ONNX Runtime's default for activations.
    #[default]
    Uint8,
}

impl std::str::FromStr for ActivationType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "int8" => Ok(ActivationType::Int8),
            "uint8" => Ok(ActivationType::Uint8),
            _ => Err(format!(
                "unknown activation type '{s}' (expected int8 or uint8)"
            )),
        }
    }
}

/// How activation ranges are chosen from calibration statistics.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub enum Calibration {
    /// The observed minimum and maximum.
    #[default]
    MinMax,
    /// The mean over calibration samples of each sample's minimum and maximum (NNCF's default
    /// for activations): a rare outlier sample does not stretch the grid.
    MeanMinMax,
    /// Keep the given percentage of the values (e.g. 99.99), clipping half of the rest from each
    /// tail (ONNX Runtime's meaning); symmetric: the percentile of `|x|`.
    Percentile(f64),
    /// The threshold minimising KL divergence (TensorRT-style entropy calibration).
    Entropy,
    /// The range minimising the mean squared quantization error.
    Mse,
}

impl Calibration {
    /// The percentile a bare `percentile` means (CLI, window and search alike).
    pub const DEFAULT_PERCENTILE: f64 = 99.99;
}

impl std::fmt::Display for Calibration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Calibration::MinMax => f.write_str("minmax"),
            Calibration::MeanMinMax => f.write_str("mean-minmax"),
            Calibration::Percentile(p) => write!(f, "percentile={p}"),
            Calibration::Entropy => f.write_str("entropy"),
            Calibration::Mse => f.write_str("mse"),
        }
    }
}

impl std::str::FromStr for Calibration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "minmax" => Ok(Calibration::MinMax),
            "mean-minmax" => Ok(Calibration::MeanMinMax),
            "entropy" => Ok(Calibration::Entropy),
            "mse" => Ok(Calibration::Mse),
            "percentile" => Ok(Calibration::Percentile(Calibration::DEFAULT_PERCENTILE)),
            _ => match s.strip_prefix("percentile=") {
                Some(p) => {
                    let p: f64 = p.parse().map_err(|_| format!("'{p}' is not a number"))?;
                    Ok(Calibration::Percentile(p))
                }
                None => Err(format!(
                    "unknown calibration '{s}' (expected minmax, mean-minmax, percentile=99.99, entropy or mse)"
                )),
            },
        }
    }
}

/// Which tensors use a symmetric grid (zero point at the middle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Symmetry {
    /// Weights symmetric, activations asymmetric: what int8 kernels expect (ONNX Runtime's default).
    #[default]
    WeightsOnly,
    /// Weights and activations symmetric.
    All,
    /// Weights and activations asymmetric.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Int4Storage {
    /// ONNX INT4 tensors when the target opset is 21 or newer, int8 storage below it.
    #[default]
    Auto,
    /// 4-bit values held in int8 tensors: runs on every runtime (tract included), no size gain
    /// over int8 in the file.
    Int8Container,
    /// ONNX INT4 (opset 21): half the size of int8; tract cannot load it.
    OnnxInt4,
}

/// The runtime a quantized model is meant for: it decides the defaults that run exactly there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Target {
    /// No runtime in particular: the settings as given.
    Generic,
    /// ONNX Runtime on a CPU: its u8×s8 kernels saturate 16-bit sums on x86 without VNNI.
    /// The default: the runtime most int8 ONNX files are deployed on, and the setting that
    /// looks at the CPU.
    #[default]
    OrtCpu,
    /// tract: Q/DQ computed in float, exact at 8 bits.
    Tract,
    /// TensorRT: symmetric int8 everywhere, per-channel weights.
    TensorRt,
}

impl Target {
    /// Whether int8 weights go on 7 bits for this target on `machine`: ONNX Runtime's u8×s8
    /// kernels saturate 16-bit sums on x86 CPUs without VNNI.
    pub fn reduces_range_on(self, machine: &crate::host::Machine) -> bool {
        let x86 = machine.os.ends_with("x86_64") || machine.os.ends_with("x86");
        self == Target::OrtCpu && x86 && !machine.has_vnni()
    }

    /// What a config that names no target is for.
    pub const DEFAULT: Target = Target::OrtCpu;

    pub const ALL: [Target; 4] = [
        Target::Generic,
        Target::OrtCpu,
        Target::Tract,
        Target::TensorRt,
    ];

    pub fn cli_name(self) -> &'static str {
        match self {
            Target::Generic => "generic",
            Target::OrtCpu => "ort-cpu",
            Target::Tract => "tract",
            Target::TensorRt => "tensorrt",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.cli_name())
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Target::ALL
            .into_iter()
            .find(|t| t.cli_name() == s)
            .ok_or_else(|| {
                format!("unknown target '{s}' (expected ort-cpu, tract, tensorrt or generic)")
            })
    }
}

/// Bias correction after quantization: each quantized layer's bias shifted by the mean error
/// of its output on the calibration data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BiasCorrection {
    /// Every layer's error measured with float inputs (the layer quantized alone): one pass.
    Fast,
    /// Every layer's error measured inside the whole quantized model, after the layers feeding
    /// it were corrected: a pass per depth of the graph.
    Full,
}

impl std::str::FromStr for BiasCorrection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fast" => Ok(BiasCorrection::Fast),
            "full" => Ok(BiasCorrection::Full),
            _ => Err(format!(
                "unknown bias correction '{s}' (expected fast or full)"
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuantConfig {
    pub mode: Mode,
    pub symmetry: Symmetry,
    /// One scale per output channel of each weight instead of one per tensor.
    pub per_channel: bool,
    pub activations: ActivationType,
    pub calibration: Calibration,
    /// Calibration samples taken from the dataset's calibration split.
    pub samples: usize,
    /// Node names or op types left in float.
    pub keep_float: Vec<String>,
    /// Op types whose inputs and outputs are quantized.
    pub ops: Vec<String>,
    /// int4: one scale per block of this many input elements (opset 21); `None`: per channel or tensor.
    pub int4_block_size: Option<usize>,
    pub int4_storage: Int4Storage,
    /// Opset to write; `None`: the model's own, raised to what the chosen features need.
    pub opset: Option<i64>,
    /// int8 weights on 7 bits (ONNX Runtime's `reduce_range`): slightly coarser weights, but
    /// exact on CPUs without VNNI where the default int8 kernels saturate.
    pub reduce_range: bool,
    /// The runtime the model is for (`apply_target` sets its defaults).
    pub target: Target,
    /// Cross-layer equalization before quantizing: consecutive convolutions rescaled so that
    /// each channel's weight range evens out (the float model's outputs unchanged).
    pub cle: bool,
    pub bias_correction: Option<BiasCorrection>,
    /// AdaRound: each weight rounded up or down as minimizes its layer's output error on the
    /// calibration data, instead of to nearest.
    pub adaround: bool,
    /// int8: activation ranges set by hand (tensor name -> (min, max)), used instead of what
    /// calibration finds for those tensors.
    pub pinned_ranges: std::collections::BTreeMap<String, (f32, f32)>,
    /// int8: activations quantized to 16 bits instead (tensor names, or `*` for all), where
    /// 8 bits lose too much; ONNX Runtime runs them (opset 21), tract does not.
    pub int16_activations: Vec<String>,
    /// Keep normalisations and activations spelled out in primitive ops (LayerNorm as
    /// ReduceMean, Sub, Pow, Sqrt, Div; GELU with Erf or Tanh; softmax; SiLU; HardSwish) float
    /// inside, and (int8) quantize an elementwise Add or Mul only where an int8 kernel reads
    /// it. `false`: every op of `ops` is quantized wherever it is.
    pub float_patterns: bool,
}

/// Calibration samples when a config does not say (the standard run profile's).
pub const DEFAULT_CALIBRATION_SAMPLES: usize = 200;

pub const DEFAULT_OPS: [&str; 10] = [
    "Conv",
    "ConvTranspose",
    "MatMul",
    "Gemm",
    "Add",
    "Mul",
    "GlobalAveragePool",
    "AveragePool",
    "MaxPool",
    "Concat",
];

impl Default for QuantConfig {
    fn default() -> Self {
        QuantConfig {
            mode: Mode::Int8,
            symmetry: Symmetry::WeightsOnly,
            per_channel: true,
            activations: ActivationType::Uint8,
            calibration: Calibration::MinMax,
            samples: DEFAULT_CALIBRATION_SAMPLES,
            keep_float: vec![],
            ops: DEFAULT_OPS.iter().map(|s| s.to_string()).collect(),
            int4_block_size: None,
            int4_storage: Int4Storage::Auto,
            opset: None,
            reduce_range: false,
            target: Target::DEFAULT,
            cle: false,
            bias_correction: None,
            adaround: false,
            pinned_ranges: Default::default(),
            int16_activations: vec![],
            float_patterns: true,
        }
    }
}

impl QuantConfig {
    /// Whether keeping a node of `op_type` float changes the model: only the ops this config
    /// quantizes have int8 versions (a Relu's output is its producer's, quantized or not).
    pub fn can_keep_float(&self, op_type: &str) -> bool {
        self.ops.iter().any(|o| o == op_type)
    }

    /// Reads a RON config; fields it does not give take the defaults. Where it does not say
    /// `reduce_range`, its target decides on this CPU, as for a config made without a file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read config", path.display()))?;
        let config = QuantConfig::from_ron(&text, &crate::host::detect())
            .map_err(|e| anyhow::anyhow!("{}: invalid config: {e}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("{}: invalid config", path.display()))?;
        Ok(config)
    }

    /// [`QuantConfig::load`] of a text, for a config that will run on `machine`.
    pub fn from_ron(
        text: &str,
        machine: &crate::host::Machine,
    ) -> Result<Self, ron::error::SpannedError> {
        let mut config: QuantConfig = ron::from_str(text)?;
        let says_reduce_range = ron::from_str::<ron::Value>(text).is_ok_and(|v| match v {
            ron::Value::Map(m) => m
                .keys()
                .any(|k| matches!(k, ron::Value::String(s) if s == "reduce_range")),
            _ => false,
        });
        if !says_reduce_range {
            config.reduce_range = config.target.reduces_range_on(machine);
        }
        Ok(config)
    }

    /// The default config, with what its target sets on `machine` (the CPU that will run the
    /// model), and why: what the CLI, the window and the standard preset start from.
    pub fn recommended(machine: &crate::host::Machine) -> (QuantConfig, Vec<String>) {
        let mut config = QuantConfig::default();
        let why = config.apply_target(config.target, machine);
        (config, why)
    }

    /// Sets what runs exactly on `target` on `machine` (the CPU that will run the model) and
    /// says why; flags given after it override it.
    pub fn apply_target(&mut self, target: Target, machine: &crate::host::Machine) -> Vec<String> {
        self.target = target;
        let int8 = matches!(
            self.mode,
            Mode::Int8 | Mode::Int8Weights | Mode::Int8Dynamic
        );
        let features = if machine.int8_features.is_empty() {
            "none of AVX2, AVX-512, VNNI, NEON dot product".to_string()
        } else {
            machine.int8_features.join(", ")
        };
        let mut why = vec![];
        match target {
            Target::Generic => {}
            Target::OrtCpu => {
                if target.reduces_range_on(machine) {
                    self.reduce_range = true;
                    if int8 {
                        why.push(format!(
                            "target ort-cpu: this CPU ({features}) has no VNNI, and ONNX Runtime's u8×s8 int8 kernels saturate there (255·127·2 > 32767); int8 weights on 7 bits run exactly (--no-reduce-range to override)"
                        ));
                    }
                } else {
                    self.reduce_range = false;
                    if int8 {
                        why.push(format!(
                            "target ort-cpu: this CPU ({features}) runs ONNX Runtime's int8 kernels exactly at 8 bits"
                        ));
                    }
                }
            }
            Target::Tract => {
                self.reduce_range = false;
                if int8 {
                    why.push("target tract: tract computes Q/DQ in float, exact at 8 bits".into());
                }
            }
            Target::TensorRt => {
                self.reduce_range = false;
                self.symmetry = Symmetry::All;
                self.activations = ActivationType::Int8;
                self.per_channel = true;
                why.push("target tensorrt: symmetric int8 activations and per-channel symmetric weights, as TensorRT requires".into());
            }
        }
        why
    }

    pub fn to_ron(&self) -> String {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default())
            .expect("QuantConfig always serializes")
    }

    /// The storage type of int8-family weights under this config.
    pub fn int8_weight_type(&self) -> crate::quant::math::QType {
        if self.reduce_range {
            crate::quant::math::QType::Int7
        } else {
            crate::quant::math::QType::Int8
        }
    }

    pub fn weights_symmetric(&self) -> bool {
        self.symmetry != Symmetry::None
    }

    /// Whether activation `tensor` is quantized to 16 bits.
    pub fn is_int16_activation(&self, tensor: &str) -> bool {
        self.int16_activations
            .iter()
            .any(|t| t == "*" || t == tensor)
    }

    pub fn activations_symmetric(&self) -> bool {
        self.symmetry == Symmetry::All
    }

    /// Whether quantizing needs calibration data: int8's activation ranges, or a recovery
    /// algorithm that measures the layers on it.
    pub fn needs_data(&self) -> bool {
        self.mode.needs_calibration() || self.adaround || self.bias_correction.is_some()
    }

    /// Checks every field on its own; the reason names the field, for the GUI to show beside it.
    pub fn validate(&self) -> Result<()> {
        if let Calibration::Percentile(p) = self.calibration {
            if !(p > 50.0 && p <= 100.0) {
                bail!("calibration: percentile must be in (50, 100], got {p}");
            }
        }
        if self.mode.needs_calibration() && self.samples == 0 {
            bail!("samples: int8 needs at least one calibration sample");
        }
        if let Some(b) = self.int4_block_size {
            if b < 16 || !b.is_power_of_two() {
                bail!("int4_block_size: must be a power of two of at least 16, got {b}");
            }
        }
        if let Some(o) = self.opset {
            if !(7..=23).contains(&o) {
                bail!("opset: quantbench writes opsets 7 to 23, got {o}");
            }
        }
        if self.cle && self.mode == Mode::Fp16 {
            bail!("cle: cross-layer equalization serves integer weights, not fp16");
        }
        if self.bias_correction.is_some() && self.mode != Mode::Int8 {
            bail!(
                "bias_correction: needs int8 (calibrated activations), not {}",
                self.mode.cli_name()
            );
        }
        if self.adaround
            && !matches!(
                self.mode,
                Mode::Int8 | Mode::Int8Weights | Mode::Int4Weights
            )
        {
            bail!(
                "adaround: learns the rounding of int8 or int4 weights, not {}",
                self.mode.cli_name()
            );
        }
        if self.adaround && self.samples == 0 {
            bail!("samples: adaround needs at least one calibration sample");
        }
        for (t, &(lo, hi)) in &self.pinned_ranges {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                bail!("pinned_ranges: '{t}': ({lo}, {hi}) is not a range (finite, min < max)");
            }
        }
        if !self.int16_activations.is_empty() && self.mode != Mode::Int8 {
            bail!(
                "int16_activations: 16-bit activations serve int8, not {}",
                self.mode.cli_name()
            );
        }
        if !self.pinned_ranges.is_empty() && self.mode != Mode::Int8 {
            bail!(
                "pinned_ranges: activation ranges serve int8, not {}",
                self.mode.cli_name()
            );
        }
        if self.ops.is_empty() && self.mode != Mode::Fp16 {
            bail!("ops: name at least one op type to quantize");
        }
        Ok(())
    }

    /// A short, stable label (`int8 pc minmax`), used in tables and plots.
    pub fn label(&self) -> String {
        let mut parts = vec![self.mode.cli_name().to_string()];
        if self.mode != Mode::Fp16 {
            parts.push(
                if self.int4_block_size.is_some() && self.mode == Mode::Int4Weights {
                    format!("block{}", self.int4_block_size.unwrap_or_default())
                } else if self.per_channel {
                    "per-channel".into()
                } else {
                    "per-tensor".into()
                },
            );
        }
        if self.mode == Mode::Int8 {
            parts.push(self.calibration.to_string());
        }
        if self.reduce_range
            && matches!(
                self.mode,
                Mode::Int8 | Mode::Int8Weights | Mode::Int8Dynamic
            )
        {
            parts.push("reduce-range".into());
        }
        if self.cle {
            parts.push("cle".into());
        }
        if self.adaround {
            parts.push("adaround".into());
        }
        if !self.pinned_ranges.is_empty() {
            parts.push(format!("{} pinned", self.pinned_ranges.len()));
        }
        match self.int16_activations.as_slice() {
            [] => {}
            [all] if all == "*" => parts.push("int16 activations".into()),
            some => parts.push(format!("{} int16", some.len())),
        }
        if !self.keep_float.is_empty() {
            parts.push(format!("+{} float", self.keep_float.len()));
        }
        if !self.float_patterns && self.mode != Mode::Fp16 {
            parts.push("patterns quantized".into());
        }
        match self.bias_correction {
            Some(BiasCorrection::Fast) => parts.push("bias-fast".into()),
            Some(BiasCorrection::Full) => parts.push("bias-full".into()),
            None => {}
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ron_round_trip_and_defaults() {
        let c = QuantConfig {
            calibration: Calibration::Percentile(99.99),
            per_channel: true,
            keep_float: vec!["Conv.0".into()],
            ..Default::default()
        };
        let back: QuantConfig = ron::from_str(&c.to_ron()).unwrap();
        assert_eq!(back, c);
        // A partial file takes defaults for what it leaves out.
        let partial: QuantConfig = ron::from_str("(mode: Fp16, samples: 7)").unwrap();
        assert_eq!(partial.mode, Mode::Fp16);
        assert_eq!(partial.samples, 7);
        assert_eq!(partial.ops, QuantConfig::default().ops);
    }

    /// A file that does not say `reduce_range` gets what its target decides on the CPU (7-bit
    /// weights for ort-cpu without VNNI), as a config made without a file does; one that says
    /// it keeps it.
    #[test]
    fn a_file_without_reduce_range_gets_its_targets_choice_for_this_cpu() {
        let no_vnni = crate::host::Machine {
            int8_features: vec!["AVX2".into()],
            os: "linux x86_64".into(),
            ..Default::default()
        };
        let vnni = crate::host::Machine {
            int8_features: vec!["AVX2".into(), "AVX-512 VNNI".into()],
            ..no_vnni.clone()
        };
        let read = |text: &str, m| QuantConfig::from_ron(text, m).unwrap().reduce_range;
        assert!(
            read("(samples: 7)", &no_vnni),
            "ort-cpu is the default target"
        );
        assert!(!read("(samples: 7)", &vnni));
        assert!(!read("(target: Tract)", &no_vnni));
        assert!(!read("(reduce_range: false)", &no_vnni));
        assert!(read("(target: Tract, reduce_range: true)", &vnni));
        assert_eq!(
            QuantConfig::recommended(&no_vnni).0.reduce_range,
            read("()", &no_vnni)
        );
    }

    #[test]
    fn cli_values_parse() {
        assert_eq!(
            "percentile=99.9".parse::<Calibration>(),
            Ok(Calibration::Percentile(99.9))
        );
        assert_eq!("int4-weights".parse::<Mode>(), Ok(Mode::Int4Weights));
        assert!("int3".parse::<Mode>().is_err());
        assert!("percentile=abc".parse::<Calibration>().is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let bad = QuantConfig {
            calibration: Calibration::Percentile(30.0),
            ..Default::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("calibration:"));
        let bad = QuantConfig {
            samples: 0,
            ..Default::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("samples:"));
    }
}
