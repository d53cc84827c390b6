//! Bad input, one test each, through the `quantbench` binary: what the user sees is one
//! `error:` line that names the file and the problem (never a panic), and nothing is lost: an
//! earlier `out.onnx` is left byte for byte, no partial or temporary file appears, nothing is
//! printed to stdout. Sessions, which the window opens, are read through the engine.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use prost::Message;
use quantbench::onnx::{self, pb};

/// A folder holding an earlier result (`out.onnx`) that a failed command must leave alone.
struct Bad {
    dir: tempfile::TempDir,
}

const EARLIER: &[u8] = b"an earlier result that must survive a failed command";

impl Bad {
    fn new() -> Self {
        let bad = Bad {
            dir: tempfile::tempdir().unwrap(),
        };
        bad.write("out.onnx", EARLIER);
        bad
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        self.path(name)
    }

    /// A dataset description over a CSV written here, two calibration rows.
    fn csv_dataset(&self, name: &str, csv: &str) -> String {
        let csv_path = self.write(&format!("{name}.csv"), csv.as_bytes());
        let desc = format!(
            "(source: Csv(path: \"{csv_path}\", image: (channels: 1, height: 28, width: 28), label_column: Some(Last), header: false), calibration: (start: 0, count: Some(2)), evaluation: (start: 0, count: None))"
        );
        self.write(&format!("{name}.ron"), desc.as_bytes())
    }

    fn files(&self) -> Vec<std::ffi::OsString> {
        let mut f: Vec<_> = walk(self.dir.path());
        f.sort();
        f
    }

    /// Runs `args`; asserts failure with one error line naming `names` and saying `problem`,
    /// nothing on stdout, no file added or changed.
    fn expect(&self, args: &[&str], names: &str, problem: &str) {
        let before = self.files();
        let out = run(args, self.dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "a panic: {stderr}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("data: ") && !l.starts_with("note: "))
            .collect();
        assert_eq!(errors.len(), 1, "not one error line: {stderr}");
        assert!(errors[0].starts_with("error: "), "{stderr}");
        assert!(errors[0].contains(names), "{stderr} does not name {names}");
        assert!(
            errors[0].contains(problem),
            "{stderr} does not say '{problem}'"
        );
        report(errors[0], self.dir.path());
        assert!(out.stdout.is_empty(), "printed to stdout on failure");
        assert_eq!(before, self.files(), "files were added or removed");
        assert_eq!(
            std::fs::read(self.dir.path().join("out.onnx")).unwrap(),
            EARLIER,
            "the earlier result changed"
        );
    }

    /// `quantize ARGS --out out.onnx`, expected to fail.
    fn quantize(&self, args: &[&str], names: &str, problem: &str) {
        let out = self.path("out.onnx");
        let mut full = vec!["quantize"];
        full.extend_from_slice(args);
        if !args.contains(&"--out") {
            full.extend(["--out", &out]);
        }
        self.expect(&full, names, problem);
    }

    /// The MNIST model edited by `edit`, written as `name`.
    fn model(&self, name: &str, edit: impl FnOnce(&mut pb::ModelProto)) -> String {
        let mut model = onnx::decode_model(&std::fs::read(mnist_model()).unwrap()).unwrap();
        edit(&mut model);
        self.write(name, &model.encode_to_vec())
    }
}

/// With `BAD_INPUT_REPORT=FILE`, each test appends its name and the error line the user saw
/// (temporary folder as `DIR`): the table in the closing notes and README comes from it.
fn report(error: &str, dir: &std::path::Path) {
    let Some(file) = std::env::var_os("BAD_INPUT_REPORT") else {
        return;
    };
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let line = error.replace(&dir.display().to_string(), "DIR");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    std::io::Write::write_all(&mut f, format!("{test}\t{line}\n").as_bytes()).unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().into_os_string());
        }
    }
    out
}

fn graph(m: &mut pb::ModelProto) -> &mut pb::GraphProto {
    m.graph.as_mut().unwrap()
}

fn node<'a>(m: &'a mut pb::ModelProto, name: &str) -> &'a mut pb::NodeProto {
    graph(m).node.iter_mut().find(|n| n.name == name).unwrap()
}

fn init<'a>(m: &'a mut pb::ModelProto, name: &str) -> &'a mut pb::TensorProto {
    graph(m)
        .initializer
        .iter_mut()
        .find(|t| t.name == name)
        .unwrap()
}

fn s(p: std::path::PathBuf) -> String {
    p.to_str().unwrap().to_string()
}

fn external(t: &mut pb::TensorProto, location: &str, length: Option<usize>) {
    let bytes = t.raw_data.len().max(t.float_data.len() * 4);
    t.raw_data.clear();
    t.float_data.clear();
    t.data_location = Some(pb::tensor_proto::DataLocation::External as i32);
    t.external_data = vec![pb::StringStringEntryProto {
        key: "location".into(),
        value: location.into(),
    }];
    t.external_data.push(pb::StringStringEntryProto {
        key: "length".into(),
        value: length.unwrap_or(bytes).to_string(),
    });
}

// ---- Models ----

#[test]
fn model_text_file() {
    let bad = Bad::new();
    let f = bad.write("text.onnx", b"this is not a model\n");
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "text.onnx",
        "truncated or not ONNX",
    );
}

#[test]
fn model_truncated() {
    let bad = Bad::new();
    let bytes = std::fs::read(mnist_model()).unwrap();
    let f = bad.write("half.onnx", &bytes[..bytes.len() / 2]);
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "half.onnx",
        "truncated or not ONNX",
    );
}

#[test]
fn model_empty_file() {
    let bad = Bad::new();
    let f = bad.write("empty.onnx", b"");
    bad.quantize(&[&f, "--mode", "fp16"], "empty.onnx", "the file is empty");
}

#[test]
fn model_missing() {
    let bad = Bad::new();
    let f = bad.path("missing.onnx");
    bad.quantize(&[&f, "--mode", "fp16"], "missing.onnx", "cannot read");
}

#[test]
fn model_without_a_graph() {
    let bad = Bad::new();
    let f = bad.model("nograph.onnx", |m| m.graph = None);
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "nograph.onnx",
        "the file holds no graph",
    );
}

#[test]
fn model_without_nodes() {
    let bad = Bad::new();
    let f = bad.model("nonodes.onnx", |m| graph(m).node.clear());
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "nonodes.onnx",
        "the graph has no nodes",
    );
}

#[test]
fn model_without_an_opset() {
    let bad = Bad::new();
    let f = bad.model("noopset.onnx", |m| m.opset_import.clear());
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "noopset.onnx",
        "missing ir_version or opset_import",
    );
}

#[test]
fn model_with_an_operator_tract_does_not_know() {
    let bad = Bad::new();
    let f = bad.model("fancy.onnx", |m| {
        node(m, "ReLU32").op_type = "FancyRelu".into()
    });
    let d = s(mnist_data());
    bad.quantize(
        &[&f, "--data", &d],
        "fancy.onnx",
        "node 'ReLU32' uses operator FancyRelu",
    );
}

#[test]
fn model_node_reads_a_tensor_nothing_provides() {
    let bad = Bad::new();
    let f = bad.model("ghost.onnx", |m| {
        node(m, "ReLU32").input[0] = "ghost".into()
    });
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "ghost.onnx",
        "node 'ReLU32' (Relu) reads 'ghost', which no graph input, initializer or node provides",
    );
}

#[test]
fn model_initializer_shorter_than_its_dimensions() {
    let bad = Bad::new();
    let f = bad.model("short.onnx", |m| {
        let w = init(m, "Parameter5");
        w.dims = vec![8, 1, 5, 6];
    });
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "short.onnx",
        "initializer 'Parameter5' holds 200 values, but its dimensions [8, 1, 5, 6] need 240",
    );
}

#[test]
fn model_negative_dimension() {
    let bad = Bad::new();
    let f = bad.model("negative.onnx", |m| {
        init(m, "Parameter6").dims = vec![-8, 1, 1]
    });
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "negative.onnx",
        "initializer 'Parameter6' has a negative dimension (-8)",
    );
}

#[test]
fn model_dimensions_beyond_any_machine() {
    let bad = Bad::new();
    let f = bad.model("huge.onnx", |m| {
        init(m, "Parameter6").dims = vec![1 << 30, 1 << 30, 1 << 30];
    });
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "huge.onnx",
        "more elements than any machine holds",
    );
}

#[test]
fn model_conv_with_one_input() {
    let bad = Bad::new();
    let f = bad.model("arity.onnx", |m| node(m, "Convolution28").input.truncate(1));
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "arity.onnx",
        "node 'Convolution28' (Conv) has 1 inputs; Conv takes 2 to 3",
    );
}

#[test]
fn model_node_without_outputs() {
    let bad = Bad::new();
    let f = bad.model("nooutput.onnx", |m| node(m, "Pooling66").output.clear());
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "nooutput.onnx",
        "node 'Pooling66' (MaxPool) has no output",
    );
}

#[test]
fn model_conv_weight_with_a_zero_sized_dimension() {
    let bad = Bad::new();
    let f = bad.model("zero.onnx", |m| {
        *init(m, "Parameter5") = onnx::f32_tensor("Parameter5", &[8, 0, 5, 5], &[]);
    });
    bad.quantize(
        &[&f, "--mode", "int8-weights"],
        "zero.onnx",
        "weight 'Parameter5' has a zero-sized dimension [8, 0, 5, 5]",
    );
}

#[test]
fn model_conv_weight_of_rank_one() {
    let bad = Bad::new();
    let f = bad.model("rank1.onnx", |m| {
        *init(m, "Parameter5") = onnx::f32_tensor("Parameter5", &[200], &[0.5; 200]);
    });
    bad.quantize(
        &[&f, "--mode", "int8-weights"],
        "rank1.onnx",
        "weight 'Parameter5' has rank 1 ([200]); Conv needs at least 3",
    );
}

#[test]
fn model_nan_weights() {
    let bad = Bad::new();
    let f = bad.model("nan_weights.onnx", |m| {
        let w = init(m, "Parameter5");
        let mut values = onnx::tensor_to_f32(w).unwrap();
        values[3] = f32::NAN;
        *w = onnx::f32_tensor("Parameter5", &w.dims.clone(), &values);
    });
    for mode in ["int8-weights", "fp16", "int4-weights"] {
        bad.quantize(
            &[&f, "--mode", mode],
            "nan_weights.onnx",
            "weight 'Parameter5' holds NaN",
        );
    }
}

#[test]
fn model_external_data_outside_its_folder() {
    let bad = Bad::new();
    bad.write("secret.bin", &[0u8; 800]);
    let f = bad.model("models/escape.onnx", |m| {
        external(init(m, "Parameter5"), "../secret.bin", None)
    });
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "escape.onnx",
        "outside the model's folder",
    );
}

#[test]
fn model_external_data_at_an_absolute_path() {
    let bad = Bad::new();
    let f = bad.model("absolute.onnx", |m| {
        external(init(m, "Parameter5"), "/etc/passwd", None)
    });
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "absolute.onnx",
        "'/etc/passwd' is an absolute path; external data must lie beside the model",
    );
}

#[test]
fn model_external_data_file_missing() {
    let bad = Bad::new();
    let f = bad.model("nodata.onnx", |m| {
        external(init(m, "Parameter5"), "weights.bin", None)
    });
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "nodata.onnx",
        "'weights.bin': cannot open the external data file",
    );
}

#[test]
fn model_external_data_shorter_than_the_tensor() {
    let bad = Bad::new();
    bad.write("weights.bin", &[0u8; 100]);
    let f = bad.model("shortdata.onnx", |m| {
        external(init(m, "Parameter5"), "weights.bin", Some(800))
    });
    bad.quantize(
        &[&f, "--mode", "fp16"],
        "shortdata.onnx",
        "tensor 'Parameter5': bytes 0..800 of 'weights.bin', which holds 100",
    );
}

#[test]
fn model_subgraph_reads_a_tensor_nothing_provides() {
    let bad = Bad::new();
    let zoo = root().join("tests/zoo/if_branch.onnx");
    let mut model = onnx::read_model(&zoo).unwrap();
    let iff = graph(&mut model)
        .node
        .iter_mut()
        .find(|n| n.op_type == "If")
        .unwrap();
    let branch = iff.attribute[0].g.as_mut().unwrap();
    branch.node[0].input[0] = "ghost".into();
    let f = bad.write("if.onnx", &model.encode_to_vec());
    bad.quantize(&[&f, "--mode", "fp16"], "if.onnx", "reads 'ghost'");
}

// ---- Data ----

#[test]
fn data_that_does_not_fit_the_model() {
    let bad = Bad::new();
    let (r, d) = (s(rapid_model()), s(mnist_data()));
    bad.quantize(
        &[&r, "--data", &d],
        "dataset.ron",
        "but the model input 'x' expects [DynamicDimension.0, 3, 224, 224]",
    );
}

#[test]
fn data_empty_csv() {
    let bad = Bad::new();
    let m = s(mnist_model());
    let empty = bad.csv_dataset("empty", "");
    bad.quantize(&[&m, "--data", &empty], "empty.ron", "the dataset is empty");
}

#[test]
fn data_csv_row_of_the_wrong_length() {
    let bad = Bad::new();
    let m = s(mnist_model());
    let short = bad.csv_dataset("short", &format!("{}\n1,2,3\n", vec!["0"; 785].join(",")));
    bad.quantize(
        &[&m, "--data", &short],
        "short.csv",
        "line 2 has 3 columns, expected 785",
    );
}

#[test]
fn data_nan_sample() {
    let bad = Bad::new();
    let m = s(mnist_model());
    let row = |first: &str| format!("{first},{},7", vec!["0"; 783].join(","));
    let nan = bad.csv_dataset("nan", &format!("{}\n{}\n", row("0"), row("nan")));
    bad.quantize(
        &[&m, "--data", &nan],
        "nan.ron",
        "sample 1 holds a non-finite value",
    );
}

#[test]
fn data_infinite_sample() {
    let bad = Bad::new();
    let m = s(mnist_model());
    let row = format!("inf,{},7", vec!["0"; 783].join(","));
    let inf = bad.csv_dataset("inf", &format!("{row}\n"));
    bad.quantize(&[&m, "--data", &inf], "inf.ron", "non-finite");
}

#[test]
fn data_label_column_out_of_range() {
    let bad = Bad::new();
    let m = s(mnist_model());
    let csv = bad.write(
        "rows.csv",
        format!("{}\n", vec!["0"; 785].join(",")).as_bytes(),
    );
    bad.expect(
        &["eval", &m, "--data", &csv, "--label-column", "900"],
        "rows.csv",
        "label column 900",
    );
}

#[test]
fn data_npy_with_a_malformed_header() {
    let bad = Bad::new();
    let m = s(mnist_model());
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&200u16.to_le_bytes());
    npy.extend_from_slice(b"{'descr': '<f4', 'shape': (1, 1, 28, 28) }");
    let f = bad.write("bad.npy", &npy);
    bad.expect(&["eval", &m, "--data", &f], "bad.npy", "truncated header");
}

#[test]
fn data_npz_that_is_not_a_zip() {
    let bad = Bad::new();
    let m = s(mnist_model());
    let f = bad.write("arrays.npz", b"PK\x03\x04 truncated");
    bad.expect(
        &["eval", &m, "--data", &f],
        "arrays.npz",
        "not a readable .npz archive",
    );
}

#[test]
fn data_description_with_a_syntax_error() {
    let bad = Bad::new();
    let m = s(mnist_model());
    let f = bad.write("d.ron", b"(source: Csv(path: \"x.csv\",, )");
    bad.expect(
        &["eval", &m, "--data", &f],
        "d.ron",
        "invalid dataset description: 1:",
    );
}

#[test]
fn data_description_naming_a_missing_file() {
    let bad = Bad::new();
    let m = s(mnist_model());
    let f = bad.write(
        "d.ron",
        b"(source: Csv(path: \"gone.csv\", image: (channels: 1, height: 28, width: 28), label_column: None, header: false))",
    );
    bad.expect(&["eval", &m, "--data", &f], "gone.csv", "cannot");
}

#[test]
fn data_mean_of_the_wrong_length() {
    let bad = Bad::new();
    let (r, photos) = (s(rapid_model()), s(root().join("sample_data/photos")));
    bad.expect(
        &["eval", &r, "--data", &photos, "--mean", "0.5,0.5"],
        "photos",
        "mean",
    );
}

#[test]
fn data_synthetic_input_too_large_for_the_machine() {
    let bad = Bad::new();
    let m = s(mnist_model());
    let f = bad.write(
        "synthetic.ron",
        b"(source: Synthetic(inputs: [(name: \"Input3\", elem: F32, shape: [1, 1, 4000000, 4000000], low: 0.0, high: 1.0)], count: 2))",
    );
    bad.expect(
        &["eval", &m, "--data", &f],
        "synthetic.ron",
        "of memory; this machine has",
    );
}

#[test]
fn data_folder_with_a_corrupt_image() {
    let bad = Bad::new();
    let r = s(rapid_model());
    std::fs::create_dir_all(bad.dir.path().join("photos")).unwrap();
    let png = std::fs::read(root().join("sample_data/photos/coffee.png")).unwrap();
    bad.write("photos/coffee.png", &png[..png.len() / 3]);
    let photos = bad.path("photos");
    bad.quantize(
        &[&r, "--data", &photos],
        "coffee.png",
        "cannot decode image: unexpected end of file",
    );
}

// ---- Settings ----

#[test]
fn settings_percentile_out_of_range() {
    let bad = Bad::new();
    let (m, d) = (s(mnist_model()), s(mnist_data()));
    bad.quantize(
        &[&m, "--data", &d, "--calibration", "percentile=20"],
        "",
        "calibration: percentile must be in (50, 100]",
    );
}

#[test]
fn settings_keep_float_names_nothing_in_the_model() {
    let bad = Bad::new();
    let (m, d) = (s(mnist_model()), s(mnist_data()));
    bad.quantize(
        &[&m, "--data", &d, "--keep-float", "NoSuchNode"],
        "model.onnx",
        "keep_float: 'NoSuchNode' is neither a node name nor an op type",
    );
}

#[test]
fn settings_int8_without_data() {
    let bad = Bad::new();
    let m = s(mnist_model());
    bad.quantize(&[&m], "", "int8 needs calibration data");
}

#[test]
fn settings_opset_too_old_for_the_features() {
    let bad = Bad::new();
    let (m, d) = (s(mnist_model()), s(mnist_data()));
    bad.quantize(
        &[&m, "--data", &d, "--per-channel", "--opset", "10"],
        "model.onnx",
        "opset: 10 is too old for these settings",
    );
}

#[test]
fn settings_config_file_with_a_syntax_error() {
    let bad = Bad::new();
    let m = s(mnist_model());
    let c = bad.write("config.ron", b"(mode: Int8,\n samples: many)");
    bad.quantize(&[&m, "--config", &c], "config.ron", "2:");
}

#[test]
fn settings_output_in_a_missing_directory() {
    let bad = Bad::new();
    let m = s(mnist_model());
    let out = bad.path("no/such/dir/q.onnx");
    bad.quantize(
        &[&m, "--mode", "fp16", "--out", &out],
        "no/such/dir/q.onnx",
        "does not exist",
    );
}

#[test]
fn settings_benchmark_shape_that_does_not_fit() {
    let bad = Bad::new();
    let m = s(mnist_model());
    bad.expect(
        &["bench", &m, "--shape", "1,3,28,28", "--runs", "2"],
        "model.onnx",
        "--shape [1, 3, 28, 28] does not fit input 'Input3' [1, 1, 28, 28]",
    );
}

#[test]
fn settings_benchmark_without_runs() {
    let bad = Bad::new();
    let m = s(mnist_model());
    bad.expect(
        &["bench", &m, "--runs", "0"],
        "model.onnx",
        "runs: at least one run is needed",
    );
}

// ---- Sessions (read by the window; the engine's message is what it shows) ----

fn saved_session(dir: &std::path::Path) -> std::path::PathBuf {
    let mut s = quantbench::session::Session::new(
        quantbench::session::ModelRef::of_file(&mnist_model()).unwrap(),
        None,
    );
    for e in quantbench::session::standard_preset(10, &quantbench::host::detect()) {
        s.add(e);
    }
    let path = dir.join("s.ron");
    s.save(&path).unwrap();
    path
}

fn session_error(path: &std::path::Path) -> String {
    let e = quantbench::session::Session::load(path).expect_err("refused");
    let e = format!("{e:#}");
    report(&e, path.parent().unwrap());
    e
}

#[test]
fn session_truncated_says_where_and_keeps_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_session(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    let e = session_error(&path);
    assert!(
        e.starts_with(&format!(
            "{}: not a quantbench session (a copy is kept as",
            path.display()
        )),
        "{e}"
    );
    let at = e.rsplit(": at ").next().unwrap();
    let (line, _) = at.split_once(':').unwrap();
    assert!(line.parse::<usize>().unwrap() > 1, "{e}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("s.corrupt-1.ron")).unwrap(),
        text[..text.len() / 2]
    );
    // The same bytes again: the same copy, not another.
    let _ = session_error(&path);
    assert!(!dir.path().join("s.corrupt-2.ron").exists());
}

#[test]
fn session_from_a_newer_quantbench() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_session(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    let future = text.replacen(
        &format!("format: {},", quantbench::session::SESSION_FORMAT),
        "format: 99,",
        1,
    );
    std::fs::write(&path, future).unwrap();
    let e = session_error(&path);
    assert!(e.contains("in session format 99; this quantbench"), "{e}");
}

#[test]
fn session_that_is_not_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.ron");
    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x81]).unwrap();
    let e = session_error(&path);
    assert!(
        e.contains("s.ron: not a quantbench session") && e.contains("not UTF-8"),
        "{e}"
    );
}

#[test]
fn session_from_format_one_with_paths_relative_to_where_it_ran() {
    // Format 1 wrote paths as given (relative to the directory quantbench ran in): they still
    // resolve, beside the session first.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(mnist_model(), dir.path().join("model.onnx")).unwrap();
    // Written as format 1 wrote it (not through `save`, which makes paths portable): where
    // the checkout lies must not change what the file holds.
    let mut old = quantbench::session::Session::new(
        quantbench::session::ModelRef::of_file(&mnist_model()).unwrap(),
        None,
    );
    old.model.path = "model.onnx".into();
    old.format = 1;
    let path = dir.path().join("s.ron");
    std::fs::write(&path, old.to_ron().unwrap()).unwrap();
    let session = quantbench::session::Session::load(&path).unwrap();
    assert_eq!(session.model_file(), dir.path().join("model.onnx"));
}
