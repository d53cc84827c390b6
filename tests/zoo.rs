//! The test zoo (`tests/zoo/*.onnx`, built by `tests/zoo/make_zoo.py`): small models with the
//! structures real models have — several typed inputs and outputs, attention with a mask,
//! detection heads with NMS, subgraphs, ConvTranspose groups, Gemm variants, recurrent state —
//! each quantized in every mode and checked by ONNX's checker, run by ONNX Runtime and tract,
//! and compared with the float model.

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
                        // tract, which calibrates, has no Loop: the refusal names the node.
                        ("loop", Mode::Int8) => text.contains("node 'loop' uses operator Loop"),
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
            onnx::write_atomic(&out, &onnx::encode_model(&q)).unwrap();
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
        let types = quantbench::quant::prepare::tensor_types(onnx::graph(&float));
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
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("kept float") && n.contains("attention mask")),
        "{:?}",
        report.notes
    );
    let inputs = tensor::model_inputs(&float).unwrap();
    for backend in [Backend::Tract, PLAIN_ORT] {
        let example = data.bound(0, &inputs).unwrap().inputs;
        let c = backend.load(&q, &example, 2).unwrap();
        let r = backend.load(&float, &example, 2).unwrap();
        let report = eval::evaluate(
            c.as_ref(),
            Some(r.as_ref()),
            &inputs,
            &data,
            None,
            None,
            &Progress::new(),
        )
        .unwrap();
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
            Some(8),
            Some("last_hidden_state"),
            &Progress::new(),
        )
        .unwrap();
        assert_eq!(hidden.output, "last_hidden_state");
        assert_eq!(hidden.top1, None);
        assert!(eval::evaluate(
            c.as_ref(),
            None,
            &inputs,
            &data,
            Some(2),
            Some("nope"),
            &Progress::new()
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
    let config = QuantConfig {
        mode: Mode::Int8Dynamic,
        per_channel: true,
        ..Default::default()
    };
    let (q, report) = quant::quantize(&float, &config, None, &Progress::new()).unwrap();
    // q, k, v, o, ff1, ff2 and the classifier: seven MatMuls with constant weights; the two
    // attention MatMuls (activation x activation) stay float.
    assert_eq!(report.counts.weights, 7);
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
            None,
            None,
            &Progress::new(),
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
