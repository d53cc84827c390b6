//! The settings in the user's words, the same in every view (never a Rust name).

use quantbench::quant::{ActivationType, Calibration, Int4Storage, Mode, Symmetry, Target};

pub fn mode(m: Mode) -> &'static str {
    match m {
        Mode::Fp16 => "float16 weights",
        Mode::Int8Weights => "int8 weights, float compute",
        Mode::Int8 => "int8 (weights and activations)",
        Mode::Int4Weights => "4-bit weights, float compute",
        Mode::Int8Dynamic => "int8, activations at run time (dynamic)",
    }
}

pub fn target(t: Target) -> &'static str {
    match t {
        Target::Generic => "any runtime (settings as given)",
        Target::OrtCpu => "ONNX Runtime on this CPU",
        Target::Tract => "tract",
        Target::TensorRt => "TensorRT",
    }
}

pub fn calibration(c: &Calibration) -> String {
    match c {
        Calibration::MinMax => "min–max".into(),
        Calibration::MeanMinMax => "mean of each sample's min–max".into(),
        Calibration::Percentile(p) => format!("percentile {p}%"),
        Calibration::Entropy => "entropy (KL divergence)".into(),
        Calibration::Mse => "least squared error".into(),
    }
}

pub fn symmetry(s: Symmetry) -> &'static str {
    match s {
        Symmetry::WeightsOnly => "symmetric weights, asymmetric activations",
        Symmetry::All => "symmetric weights and activations",
        Symmetry::None => "asymmetric weights and activations",
    }
}

pub fn activations(a: ActivationType) -> &'static str {
    match a {
        ActivationType::Uint8 => "unsigned 8-bit (0…255)",
        ActivationType::Int8 => "signed 8-bit (−128…127)",
    }
}

pub fn int4_storage(s: Int4Storage) -> &'static str {
    match s {
        Int4Storage::Auto => "ONNX INT4 from opset 21, int8 tensors below",
        Int4Storage::Int8Container => "int8 tensors (every runtime; the size of int8)",
        Int4Storage::OnnxInt4 => "ONNX INT4 (opset 21: half the size; not tract)",
    }
}

/// Whether `m`'s activations are quantized ahead of time, from calibration data.
pub fn calibrates(m: Mode) -> bool {
    m.needs_calibration()
}

/// Whether `m` has a weight granularity (per channel or per tensor).
pub fn has_granularity(m: Mode) -> bool {
    m != Mode::Fp16
}
