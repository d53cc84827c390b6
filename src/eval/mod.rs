//! Evaluation: run a model over a dataset's evaluation split and measure accuracy (against
//! labels) and fidelity (against a reference model, usually the float original).
//!
//! Samples run in parallel (rayon); per-sample outputs are collected in sample order and
//! reduced serially, so the figures are identical to a serial run.

pub mod figure;
pub mod layers;
pub mod metrics;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Selection};
use crate::jobs::Progress;
use crate::runtime::Runner;
use crate::tensor::InputSpec;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub samples: usize,
    pub top1: Option<f64>,
    pub top5: Option<f64>,
    /// Against the reference model, when one was given (for the scored output). Non-finite
    /// figures are written as words ([`figure`]): `"inf"` for a lossless copy, `"nan"` where
    /// the outputs hold NaN.
    pub agreement: Option<f64>,
    #[serde(default, with = "crate::eval::figure::option")]
    pub sqnr_db: Option<f64>,
    #[serde(default, with = "crate::eval::figure::option")]
    pub cosine: Option<f64>,
    #[serde(default, with = "crate::eval::figure::option")]
    pub max_abs_error: Option<f64>,
    #[serde(default, with = "crate::eval::figure::option")]
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

impl EvalReport {
    /// The model computed NaN or an infinity for some sample: its figures describe a broken
    /// model, not a lossy one.
    pub fn is_broken(&self) -> bool {
        self.non_finite_samples > 0
    }
}

/// One output's fidelity against the reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputFidelity {
    pub name: String,
    pub shape: Vec<usize>,
    pub agreement: Option<f64>,
    #[serde(with = "crate::eval::figure")]
    pub sqnr_db: f64,
    #[serde(with = "crate::eval::figure")]
    pub cosine: f64,
    #[serde(with = "crate::eval::figure")]
    pub max_abs_error: f64,
    #[serde(with = "crate::eval::figure")]
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
    let indices = dataset.evaluation_indices(Selection::limit(limit))?;
    progress.stage("evaluating", indices.len() as u64);
    type PerSample = (Vec<Vec<f32>>, Option<usize>, Option<Vec<Vec<f32>>>);
    let per_sample: Vec<PerSample> = indices
        .par_iter()
        .map(|&i| -> Result<_> {
            progress.check()?;
            let sample = dataset.bound(i, inputs)?;
            let out = runner
                .run(&sample.inputs)
                .with_context(|| format!("evaluating sample {i} of {}", dataset.path.display()))?;
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
            check_shapes(&r.shapes, &candidate.shapes)?;
            Some(r.values.iter().collect())
        }
        (None, Some(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let from_dataset = reference.is_none() && reference_values.is_some();
    let mut tally = Tally::new(
        candidate.names.clone(),
        candidate.shapes.clone(),
        scored,
        dataset,
        reference_values.is_some(),
        from_dataset,
    )?;
    for (i, (outs, label)) in candidate.values.iter().zip(&candidate.labels).enumerate() {
        let want = reference_values.as_ref().map(|r| r[i].as_slice());
        tally.add(i, outs, want, *label, dataset)?;
    }
    tally.seconds = candidate.seconds;
    Ok(tally.report(dataset))
}

fn check_shapes(reference: &[Vec<usize>], candidate: &[Vec<usize>]) -> Result<()> {
    if reference != candidate {
        bail!(
            "the reference model's output shapes {reference:?} differ from the model's {candidate:?}: they cannot be compared"
        );
    }
    Ok(())
}

/// The running figures of an evaluation, one sample at a time in sample order: what [`score`]
/// reports, without holding the outputs, so that an evaluation of any length holds one chunk
/// of them. Serializable: a long evaluation checkpoints it and resumes from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub names: Vec<String>,
    pub shapes: Vec<Vec<usize>>,
    scored: usize,
    classes: usize,
    labelled: bool,
    /// Per output, against the reference; empty without one.
    fidelity: Vec<metrics::Fidelity>,
    has_reference: bool,
    /// The reference is the outputs the dataset ships (ONNX test data).
    reference_from_dataset: bool,
    pub samples: usize,
    non_finite: usize,
    top1: usize,
    top5: usize,
    counted: usize,
    pub seconds: f64,
}

impl Tally {
    pub fn new(
        names: Vec<String>,
        shapes: Vec<Vec<usize>>,
        scored: Option<&str>,
        dataset: &Dataset,
        has_reference: bool,
        reference_from_dataset: bool,
    ) -> Result<Tally> {
        let k = scored_index(&names, scored)?;
        let out_shape = shapes.get(k).cloned().unwrap_or_default();
        let classes = if is_class_vector(&out_shape) {
            out_shape.iter().product()
        } else {
            0
        };
        let fidelity = if has_reference {
            vec![metrics::Fidelity::default(); names.len()]
        } else {
            vec![]
        };
        Ok(Tally {
            names,
            shapes,
            scored: k,
            classes,
            labelled: dataset.has_labels(),
            fidelity,
            has_reference,
            reference_from_dataset,
            samples: 0,
            non_finite: 0,
            top1: 0,
            top5: 0,
            counted: 0,
            seconds: 0.0,
        })
    }

    /// Adds sample `i` (its number, for messages): the candidate's outputs, the reference's
    /// (when there is one) and the label.
    pub fn add(
        &mut self,
        i: usize,
        outs: &[Vec<f32>],
        reference: Option<&[Vec<f32>]>,
        label: Option<usize>,
        dataset: &Dataset,
    ) -> Result<()> {
        if let (true, Some(want)) = (self.has_reference, reference) {
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
                        self.names[o],
                        got.len(),
                        w.len()
                    );
                }
                self.fidelity[o].add(w, got);
            }
        } else if self.has_reference {
            bail!("sample {i}: no reference outputs");
        }
        let Some(out) = outs.get(self.scored) else {
            bail!(
                "sample {i}: the model gave no output '{}'",
                self.names.get(self.scored).map_or("", String::as_str)
            );
        };
        self.samples += 1;
        if out.iter().any(|v| !v.is_finite()) {
            self.non_finite += 1;
        }
        if let (Some(label), true) = (label, self.classes > 0 && self.labelled) {
            if label >= self.classes {
                bail!(
                    "{}: label {label} is out of range for a model with {} classes",
                    dataset.path.display(),
                    self.classes
                );
            }
            self.counted += 1;
            self.top1 += usize::from(metrics::in_top_k(out, label, 1));
            self.top5 += usize::from(metrics::in_top_k(out, label, 5));
        }
        Ok(())
    }

    pub fn report(&self, dataset: &Dataset) -> EvalReport {
        let k = self.scored;
        let output_name = self.names.get(k).cloned().unwrap_or_default();
        let out_shape = self.shapes.get(k).cloned().unwrap_or_default();
        let mut notes = vec![];
        if self.reference_from_dataset {
            notes.push("fidelity against the outputs stored with the data".into());
        }
        if self.names.len() > 1 {
            notes.push(format!(
                "{} outputs; accuracy and the headline figures are for '{output_name}' (--output to choose)",
                self.names.len()
            ));
        }
        if self.labelled && self.classes == 0 {
            notes.push(format!(
                "the output shape {out_shape:?} is not a class vector: accuracy does not apply, fidelity metrics only"
            ));
        }
        if dataset.is_synthetic() {
            notes.push("synthetic data (random inputs): fidelity only, no accuracy".into());
        } else if !self.labelled {
            notes.push("the dataset has no labels: no accuracy".into());
        }
        if !self.has_reference {
            notes.push("no reference model: no agreement, SQNR or cosine".into());
        }
        if self.non_finite > 0 {
            notes.push(format!(
                "{} of {} samples give NaN or infinite values in '{output_name}': counted wrong; SQNR and cosine are NaN",
                self.non_finite, self.samples
            ));
        }
        let counted = self.counted;
        let accuracy = |hits: usize| (counted > 0).then(|| hits as f64 / counted as f64);
        let per_output: Vec<OutputFidelity> = self
            .fidelity
            .iter()
            .enumerate()
            .map(|(o, f)| {
                let s = f.summary();
                let shape = self.shapes.get(o).cloned().unwrap_or_default();
                OutputFidelity {
                    name: self.names[o].clone(),
                    agreement: if is_class_vector(&shape) {
                        s.agreement
                    } else {
                        None
                    },
                    shape,
                    sqnr_db: s.sqnr_db,
                    cosine: s.cosine,
                    max_abs_error: s.max_abs_error,
                    mean_abs_error: s.mean_abs_error,
                    non_finite_samples: f.non_finite,
                }
            })
            .collect();
        let headline = per_output.get(k);
        EvalReport {
            samples: self.samples,
            top1: accuracy(self.top1),
            top5: if self.classes >= 5 {
                accuracy(self.top5)
            } else {
                None
            },
            agreement: headline.and_then(|f| f.agreement),
            sqnr_db: headline.map(|f| f.sqnr_db),
            cosine: headline.map(|f| f.cosine),
            max_abs_error: headline.map(|f| f.max_abs_error),
            mean_abs_error: headline.map(|f| f.mean_abs_error),
            classes: self.classes,
            notes,
            seconds: self.seconds,
            output: output_name,
            outputs: per_output,
            non_finite_samples: self.non_finite,
            synthetic: dataset.is_synthetic(),
        }
    }
}

/// Where a long evaluation saves its running figures, and what they belong to.
pub struct Resume {
    pub path: PathBuf,
    /// What the figures belong to (models, data, selection, runtime): a checkpoint saved for
    /// anything else is ignored, never mixed in.
    pub key: String,
    /// How often the figures are saved.
    pub every: Duration,
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    key: String,
    /// The selection's length when it was saved.
    selected: usize,
    tally: Tally,
}

impl Resume {
    fn load(&self, selected: usize) -> Option<Tally> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let c: Checkpoint = ron::from_str(&text).ok()?;
        (c.key == self.key && c.selected == selected && c.tally.samples <= selected)
            .then_some(c.tally)
    }

    fn save(&self, selected: usize, tally: &Tally) -> Result<()> {
        let c = Checkpoint {
            key: self.key.clone(),
            selected,
            tally: tally.clone(),
        };
        let text = ron::to_string(&c)?;
        crate::fileio::write_atomic(&self.path, text.as_bytes())
            .with_context(|| format!("{}: cannot write the checkpoint", self.path.display()))
    }
}

/// Samples decoded and run at once: enough to keep every worker busy, few enough that memory
/// stays bounded by the worker count, not the dataset.
fn chunk_len() -> usize {
    rayon::current_num_threads() * 16
}

/// Runs `candidate` (and `reference`, on the same decoded sample) over the selected
/// evaluation samples and scores them, streaming: one chunk of samples and outputs in memory
/// at a time, figures identical to [`score`] over the same samples. With `resume`, the running
/// figures are saved every `resume.every` and an interrupted evaluation continues from the last
/// save; the checkpoint is removed when the evaluation completes.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    candidate: &dyn Runner,
    reference: Option<&dyn Runner>,
    inputs: &[InputSpec],
    dataset: &Dataset,
    selection: Selection,
    scored: Option<&str>,
    progress: &Progress,
    resume: Option<&Resume>,
) -> Result<EvalReport> {
    crate::jobs::checkpoint("run a model over a dataset")?;
    scored_index(&candidate.output_names(), scored)?;
    if let Some(r) = reference {
        check_shapes(&r.output_shapes(), &candidate.output_shapes())?;
    }
    let indices = dataset.evaluation_indices(selection)?;
    let from_dataset = reference.is_none() && dataset.sample(indices[0])?.expected.is_some();
    let fresh = || {
        Tally::new(
            candidate.output_names(),
            candidate.output_shapes(),
            scored,
            dataset,
            reference.is_some() || from_dataset,
            from_dataset,
        )
    };
    let mut tally = match resume.and_then(|r| r.load(indices.len())) {
        Some(t) => t,
        None => fresh()?,
    };
    progress.stage("evaluating", indices.len() as u64);
    progress.advance(tally.samples as u64);
    let mut last_save = Instant::now();
    let mut segment = Instant::now();
    type PerSample = (Vec<Vec<f32>>, Option<Vec<Vec<f32>>>, Option<usize>);
    for chunk in indices[tally.samples..].chunks(chunk_len()) {
        let per_sample: Vec<PerSample> = chunk
            .par_iter()
            .map(|&i| -> Result<_> {
                progress.check()?;
                let sample = dataset.bound(i, inputs)?;
                let out = candidate.run(&sample.inputs).with_context(|| {
                    format!("evaluating sample {i} of {}", dataset.path.display())
                })?;
                let want = match reference {
                    Some(r) => Some(r.run(&sample.inputs).with_context(|| {
                        format!(
                            "evaluating sample {i} of {} on the reference",
                            dataset.path.display()
                        )
                    })?),
                    None => sample.expected,
                };
                progress.step();
                Ok((out, want, sample.label))
            })
            .collect::<Result<_>>()?;
        for (&i, (out, want, label)) in chunk.iter().zip(&per_sample) {
            tally.add(i, out, want.as_deref(), *label, dataset)?;
        }
        if let Some(r) = resume {
            if last_save.elapsed() >= r.every && tally.samples < indices.len() {
                tally.seconds += segment.elapsed().as_secs_f64();
                segment = Instant::now();
                r.save(indices.len(), &tally)?;
                last_save = Instant::now();
            }
        }
    }
    tally.seconds += segment.elapsed().as_secs_f64();
    if let Some(r) = resume {
        // Complete: a checkpoint left behind would make the next run report without running.
        let _ = std::fs::remove_file(&r.path);
    }
    Ok(tally.report(dataset))
}
