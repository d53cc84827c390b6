//! Calibration as the export uses it: the inspector's ranges and the pin written into the
//! model, 16-bit activations in ONNX Runtime, ranges clamped where an activation saturates,
//! and layers grouped where they share an activation.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use common::graphs::*;
use common::*;
use quantbench::data::{Dataset, Purpose};
use quantbench::jobs::Progress;
use quantbench::onnx::{self, pb, GraphIndex};
use quantbench::quant::{self, QuantConfig};
use quantbench::runtime::Backend;

/// The inspector's figures for an MNIST activation, estimated from its histogram, agree with
/// the same figures computed here from the tensor's values; a pinned range is the one the
/// written model uses.
#[test]
fn the_calibration_inspector_measures_each_range_and_the_pin_is_exported() {
    use quantbench::quant::inspect;
    use quantbench::quant::math::{self, QType};
    let float = read(&mnist_model());
    let data = Dataset::open(&mnist_data()).unwrap();
    let config = QuantConfig {
        samples: 32,
        ..Default::default()
    };
    let tensors = inspect::calibrated_tensors(&float, &config).unwrap();
    let tensor = tensors[1].clone();
    let found = inspect::inspect(&float, &config, &data, &tensor, &Progress::new()).unwrap();

    // The tensor's values over the same calibration samples, from the prepared float model.
    let prepared = quant::prepare_float(&float, &config).unwrap().model;
    let inputs = quantbench::tensor::model_inputs(&prepared).unwrap();
    let example = first_inputs(&prepared, &data);
    let run = quantbench::runtime::TractModel::load(
        &prepared,
        &example,
        Some(std::slice::from_ref(&tensor)),
    )
    .unwrap();
    let mut values = vec![];
    for i in data.indices(Purpose::Calibration).unwrap().take(32) {
        let sample = data.bound(i, &inputs).unwrap();
        values.extend(run.run(&sample.inputs).unwrap().remove(0));
    }
    assert_eq!(found.values, values.len() as u64);
    let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!((found.min, found.max), (lo, hi));
    assert_eq!(found.counts.iter().sum::<u64>(), values.len() as u64);
    for f in &found.methods {
        let p = math::qparams(f.range.0, f.range.1, QType::Uint8, false);
        let (grid_lo, grid_hi) = (math::dequantize(0, p), math::dequantize(255, p));
        let (mut signal, mut noise, mut clipped) = (0.0f64, 0.0f64, 0usize);
        for &v in &values {
            let q = math::fake_quantize(v, p, QType::Uint8);
            signal += (v as f64).powi(2);
            noise += ((v - q) as f64).powi(2);
            clipped += usize::from(v < grid_lo || v > grid_hi);
        }
        let sqnr = 10.0 * (signal / noise).log10();
        assert!(
            (sqnr - f.sqnr_db).abs() < 0.5,
            "{}: SQNR {sqnr:.2} measured, {:.2} estimated",
            f.method,
            f.sqnr_db
        );
        let share = clipped as f64 / values.len() as f64;
        assert!(
            (share - f.clipped).abs() < 2e-4,
            "{}: clipped {share} measured, {} estimated",
            f.method,
            f.clipped
        );
    }
    let minmax = &found.methods[0];
    assert_eq!(minmax.clipped, 0.0);
    let percentile = found
        .methods
        .iter()
        .find(|f| f.method.starts_with("percentile"))
        .unwrap();
    assert!(percentile.range.1 < minmax.range.1);

    // Pinned: the inspector shows it, and the quantized model's Q/DQ uses exactly it.
    let pin = (0.0f32, hi / 2.0);
    let pinned = QuantConfig {
        pinned_ranges: [(tensor.clone(), pin)].into_iter().collect(),
        ..config
    };
    let shown = inspect::inspect(&float, &pinned, &data, &tensor, &Progress::new()).unwrap();
    let p = shown.pinned.unwrap();
    assert_eq!(p.range, pin);
    assert!(p.clipped > 0.0);
    let (q, _) = quant::quantize(&float, &pinned, Some(&data), &Progress::new()).unwrap();
    let g = onnx::graph(&q);
    let index = GraphIndex::new(g);
    let (scale, zero) = activation_qparams(g, &index, &tensor);
    let want = math::qparams(pin.0, pin.1, QType::Uint8, false);
    assert_eq!((scale, zero), (want.scale, want.zero_point));
    let wrong = QuantConfig {
        pinned_ranges: [("no-such-tensor".to_string(), pin)].into_iter().collect(),
        ..Default::default()
    };
    let e = quant::quantize(&float, &wrong, Some(&data), &Progress::new()).unwrap_err();
    assert!(format!("{e:#}").contains("'no-such-tensor' is not an activation"));
}

/// 16-bit activations (ONNX Runtime, opset 21): on MNIST every activation on 16 bits brings
/// the output closer to float than 8 bits (far closer on CPUs without VNNI), and the file is valid ONNX with 16-bit zero
/// points; one tensor alone on 16 bits changes only that tensor's Q/DQ.
#[test]
fn int16_activations_run_in_onnx_runtime_and_cut_the_error() {
    let float = read(&mnist_model());
    let data = Dataset::open(&mnist_data()).unwrap();
    let ort = Backend::Ort(Default::default());
    let outputs = |m: &pb::ModelProto| {
        let runner = load(ort, m, &data);
        let inputs = quantbench::tensor::model_inputs(m).unwrap();
        data.indices(Purpose::Evaluation)
            .unwrap()
            .take(100)
            .map(|i| runner.run(&data.bound(i, &inputs).unwrap().inputs).unwrap()[0].clone())
            .collect::<Vec<_>>()
    };
    let reference = outputs(&float);
    let quantize = |int16_activations: Vec<String>| {
        let config = QuantConfig {
            samples: 64,
            // Per-channel weights, so that the activations' error is what is left.
            per_channel: true,
            int16_activations,
            ..Default::default()
        };
        quant::quantize(&float, &config, Some(&data), &Progress::new())
            .unwrap()
            .0
    };
    let narrow = quantize(vec![]);
    let wide = quantize(vec!["*".into()]);
    assert_eq!(onnx::default_opset(&wide), 21);
    let g = onnx::graph(&wide);
    let sixteen = [
        pb::tensor_proto::DataType::Int16 as i32,
        pb::tensor_proto::DataType::Uint16 as i32,
    ];
    // The zero points of the activations' QuantizeLinear nodes.
    let activation_zero_points = |g: &pb::GraphProto| -> Vec<i32> {
        let index = GraphIndex::new(g);
        g.node
            .iter()
            .filter(|n| n.op_type == "QuantizeLinear")
            .map(|n| g.initializer[index.initializers[&n.input[2]]].data_type)
            .collect()
    };
    let zero_points = activation_zero_points(g);
    assert!(!zero_points.is_empty());
    assert!(zero_points.iter().all(|t| sixteen.contains(t)));
    let (s8, s16) = (
        sqnr(&reference, &outputs(&narrow)),
        sqnr(&reference, &outputs(&wide)),
    );
    // Without VNNI, ONNX Runtime's default u8s8 kernels saturate 16-bit sums and 16-bit
    // activations (run in float) escape that: far closer. With VNNI the 8-bit kernels are
    // exact and what 16 bits remove is the activations' own rounding, a smaller share here.
    let margin = if quantbench::host::detect().has_vnni() {
        0.3
    } else {
        5.0
    };
    assert!(s16 > s8 + margin, "8-bit {s8:.2} dB, 16-bit {s16:.2} dB");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.onnx");
    onnx::write_model(&path, &wide, onnx::SINGLE_FILE_LIMIT).unwrap();
    assert_eq!(onnx_checker_failures(&[path]), Vec::<String>::new());

    let one = quantize(vec!["Input3".into()]);
    let g = onnx::graph(&one);
    let index = GraphIndex::new(g);
    let dtype = |name: &str| g.initializer[index.initializers[name]].data_type;
    assert!(sixteen.contains(&dtype("Input3_zero_point")));
    let eight = activation_zero_points(g)
        .iter()
        .filter(|t| !sixteen.contains(t))
        .count();
    assert!(eight > 0, "the other activations stay 8-bit");
}

/// Conv → HardSwish → Conv and Conv → HardSigmoid → Conv, 1×1 convolutions on one channel: the
/// first Conv's output spans far below where the activation still changes.
fn saturating_chain(activation: &str, attributes: Vec<pb::AttributeProto>) -> pb::ModelProto {
    let mut act = onnx::node(activation, "act", &["a"], &["h"]);
    act.attribute = attributes;
    model(
        vec![
            onnx::node("Conv", "c1", &["x", "w1", "b1"], &["a"]),
            act,
            onnx::node("Conv", "c2", &["h", "w2"], &["y"]),
        ],
        vec![
            onnx::f32_tensor("w1", &[1, 1, 1, 1], &[10.0]),
            onnx::f32_tensor("b1", &[1], &[-6.0]),
            onnx::f32_tensor("w2", &[1, 1, 1, 1], &[0.5]),
        ],
        &[1, 1, 8, 8],
    )
}

/// A tensor read only by a HardSwish (flat below −3) or a HardSigmoid (flat outside its linear
/// part) is calibrated on the interval where the activation still changes: the grid's ends sit
/// at the activation's edges, not at the observed extremes, and the model's output error is
/// that of the finer grid.
#[test]
fn a_tensor_before_a_saturating_activation_is_calibrated_where_the_activation_changes() {
    let progress = Progress::new();
    let hard_sigmoid = vec![
        pb::AttributeProto {
            name: "alpha".into(),
            f: 0.25,
            r#type: pb::attribute_proto::AttributeType::Float as i32,
            ..Default::default()
        },
        pb::AttributeProto {
            name: "beta".into(),
            f: 0.5,
            r#type: pb::attribute_proto::AttributeType::Float as i32,
            ..Default::default()
        },
    ];
    // HardSwish: live from −3 up; HardSigmoid(0.25, 0.5): live on [−2, 2].
    for (activation, attributes, (live_lo, live_hi)) in [
        ("HardSwish", vec![], (-3.0f32, f32::INFINITY)),
        ("HardSigmoid", hard_sigmoid, (-2.0, 2.0)),
    ] {
        let float = saturating_chain(activation, attributes);
        let data = synthetic(&float);
        let config = QuantConfig::default();
        let (q, _) = quant::quantize(&float, &config, Some(&data), &progress).unwrap();
        let g = onnx::graph(&q);
        let index = GraphIndex::new(g);
        let (scale, zero) = activation_qparams(g, &index, "a");
        let (grid_lo, grid_hi) = (-zero as f32 * scale, (255 - zero) as f32 * scale);
        // The observed output of c1: 10·x − 6 over the synthetic inputs.
        let inputs = quantbench::tensor::model_inputs(&float).unwrap();
        let (mut seen_lo, mut seen_hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for i in data.indices(Purpose::Calibration).unwrap() {
            for v in data.bound(i, &inputs).unwrap().inputs[0].data.to_f32() {
                seen_lo = seen_lo.min(10.0 * v - 6.0);
                seen_hi = seen_hi.max(10.0 * v - 6.0);
            }
        }
        assert!(
            seen_lo < live_lo - 1.0,
            "{activation}: data reaches {seen_lo}"
        );
        assert!(
            (grid_lo - live_lo).abs() <= scale,
            "{activation}: grid starts at {grid_lo}, the activation changes from {live_lo}"
        );
        let want_hi = seen_hi.min(live_hi);
        assert!(
            (grid_hi - want_hi).abs() <= scale,
            "{activation}: grid ends at {grid_hi}, want {want_hi}"
        );
        // One step of the grid the observed range would have needed, against this one.
        let full_scale = (seen_hi.max(0.0) - seen_lo.min(0.0)) / 255.0;
        assert!(
            scale < 0.8 * full_scale,
            "{activation}: {scale} vs {full_scale}"
        );
        // The model stays accurate: no value beyond the edge is lost.
        let runner = load(Backend::Tract, &q, &data);
        let reference = load(Backend::Tract, &float, &data);
        let x = first_inputs(&float, &data);
        let (yq, yf) = (runner.run(&x).unwrap(), reference.run(&x).unwrap());
        assert!(
            sqnr(&yf, &yq) > 30.0,
            "{activation}: output SQNR {:.2} dB",
            sqnr(&yf, &yq)
        );
    }
}

/// The groups the search keeps float together: the two Conv around a HardSwish are one group
/// (only both float remove the pairs on either side of it), and a layer alone where it has no
/// quantized neighbour beyond.
#[test]
fn layers_that_share_an_activation_through_a_float_op_are_one_group() {
    let float = saturating_chain("HardSwish", vec![]);
    let config = QuantConfig::default();
    let prepared = quant::prepare_float(&float, &config).unwrap().model;
    let types = quant::prepare::model_tensor_types(&prepared);
    let units = quant::rewrite::float_units(onnx::graph(&prepared), &config, &types);
    let pair = vec!["c1".to_string(), "c2".to_string()];
    assert!(units.contains(&pair), "{units:?}");
    assert!(units.contains(&vec!["c1".to_string()]), "{units:?}");
    // Keeping the pair float leaves no activation to quantize; keeping one keeps the other's.
    let quantize_keeping = |keep: &[&str]| {
        let config = QuantConfig {
            keep_float: keep.iter().map(|s| s.to_string()).collect(),
            ..QuantConfig::default()
        };
        let data = synthetic(&float);
        quant::quantize(&float, &config, Some(&data), &Progress::new()).map(|(q, _)| {
            onnx::graph(&q)
                .node
                .iter()
                .filter(|n| n.op_type == "QuantizeLinear")
                .count()
        })
    };
    let both = quantize_keeping(&["c1", "c2"]).unwrap_err();
    assert!(
        format!("{both:#}").contains("no activation to quantize"),
        "{both:#}"
    );
    // All int8: x, a and h quantized; either alone float still leaves a pair (x, or h).
    assert_eq!(quantize_keeping(&[]).unwrap(), 3);
    assert_eq!(quantize_keeping(&["c2"]).unwrap(), 1);
    assert_eq!(quantize_keeping(&["c1"]).unwrap(), 1);
}
