//! The quantizer on small arbitrary graphs: up to 10 nodes of the ops the rewrite handles,
//! wired to earlier tensors at random, with weights of arbitrary (often wrong) shapes and
//! attributes, quantized in every mode with activation ranges taken from the input (no model
//! is run). A refusal is fine; a panic is a bug, and so is a quantized model that quantbench's
//! own validation would refuse (an invalid file written).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use quantbench::jobs::Progress;
use quantbench::onnx::{self, pb};
use quantbench::quant::{self, ActivationType, Int4Storage, Mode, QuantConfig, Ranges, Symmetry};

const OPS: [&str; 32] = [
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "Add",
    "Mul",
    "Relu",
    "Clip",
    "Concat",
    "BatchNormalization",
    "MaxPool",
    "GlobalAveragePool",
    "Reshape",
    "Flatten",
    "Transpose",
    "Softmax",
    "Sigmoid",
    "Resize",
    "Split",
    "Gather",
    "LayerNormalization",
    "Sub",
    "Div",
    "Identity",
    "Squeeze",
    "Unsqueeze",
    "Slice",
    "Pad",
    "Sum",
    "HardSwish",
    "AveragePool",
    "Erf",
];

#[derive(Arbitrary, Debug)]
struct Weight {
    dims: Vec<u8>,
    fill: i8,
    /// Integer (shape-like) instead of float.
    int64: bool,
}

#[derive(Arbitrary, Debug)]
struct NodeSpec {
    op: u8,
    /// Indices into the tensors made so far (the graph input, then node outputs).
    inputs: [u8; 3],
    /// Constants given as inputs (weights, biases, shapes, scales) instead of tensors.
    weights: Vec<Weight>,
    attr: i8,
    outputs: u8,
}

#[derive(Arbitrary, Debug)]
struct Spec {
    input_dims: [u8; 4],
    nodes: Vec<NodeSpec>,
    per_channel: bool,
    symmetry: u8,
    activations_int8: bool,
    reduce_range: bool,
    cle: bool,
    block: u8,
    int4_onnx: bool,
    opset: u8,
    ranges: Vec<(i8, i8)>,
    keep_float_first: bool,
}

fn weight(name: &str, w: &Weight) -> pb::TensorProto {
    let dims: Vec<i64> = w.dims.iter().take(5).map(|&d| (d % 6) as i64).collect();
    let n: i64 = dims.iter().product();
    let n = n.clamp(0, 4096) as usize;
    if w.int64 {
        let values: Vec<i64> = (0..n).map(|i| (i as i64 % 5) - 1 + w.fill as i64 % 3).collect();
        onnx::i64_tensor(name, &dims, &values)
    } else {
        let values: Vec<f32> = (0..n)
            .map(|i| ((i as f32) * 0.37 + w.fill as f32).sin() * (1.0 + (w.fill as f32).abs()))
            .collect();
        onnx::f32_tensor(name, &dims, &values)
    }
}

fn graph_of(spec: &Spec) -> pb::ModelProto {
    let dims: Vec<i64> = spec.input_dims.iter().map(|&d| 1 + (d % 4) as i64).collect();
    let input = onnx::float_value_shaped("x", &dims);
    let mut tensors = vec!["x".to_string()];
    let mut nodes = vec![];
    let mut initializers = vec![];
    for (k, n) in spec.nodes.iter().take(10).enumerate() {
        let op = OPS[n.op as usize % OPS.len()];
        let mut inputs: Vec<String> = vec![];
        let arity = match op {
            "Concat" | "Sum" => 1 + (n.inputs[2] % 3) as usize,
            "Add" | "Mul" | "Sub" | "Div" | "MatMul" if n.weights.is_empty() => 2,
            _ => 1,
        };
        for i in 0..arity {
            inputs.push(tensors[n.inputs[i % 3] as usize % tensors.len()].clone());
        }
        for (j, w) in n.weights.iter().take(4).enumerate() {
            let name = format!("w{k}_{j}");
            initializers.push(weight(&name, w));
            inputs.push(name);
        }
        let outputs: Vec<String> = (0..1 + (n.outputs % 3) as usize)
            .map(|o| format!("t{k}_{o}"))
            .collect();
        let input_refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let output_refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
        let mut node = onnx::node(op, &format!("n{k}"), &input_refs, &output_refs);
        let a = n.attr as i64;
        match op {
            "Conv" | "ConvTranspose" if a % 3 == 1 => node.attribute.push(onnx::int_attr("group", 2)),
            "Gemm" => node.attribute.push(onnx::int_attr("transB", a & 1)),
            "Concat" | "Softmax" | "Flatten" | "Split" | "Gather" | "LayerNormalization" => {
                node.attribute.push(onnx::int_attr("axis", a % 4))
            }
            _ => {}
        }
        nodes.push(node);
        tensors.extend(outputs);
    }
    let last = tensors.last().cloned().unwrap_or_else(|| "x".into());
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: [11, 13, 15, 17, 21][spec.opset as usize % 5],
        }],
        graph: Some(pb::GraphProto {
            name: "fuzz".into(),
            node: nodes,
            initializer: initializers,
            input: vec![input],
            output: vec![onnx::float_value(&last)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

static HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|spec: Spec| {
    // As the binary does: panics that quantbench turns into errors are not crashes.
    HOOK.call_once(quantbench::jobs::install_panic_hook);
    let model = graph_of(&spec);
    // `QUANTBENCH_FUZZ_DUMP=m.onnx cargo fuzz run quantize_graph ARTIFACT` writes the graph an
    // input builds (for a regression test).
    if let Ok(path) = std::env::var("QUANTBENCH_FUZZ_DUMP") {
        let _ = std::fs::write(path, onnx::encode_model(&model));
    }
    // What a user's file would go through first.
    let Ok(model) = onnx::decode_model(&onnx::encode_model(&model)) else {
        return;
    };
    let ranges = |t: &str| {
        let k = t.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        let (lo, hi) = spec
            .ranges
            .get(k % spec.ranges.len().max(1))
            .copied()
            .unwrap_or((-3, 5));
        (lo as f32 / 4.0, hi as f32 / 4.0)
    };
    let symmetry = [Symmetry::WeightsOnly, Symmetry::All, Symmetry::None][spec.symmetry as usize % 3];
    for mode in [
        Mode::Fp16,
        Mode::Int8Weights,
        Mode::Int4Weights,
        Mode::Int8Dynamic,
        Mode::Int8,
    ] {
        let config = QuantConfig {
            mode,
            symmetry,
            per_channel: spec.per_channel,
            activations: if spec.activations_int8 {
                ActivationType::Int8
            } else {
                ActivationType::Uint8
            },
            reduce_range: spec.reduce_range,
            cle: spec.cle && mode != Mode::Fp16,
            int4_block_size: (spec.block % 4 == 1).then_some(16 << (spec.block % 3)),
            int4_storage: if spec.int4_onnx {
                Int4Storage::OnnxInt4
            } else {
                Int4Storage::Auto
            },
            keep_float: if spec.keep_float_first {
                vec!["n0".into()]
            } else {
                vec![]
            },
            ..Default::default()
        };
        if config.validate().is_err() {
            continue;
        }
        let given: &dyn Fn(&str) -> (f32, f32) = &ranges;
        if let Ok((q, _)) =
            quant::quantize_with(&model, &config, Some(Ranges::Given(given)), &Progress::new())
        {
            if let Err(e) = onnx::decode_model(&onnx::encode_model(&q)) {
                panic!("{mode:?} wrote a model its own validation refuses: {e:#}");
            }
        }
    }
});
