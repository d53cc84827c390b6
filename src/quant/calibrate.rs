//! Calibration: stream samples through the float model with the chosen activations exposed, and
//! keep bounded statistics per tensor (running min/max, a fixed-size histogram). Samples are
//! spread over rayon workers, each with its own statistics, merged at the end; the merged result
//! is the same as a serial pass.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::config::{ActivationType, Calibration};
use super::math::{self, Histogram, QType};
use crate::data::{Dataset, Purpose};
use crate::jobs::Progress;
use crate::onnx::pb;
use crate::runtime::{self, Runner, TractModel};
use crate::tensor::Feed;

#[derive(Clone, Debug)]
pub struct TensorStats {
    pub min: f32,
    pub max: f32,
    pub histogram: Option<Histogram>,
    /// NaN or infinite values seen (not counted in min, max or the histogram).
    pub non_finite: usize,
    /// Sums of each sample's minimum and maximum, and the samples summed (mean min-max).
    pub sum_min: f64,
    pub sum_max: f64,
    pub samples: usize,
}

/// Magnitudes at or beyond this are additive attention masks (−1e4, −1e9, −inf), not data: a
/// tensor holding them stays float (an 8-bit grid over ±1e4 would erase the real values).
pub const MASK_MAGNITUDE: f32 = 1.0e4;

impl TensorStats {
    fn new(with_histogram: bool) -> Self {
        TensorStats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            histogram: with_histogram.then(Histogram::default),
            non_finite: 0,
            sum_min: 0.0,
            sum_max: 0.0,
            samples: 0,
        }
    }

    /// Adds values; non-finite ones are counted, the rest observed.
    fn add(&mut self, values: &[f32]) {
        let (lo, hi, finite) = math::min_max_finite(values);
        if finite {
            self.observe(values, lo, hi);
            return;
        }
        let kept: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
        self.non_finite += values.len() - kept.len();
        if !kept.is_empty() {
            let (lo, hi, _) = math::min_max_finite(&kept);
            self.observe(&kept, lo, hi);
        }
    }

    fn observe(&mut self, values: &[f32], lo: f32, hi: f32) {
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        self.sum_min += lo as f64;
        self.sum_max += hi as f64;
        self.samples += 1;
        if let Some(h) = &mut self.histogram {
            h.add_with_range(values, lo, hi);
        }
    }

    /// Why this tensor should stay float, if it should: it held NaN/inf or mask values.
    pub fn unfit_reason(&self) -> Option<String> {
        if self.non_finite > 0 {
            Some(format!("{} NaN or infinite values", self.non_finite))
        } else if self.min <= -MASK_MAGNITUDE || self.max >= MASK_MAGNITUDE {
            Some(format!(
                "values from {:e} to {:e} (an attention mask?)",
                self.min, self.max
            ))
        } else if self.min > self.max {
            Some("no values observed".into())
        } else {
            None
        }
    }

    fn merge(&mut self, other: TensorStats) {
        self.non_finite += other.non_finite;
        self.sum_min += other.sum_min;
        self.sum_max += other.sum_max;
        self.samples += other.samples;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if let (Some(a), Some(b)) = (&mut self.histogram, other.histogram) {
            a.merge(b);
        }
    }

    /// The range the calibration method keeps for `clamp(x, lo, hi)` (`interval`: where the
    /// tensor's consumers still change, `rewrite::saturation_intervals`), or for `x` itself.
    pub fn range_within(
        &self,
        method: Calibration,
        qtype: QType,
        symmetric: bool,
        interval: Option<(f32, f32)>,
    ) -> (f32, f32) {
        let Some((lo, hi)) = interval else {
            return self.range(method, qtype, symmetric);
        };
        let (min, max) = (self.min.clamp(lo, hi), self.max.clamp(lo, hi));
        let clamped = TensorStats {
            min,
            max,
            histogram: self.histogram.as_ref().map(|h| h.clamped(lo, hi)),
            ..self.clone()
        };
        let (a, b) = clamped.range(method, qtype, symmetric);
        (a.clamp(lo, hi), b.clamp(lo, hi))
    }

    /// The range the calibration method keeps for this tensor.
    pub fn range(&self, method: Calibration, qtype: QType, symmetric: bool) -> (f32, f32) {
        let observed = (self.min, self.max);
        if method == Calibration::MeanMinMax && self.samples > 0 {
            let n = self.samples as f64;
            let (lo, hi) = ((self.sum_min / n) as f32, (self.sum_max / n) as f32);
            return if symmetric {
                let m = lo.abs().max(hi.abs());
                (-m, m)
            } else {
                (lo, hi)
            };
        }
        let Some(h) = &self.histogram else {
            return observed;
        };
        match method {
            Calibration::MinMax | Calibration::MeanMinMax => observed,
            Calibration::Percentile(p) => math::percentile_range(h, p, symmetric),
            Calibration::Entropy => {
                // |x| levels available: the whole unsigned grid for non-negative data on an
                // asymmetric grid, half of it otherwise.
                let levels = if !symmetric && self.min >= 0.0 {
                    256
                } else {
                    128
                };
                let t = math::entropy_threshold(&h.folded(), h.bin_width(), levels);
                (self.min.max(-t), self.max.min(t))
            }
            Calibration::Mse => math::mse_range(h, qtype, symmetric),
        }
    }
}

/// The 16-bit type of the same signedness as `a` (activations `int16_activations` names).
pub fn wide_activation_qtype(a: ActivationType) -> QType {
    match a {
        ActivationType::Int8 => QType::Int16,
        ActivationType::Uint8 => QType::Uint16,
    }
}

pub fn activation_qtype(a: ActivationType) -> QType {
    match a {
        ActivationType::Int8 => QType::Int8,
        ActivationType::Uint8 => QType::Uint8,
    }
}

/// Runs `samples` calibration samples through `model` and returns statistics for `tensors`.
/// Statistics per tensor, and which runtime produced the activations.
pub struct Calibrated {
    pub stats: HashMap<String, TensorStats>,
    pub runtime: String,
}

pub fn calibrate(
    model: &pb::ModelProto,
    tensors: &[String],
    dataset: &Dataset,
    samples: usize,
    method: Calibration,
    progress: &Progress,
) -> Result<Calibrated> {
    let indices = dataset.indices(Purpose::Calibration)?;
    let indices: Vec<usize> = indices.take(samples).collect();
    let Some(&first) = indices.first() else {
        bail!("{}: no calibration samples", dataset.path.display());
    };
    let inputs = crate::tensor::model_inputs(model)?;
    let example = dataset.bound(first, &inputs)?.inputs;
    let runnable = match TractModel::load(model, &example, Some(tensors)) {
        Ok(m) => Activations::Tract(m),
        // tract cannot run some models (Loop): ONNX Runtime can, with the tensors as outputs.
        Err(tract_error) => match Activations::ort(model, tensors, &example) {
            Ok(a) => a,
            Err(ort_error) => {
                return Err(tract_error.context(format!(
                    "preparing calibration (ONNX Runtime could not run it either: {ort_error:#})"
                )))
            }
        },
    };
    let runtime_name = match &runnable {
        Activations::Tract(_) => format!("tract {}", runtime::TRACT_VERSION),
        Activations::Ort { runner, .. } => {
            format!("{} (tract cannot run this model)", runner.describe())
        }
    };
    let with_histogram = method != Calibration::MinMax;
    progress.stage("calibrating", indices.len() as u64);
    let empty = || {
        tensors
            .iter()
            .map(|_| TensorStats::new(with_histogram))
            .collect::<Vec<_>>()
    };
    // One contiguous run of samples per worker, each with one set of statistics: memory is
    // workers × tensors × histogram, whatever the number of samples.
    let per_worker = indices
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(1);
    let stats = indices
        .par_chunks(per_worker)
        .map(|chunk| -> Result<Vec<TensorStats>> {
            let mut acc = empty();
            for &i in chunk {
                progress.check()?;
                observe_sample(&runnable, dataset, &inputs, i, &mut acc)?;
                progress.step();
            }
            Ok(acc)
        })
        .try_reduce(empty, |mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                x.merge(y);
            }
            Ok(a)
        })?;
    Ok(Calibrated {
        stats: tensors.iter().cloned().zip(stats).collect(),
        runtime: runtime_name,
    })
}

/// The float model with the calibrated tensors exposed.
enum Activations {
    Tract(TractModel),
    /// ONNX Runtime (no graph optimization, so every tensor is the float model's), the tensors
    /// added as graph outputs; `slots[k]` says where tensor k is read.
    Ort {
        runner: Box<dyn Runner>,
        slots: Vec<Slot>,
    },
}

enum Slot {
    Output(usize),
    /// A graph input, read from the feeds (ONNX Runtime, asked for an input as an output, gave
    /// the first output's values instead).
    Input(usize),
}

impl Activations {
    fn ort(model: &pb::ModelProto, tensors: &[String], example: &[Feed]) -> Result<Activations> {
        let mut exposed = model.clone();
        let graph = crate::onnx::graph_mut(&mut exposed);
        let input_names: Vec<String> = crate::tensor::model_inputs(model)?
            .into_iter()
            .map(|i| i.name)
            .collect();
        for t in tensors {
            if !graph.output.iter().any(|o| o.name == *t) && !input_names.contains(t) {
                graph.output.push(crate::onnx::float_value(t));
            }
        }
        let backend = runtime::Backend::Ort(runtime::ort::OrtOptions {
            optimization: runtime::ort::OptLevel::Disabled,
            x64_quant_precision: false,
        });
        let runner = backend.load(&exposed, example, rayon::current_num_threads())?;
        let names = runner.output_names();
        let slots = tensors
            .iter()
            .map(|t| {
                if let Some(k) = input_names.iter().position(|n| n == t) {
                    return Ok(Slot::Input(k));
                }
                names
                    .iter()
                    .position(|n| n == t)
                    .map(Slot::Output)
                    .ok_or_else(|| anyhow::anyhow!("ONNX Runtime does not expose '{t}'"))
            })
            .collect::<Result<_>>()?;
        Ok(Activations::Ort { runner, slots })
    }

    fn visit(&self, inputs: &[Feed], visit: &mut dyn FnMut(usize, &[f32])) -> Result<()> {
        match self {
            Activations::Tract(m) => m.run_visit(inputs, visit),
            Activations::Ort { runner, slots } => {
                let outputs = runner.run(inputs)?;
                for (k, slot) in slots.iter().enumerate() {
                    match slot {
                        Slot::Output(o) => visit(k, &outputs[*o]),
                        Slot::Input(i) => visit(k, &inputs[*i].data.to_f32()),
                    }
                }
                Ok(())
            }
        }
    }
}

/// Runs calibration sample `i` and adds every exposed tensor to its statistics.
fn observe_sample(
    runnable: &Activations,
    dataset: &Dataset,
    inputs: &[crate::tensor::InputSpec],
    i: usize,
    acc: &mut [TensorStats],
) -> Result<()> {
    let sample = dataset.bound(i, inputs)?;
    runnable
        .visit(&sample.inputs, &mut |k, values| acc[k].add(values))
        .with_context(|| format!("calibration sample {i}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean min-max averages each sample's extremes: one outlier sample moves it by its share.
    #[test]
    fn mean_min_max_averages_the_samples_extremes() {
        let mut s = TensorStats::new(true);
        s.add(&[-1.0, 0.5, 1.0]);
        s.add(&[-3.0, 0.0, 7.0]);
        let mut other = TensorStats::new(true);
        other.add(&[0.0, f32::NAN, 1.0]);
        s.merge(other);
        let q = QType::Uint8;
        assert_eq!(s.range(Calibration::MinMax, q, false), (-3.0, 7.0));
        assert_eq!(
            s.range(Calibration::MeanMinMax, q, false),
            (-4.0 / 3.0, 3.0)
        );
        assert_eq!(s.range(Calibration::MeanMinMax, q, true), (-3.0, 3.0));
        assert_eq!(s.non_finite, 1);
    }
}
