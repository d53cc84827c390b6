//! Normalisations and activations spelled out in primitive ops (`tests/zoo/patterns.onnx`
//! and the JAX-style `tests/zoo/jax_block.onnx`, built by `tests/zoo/make_zoo.py`): found as
//! units, kept float inside by default, the compute ops around them still int8.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use quantbench::data::{infer, Dataset};
use quantbench::eval;
use quantbench::jobs::Progress;
use quantbench::onnx::{self, pb};
use quantbench::quant::{self, patterns, QuantConfig};
use quantbench::runtime::Backend;
use quantbench::tensor;

fn zoo(name: &str) -> pb::ModelProto {
    read(&root().join("tests/zoo").join(format!("{name}.onnx")))
}

fn synthetic(model: &pb::ModelProto, samples: usize) -> Dataset {
    let options = infer::Options {
        samples: Some(samples),
        ..Default::default()
    };
    Dataset::open_for(Path::new(infer::SYNTHETIC), model, &options)
        .unwrap()
        .0
}

/// The units of zoo model `name`, on its graph as quantization prepares it.
fn units_of(name: &str) -> Vec<patterns::Unit> {
    let prepared = quant::prepare_float(&zoo(name), &QuantConfig::default())
        .unwrap()
        .model;
    patterns::find_units(onnx::graph(&prepared))
}

/// Every unit of the pattern model, each with the tensor it writes (what the next Dense reads).
#[test]
fn every_spelled_out_unit_is_found_with_its_output() {
    let units = units_of("patterns");
    assert_eq!(
        patterns::summary(&units),
        "1 mean-variance normalisation, 1 RMS normalisation, 2 GELU, 1 softmax, 1 SiLU, 2 HardSwish"
    );
    let outputs: Vec<&str> = units.iter().map(|u| u.output.as_str()).collect();
    assert_eq!(
        outputs,
        [
            "mvn/out",
            "rms/out",
            "erf/out",
            "tanh_gelu/out",
            "silu/out",
            "hs/out",
            "hsig/out",
            "sm/out"
        ]
    );
    let sizes: Vec<usize> = units.iter().map(|u| u.nodes.len()).collect();
    assert_eq!(sizes, [12, 6, 5, 9, 2, 4, 2, 5]);
}

/// The tensors each Q/DQ pair of `model` quantizes.
fn quantized_tensors(model: &pb::ModelProto) -> Vec<String> {
    onnx::graph(model)
        .node
        .iter()
        .filter(|n| n.op_type == "QuantizeLinear")
        .map(|n| n.input[0].clone())
        .collect()
}

/// By default no Q/DQ pair sits inside a unit, and every Dense layer is still int8; with
/// `float_patterns` off, the units' Mul and Add are quantized like any other.
#[test]
fn units_stay_float_inside_while_the_dense_layers_around_them_quantize() {
    let float = zoo("patterns");
    let data = synthetic(&float, 16);
    let inside = [
        "mvn/centered",
        "mvn/normed",
        "rms/normed",
        "erf/erf",
        "erf/add",
        "tanh_gelu/x3",
        "silu/sig",
        "hs/div",
        "sm/exp",
    ];
    let (q, report) = quant::quantize(
        &float,
        &QuantConfig::default(),
        Some(&data),
        &Progress::new(),
    )
    .unwrap();
    let quantized = quantized_tensors(&q);
    for t in inside {
        assert!(!quantized.iter().any(|q| q == t), "{t} was quantized");
    }
    let dense_inputs = ["in/MatMul", "d1/MatMul", "d4/MatMul", "d7/MatMul"];
    for name in dense_inputs {
        let node = onnx::graph(&q)
            .node
            .iter()
            .find(|n| n.name == name)
            .unwrap();
        let producer = onnx::graph(&q)
            .node
            .iter()
            .find(|n| n.output.contains(&node.input[0]))
            .unwrap();
        assert_eq!(producer.op_type, "DequantizeLinear", "{name} reads float");
    }
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("kept float inside: 1 mean-variance")),
        "{:?}",
        report.notes
    );
    let everything = QuantConfig {
        float_patterns: false,
        ..Default::default()
    };
    let (q, _) = quant::quantize(&float, &everything, Some(&data), &Progress::new()).unwrap();
    let quantized = quantized_tensors(&q);
    assert!(quantized.iter().any(|q| q == "mvn/normed"), "{quantized:?}");
}

/// Output SQNR of `config` on the JAX-style block against float, on tract.
fn jax_block_sqnr(config: &QuantConfig) -> f64 {
    let float = zoo("jax_block");
    let data = synthetic(&float, 64);
    let (q, _) = quant::quantize(&float, config, Some(&data), &Progress::new()).unwrap();
    let inputs = tensor::model_inputs(&float).unwrap();
    let (reference, candidate) = (
        load(Backend::Tract, &float, &data),
        load(Backend::Tract, &q, &data),
    );
    eval::evaluate(
        candidate.as_ref(),
        Some(reference.as_ref()),
        &inputs,
        &data,
        quantbench::data::Selection::default(),
        None,
        &Progress::new(),
        None,
    )
    .unwrap()
    .sqnr_db
    .unwrap()
}

/// The byte-level classifier as JAX exports it (decomposed LayerNorms and softmax, outlier
/// embedding dimensions): the defaults keep the normalisations float and gain several dB over
/// quantizing every Add and Mul in them.
#[test]
fn the_jax_style_block_gains_from_float_normalisations() {
    let units = units_of("jax_block");
    assert_eq!(
        patterns::summary(&units),
        "3 mean-variance normalisation, 1 GELU, 1 softmax"
    );
    // The mean pooling and Tanh after the last LayerNorm only read it: not part of it.
    assert_eq!(units.last().unwrap().output, "jax2tf_classify_/ln_f/out");
    let default = jax_block_sqnr(&QuantConfig::default());
    let everything = jax_block_sqnr(&QuantConfig {
        float_patterns: false,
        ..Default::default()
    });
    assert!(
        default >= everything + 4.0,
        "default {default:.1} dB, every Add and Mul quantized {everything:.1} dB"
    );
}
