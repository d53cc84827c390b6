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
use crate::runtime::{self, TractModel};

#[derive(Clone, Debug)]
pub struct TensorStats {
    pub min: f32,
    pub max: f32,
    pub histogram: Option<Histogram>,
}

impl TensorStats {
    fn new(with_histogram: bool) -> Self {
        TensorStats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            histogram: with_histogram.then(Histogram::default),
        }
    }

    fn add(&mut self, values: &[f32]) {
        if let Some(h) = &mut self.histogram {
            h.add(values);
            self.min = h.min;
            self.max = h.max;
        } else {
            for &v in values {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            }
        }
    }

    fn merge(&mut self, other: TensorStats) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if let (Some(a), Some(b)) = (&mut self.histogram, other.histogram) {
            a.merge(b);
        }
    }

    /// The range the calibration method keeps for this tensor.
    pub fn range(&self, method: Calibration, qtype: QType, symmetric: bool) -> (f32, f32) {
        let observed = (self.min, self.max);
        let Some(h) = &self.histogram else {
            return observed;
        };
        match method {
            Calibration::MinMax => observed,
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

pub fn activation_qtype(a: ActivationType) -> QType {
    match a {
        ActivationType::Int8 => QType::Int8,
        ActivationType::Uint8 => QType::Uint8,
    }
}

/// Runs `samples` calibration samples through `model` and returns statistics for `tensors`.
pub fn calibrate(
    model: &pb::ModelProto,
    tensors: &[String],
    dataset: &Dataset,
    samples: usize,
    method: Calibration,
    progress: &Progress,
) -> Result<HashMap<String, TensorStats>> {
    let indices = dataset.indices(Purpose::Calibration)?;
    let indices: Vec<usize> = indices.take(samples).collect();
    let spec = runtime::input_spec(model)?;
    let first = dataset.sample(indices[0])?;
    let shape = runtime::concrete_input_shape(&spec, &first.shape)
        .with_context(|| format!("{}: dataset does not fit the model", dataset.path.display()))?;
    let runnable =
        TractModel::load(model, &shape, Some(tensors)).context("preparing calibration")?;
    let with_histogram = method != Calibration::MinMax;
    progress.stage("calibrating", indices.len() as u64);
    let empty = || {
        tensors
            .iter()
            .map(|_| TensorStats::new(with_histogram))
            .collect::<Vec<_>>()
    };
    let stats = indices
        .par_iter()
        .with_min_len(4)
        .try_fold(empty, |mut acc, &i| -> Result<Vec<TensorStats>> {
            progress.check()?;
            let sample = dataset.sample(i)?;
            if sample.shape != shape {
                bail!(
                    "{}: sample {i} has shape {:?}, the first calibration sample had {:?}",
                    dataset.path.display(),
                    sample.shape,
                    shape
                );
            }
            let outputs = runnable.run(&sample.data).with_context(|| format!("calibration sample {i}"))?;
            for ((stats, values), name) in acc.iter_mut().zip(&outputs).zip(tensors) {
                if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                    bail!("tensor '{name}' holds {bad} on calibration sample {i}: the float model produces non-finite values");
                }
                stats.add(values);
            }
            progress.step();
            Ok(acc)
        })
        .try_reduce(empty, |mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                x.merge(y);
            }
            Ok(a)
        })?;
    Ok(tensors.iter().cloned().zip(stats).collect())
}
