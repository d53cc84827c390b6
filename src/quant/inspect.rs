//! The calibration inspector: for one activation tensor, the histogram of its float values over
//! the calibration samples, the range each calibration method keeps, the share of values each
//! clips and the SQNR each gives, and the same for a range the user pins.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Purpose};
use crate::jobs::Progress;
use crate::onnx::{self, pb};
use crate::quant::calibrate::{self, TensorStats};
use crate::quant::math::{self, Histogram, QType};
use crate::quant::{prepare, prepare_float, rewrite, Calibration, Mode, QuantConfig};

/// The methods the inspector compares.
pub const METHODS: [Calibration; 5] = [
    Calibration::MinMax,
    Calibration::MeanMinMax,
    Calibration::Percentile(Calibration::DEFAULT_PERCENTILE),
    Calibration::Entropy,
    Calibration::Mse,
];

/// Display bins of the histogram.
const SHOWN_BINS: usize = 160;

/// One range over the tensor's values and what it does to them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RangeFigures {
    /// The method's name (`minmax`, `percentile=99.99`, ...), or `pinned`.
    pub method: String,
    pub range: (f32, f32),
    /// Share of the values outside the range (clipped to its ends).
    pub clipped: f64,
    /// Signal over quantization noise (clipping and rounding) on the tensor's grid.
    pub sqnr_db: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Inspection {
    pub tensor: String,
    pub samples: usize,
    pub values: u64,
    pub min: f32,
    pub max: f32,
    /// Display histogram over `[min, max]`: left edge of the first bin, bin width, counts.
    pub first_edge: f32,
    pub bin_width: f32,
    pub counts: Vec<u64>,
    pub methods: Vec<RangeFigures>,
    /// The config's pinned range for this tensor, when it has one.
    pub pinned: Option<RangeFigures>,
    /// The method the config calibrates with.
    pub configured: String,
    /// Whether int8 calibrates this tensor itself (so a range can be pinned for it); when
    /// not, why.
    pub pinnable: bool,
    pub note: Option<String>,
}

/// The activation tensors int8 quantization would calibrate for `config`, in graph order (the
/// names `pinned_ranges` and the inspector take).
pub fn calibrated_tensors(model: &pb::ModelProto, config: &QuantConfig) -> Result<Vec<String>> {
    let config = QuantConfig {
        mode: Mode::Int8,
        ..config.clone()
    };
    let prepared = prepare_float(model, &config)?.model;
    Ok(plan(&prepared, &config).calibrated())
}

/// The activation plan of `config` on the prepared model, as the rewrite applies it (units
/// kept float included).
fn plan(prepared: &pb::ModelProto, config: &QuantConfig) -> rewrite::ActivationPlan {
    let (config, _) = super::effective_config(onnx::graph(prepared), config);
    let types = prepare::model_tensor_types(prepared);
    rewrite::plan_activations(onnx::graph(prepared), &config, &types)
}

/// Fails unless `tensor` is a graph input or a node's output of `graph`.
fn check_tensor(graph: &pb::GraphProto, tensor: &str) -> Result<()> {
    let exists = graph.input.iter().any(|i| i.name == tensor)
        || graph
            .node
            .iter()
            .any(|n| n.output.iter().any(|o| o == tensor));
    if !exists {
        bail!("'{tensor}' is not a tensor of this model (as quantbench prepares it)");
    }
    Ok(())
}

/// What quantizing `h`'s values to the grid of `range` costs: clipped share and SQNR,
/// estimated from the histogram's bins (each value taken at its bin's centre).
pub fn figures(h: &Histogram, range: (f32, f32), qtype: QType, symmetric: bool) -> (f64, f64) {
    let p = math::qparams(range.0, range.1, qtype, symmetric);
    let (lo, hi) = (
        math::dequantize(qtype.range().0, p),
        math::dequantize(qtype.range().1, p),
    );
    let (mut signal, mut noise, mut clipped) = (0.0f64, 0.0f64, 0u64);
    for (i, &c) in h.counts.iter().enumerate().filter(|(_, &c)| c > 0) {
        let x = h.center(i).clamp(h.min, h.max);
        let q = math::fake_quantize(x, p, qtype);
        // Within half a step of the grid's end is rounding, not clipping (the zero point's
        // rounding can move the end inside the range).
        if x < lo - p.scale / 2.0 || x > hi + p.scale / 2.0 {
            clipped += c;
        }
        signal += c as f64 * (x as f64).powi(2);
        noise += c as f64 * ((x - q) as f64).powi(2);
    }
    let sqnr = if noise > 0.0 {
        10.0 * (signal / noise).log10()
    } else {
        f64::INFINITY
    };
    (clipped as f64 / h.total.max(1) as f64, sqnr)
}

/// Why a tensor cannot be pinned, when it cannot: it takes another tensor's range, or int8
/// leaves it float.
fn pin_note(
    plan: &crate::quant::rewrite::ActivationPlan,
    tensor: &str,
    pinnable: bool,
) -> Option<String> {
    match plan.shared.get(tensor) {
        _ if pinnable => None,
        Some(source) => Some(format!(
            "int8 gives '{tensor}' the range of '{source}' (exact data movement): pin that one"
        )),
        None if plan.quantized.iter().any(|t| t == tensor) => None,
        None => Some(format!(
            "int8 leaves '{tensor}' float (no Q/DQ here): its values are shown, nothing to pin"
        )),
    }
}

/// Display bins over the observed range, each a whole number of histogram bins: the first
/// bin's left edge, the bins' width, their counts.
fn shown_bins(h: &crate::quant::math::Histogram) -> (f32, f32, Vec<u64>) {
    let first = h.counts.iter().position(|&c| c > 0).unwrap_or(0);
    let last = h.counts.iter().rposition(|&c| c > 0).unwrap_or(0);
    let span = last + 1 - first;
    let merge = span.div_ceil(SHOWN_BINS).max(1);
    let counts = h.counts[first..=last]
        .chunks(merge)
        .map(|c| c.iter().sum())
        .collect();
    (
        -h.limit() + first as f32 * h.bin_width(),
        h.bin_width() * merge as f32,
        counts,
    )
}

/// Calibrates `tensor` alone over up to `config.samples` calibration samples and compares the
/// ranges of every method and the config's pinned one.
pub fn inspect(
    model: &pb::ModelProto,
    config: &QuantConfig,
    dataset: &Dataset,
    tensor: &str,
    progress: &Progress,
) -> Result<Inspection> {
    let config = QuantConfig {
        mode: Mode::Int8,
        ..config.clone()
    };
    let prepared = prepare_float(model, &config)?.model;
    let plan = plan(&prepared, &config);
    let graph = onnx::graph(&prepared);
    check_tensor(graph, tensor)?;
    let pinnable = plan.calibrated().iter().any(|t| t == tensor);
    let note = pin_note(&plan, tensor, pinnable);
    let calibrated = calibrate::calibrate(
        &prepared,
        &[tensor.to_string()],
        dataset,
        config.samples,
        Calibration::Percentile(Calibration::DEFAULT_PERCENTILE), // any method with a histogram
        progress,
    )?;
    let stats: &TensorStats = calibrated
        .stats
        .get(tensor)
        .ok_or_else(|| anyhow::anyhow!("calibration returned no statistics for '{tensor}'"))?;
    if let Some(why) = stats.unfit_reason() {
        bail!("'{tensor}' stays float: calibration saw {why}");
    }
    let Some(h) = &stats.histogram else {
        bail!("calibration kept no histogram for '{tensor}'");
    };
    let qtype = calibrate::activation_qtype(config.activations);
    let symmetric = config.activations_symmetric();
    // The ranges the export would use, and their figures, over the values clamped where the
    // activation reading the tensor saturates (beyond that, clipping costs nothing).
    let saturation =
        crate::quant::rewrite::saturation_interval_of(graph, &onnx::GraphIndex::new(graph), tensor);
    let measured = saturation.map(|(lo, hi)| h.clamped(lo, hi));
    let figures_of = |method: String, range: (f32, f32)| {
        let (clipped, sqnr_db) = figures(measured.as_ref().unwrap_or(h), range, qtype, symmetric);
        RangeFigures {
            method,
            range,
            clipped,
            sqnr_db,
        }
    };
    let methods = METHODS
        .iter()
        .map(|&m| {
            figures_of(
                m.to_string(),
                stats.range_within(m, qtype, symmetric, saturation),
            )
        })
        .collect();
    let pinned = config
        .pinned_ranges
        .get(tensor)
        .map(|&r| figures_of("pinned".into(), r));
    let (first_edge, bin_width, counts) = shown_bins(h);
    let samples = dataset
        .indices(Purpose::Calibration)?
        .len()
        .min(config.samples);
    Ok(Inspection {
        tensor: tensor.to_string(),
        samples,
        values: h.total,
        min: stats.min,
        max: stats.max,
        first_edge,
        bin_width,
        counts,
        methods,
        pinned,
        configured: config.calibration.to_string(),
        pinnable,
        note: match (note, saturation) {
            (note, None) => note,
            (note, Some((lo, hi))) => Some(
                note.into_iter()
                    .chain([format!(
                        "read only by a saturating activation: ranges and figures over its values clamped to [{lo}, {hi}]"
                    )])
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        },
    })
}
