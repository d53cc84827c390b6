//! `quantbench bench`: latency (batch 1) and throughput of a model on a runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use quantbench::jobs::Progress;
use quantbench::onnx;

use super::args::{open_data, BackendArgs, InferArgs};

#[derive(clap::Args)]
pub struct BenchArgs {
    model: PathBuf,
    #[command(flatten)]
    backend: BackendArgs,
    /// Measure throughput with 1..N concurrent streams, each with its own loaded model.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed runs (default: the profile's).
    #[arg(long)]
    runs: Option<usize>,
    /// Untimed runs before them (default: the profile's).
    #[arg(long)]
    warmup: Option<usize>,
    #[command(flatten)]
    profile: super::args::ProfileArgs,
    /// Feed the first sample of this data (default: synthetic inputs of the model's types).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Input shape where the model leaves dimensions open, e.g. 1,3,224,224 (single-input
    /// models; use --data for others).
    #[arg(long, value_delimiter = ',')]
    shape: Option<Vec<usize>>,
    #[command(flatten)]
    infer: InferArgs,
    /// The float model: also benchmarked, and the speed-up printed.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Why the model is (not) faster: weighted ops still in float and why, their share of the
    /// multiply-accumulates, Q/DQ around ops without int8 kernels, the CPU, what to change.
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    remote: super::args::RemoteArgs,
    #[arg(long)]
    json: bool,
}

/// The input the benchmark feeds: the first sample of `--data`, or synthetic inputs of the
/// model's types (shaped by `--shape`).
fn input(args: &BenchArgs, model: &onnx::pb::ModelProto) -> Result<Vec<quantbench::tensor::Feed>> {
    let inputs = quantbench::tensor::model_inputs(model)
        .with_context(|| args.model.display().to_string())?;
    let mut infer = args.infer.clone();
    let data = match (&args.data, &args.shape) {
        (Some(d), _) => d.clone(),
        (None, Some(shape)) => {
            let [input] = inputs.as_slice() else {
                anyhow::bail!(
                    "{}: --shape describes one input, the model has {}: give --data (an .npz, or 'synthetic')",
                    args.model.display(),
                    inputs.len()
                );
            };
            if shape.len() == 4 && input.dims.len() == 4 {
                infer.read.crop = Some((shape[2] as u32, shape[3] as u32));
            }
            PathBuf::from(quantbench::data::infer::SYNTHETIC)
        }
        (None, None) => PathBuf::from(quantbench::data::infer::SYNTHETIC),
    };
    if data.as_os_str() == quantbench::data::infer::SYNTHETIC {
        infer.read.synthetic_samples = Some(1);
    }
    let dataset = open_data(&data, model, &infer)?;
    let input = dataset.bound(0, &inputs)?.inputs;
    if let (Some(shape), Some(first)) = (&args.shape, input.first()) {
        if &first.shape != shape {
            anyhow::bail!(
                "{}: --shape {shape:?} does not fit input '{}' {}",
                args.model.display(),
                first.name,
                inputs[0].dims_text()
            );
        }
    }
    Ok(input)
}

pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    let backend = args.backend.backend()?;
    let model = onnx::read_model(&args.model)?;
    let input = input(&args, &model)?;
    let profile = args.profile.profile.bench();
    let settings = quantbench::bench::BenchSettings {
        runs: args.runs.unwrap_or(profile.runs),
        warmup: args.warmup.unwrap_or(profile.warmup),
        threads: args.threads,
    };
    let remote = args.remote.remote();
    let measure = |path: &std::path::Path, model: &onnx::pb::ModelProto| {
        match &remote {
            Some(r) => quantbench::bench::remote::benchmark(r, path, &input, backend, &settings),
            None => {
                let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                quantbench::bench::benchmark(
                    model,
                    size,
                    backend,
                    &input,
                    &settings,
                    &Progress::new(),
                )
            }
        }
        .with_context(|| path.display().to_string())
    };
    let report = measure(&args.model, &model)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let reference = match &args.reference {
        Some(path) => Some(measure(path, &onnx::read_model(path)?)?),
        None => None,
    };
    let explanation = if args.explain {
        let m = &report.machine;
        Some(quantbench::bench::explain::explain(
            &model,
            &input,
            &m.int8_features,
            m.has_vnni(),
        )?)
    } else {
        None
    };
    let measured = Measured {
        report,
        reference,
        explanation,
    };
    if args.json {
        println!("{}", serde_json::to_string(&measured.json(args.threads)?)?);
    } else {
        measured.print(&args);
    }
    Ok(ExitCode::SUCCESS)
}

/// What `bench` found: the model's figures, the reference's, and why (not) faster.
struct Measured {
    report: quantbench::bench::BenchReport,
    reference: Option<quantbench::bench::BenchReport>,
    explanation: Option<quantbench::bench::explain::SpeedExplanation>,
}

impl Measured {
    fn speedup(&self) -> Option<f64> {
        self.reference
            .as_ref()
            .map(|r| r.p50_ms / self.report.p50_ms.max(1e-9))
    }

    fn json(&self, threads: usize) -> Result<serde_json::Value> {
        let report = &self.report;
        let mut value = serde_json::to_value(report)?;
        if let (Some(r), Some(s)) = (&self.reference, self.speedup()) {
            value["reference_p50_ms"] = serde_json::json!(r.p50_ms);
            value["speedup"] = serde_json::json!(s);
        }
        if let Some(e) = &self.explanation {
            value["explain"] = serde_json::to_value(e)?;
            value["explain"]["float_share"] = serde_json::json!(e.float_share());
        }
        value["throughput_per_s"] = serde_json::json!(report.throughput_per_s());
        value["threads"] = serde_json::json!(threads);
        value["cpu"] = serde_json::json!(report.machine.cpu);
        Ok(value)
    }

    fn print(&self, args: &BenchArgs) {
        let report = &self.report;
        let m = &report.machine;
        println!(
            "model      {} ({})",
            args.model.display(),
            onnx::inspect::human_bytes(report.size_bytes)
        );
        println!("runtime    {}", report.runtime);
        println!(
            "machine    {}{}, {} cores, int8: {}",
            if m.host.is_empty() {
                String::new()
            } else {
                format!("{}: ", m.host)
            },
            m.cpu,
            m.cores,
            if m.int8_features.is_empty() {
                "-".into()
            } else {
                m.int8_features.join(", ")
            }
        );
        println!("input      {}", report.inputs);
        println!(
            "latency    min {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3} ms  (spread {:.1}%, {} runs after {} warm-up)",
            report.min_ms, report.p50_ms, report.p90_ms, report.p99_ms, report.max_ms, report.spread_pct, report.runs, report.warmup
        );
        for t in &report.throughput {
            println!(
                "throughput {:>2} stream{}: {:.1} /s",
                t.streams,
                if t.streams == 1 { " " } else { "s" },
                t.per_second
            );
        }
        println!(
            "peak RSS   {}",
            onnx::inspect::human_bytes(report.peak_rss_bytes)
        );
        if let (Some(r), Some(s)) = (&self.reference, self.speedup()) {
            println!("float      p50 {:.3} ms: speed-up {s:.2}x", r.p50_ms);
        }
        if let Some(e) = &self.explanation {
            print_explanation(e);
        }
    }
}

fn print_explanation(e: &quantbench::bench::explain::SpeedExplanation) {
    println!(
        "int8       {} of {} weighted ops are int8 node units; {:.1}% of {} multiply-accumulates run in float (MatMuls of two activations not counted)",
        e.int8_ops,
        e.weighted_ops,
        e.float_share() * 100.0,
        e.total_macs
    );
    for f in e.float_ops.iter().take(10) {
        println!(
            "  float    {} ({}, {} MACs): {}",
            f.node, f.op_type, f.macs, f.reason
        );
    }
    for (op, n) in &e.unfused_qdq {
        println!("  no int8  {n} Q/DQ pairs feed {op}");
    }
    for a in &e.advice {
        println!("try        {a}");
    }
}
