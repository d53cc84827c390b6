//! The test zoo (`tests/zoo/*.onnx`, built by `tests/zoo/make_zoo.py`): small models with the
//! structures real models have — several typed inputs and outputs, attention with a mask,
//! detection heads with NMS, subgraphs, ConvTranspose groups, Gemm variants, recurrent state —
//! each quantized in every mode and checked by ONNX's checker, run by ONNX Runtime and tract,
//! and compared with the float model.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use quantbench::data::{infer, Dataset, Purpose};
use quantbench::eval;
use quantbench::jobs::Progress;
use quantbench::onnx::{self, pb};
use quantbench::quant::{self, Mode, QuantConfig};
use quantbench::runtime::ort::{OptLevel, OrtOptions};
use quantbench::runtime::{Backend, TractModel};
use quantbench::tensor;

const PLAIN_ORT: Backend = Backend::Ort(OrtOptions {
    optimization: OptLevel::Disabled,
    x64_quant_precision: false,
});

fn zoo(name: &str) -> PathBuf {
    root().join("tests/zoo").join(format!("{name}.onnx"))
}

fn zoo_models() -> Vec<PathBuf> {
    let mut models: Vec<PathBuf> = std::fs::read_dir(root().join("tests/zoo"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    models.sort();
    assert!(models.len() >= 11, "the zoo is missing models: {models:?}");
    models
}

fn synthetic(model: &pb::ModelProto, samples: usize) -> Dataset {
    let options = infer::Options {
        samples: Some(samples),
        ..Default::default()
    };
    Dataset::open_for(Path::new(infer::SYNTHETIC), model, &options)
        .expect("synthetic data for the model")
        .0
}

fn modes() -> Vec<QuantConfig> {
    let base = QuantConfig {
        samples: 16,
        ..Default::default()
    };
    vec![
        QuantConfig {
            mode: Mode::Fp16,
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int8Weights,
            per_channel: true,
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int8,
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int8,
            per_channel: true,
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int4Weights,
            per_channel: true,
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int4Weights,
            int4_block_size: Some(16),
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int8Dynamic,
            per_channel: true,
            ..base
        },
    ]
}

/// (name, element type, declared dims) of every real input and every output.
fn interface(model: &pb::ModelProto) -> Vec<(String, i32, String)> {
    let g = onnx::graph(model);
    onnx::real_inputs(g)
        .into_iter()
        .chain(&g.output)
        .map(|v| {
            (
                v.name.clone(),
                onnx::value_elem_type(v),
                format!("{:?}", onnx::value_dims(v)),
            )
        })
        .collect()
}

/// Every mode on every zoo model: a file ONNX's checker accepts, ONNX Runtime runs, with the
/// same inputs and outputs (name, type, shape) as the float model.
#[test]
fn every_mode_on_every_zoo_model_is_a_valid_model_with_the_same_interface() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = vec![];
    let mut failures = vec![];
    for path in zoo_models() {
        let float = read(&path);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let data = synthetic(&float, 8);
        let inputs = tensor::model_inputs(&float).unwrap();
        let feeds = data.bound(0, &inputs).unwrap().inputs;
        for (k, config) in modes().into_iter().enumerate() {
            let label = format!("{name} {}", config.label());
            let q = match quant::quantize(&float, &config, Some(&data), &Progress::new()) {
                Ok((q, _)) => q,
                Err(e) => {
                    // Refusals that name the reason are right where nothing can be done.
                    let text = format!("{e:#}");
                    let expected = match (name.as_str(), config.mode) {
                        // Its only quantizable op sits in a branch.
                        ("if_branch", Mode::Int8) => text.contains("no activation to quantize"),
                        _ => false,
                    };
                    if !expected {
                        failures.push(format!("{label}: quantize failed: {text}"));
                    }
                    continue;
                }
            };
            if interface(&q) != interface(&float) {
                failures.push(format!(
                    "{label}: interface changed: {:?} -> {:?}",
                    interface(&float),
                    interface(&q)
                ));
            }
            let out = dir.path().join(format!("{name}_{k}.onnx"));
            quantbench::fileio::write_atomic(&out, &onnx::encode_model(&q)).unwrap();
            written.push(out);
            match PLAIN_ORT.load(&q, &feeds, 1).and_then(|r| r.run(&feeds)) {
                Ok(outputs) => {
                    if outputs.len() != onnx::graph(&float).output.len() {
                        failures.push(format!("{label}: {} outputs", outputs.len()));
                    }
                }
                Err(e) => failures.push(format!("{label}: ONNX Runtime: {e:#}")),
            }
        }
    }
    failures.extend(onnx_checker_failures(&written));
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Integer and bool tensors never get Q/DQ; NonMaxSuppression's inputs are never quantized;
/// normalisation parameters, Resize scales and shape tensors stay as they are.
#[test]
fn integer_paths_and_parameters_are_never_quantized() {
    for name in ["encoder", "detection_head"] {
        let float = read(&zoo(name));
        let data = synthetic(&float, 8);
        let config = QuantConfig {
            mode: Mode::Int8,
            samples: 8,
            ..Default::default()
        };
        let (q, _) = quant::quantize(&float, &config, Some(&data), &Progress::new()).unwrap();
        let g = onnx::graph(&q);
        let types = quantbench::quant::prepare::model_tensor_types(&float);
        for n in g.node.iter().filter(|n| n.op_type == "QuantizeLinear") {
            let t = &n.input[0];
            let ty = types.get(t).copied().unwrap_or(1);
            assert_eq!(ty, 1, "{name}: '{t}' (type {ty}) got Q/DQ");
        }
        for n in g.node.iter() {
            let guarded: &[usize] = match n.op_type.as_str() {
                "NonMaxSuppression" => &[0, 1, 2, 3, 4],
                "LayerNormalization" => &[1, 2],
                "Resize" => &[1, 2, 3],
                "Reshape" | "Unsqueeze" | "Gather" => &[1],
                _ => &[],
            };
            for &k in guarded {
                let Some(input) = n.input.get(k).filter(|i| !i.is_empty()) else {
                    continue;
                };
                let producer = g.node.iter().find(|p| p.output.contains(input));
                assert!(
                    producer.is_none_or(|p| p.op_type != "DequantizeLinear"),
                    "{name}: input {k} of {} '{}' is dequantized",
                    n.op_type,
                    n.name
                );
            }
        }
    }
}

/// The attention mask (additive −1e4) is kept float with a note, and the int8 encoder stays
/// close to the float one on every output.
#[test]
fn attention_masks_stay_float_and_the_int8_encoder_tracks_float() {
    let float = read(&zoo("encoder"));
    let dir = tempfile::tempdir().unwrap();
    // Half the tokens masked: the mask tensor then really holds -1e4.
    let npz = dir.path().join("tokens.npz");
    python(&format!(
        r#"
import numpy as np
rng = np.random.default_rng(3)
ids = rng.integers(1, 64, size=(40, 8)).astype(np.int64)
mask = np.ones((40, 8), np.int64)
mask[:, 5:] = 0
ids[:, 5:] = 0
np.savez(r"{}", input_ids=ids, attention_mask=mask, label=rng.integers(0, 3, size=40))
"#,
        npz.display()
    ));
    let (data, _) = Dataset::open_for(&npz, &float, &Default::default()).unwrap();
    assert!(data.has_labels());
    let config = QuantConfig {
        mode: Mode::Int8,
        per_channel: true,
        samples: 40,
        ..Default::default()
    };
    let (q, report) = quant::quantize(&float, &config, Some(&data), &Progress::new()).unwrap();
    // The masked scores feed only the float Softmax: no int8 kernel reads them, so the mask's
    // Add stays float (before, calibration dropped it on seeing −1e4, "an attention mask?").
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("elementwise Add/Mul kept float")),
        "{:?}",
        report.notes
    );
    let quantized: Vec<&str> = onnx::graph(&q)
        .node
        .iter()
        .filter(|n| n.op_type == "QuantizeLinear")
        .map(|n| n.input[0].as_str())
        .collect();
    for masked in ["masked", "bias3", "bias"] {
        assert!(!quantized.contains(&masked), "{masked} was quantized");
    }
    let inputs = tensor::model_inputs(&float).unwrap();
    for backend in [Backend::Tract, PLAIN_ORT] {
        let example = data.bound(0, &inputs).unwrap().inputs;
        let c = backend.load(&q, &example, 2).unwrap();
        let r = backend.load(&float, &example, 2).unwrap();
        let report = against_float(c.as_ref(), r.as_ref(), &float, &data);
        assert_eq!(report.output, "logits");
        assert_eq!(report.outputs.len(), 2);
        assert_eq!(report.outputs[1].name, "last_hidden_state");
        for o in &report.outputs {
            assert!(
                o.sqnr_db > 15.0,
                "{backend:?}: output {} at {} dB",
                o.name,
                o.sqnr_db
            );
        }
        // The other output can be the scored one.
        let hidden = eval::evaluate(
            c.as_ref(),
            Some(r.as_ref()),
            &inputs,
            &data,
            quantbench::data::Selection::limit(Some(8)),
            Some("last_hidden_state"),
            &Progress::new(),
            None,
        )
        .unwrap();
        assert_eq!(hidden.output, "last_hidden_state");
        assert_eq!(hidden.top1, None);
        assert!(eval::evaluate(
            c.as_ref(),
            None,
            &inputs,
            &data,
            quantbench::data::Selection::limit(Some(2)),
            Some("nope"),
            &Progress::new(),
            None
        )
        .is_err());
    }
}

/// int8-dynamic (ONNX Runtime's quantize_dynamic form) on the encoder: both runtimes run it and
/// agree with each other, and it tracks the float model on both outputs.
#[test]
fn int8_dynamic_encoder_runs_alike_in_both_runtimes() {
    let float = read(&zoo("encoder"));
    let data = synthetic(&float, 16);
    // 7-bit weights: MatMulInteger is exact in ONNX Runtime on every x86 CPU with them (with
    // 8-bit weights and no VNNI its 16-bit sums saturate: 17.5 dB instead of 34.8 here).
    let config = QuantConfig {
        mode: Mode::Int8Dynamic,
        per_channel: true,
        reduce_range: true,
        ..Default::default()
    };
    let (q, report) = quant::quantize(&float, &config, None, &Progress::new()).unwrap();
    // q, k, v, o, ff1, ff2 and the classifier: seven MatMuls with constant weights (the two
    // attention MatMuls, activation x activation, stay float), and the token embedding table.
    assert_eq!(report.counts.weights, 8);
    let ops: Vec<&str> = onnx::graph(&q)
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .collect();
    assert_eq!(ops.iter().filter(|o| **o == "MatMulInteger").count(), 7);
    assert_eq!(ops.iter().filter(|o| **o == "MatMul").count(), 2);
    let inputs = tensor::model_inputs(&float).unwrap();
    let example = data.bound(0, &inputs).unwrap().inputs;
    let mut sqnr = vec![];
    for backend in [Backend::Tract, PLAIN_ORT] {
        let c = backend.load(&q, &example, 1).unwrap();
        let r = backend.load(&float, &example, 1).unwrap();
        let report = eval::evaluate(
            c.as_ref(),
            Some(r.as_ref()),
            &inputs,
            &data,
            quantbench::data::Selection::default(),
            None,
            &Progress::new(),
            None,
        )
        .unwrap();
        assert!(
            report.outputs.iter().all(|o| o.sqnr_db > 25.0),
            "{backend:?}: {:?}",
            report.outputs
        );
        sqnr.push(report.outputs[1].sqnr_db);
    }
    assert!(
        (sqnr[0] - sqnr[1]).abs() < 0.5,
        "tract {} dB, ONNX Runtime {} dB",
        sqnr[0],
        sqnr[1]
    );
}

/// The same input gives the same output whatever ran before and however many threads: a
/// recurrent model whose state starts from ConstantOfShape, calibrated serially, in parallel,
/// and run sample by sample in two orders.
#[test]
fn recurrent_state_never_leaks_between_runs() {
    let float = read(&zoo("lstm_from_constant_state"));
    let data = synthetic(&float, 12);
    let inputs = tensor::model_inputs(&float).unwrap();
    let feeds: Vec<_> = (0..12)
        .map(|i| data.bound(i, &inputs).unwrap().inputs)
        .collect();
    let model = TractModel::load(&float, &feeds[0], None).unwrap();
    let forward: Vec<_> = feeds.iter().map(|f| model.run(f).unwrap()).collect();
    let mut backward: Vec<_> = feeds.iter().rev().map(|f| model.run(f).unwrap()).collect();
    backward.reverse();
    assert_eq!(forward, backward);
    let fresh = TractModel::load(&float, &feeds[5], None).unwrap();
    assert_eq!(fresh.run(&feeds[5]).unwrap(), forward[5]);
    let config = QuantConfig {
        mode: Mode::Int8,
        samples: 12,
        ..Default::default()
    };
    let in_pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                onnx::encode_model(
                    &quant::quantize(&float, &config, Some(&data), &Progress::new())
                        .unwrap()
                        .0,
                )
            })
    };
    let serial = in_pool(1);
    assert_eq!(serial, in_pool(2));
    assert_eq!(serial, in_pool(1));
    assert_eq!(data.indices(Purpose::Calibration).unwrap().len(), 12);
}

/// BatchNormalization after a grouped ConvTranspose, a Gemm and a 2-D MatMul folds into the
/// layer's weights and bias without changing the output; one after a Relu is left float and
/// named in a note.
#[test]
fn batch_norms_fold_into_the_layer_before_them_exactly() {
    for (name, left) in [
        ("batchnorm_after_gemm", 0),
        ("batchnorm_after_convtranspose_and_matmul", 1),
    ] {
        let float = read(&zoo(name));
        let mut prepared = float.clone();
        let notes = quant::prepare::prepare(&mut prepared, true).unwrap();
        let remaining = onnx::graph(&prepared)
            .node
            .iter()
            .filter(|n| n.op_type == "BatchNormalization")
            .count();
        assert_eq!(remaining, left, "{name}: {notes:?}");
        if left > 0 {
            assert!(
                notes
                    .iter()
                    .any(|n| n.contains("left float") && n.contains("bn_after_relu")),
                "{notes:?}"
            );
        }
        let data = synthetic(&float, 4);
        let inputs = tensor::model_inputs(&float).unwrap();
        for i in 0..4 {
            let feeds = data.bound(i, &inputs).unwrap().inputs;
            let before = TractModel::load(&float, &feeds, None).unwrap();
            let after = TractModel::load(&prepared, &feeds, None).unwrap();
            let (a, b) = (before.run(&feeds).unwrap(), after.run(&feeds).unwrap());
            let err = relative_l2(&a[0], &b[0]);
            assert!(
                err < 1e-5,
                "{name}, sample {i}: folding changed the output by {err}"
            );
        }
    }
}

/// The encoder's token embedding (64 x 32) gets int8 weights with one scale per row; the
/// 16-row position table is too small to be worth it. The int8 model still runs in both
/// runtimes (checked by the every-mode test).
#[test]
fn embedding_tables_get_int8_rows() {
    let float = read(&zoo("encoder"));
    let config = QuantConfig {
        mode: Mode::Int8Weights,
        ..Default::default()
    };
    let (q, report) = quant::quantize(&float, &config, None, &Progress::new()).unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("1 embedding tables")),
        "{:?}",
        report.notes
    );
    let g = onnx::graph(&q);
    let dq = g
        .node
        .iter()
        .find(|n| n.op_type == "DequantizeLinear" && n.input[0] == "tok_emb_quantized")
        .expect("tok_emb is dequantized");
    assert_eq!(onnx::attr_int(dq, "axis"), Some(0));
    let scales = g
        .initializer
        .iter()
        .find(|t| t.name == dq.input[1])
        .unwrap();
    assert_eq!(scales.dims, vec![64]);
    // Row r's scale is max |row r| / 127.
    let table = onnx::graph(&float)
        .initializer
        .iter()
        .find(|t| t.name == "tok_emb")
        .unwrap();
    let rows = onnx::tensor_to_f32(table).unwrap();
    let s = onnx::tensor_to_f32(scales).unwrap();
    for (r, row) in rows.chunks(32).enumerate() {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((s[r] - max / 127.0).abs() <= 1e-7 * max.max(1.0), "row {r}");
    }
    assert!(g.initializer.iter().any(|t| t.name == "pos_emb"));
}

/// Models over the single-file limit are written with their weights in `<name>.<hash>.data`
/// beside them (a small limit stands in for 2 GB here); quantbench, ONNX's checker and ONNX
/// Runtime read them back with the same values. External data outside the model's folder is
/// refused.
#[test]
fn external_data_is_written_beside_the_model_and_read_back() {
    let float = read(&zoo("encoder"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encoder.onnx");
    onnx::write_model(&path, &float, 1 << 10).unwrap();
    let data = onnx::external_data_files(&path).unwrap();
    assert_eq!(data.len(), 1, "{data:?}");
    let data = data[0].clone();
    let name = data.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("encoder.onnx.") && name.ends_with(".data"),
        "{name}"
    );
    assert!(data.is_file());
    assert!(std::fs::metadata(&path).unwrap().len() < 10_000);
    let back = onnx::read_model(&path).unwrap();
    let values = |m: &pb::ModelProto| -> Vec<(String, Vec<f32>)> {
        onnx::graph(m)
            .initializer
            .iter()
            .filter(|t| t.data_type == pb::tensor_proto::DataType::Float as i32)
            .map(|t| (t.name.clone(), onnx::tensor_to_f32(t).unwrap()))
            .collect()
    };
    assert_eq!(values(&back), values(&float));
    python(&format!(
        r#"
import numpy as np, onnx, onnxruntime as ort
onnx.checker.check_model(r"{p}", full_check=True)
m = onnx.load(r"{p}", load_external_data=False)
assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
s = ort.InferenceSession(r"{p}", providers=["CPUExecutionProvider"])
f = ort.InferenceSession(r"{f}", providers=["CPUExecutionProvider"])
feed = {{"input_ids": np.arange(8, dtype=np.int64)[None] % 60 + 1, "attention_mask": np.ones((1, 8), np.int64)}}
for a, b in zip(s.run(None, feed), f.run(None, feed)):
    assert np.array_equal(a, b)
"#,
        p = path.display(),
        f = zoo("encoder").display()
    ));
    // A location that leaves the model's folder, and an absolute one, are refused.
    let inner = dir.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    for location in [format!("../{name}"), data.display().to_string()] {
        let mut model = onnx::read_model(&path).unwrap();
        let g = model.graph.as_mut().unwrap();
        let t = g
            .initializer
            .iter_mut()
            .find(|t| t.name == "tok_emb")
            .unwrap();
        t.raw_data.clear();
        t.data_location = Some(pb::tensor_proto::DataLocation::External as i32);
        t.external_data = vec![pb::StringStringEntryProto {
            key: "location".into(),
            value: location.clone(),
        }];
        let moved = inner.join("m.onnx");
        quantbench::fileio::write_atomic(&moved, &onnx::encode_model(&model)).unwrap();
        let err = format!("{:#}", onnx::read_model(&moved).unwrap_err());
        assert!(
            err.contains("outside the model's folder") || err.contains("absolute path"),
            "{location}: {err}"
        );
        assert!(err.contains("m.onnx"), "{err}");
    }
}

/// The element type quantbench gives every tensor of every zoo model (from tract's inference,
/// with nothing declared in the file beyond inputs and outputs) is the one ONNX's own shape
/// inference gives.
#[test]
fn element_types_agree_with_onnx_shape_inference() {
    for path in zoo_models() {
        let mut float = read(&path);
        onnx::graph_mut(&mut float).value_info.clear();
        let ours = quantbench::quant::prepare::model_tensor_types(&float);
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(format!(
                r#"
import json, onnx
m = onnx.shape_inference.infer_shapes(onnx.load(r"{}"), strict_mode=True)
g = m.graph
print(json.dumps({{v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.output)}}))
"#,
                path.display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reference: std::collections::HashMap<String, i32> =
            serde_json::from_slice(&out.stdout).unwrap();
        let mut checked = 0;
        for (name, ty) in &reference {
            // Tensors inside subgraphs are not the main graph's.
            if let Some(mine) = ours.get(name) {
                assert_eq!(mine, ty, "{}: tensor '{name}'", path.display());
                checked += 1;
            }
        }
        assert!(
            checked * 10 >= reference.len() * 9,
            "{}: {checked} of {}",
            path.display(),
            reference.len()
        );
    }
}

/// tract has no Loop: a model with one is calibrated on ONNX Runtime (its tensors exposed as
/// outputs, no graph optimization), says so, and its int8 file tracks the float model there.
#[test]
fn a_model_tract_cannot_run_is_calibrated_on_onnx_runtime() {
    let float = read(&zoo("loop"));
    let data = synthetic(&float, 16);
    let config = QuantConfig {
        mode: Mode::Int8,
        samples: 16,
        ..Default::default()
    };
    let (q, report) = quant::quantize(&float, &config, Some(&data), &Progress::new()).unwrap();
    let runtime = report.calibration_runtime.unwrap();
    assert!(
        runtime.contains("tract cannot run this model") && runtime.to_lowercase().contains("onnx"),
        "{runtime}"
    );
    assert!(report.counts.activations > 0);
    let example = first_inputs(&float, &data);
    let c = PLAIN_ORT.load(&q, &example, 1).unwrap();
    let r = PLAIN_ORT.load(&float, &example, 1).unwrap();
    let sqnr = against_float(c.as_ref(), r.as_ref(), &float, &data)
        .sqnr_db
        .unwrap();
    assert!(sqnr > 25.0 && sqnr.is_finite(), "{sqnr} dB");
}

/// Evaluates `candidate` against `reference` (the float model's runner) over all of `data`.
fn against_float(
    candidate: &dyn quantbench::runtime::Runner,
    reference: &dyn quantbench::runtime::Runner,
    float: &pb::ModelProto,
    data: &Dataset,
) -> eval::EvalReport {
    let inputs = tensor::model_inputs(float).unwrap();
    eval::evaluate(
        candidate,
        Some(reference),
        &inputs,
        data,
        quantbench::data::Selection::default(),
        None,
        &Progress::new(),
        None,
    )
    .unwrap()
}

/// Runs a Python snippet with the test environment's python3 (numpy installed).
fn python(code: &str) {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(code)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Cross-layer equalization through ReLU6 on the MobileNetV2-style zoo model: each ReLU6
/// between a pair becomes ReLU and a per-channel Min, so the float model computes the same;
/// per-tensor int8 gains what CLE is for, and with full bias correction comes within 2 dB of
/// per-channel.
#[test]
fn equalization_crosses_relu6_without_changing_the_float_model() {
    let float = read(&zoo("relu6_mobilenet"));
    let data = synthetic(&float, 16);
    let cle = QuantConfig {
        per_channel: false,
        cle: true,
        ..Default::default()
    };
    let prepared = quant::prepare_float(&float, &cle).unwrap();
    assert!(
        prepared
            .notes
            .iter()
            .any(|n| n.contains("6 pairs") && n.contains("6 ReLU6")),
        "{:?}",
        prepared.notes
    );
    let example = first_inputs(&float, &data);
    let run = |m: &pb::ModelProto| Backend::Tract.load(m, &example, 1).unwrap();
    let same = against_float(
        run(&prepared.model).as_ref(),
        run(&float).as_ref(),
        &float,
        &data,
    );
    assert!(
        same.sqnr_db.unwrap() > 100.0,
        "float changed: {:?}",
        same.sqnr_db
    );
    let sqnr = |config: &QuantConfig| {
        let (q, _) = quant::quantize(&float, config, Some(&data), &Progress::new()).unwrap();
        against_float(run(&q).as_ref(), run(&float).as_ref(), &float, &data)
            .sqnr_db
            .unwrap()
    };
    let per_tensor = sqnr(&QuantConfig {
        per_channel: false,
        ..Default::default()
    });
    let equalized = sqnr(&cle);
    let corrected = sqnr(&QuantConfig {
        bias_correction: Some(quant::BiasCorrection::Full),
        ..cle.clone()
    });
    let per_channel = sqnr(&QuantConfig::default());
    assert!(
        equalized >= per_tensor + 8.0,
        "{per_tensor:.1} -> {equalized:.1} dB"
    );
    assert!(
        corrected >= per_channel - 2.0,
        "{corrected:.1} against per-channel {per_channel:.1} dB"
    );
}
