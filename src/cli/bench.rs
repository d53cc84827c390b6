//! `quantbench bench`: latency (batch 1) and throughput of a model on a runtime; given several
//! models (or a `--reference`), they are timed together in rounds, each p50 with its 95%
//! interval, and each pair said faster by how much or a tie within noise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use quantbench::bench::stats::Comparison;
use quantbench::bench::{BenchReport, Timed};
use quantbench::jobs::Progress;
use quantbench::onnx;
use quantbench::tensor::Feed;

use super::args::{open_data, BackendArgs, InferArgs};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// The model; several are timed together (in rounds, A B C A B C…) and compared.
    #[arg(required = true, num_args = 1..)]
    models: Vec<PathBuf>,
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
    /// The float model: timed together with the model, and the speed-up printed with its
    /// interval.
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
fn input(args: &BenchArgs, path: &Path, model: &onnx::pb::ModelProto) -> Result<Vec<Feed>> {
    let inputs =
        quantbench::tensor::model_inputs(model).with_context(|| path.display().to_string())?;
    let mut infer = args.infer.clone();
    let data = match (&args.data, &args.shape) {
        (Some(d), _) => d.clone(),
        (None, Some(shape)) => {
            let [input] = inputs.as_slice() else {
                anyhow::bail!(
                    "{}: --shape describes one input, the model has {}: give --data (an .npz, or 'synthetic')",
                    path.display(),
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
                path.display(),
                first.name,
                inputs[0].dims_text()
            );
        }
    }
    Ok(input)
}

/// The models timed: those given, then the reference; each with its path and size.
struct Models {
    paths: Vec<PathBuf>,
    protos: Vec<onnx::pb::ModelProto>,
}

impl Models {
    fn read(args: &BenchArgs) -> Result<Models> {
        let paths: Vec<PathBuf> = args.models.iter().chain(&args.reference).cloned().collect();
        let protos = paths
            .iter()
            .map(|p| onnx::read_model(p))
            .collect::<Result<_>>()?;
        Ok(Models { paths, protos })
    }

    /// Each model takes the first's input: one interface, or an error naming the odd one.
    fn check_inputs(&self, input: &[Feed]) -> Result<()> {
        for (path, model) in self.paths.iter().zip(&self.protos).skip(1) {
            let inputs = quantbench::tensor::model_inputs(model)
                .with_context(|| path.display().to_string())?;
            quantbench::tensor::bind(&inputs, input).with_context(|| {
                format!(
                    "{}: does not take {}'s input, so the two cannot be timed together",
                    path.display(),
                    self.paths[0].display()
                )
            })?;
        }
        Ok(())
    }

    fn name(&self, i: usize) -> String {
        self.paths[i].display().to_string()
    }
}

pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    let backend = args.backend.backend()?;
    let models = Models::read(&args)?;
    let input = input(&args, &args.models[0], &models.protos[0])?;
    models.check_inputs(&input)?;
    let profile = args.profile.profile.bench();
    let settings = quantbench::bench::BenchSettings {
        runs: args.runs.unwrap_or(profile.runs),
        warmup: args.warmup.unwrap_or(profile.warmup),
        threads: args.threads,
    };
    let measured = match args.remote.remote() {
        Some(remote) => remote_measure(&remote, &models, &input, backend, &settings)?,
        None => local_measure(&models, &input, backend, &settings)?,
    };
    for w in measured
        .reports
        .iter()
        .flat_map(|r| &r.warnings)
        .collect::<std::collections::BTreeSet<_>>()
    {
        eprintln!("warning: {w}");
    }
    let explanation = if args.explain {
        let m = &measured.reports[0].machine;
        Some(quantbench::bench::explain::explain(
            &models.protos[0],
            &input,
            &m.int8_features,
            m.has_vnni(),
        )?)
    } else {
        None
    };
    let shown = Shown {
        models: &models,
        measured,
        explanation,
        reference: args.reference.is_some(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&shown.json(args.threads)?)?);
    } else {
        shown.print();
    }
    Ok(ExitCode::SUCCESS)
}

/// The reports, and the comparison of every pair timed in the same rounds.
struct Measured {
    reports: Vec<BenchReport>,
    /// (i, j, model i's time over model j's).
    pairs: Vec<(usize, usize, Comparison)>,
}

fn local_measure(
    models: &Models,
    input: &[Feed],
    backend: quantbench::runtime::Backend,
    settings: &quantbench::bench::BenchSettings,
) -> Result<Measured> {
    let sizes: Vec<u64> = models
        .paths
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .collect();
    let timed: Vec<Timed> = models
        .protos
        .iter()
        .zip(&sizes)
        .map(|(model, &size_bytes)| Timed { model, size_bytes })
        .collect();
    let progress = Progress::new();
    if settings.threads > 1 && models.protos.len() == 1 {
        // Alone, with throughput for 1..=threads streams.
        let report = quantbench::bench::benchmark(
            &models.protos[0],
            sizes[0],
            backend,
            input,
            settings,
            &progress,
        )
        .with_context(|| models.name(0))?;
        return Ok(Measured {
            reports: vec![report],
            pairs: vec![],
        });
    }
    let together =
        quantbench::bench::benchmark_together(&timed, backend, input, settings, &progress)
            .with_context(|| models.name(0))?;
    let reports = together.reports;
    let mut pairs = vec![];
    for i in 0..together.times.len() {
        for j in i + 1..together.times.len() {
            pairs.push((i, j, Comparison::of(&together.times[i], &together.times[j])));
        }
    }
    Ok(Measured { reports, pairs })
}

/// On a device: timed there one model after another (the device's quantbench times each
/// alone), so no pair is compared round by round; each p50 still has its interval.
fn remote_measure(
    remote: &quantbench::bench::remote::Remote,
    models: &Models,
    input: &[Feed],
    backend: quantbench::runtime::Backend,
    settings: &quantbench::bench::BenchSettings,
) -> Result<Measured> {
    let mut reports = vec![];
    for path in &models.paths {
        let mut r = quantbench::bench::remote::benchmark(remote, path, input, backend, settings)
            .with_context(|| path.display().to_string())?;
        if models.paths.len() > 1 {
            r.warnings.push(
                "timed on the device one model after another, not in rounds: compare the intervals, not the medians alone".into(),
            );
        }
        reports.push(r);
    }
    Ok(Measured {
        reports,
        pairs: vec![],
    })
}

/// What `bench` prints.
struct Shown<'a> {
    models: &'a Models,
    measured: Measured,
    explanation: Option<quantbench::bench::explain::SpeedExplanation>,
    /// The last model is the `--reference`.
    reference: bool,
}

impl Shown<'_> {
    /// The reference against the model, as a speed-up with its interval.
    fn speedup(&self) -> Option<(f64, (f64, f64), bool)> {
        if !self.reference {
            return None;
        }
        let last = self.measured.reports.len() - 1;
        match self
            .measured
            .pairs
            .iter()
            .find(|(i, j, _)| *i == 0 && *j == last)
        {
            Some((_, _, c)) => Some((
                1.0 / c.ratio,
                (1.0 / c.interval.1, 1.0 / c.interval.0),
                c.is_tie(),
            )),
            None => {
                let (m, r) = (&self.measured.reports[0], &self.measured.reports[last]);
                Some((r.p50_ms / m.p50_ms.max(1e-9), (f64::NAN, f64::NAN), false))
            }
        }
    }

    fn json(&self, threads: usize) -> Result<serde_json::Value> {
        let reports = &self.measured.reports;
        let one = |r: &BenchReport| -> Result<serde_json::Value> {
            let mut value = serde_json::to_value(r)?;
            value["throughput_per_s"] = serde_json::json!(r.throughput_per_s());
            value["cpu"] = serde_json::json!(r.machine.cpu);
            Ok(value)
        };
        let given = reports.len() - usize::from(self.reference);
        let mut value = if given == 1 {
            one(&reports[0])?
        } else {
            let mut list = vec![];
            for (i, r) in reports.iter().enumerate().take(given) {
                let mut v = one(r)?;
                v["path"] = serde_json::json!(self.models.name(i));
                list.push(v);
            }
            serde_json::json!({ "models": list, "cpu": reports[0].machine.cpu })
        };
        if let (Some((speedup, interval, tie)), Some(r)) = (self.speedup(), reports.last()) {
            value["reference_p50_ms"] = serde_json::json!(r.p50_ms);
            value["speedup"] = serde_json::json!(speedup);
            value["speedup_interval"] = serde_json::json!(interval);
            value["speedup_is_tie"] = serde_json::json!(tie);
        }
        value["pairs"] = self
            .measured
            .pairs
            .iter()
            .map(|(i, j, c)| {
                serde_json::json!({
                    "a": self.models.name(*i),
                    "b": self.models.name(*j),
                    "ratio": c.ratio,
                    "interval": c.interval,
                    "tie": c.is_tie(),
                    "verdict": c.describe(&self.models.name(*i), &self.models.name(*j)),
                })
            })
            .collect();
        if let Some(e) = &self.explanation {
            value["explain"] = serde_json::to_value(e)?;
            value["explain"]["float_share"] = serde_json::json!(e.float_share());
        }
        value["threads"] = serde_json::json!(threads);
        Ok(value)
    }

    fn print(&self) {
        let reports = &self.measured.reports;
        let first = &reports[0];
        let m = &first.machine;
        println!("runtime    {}", first.runtime);
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
        println!("input      {}", first.inputs);
        for (i, r) in reports.iter().enumerate() {
            let role = if self.reference && i == reports.len() - 1 {
                " (reference)"
            } else {
                ""
            };
            println!(
                "model      {}{role} ({})",
                self.models.name(i),
                onnx::inspect::human_bytes(r.size_bytes)
            );
            println!(
                "  latency  p50 {}; min {:.3}  p90 {:.3}  p99 {:.3}  max {:.3} ms  (spread {:.1}%, {} runs after {} warm-up{})",
                r.p50_text(), r.min_ms, r.p90_ms, r.p99_ms, r.max_ms, r.spread_pct, r.runs, r.warmup,
                if r.timed_with > 1 { format!(", in rounds with {} models", r.timed_with) } else { String::new() }
            );
            for t in r
                .throughput
                .iter()
                .filter(|t| t.streams > 1 || r.throughput.len() > 1)
            {
                println!(
                    "  throughput {:>2} stream{}: {:.1} /s",
                    t.streams,
                    if t.streams == 1 { " " } else { "s" },
                    t.per_second
                );
            }
        }
        if let Some(pct) = first.others_cpu_pct {
            println!("others     other processes used {pct:.0}% of the CPU meanwhile");
        }
        println!(
            "peak RSS   {}",
            onnx::inspect::human_bytes(first.peak_rss_bytes)
        );
        for (i, j, c) in &self.measured.pairs {
            println!(
                "compare    {}",
                c.describe(&self.models.name(*i), &self.models.name(*j))
            );
        }
        if let Some((s, (lo, hi), tie)) = self.speedup() {
            if tie {
                println!("speed-up   none beyond the noise ({s:.2}x, 95% CI {lo:.2}–{hi:.2}x)");
            } else {
                println!("speed-up   {s:.2}x (95% CI {lo:.2}–{hi:.2}x)");
            }
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
