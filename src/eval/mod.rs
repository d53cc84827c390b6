//! Evaluation: run a model over a dataset's evaluation split and measure accuracy (against
//! labels) and fidelity (against a reference model, usually the float original).
//!
//! Samples run in parallel (rayon); per-sample outputs are collected in sample order and
//! reduced serially, so the figures are identical to a serial run.

pub mod compare;
pub mod layers;
pub mod metrics;

use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Purpose};
use crate::jobs::Progress;
use crate::runtime::Runner;
use crate::tensor::InputSpec;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub samples: usize,
    pub top1: Option<f64>,
    pub top5: Option<f64>,
    /// Against the reference model, when one was given (for the scored output).
    pub agreement: Option<f64>,
    pub sqnr_db: Option<f64>,
    pub cosine: Option<f64>,
    pub max_abs_error: Option<f64>,
    pub mean_abs_error: Option<f64>,
    pub classes: usize,
    /// Which metrics apply, and why others do not.
    pub notes: Vec<String>,
    pub seconds: f64,
    /// The output that top-1/top-5 and the figures above describe.
    #[serde(default)]
    pub output: String,
    /// Fidelity of every output against the reference.
    #[serde(default)]
    pub outputs: Vec<OutputFidelity>,
    /// Samples where the scored output holds a NaN or an infinity (each counted wrong).
    #[serde(default)]
    pub non_finite_samples: usize,
    /// The inputs were random (synthetic data): fidelity only.
    #[serde(default)]
    pub synthetic: bool,
}

/// One output's fidelity against the reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputFidelity {
    pub name: String,
    pub shape: Vec<usize>,
    pub agreement: Option<f64>,
    pub sqnr_db: f64,
    pub cosine: f64,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    pub non_finite_samples: usize,
}

/// A model output that is a vector of class scores: `[1, C]` or `[C]` with C > 1.
fn is_class_vector(shape: &[usize]) -> bool {
    let non_unit: Vec<&usize> = shape.iter().filter(|&&d| d != 1).collect();
    non_unit.len() == 1 && *non_unit[0] > 1
}

/// A model's outputs over an evaluation split, in sample order.
pub struct Outputs {
    pub names: Vec<String>,
    pub shapes: Vec<Vec<usize>>,
    /// Per sample, every output's values.
    pub values: Vec<Vec<Vec<f32>>>,
    pub labels: Vec<Option<usize>>,
    /// Per sample, the outputs the dataset says the float model gives (ONNX test data).
    pub expected: Vec<Option<Vec<Vec<f32>>>>,
    pub seconds: f64,
}

/// Runs `runner` over (at most `limit` samples of) the evaluation split, in parallel.
pub fn collect_outputs(
    runner: &dyn Runner,
    inputs: &[InputSpec],
    dataset: &Dataset,
    limit: Option<usize>,
    progress: &Progress,
) -> Result<Outputs> {
    crate::jobs::checkpoint("run a model over a dataset")?;
    let started = Instant::now();
    let indices: Vec<usize> = dataset
        .indices(Purpose::Evaluation)?
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    progress.stage("evaluating", indices.len() as u64);
    type PerSample = (Vec<Vec<f32>>, Option<usize>, Option<Vec<Vec<f32>>>);
    let per_sample: Vec<PerSample> = indices
        .par_iter()
        .map(|&i| -> Result<_> {
            progress.check()?;
            let sample = dataset.bound(i, inputs)?;
            let out = runner
                .run(&sample.inputs)
                .with_context(|| format!("sample {i}"))?;
            progress.step();
            Ok((out, sample.label, sample.expected))
        })
        .collect::<Result<_>>()?;
    let mut outputs = Outputs {
        names: runner.output_names(),
        shapes: runner.output_shapes(),
        values: Vec::with_capacity(per_sample.len()),
        labels: Vec::with_capacity(per_sample.len()),
        expected: Vec::with_capacity(per_sample.len()),
        seconds: 0.0,
    };
    for (v, l, e) in per_sample {
        outputs.values.push(v);
        outputs.labels.push(l);
        outputs.expected.push(e);
    }
    outputs.seconds = started.elapsed().as_secs_f64();
    Ok(outputs)
}

/// Which output is scored: the one named, or the first.
pub fn scored_index(names: &[String], scored: Option<&str>) -> Result<usize> {
    match scored {
        None | Some("") => Ok(0),
        Some(name) => names.iter().position(|n| n == name).ok_or_else(|| {
            anyhow!(
                "the model has no output '{name}' (outputs: {})",
                names.join(", ")
            )
        }),
    }
}

/// Accuracy against labels (on the scored output) and fidelity of every output against
/// `reference` outputs of the same samples (or, without one, against the outputs the dataset
/// ships).
pub fn score(
    candidate: &Outputs,
    reference: Option<&Outputs>,
    dataset: &Dataset,
    scored: Option<&str>,
) -> Result<EvalReport> {
    let k = scored_index(&candidate.names, scored)?;
    let mut notes = vec![];
    let stored: Option<Vec<&Vec<Vec<f32>>>> = match reference {
        Some(_) => None,
        None => candidate.expected.iter().map(|e| e.as_ref()).collect(),
    };
    let reference_values: Option<Vec<&Vec<Vec<f32>>>> = match (reference, &stored) {
        (Some(r), _) => {
            if r.values.len() != candidate.values.len() {
                bail!(
                    "the reference ran on {} samples, the model on {}",
                    r.values.len(),
                    candidate.values.len()
                );
            }
            if r.shapes != candidate.shapes {
                bail!(
                    "the reference model's output shapes {:?} differ from the model's {:?}: they cannot be compared",
                    r.shapes,
                    candidate.shapes
                );
            }
            Some(r.values.iter().collect())
        }
        (None, Some(s)) if !s.is_empty() => {
            notes.push("fidelity against the outputs stored with the data".into());
            Some(s.clone())
        }
        _ => None,
    };
    let out_shape = candidate.shapes.get(k).cloned().unwrap_or_default();
    let classes = if is_class_vector(&out_shape) {
        out_shape.iter().product()
    } else {
        0
    };
    let labelled = dataset.has_labels();
    let output_name = candidate.names.get(k).cloned().unwrap_or_default();
    if candidate.names.len() > 1 {
        notes.push(format!(
            "{} outputs; accuracy and the headline figures are for '{output_name}' (--output to choose)",
            candidate.names.len()
        ));
    }
    if labelled && classes == 0 {
        notes.push(format!(
            "the output shape {out_shape:?} is not a class vector: accuracy does not apply, fidelity metrics only"
        ));
    }
    if dataset.is_synthetic() {
        notes.push("synthetic data (random inputs): fidelity only, no accuracy".into());
    } else if !labelled {
        notes.push("the dataset has no labels: no accuracy".into());
    }
    if reference_values.is_none() {
        notes.push("no reference model: no agreement, SQNR or cosine".into());
    }
    let outputs_count = candidate.names.len();
    let mut fidelity = vec![metrics::Fidelity::default(); outputs_count];
    let mut non_finite = 0usize;
    let (mut top1, mut top5, mut counted) = (0usize, 0usize, 0usize);
    for (i, (outs, label)) in candidate.values.iter().zip(&candidate.labels).enumerate() {
        if let Some(r) = &reference_values {
            let want = r[i];
            if want.len() != outs.len() {
                bail!(
                    "sample {i}: the reference has {} outputs, the model {}",
                    want.len(),
                    outs.len()
                );
            }
            for (o, (w, got)) in want.iter().zip(outs).enumerate() {
                if w.len() != got.len() {
                    bail!(
                        "sample {i}: output '{}' has {} values, the reference {}",
                        candidate.names[o],
                        got.len(),
                        w.len()
                    );
                }
                fidelity[o].add(w, got);
            }
        }
        let Some(out) = outs.get(k) else {
            bail!("sample {i}: the model gave no output '{output_name}'");
        };
        if out.iter().any(|v| !v.is_finite()) {
            non_finite += 1;
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
    if non_finite > 0 {
        notes.push(format!(
            "{non_finite} of {} samples give NaN or infinite values in '{output_name}': counted wrong; SQNR and cosine are NaN",
            candidate.values.len()
        ));
    }
    let accuracy = |hits: usize| (counted > 0).then(|| hits as f64 / counted as f64);
    let per_output: Vec<OutputFidelity> = match reference_values {
        Some(_) => fidelity
            .iter()
            .enumerate()
            .map(|(o, f)| {
                let s = f.summary();
                OutputFidelity {
                    name: candidate.names[o].clone(),
                    shape: candidate.shapes.get(o).cloned().unwrap_or_default(),
                    agreement: if is_class_vector(candidate.shapes.get(o).map_or(&[][..], |v| v)) {
                        s.agreement
                    } else {
                        None
                    },
                    sqnr_db: s.sqnr_db,
                    cosine: s.cosine,
                    max_abs_error: s.max_abs_error,
                    mean_abs_error: s.mean_abs_error,
                    non_finite_samples: f.non_finite,
                }
            })
            .collect(),
        None => vec![],
    };
    let headline = per_output.get(k);
    Ok(EvalReport {
        samples: candidate.values.len(),
        top1: accuracy(top1),
        top5: if classes >= 5 { accuracy(top5) } else { None },
        agreement: headline.and_then(|f| f.agreement),
        sqnr_db: headline.map(|f| f.sqnr_db),
        cosine: headline.map(|f| f.cosine),
        max_abs_error: headline.map(|f| f.max_abs_error),
        mean_abs_error: headline.map(|f| f.mean_abs_error),
        classes,
        notes,
        seconds: candidate.seconds,
        output: output_name,
        outputs: per_output,
        non_finite_samples: non_finite,
        synthetic: dataset.is_synthetic(),
    })
}

pub fn evaluate(
    candidate: &dyn Runner,
    reference: Option<&dyn Runner>,
    inputs: &[InputSpec],
    dataset: &Dataset,
    limit: Option<usize>,
    scored: Option<&str>,
    progress: &Progress,
) -> Result<EvalReport> {
    scored_index(&candidate.output_names(), scored)?;
    if let Some(r) = reference {
        if r.output_shapes() != candidate.output_shapes() {
            bail!(
                "the reference model's output shapes {:?} differ from the model's {:?}: they cannot be compared",
                r.output_shapes(),
                candidate.output_shapes()
            );
        }
    }
    let outputs = collect_outputs(candidate, inputs, dataset, limit, progress)?;
    let reference = reference
        .map(|r| collect_outputs(r, inputs, dataset, limit, progress))
        .transpose()?;
    score(&outputs, reference.as_ref(), dataset, scored)
}
