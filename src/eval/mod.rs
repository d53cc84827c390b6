//! Evaluation: run a model over a dataset's evaluation split and measure accuracy (against
//! labels) and fidelity (against a reference model, usually the float original).
//!
//! Samples run in parallel (rayon); per-sample outputs are collected in sample order and
//! reduced serially, so the figures are identical to a serial run.

pub mod layers;
pub mod metrics;

use std::time::Instant;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Purpose};
use crate::jobs::Progress;
use crate::runtime::Runner;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub samples: usize,
    pub top1: Option<f64>,
    pub top5: Option<f64>,
    /// Against the reference model, when one was given.
    pub agreement: Option<f64>,
    pub sqnr_db: Option<f64>,
    pub cosine: Option<f64>,
    pub max_abs_error: Option<f64>,
    pub mean_abs_error: Option<f64>,
    pub classes: usize,
    /// Which metrics apply, and why others do not.
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// A model output that is a vector of class scores: `[1, C]` or `[C]` with C > 1.
fn is_class_vector(shape: &[usize]) -> bool {
    let non_unit: Vec<&usize> = shape.iter().filter(|&&d| d != 1).collect();
    non_unit.len() == 1 && *non_unit[0] > 1
}

/// A model's outputs over an evaluation split, in sample order.
pub struct Outputs {
    pub shape: Vec<usize>,
    pub values: Vec<Vec<f32>>,
    pub labels: Vec<Option<usize>>,
    pub seconds: f64,
}

/// Runs `runner` over (at most `limit` samples of) the evaluation split, in parallel.
pub fn collect_outputs(
    runner: &dyn Runner,
    dataset: &Dataset,
    limit: Option<usize>,
    progress: &Progress,
) -> Result<Outputs> {
    let started = Instant::now();
    let indices: Vec<usize> = dataset
        .indices(Purpose::Evaluation)?
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    progress.stage("evaluating", indices.len() as u64);
    let per_sample: Vec<(Vec<f32>, Option<usize>)> = indices
        .par_iter()
        .map(|&i| -> Result<_> {
            progress.check()?;
            let sample = dataset.sample(i)?;
            let out = runner
                .run(&sample.data)
                .with_context(|| format!("sample {i}"))?;
            progress.step();
            Ok((out, sample.label))
        })
        .collect::<Result<_>>()?;
    let (values, labels) = per_sample.into_iter().unzip();
    Ok(Outputs {
        shape: runner.output_shape(),
        values,
        labels,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Accuracy against labels and fidelity against `reference` outputs of the same samples.
pub fn score(
    candidate: &Outputs,
    reference: Option<&Outputs>,
    dataset: &Dataset,
) -> Result<EvalReport> {
    let out_shape = &candidate.shape;
    if let Some(r) = reference {
        if &r.shape != out_shape {
            bail!(
                "the reference model's output shape {:?} differs from the model's {:?}: they cannot be compared",
                r.shape,
                out_shape
            );
        }
        if r.values.len() != candidate.values.len() {
            bail!(
                "the reference ran on {} samples, the model on {}",
                r.values.len(),
                candidate.values.len()
            );
        }
    }
    let classes = if is_class_vector(out_shape) {
        out_shape.iter().product()
    } else {
        0
    };
    let labelled = dataset.has_labels();
    let mut notes = vec![];
    if labelled && classes == 0 {
        notes.push(format!(
            "the output shape {out_shape:?} is not a class vector: accuracy does not apply, fidelity metrics only"
        ));
    }
    if !labelled {
        notes.push("the dataset has no labels: no accuracy".into());
    }
    if reference.is_none() {
        notes.push("no reference model: no agreement, SQNR or cosine".into());
    }
    let mut fidelity = metrics::Fidelity::default();
    let (mut top1, mut top5, mut counted) = (0usize, 0usize, 0usize);
    for (k, (out, label)) in candidate.values.iter().zip(&candidate.labels).enumerate() {
        if let Some(r) = reference {
            fidelity.add(&r.values[k], out);
        }
        if let (Some(label), true) = (label, classes > 0 && labelled) {
            if *label >= classes {
                bail!(
                    "{}: label {label} is out of range for a model with {classes} classes",
                    dataset.path.display()
                );
            }
            counted += 1;
            top1 += usize::from(metrics::in_top_k(out, *label, 1));
            top5 += usize::from(metrics::in_top_k(out, *label, 5));
        }
    }
    let accuracy = |hits: usize| (counted > 0).then(|| hits as f64 / counted as f64);
    let f = reference.map(|_| fidelity.summary());
    Ok(EvalReport {
        samples: candidate.values.len(),
        top1: accuracy(top1),
        top5: if classes >= 5 { accuracy(top5) } else { None },
        agreement: f
            .as_ref()
            .and_then(|f| if classes > 0 { f.agreement } else { None }),
        sqnr_db: f.as_ref().map(|f| f.sqnr_db),
        cosine: f.as_ref().map(|f| f.cosine),
        max_abs_error: f.as_ref().map(|f| f.max_abs_error),
        mean_abs_error: f.as_ref().map(|f| f.mean_abs_error),
        classes,
        notes,
        seconds: candidate.seconds,
    })
}

pub fn evaluate(
    candidate: &dyn Runner,
    reference: Option<&dyn Runner>,
    dataset: &Dataset,
    limit: Option<usize>,
    progress: &Progress,
) -> Result<EvalReport> {
    if let Some(r) = reference {
        if r.output_shape() != candidate.output_shape() {
            bail!(
                "the reference model's output shape {:?} differs from the model's {:?}: they cannot be compared",
                r.output_shape(),
                candidate.output_shape()
            );
        }
    }
    let outputs = collect_outputs(candidate, dataset, limit, progress)?;
    let reference = reference
        .map(|r| collect_outputs(r, dataset, limit, progress))
        .transpose()?;
    score(&outputs, reference.as_ref(), dataset)
}
