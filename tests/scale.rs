//! Evaluations of any length: streamed in chunks (figures identical to scoring every output at
//! once), subsets and shards that are deterministic, and checkpoints that an interrupted
//! evaluation resumes from.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use quantbench::data::{Dataset, Selection, Shard};
use quantbench::eval::{self, Resume};
use quantbench::jobs::{self, Progress};
use quantbench::quant::{self, QuantConfig};
use quantbench::runtime::Backend;

fn int8(data: &Dataset) -> quantbench::onnx::pb::ModelProto {
    let config = QuantConfig {
        per_channel: false,
        samples: 64,
        ..Default::default()
    };
    quant::quantize(&read(&mnist_model()), &config, Some(data), &Progress::new())
        .unwrap()
        .0
}

fn without_time(mut r: eval::EvalReport) -> eval::EvalReport {
    r.seconds = 0.0;
    r
}

#[test]
fn streamed_figures_equal_those_of_all_outputs_scored_at_once() {
    let data = Dataset::open(&mnist_data()).unwrap();
    let (float, q) = (read(&mnist_model()), int8(&data));
    let (reference, candidate) = (
        load(Backend::Tract, &float, &data),
        load(Backend::Tract, &q, &data),
    );
    let streamed = eval::evaluate(
        candidate.as_ref(),
        Some(reference.as_ref()),
        &mnist_inputs(),
        &data,
        Selection::default(),
        None,
        &Progress::new(),
        None,
    )
    .unwrap();
    let p = Progress::new();
    let c = eval::collect_outputs(candidate.as_ref(), &mnist_inputs(), &data, None, &p).unwrap();
    let r = eval::collect_outputs(reference.as_ref(), &mnist_inputs(), &data, None, &p).unwrap();
    let at_once = eval::score(&c, Some(&r), &data, None).unwrap();
    assert_eq!(streamed.samples, 4800);
    assert!(streamed.sqnr_db.unwrap().is_finite() && streamed.agreement.is_some());
    assert_eq!(without_time(streamed), without_time(at_once));
}

#[test]
fn shards_partition_the_evaluation_and_their_hits_add_up_to_the_whole() {
    let data = Dataset::open(&mnist_data()).unwrap();
    let model = load(Backend::Tract, &read(&mnist_model()), &data);
    let eval_on = |selection: Selection| {
        eval::evaluate(
            model.as_ref(),
            None,
            &mnist_inputs(),
            &data,
            selection,
            None,
            &Progress::new(),
            None,
        )
        .unwrap()
    };
    let whole = eval_on(Selection::default());
    let mut hits = 0.0;
    let mut samples = 0;
    for index in 1..=3 {
        let part = eval_on(Selection {
            limit: None,
            shard: Some(Shard { index, count: 3 }),
        });
        samples += part.samples;
        hits += part.top1.unwrap() * part.samples as f64;
    }
    assert_eq!(samples, whole.samples);
    assert_eq!(
        hits.round(),
        (whole.top1.unwrap() * whole.samples as f64).round()
    );
    // A limit spreads over the split: every digit is in a subset of 50.
    let picked = data.evaluation_indices(Selection::limit(Some(50))).unwrap();
    assert_eq!(picked.len(), 50);
    assert_eq!((picked[0], picked[49]), (200, 200 + 49 * 4800 / 50));
    let labels: std::collections::BTreeSet<usize> = picked
        .iter()
        .map(|&i| data.sample(i).unwrap().label.unwrap())
        .collect();
    assert_eq!(labels.len(), 10, "{labels:?}");
}

#[test]
fn an_interrupted_evaluation_resumes_from_its_checkpoint_to_the_same_figures() {
    let dir = tempfile::tempdir().unwrap();
    let data = Dataset::open(&mnist_data()).unwrap();
    let (float, q) = (read(&mnist_model()), int8(&data));
    let (reference, candidate) = (
        load(Backend::Tract, &float, &data),
        load(Backend::Tract, &q, &data),
    );
    let resume = Resume {
        path: dir.path().join("eval.ckpt.ron"),
        key: "int8 vs float on mnist".into(),
        every: std::time::Duration::ZERO,
    };
    let run = |progress: &Progress, resume: Option<&Resume>| {
        eval::evaluate(
            candidate.as_ref(),
            Some(reference.as_ref()),
            &mnist_inputs(),
            &data,
            Selection::default(),
            None,
            progress,
            resume,
        )
    };
    let uninterrupted = run(&Progress::new(), None).unwrap();

    // Interrupted after 2,000 samples (as a Ctrl-C or a cancelled job would).
    let steps = Arc::new(AtomicU64::new(0));
    let handle = Progress::new();
    let (counter, stopper) = (steps.clone(), handle.clone());
    let progress = handle.with_notify(move || {
        if counter.fetch_add(1, Ordering::Relaxed) == 2000 {
            stopper.cancel();
        }
    });
    let err = run(&progress, Some(&resume)).unwrap_err();
    assert!(jobs::is_cancelled(&err), "{err:#}");
    let first_save = saved_samples(&std::fs::read_to_string(&resume.path).unwrap());
    assert!(first_save > 0 && first_save <= 2000, "{first_save}");

    // A checkpoint of another evaluation is never mixed in: it starts over.
    let other = Resume {
        key: "something else".into(),
        ..Resume {
            path: resume.path.clone(),
            key: String::new(),
            every: resume.every,
        }
    };
    let fresh = Progress::new();
    let from_scratch = run(&fresh, Some(&other)).unwrap();
    assert_eq!(fresh.snapshot().1, 4800);
    assert_eq!(
        without_time(from_scratch.clone()),
        without_time(uninterrupted.clone())
    );
    assert!(
        !resume.path.exists(),
        "a complete evaluation removes its checkpoint"
    );

    // Interrupted again, then resumed: the second run starts where the save left off and
    // ends with the uninterrupted figures.
    let handle = Progress::new();
    let (counter, stopper) = (Arc::new(AtomicU64::new(0)), handle.clone());
    let progress = handle.with_notify(move || {
        if counter.fetch_add(1, Ordering::Relaxed) == 3000 {
            stopper.cancel();
        }
    });
    assert!(run(&progress, Some(&resume)).is_err());
    let saved = saved_samples(&std::fs::read_to_string(&resume.path).unwrap());
    assert!((2000..=3000).contains(&saved), "{saved}");
    let calls = Arc::new(AtomicU64::new(0));
    let counter = calls.clone();
    let resumed_progress = Progress::new().with_notify(move || {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let resumed = run(&resumed_progress, Some(&resume)).unwrap();
    assert_eq!(without_time(resumed), without_time(uninterrupted));
    // It ran only the samples the checkpoint lacked (one notification per sample, plus the
    // stage and the jump to the saved count).
    assert_eq!(calls.load(Ordering::Relaxed), 4800 - saved + 2);
    assert_eq!(resumed_progress.snapshot().1, 4800);
}

fn saved_samples(checkpoint: &str) -> u64 {
    let at = checkpoint.find("samples:").unwrap() + "samples:".len();
    checkpoint[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}
