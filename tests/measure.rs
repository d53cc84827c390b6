//! Evaluation, benchmark and sweep through the public API: runtime parity, determinism,
//! sessions, cancellation and bad input.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use quantbench::bench::BenchSettings;
use quantbench::data::Dataset;
use quantbench::eval;
use quantbench::jobs::{self, Progress};
use quantbench::onnx;
use quantbench::runner::{self, RunSettings, Workbench};
use quantbench::runtime::ort::{OptLevel, OrtOptions};
use quantbench::runtime::Backend;
use quantbench::session::{self, DatasetRef, ModelRef, Session};

const ORT: Backend = Backend::Ort(OrtOptions {
    optimization: OptLevel::All,
    x64_quant_precision: false,
});

#[test]
fn tract_and_onnx_runtime_agree_on_the_float_models() {
    for (model, data) in [(mnist_model(), mnist_data()), (rapid_model(), rapid_data())] {
        let data = Dataset::open(&data).unwrap();
        let model = read(&model);
        let inputs = quantbench::tensor::model_inputs(&model).unwrap();
        let tract = eval::collect_outputs(
            load(Backend::Tract, &model, &data).as_ref(),
            &inputs,
            &data,
            Some(64),
            &Progress::new(),
        )
        .unwrap();
        let ort = eval::collect_outputs(
            load(ORT, &model, &data).as_ref(),
            &inputs,
            &data,
            Some(64),
            &Progress::new(),
        )
        .unwrap();
        assert_eq!(tract.shapes, ort.shapes);
        assert_eq!(tract.names, ort.names);
        for (a, b) in tract.values.iter().zip(&ort.values) {
            let d = relative_l2(&a[0], &b[0]);
            assert!(d < 1e-4, "float outputs differ by {d}");
        }
    }
}

#[test]
fn parallel_evaluation_is_identical_to_serial() {
    let data = Dataset::open(&mnist_data()).unwrap();
    let model = read(&mnist_model());
    let q = quantbench::quant::quantize(&model, &Default::default(), Some(&data), &Progress::new())
        .unwrap()
        .0;
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let cand = load(Backend::Tract, &q, &data);
            let refm = load(Backend::Tract, &model, &data);
            let mut r = eval::evaluate(
                cand.as_ref(),
                Some(refm.as_ref()),
                &mnist_inputs(),
                &data,
                quantbench::data::Selection::default(),
                None,
                &Progress::new(),
                None,
            )
            .unwrap();
            r.seconds = 0.0;
            r
        })
    };
    assert_eq!(run(1), run(2));
}

fn small_sweep_settings(models_dir: Option<std::path::PathBuf>) -> RunSettings {
    RunSettings {
        backends: vec![Backend::Tract, ORT],
        bench: BenchSettings {
            runs: 5,
            warmup: 1,
            threads: 1,
        },
        eval_limit: Some(300),
        layer_samples: 4,
        models_dir,
        output: None,
        remote: None,
    }
}

fn mnist_session() -> (Session, Workbench) {
    let data = Dataset::open(&mnist_data()).unwrap();
    let mut s = Session::new(
        ModelRef::of_file(&mnist_model()).unwrap(),
        Some(DatasetRef::of(&data)),
    );
    for e in session::standard_preset(100, &quantbench::host::detect()) {
        s.add(e);
    }
    let bytes = std::fs::metadata(mnist_model()).unwrap().len();
    (
        s,
        Workbench::new(read(&mnist_model()), bytes, data).unwrap(),
    )
}

#[test]
fn a_sweep_session_round_trips_through_ron_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, mut wb) = mnist_session();
    let settings = small_sweep_settings(Some(dir.path().to_path_buf()));
    let mut saves = 0;
    let path = dir.path().join("session.ron");
    runner::run_pending(&mut s, &mut wb, &settings, &Progress::new(), |s, _| {
        saves += 1;
        s.save(&path)
    })
    .unwrap();
    assert_eq!(
        saves, 14,
        "saved after every result and again after its timing"
    );
    for e in &s.experiments {
        assert_eq!(
            e.result.benches.len(),
            2,
            "{}: {:?}",
            e.name,
            e.result.notes
        );
        assert!(e.result.error.is_none(), "{}: {:?}", e.name, e.result.error);
        assert_eq!(e.result.evals.len(), 2, "{}: {:?}", e.name, e.result.notes);
        assert_eq!(e.result.evals[0].report.samples, 300);
        if e.config.is_some() {
            assert!(std::path::Path::new(e.result.model_path.as_ref().unwrap()).is_file());
            assert!(
                !e.result.layers.is_empty(),
                "{} has no per-layer error",
                e.name
            );
        }
    }
    let back = Session::load(&path).unwrap();
    assert_eq!(back, s);
    // The sha256 of the bundled model, as `sha256sum` gives it.
    let sum = std::process::Command::new("sha256sum")
        .arg(mnist_model())
        .output()
        .expect("sha256sum runs");
    let sum = String::from_utf8_lossy(&sum.stdout);
    assert_eq!(Some(s.model.sha256.as_str()), sum.split_whitespace().next());
    assert_eq!(s.model.bytes, 26454);
    // The report marks at least one Pareto point and every experiment has a row per runtime.
    let rows = quantbench::report::rows(&s);
    assert_eq!(rows.len(), 14);
    assert!(rows.iter().any(|r| r.pareto));
    let csv = quantbench::report::to_csv(&s);
    assert_eq!(csv.lines().count(), 15);
    assert!(quantbench::report::to_markdown(&s).starts_with("| config | runtime |"));
}

#[test]
fn cancelling_mid_sweep_keeps_finished_results_and_writes_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, mut wb) = mnist_session();
    let settings = small_sweep_settings(Some(dir.path().to_path_buf()));
    // Cancel from inside the engine's own progress updates, after 1,000 steps: somewhere inside
    // the second or third experiment, deterministically, without sleeping.
    let steps = Arc::new(AtomicU64::new(0));
    let progress = Progress::new();
    let handle = progress.clone();
    let counter = steps.clone();
    let progress = progress.with_notify(move || {
        if counter.fetch_add(1, Ordering::Relaxed) == 1000 {
            handle.cancel();
        }
    });
    let err =
        runner::run_pending(&mut s, &mut wb, &settings, &progress, |_, _| Ok(())).unwrap_err();
    assert!(jobs::is_cancelled(&err), "{err:#}");
    let done = s.experiments.iter().filter(|e| e.is_done()).count();
    assert!((1..7).contains(&done), "{done} experiments finished");
    assert!(
        s.experiments[0].result.evals.len() == 2,
        "the finished float experiment was kept"
    );
    // Only finished experiments' models are on disk, each complete (loadable), no temp files.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(p.extension().unwrap(), "onnx", "{}", p.display());
        onnx::read_model(&p).unwrap();
    }
}

#[test]
fn output_that_is_not_a_class_vector_gets_fidelity_only() {
    let data = Dataset::open(&mnist_data()).unwrap();
    let mut model = read(&mnist_model());
    let graph = model.graph.as_mut().unwrap();
    graph.output[0].name = "ReLU32_Output_0".into();
    graph.output[0].r#type = None;
    let runner = load(Backend::Tract, &model, &data);
    let r = eval::evaluate(
        runner.as_ref(),
        Some(runner.as_ref()),
        &mnist_inputs(),
        &data,
        quantbench::data::Selection::limit(Some(20)),
        None,
        &Progress::new(),
        None,
    )
    .unwrap();
    assert_eq!(r.top1, None);
    assert_eq!(r.agreement, None);
    assert_eq!(r.sqnr_db, Some(f64::INFINITY));
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("not a class vector") && n.contains("fidelity metrics only")),
        "{:?}",
        r.notes
    );
    // And against a reference of another output shape, a clear refusal.
    let float = load(Backend::Tract, &read(&mnist_model()), &data);
    let err = eval::evaluate(
        runner.as_ref(),
        Some(float.as_ref()),
        &mnist_inputs(),
        &data,
        quantbench::data::Selection::limit(Some(5)),
        None,
        &Progress::new(),
        None,
    )
    .unwrap_err();
    assert!(
        format!("{err:#}")
            .contains("output shapes [[1, 10]] differ from the model's [[1, 8, 28, 28]]"),
        "{err:#}"
    );
}

#[test]
fn labels_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let row = |label: usize| format!("{},{label}", vec!["0"; 784].join(","));
    std::fs::write(
        dir.path().join("d.csv"),
        format!("{}\n{}\n", row(3), row(12)),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("d.ron"),
        "(source: Csv(path: \"d.csv\", image: (channels: 1, height: 28, width: 28), label_column: Some(Last), header: false))",
    )
    .unwrap();
    let data = Dataset::open(&dir.path().join("d.ron")).unwrap();
    let runner = load(Backend::Tract, &read(&mnist_model()), &data);
    let err = eval::evaluate(
        runner.as_ref(),
        None,
        &mnist_inputs(),
        &data,
        quantbench::data::Selection::default(),
        None,
        &Progress::new(),
        None,
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("d.ron: label 12 is out of range for a model with 10 classes"),
        "{err:#}"
    );
}

#[test]
fn missing_onnx_runtime_is_an_error_with_the_fix_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (m, d) = (mnist_model(), mnist_data());
    let out = std::process::Command::new(bin())
        .args([
            "eval",
            m.to_str().unwrap(),
            "--data",
            d.to_str().unwrap(),
            "--backend",
            "ort",
            "--limit",
            "5",
        ])
        .env("ORT_DYLIB_PATH", dir.path().join("libonnxruntime.so"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("pip install onnxruntime"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // A sweep still runs, on tract alone, and says why.
    let session = dir.path().join("s.ron");
    let out = std::process::Command::new(bin())
        .args([
            "sweep",
            m.to_str().unwrap(),
            "--data",
            d.to_str().unwrap(),
            "--configs",
        ])
        .arg(root().join("tests/data/int8-weights.ron"))
        .args([
            "--out",
            session.to_str().unwrap(),
            "--eval-limit",
            "50",
            "--runs",
            "3",
        ])
        .env("ORT_DYLIB_PATH", dir.path().join("libonnxruntime.so"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("measuring on tract only"), "{stderr}");
    let s = Session::load(&session).unwrap();
    assert_eq!(s.experiments.len(), 2);
    assert!(s
        .experiments
        .iter()
        .all(|e| e.result.evals.len() == 1 && e.result.evals[0].backend == "tract"));
}

#[test]
fn bench_reports_a_sane_distribution() {
    let data = Dataset::open(&mnist_data()).unwrap();
    let sample = first_inputs(&read(&mnist_model()), &data);
    let settings = BenchSettings {
        runs: 50,
        warmup: 5,
        threads: 2,
    };
    let r = quantbench::bench::benchmark(
        &read(&mnist_model()),
        26454,
        Backend::Tract,
        &sample,
        &settings,
        &Progress::new(),
    )
    .unwrap();
    assert!(
        r.min_ms <= r.p50_ms
            && r.p50_ms <= r.p90_ms
            && r.p90_ms <= r.p99_ms
            && r.p99_ms <= r.max_ms
    );
    assert_eq!(
        r.throughput.iter().map(|t| t.streams).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(r.peak_rss_bytes > 1 << 20);
    assert!(!r.machine.cpu.is_empty() && r.machine.cores >= 1);
}

/// Every result records the data it was measured on: the same samples give the same SHA-256
/// wherever the files are; other preprocessing or other bytes give another, and the session
/// says which results were measured on other data.
#[test]
fn results_record_the_data_they_were_measured_on() {
    let (mut s, mut wb) = mnist_session();
    s.experiments.truncate(2);
    let settings = RunSettings {
        backends: vec![Backend::Tract],
        ..small_sweep_settings(None)
    };
    runner::run_pending(&mut s, &mut wb, &settings, &Progress::new(), |_, _| Ok(())).unwrap();
    let stamp = s.experiments[1].result.data.clone().expect("a data stamp");
    assert_eq!(s.experiments[0].result.data.as_ref(), Some(&stamp));
    // The same files elsewhere: the same figure.
    let dir = tempfile::tempdir().unwrap();
    let src = mnist_data();
    let src_dir = src.parent().unwrap();
    for f in ["dataset.ron", "mnist_5k.csv.gz"] {
        std::fs::copy(src_dir.join(f), dir.path().join(f)).unwrap();
    }
    let moved = Dataset::open(&dir.path().join("dataset.ron")).unwrap();
    assert_eq!(moved.content_sha256().unwrap(), stamp.sha256);
    // Other preprocessing: another figure, and the results are on other data.
    let mut desc = moved.desc.clone();
    desc.preprocess.mean = vec![1.0];
    let other = Dataset::from_desc(desc.clone(), dir.path(), &dir.path().join("x.ron")).unwrap();
    assert_ne!(other.content_sha256().unwrap(), stamp.sha256);
    assert!(s.experiments[1].result.measured_on_other_data(Some(&desc)));
    assert!(!s.experiments[1]
        .result
        .measured_on_other_data(Some(&stamp.desc)));
    // Other bytes under the same names: another figure.
    let photos = tempfile::tempdir().unwrap();
    let png = |v: u8| image::RgbImage::from_pixel(8, 8, image::Rgb([v, v, v]));
    png(10).save(photos.path().join("a.png")).unwrap();
    png(20).save(photos.path().join("b.png")).unwrap();
    let desc = quantbench::data::DatasetDesc {
        source: quantbench::data::Source::ImageFolder {
            path: photos.path().display().to_string(),
            labels: quantbench::data::Labels::None,
        },
        preprocess: Default::default(),
        calibration: Default::default(),
        evaluation: Default::default(),
        augment: 0,
    };
    let open = || {
        Dataset::from_desc(desc.clone(), photos.path(), &photos.path().join("d.ron"))
            .unwrap()
            .content_sha256()
            .unwrap()
    };
    let before = open();
    assert_eq!(open(), before);
    png(30).save(photos.path().join("b.png")).unwrap();
    assert_ne!(open(), before);
}

/// A device out of reach costs the latency, not the accuracy: the figures measured here stay,
/// and the note names the device.
#[test]
fn an_unreachable_benchmark_device_keeps_the_accuracy_and_says_why() {
    let (mut s, mut wb) = mnist_session();
    s.experiments.truncate(2);
    let reference = {
        let (mut here, _) = mnist_session();
        here.experiments.truncate(2);
        let settings = RunSettings {
            backends: vec![Backend::Tract],
            ..small_sweep_settings(None)
        };
        runner::run_pending(&mut here, &mut wb, &settings, &Progress::new(), |_, _| {
            Ok(())
        })
        .unwrap();
        here
    };
    let mut remote: quantbench::bench::remote::Remote = "nobody@127.0.0.1:1".parse().unwrap();
    remote.ssh_args = vec!["-oConnectTimeout=2".into()];
    let settings = RunSettings {
        backends: vec![Backend::Tract],
        remote: Some(remote),
        ..small_sweep_settings(None)
    };
    runner::run_pending(&mut s, &mut wb, &settings, &Progress::new(), |_, _| Ok(())).unwrap();
    for (e, r) in s.experiments.iter().zip(&reference.experiments) {
        assert!(e.result.error.is_none(), "{}: {:?}", e.name, e.result.error);
        assert!(e.result.benches.is_empty(), "{}", e.name);
        let figures = |x: &session::ExperimentResult| {
            x.evals
                .iter()
                .map(|v| {
                    (
                        v.report.samples,
                        v.report.top1,
                        v.report.agreement,
                        v.report.sqnr_db,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(figures(&e.result), figures(&r.result), "{}", e.name);
        assert_eq!(e.result.evals.len(), 1, "{}", e.name);
        assert!(
            e.result
                .notes
                .iter()
                .any(|n| n.contains("nobody@127.0.0.1:1")),
            "{}: {:?}",
            e.name,
            e.result.notes
        );
    }
}

/// The runner isolates a panic to its experiment for every face (this is the CLI sweep's
/// loop): the experiment is reported as Failed with a typed Panicked error by id, the others
/// finish, and every experiment is reported once, Started before its end, in order; those
/// that finished are then timed together.
#[test]
fn a_panic_fails_its_experiment_alone_in_the_one_runner() {
    let (s, mut wb) = mnist_session();
    let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = fired.clone();
    jobs::set_tap(Some(Arc::new(move |what| {
        if what == "quantize" && !f.swap(true, Ordering::SeqCst) {
            panic!("injected: index 9 out of bounds in the rewrite");
        }
    })));
    let settings = RunSettings {
        backends: vec![Backend::Tract],
        ..small_sweep_settings(None)
    };
    let mut events = vec![];
    let ran = wb.run_experiments(
        s.experiments.clone(),
        &settings,
        &Progress::new(),
        &mut |e| {
            events.push(e);
            Ok(())
        },
    );
    jobs::set_tap(None);
    ran.unwrap();
    let ids: Vec<_> = s.experiments.iter().map(|e| e.id).collect();
    // Each experiment started and ended in order, then every one that finished was timed
    // with the others (in rounds, after the last).
    assert_eq!(events.len(), 2 * ids.len() + ids.len() - 1, "{events:?}");
    for (k, id) in ids.iter().enumerate() {
        assert!(matches!(events[2 * k], runner::RunEvent::Started(x) if x == *id));
        assert_eq!(events[2 * k + 1].id(), *id);
    }
    let timed: Vec<_> = events[2 * ids.len()..]
        .iter()
        .map(|e| match e {
            runner::RunEvent::Timed(id, t) => {
                assert_eq!(t.benches.len(), 1, "{t:?}");
                assert!(t.benches[0].p50_interval_ms.is_some(), "{t:?}");
                *id
            }
            other => panic!("expected a timing, got {other:?}"),
        })
        .collect();
    let mut finished: Vec<_> = ids.clone();
    finished.remove(1);
    assert_eq!(timed, finished);
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            runner::RunEvent::Failed(id, f) => Some((*id, &f.error)),
            _ => None,
        })
        .collect();
    // The first quantized experiment (fp16) quantizes first.
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0].0, ids[1]);
    assert!(
        matches!(failed[0].1, runner::ExperimentError::Panicked { message } if message.contains("index 9 out of bounds")),
        "{:?}",
        failed[0].1
    );
    let done = events
        .iter()
        .filter(|e| matches!(e, runner::RunEvent::Done(..)))
        .count();
    assert_eq!(done, ids.len() - 1);
}
