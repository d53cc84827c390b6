//! Speed: latency distribution at batch 1 after warm-up, and throughput with 1..N concurrent
//! streams, each with its own loaded model, as a serving loop runs them.
//!
//! Models that are compared are timed together ([`benchmark_together`]): in rounds, each model
//! once per round in an order that rotates, so that a busy moment falls on all of them. Each
//! median carries its 95% interval ([`stats`]); what other processes used of the CPU meanwhile
//! is measured and said.

pub mod explain;
pub mod remote;
pub mod stats;

use std::time::Instant;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::jobs::Progress;
use crate::onnx::pb;
use crate::runtime::{Backend, Runner};
use crate::tensor::Feed;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchSettings {
    pub runs: usize,
    pub warmup: usize,
    /// Throughput is measured for 1..=threads concurrent streams.
    pub threads: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub streams: usize,
    pub per_second: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub backend: String,
    /// Runtime name, version and options.
    pub runtime: String,
    /// The first input's shape (all of them in `inputs`).
    pub input_shape: Vec<usize>,
    /// Every input: name, type and shape.
    #[serde(default)]
    pub inputs: String,
    pub runs: usize,
    pub warmup: usize,
    pub min_ms: f64,
    pub p10_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// (p90 − p10) / p50, in percent: how noisy the measurement was.
    pub spread_pct: f64,
    pub throughput: Vec<Throughput>,
    pub size_bytes: u64,
    pub peak_rss_bytes: u64,
    pub machine: crate::host::Machine,
    /// Warnings about the measurement itself (noise, a missing fast path).
    pub warnings: Vec<String>,
    /// The device it was measured on over SSH (`user@host:port`); `None`: the machine that
    /// ran quantbench.
    #[serde(default)]
    pub device: Option<String>,
    /// The 95% confidence interval of `p50_ms` (`None`: measured before intervals were).
    #[serde(default)]
    pub p50_interval_ms: Option<(f64, f64)>,
    /// The share of the machine's CPU (all cores) other processes used while this was timed,
    /// in percent (`None`: not known).
    #[serde(default)]
    pub others_cpu_pct: Option<f64>,
    /// How many models were timed in the same rounds (1: alone).
    #[serde(default)]
    pub timed_with: usize,
}

impl BenchReport {
    /// The p50's 95% interval; a point for reports from before intervals.
    pub fn interval(&self) -> (f64, f64) {
        self.p50_interval_ms.unwrap_or((self.p50_ms, self.p50_ms))
    }

    /// "3.41 ms (95% CI 3.38–3.47)", to the precision the interval allows.
    pub fn p50_text(&self) -> String {
        let (lo, hi) = self.interval();
        let digits = precision(hi - lo, self.p50_ms);
        if hi > lo {
            format!(
                "{:.digits$} ms (95% CI {lo:.digits$}–{hi:.digits$})",
                self.p50_ms
            )
        } else {
            format!("{:.digits$} ms", self.p50_ms)
        }
    }

    pub fn throughput_per_s(&self) -> f64 {
        self.throughput
            .iter()
            .map(|t| t.per_second)
            .fold(0.0, f64::max)
    }

    /// Where the latency comes from, in words: "pi@board:2222 over SSH (Cortex-A76, 4 cores)"
    /// or "myhost (AMD EPYC 7B13, 2 cores)".
    pub fn device_label(&self) -> String {
        let m = &self.machine;
        let what = format!("{}, {} cores", m.cpu, m.cores);
        match (&self.device, m.host.as_str()) {
            (Some(d), _) => format!("{d} over SSH ({what})"),
            (None, "") => format!("this machine ({what})"),
            (None, host) => format!("{host} ({what})"),
        }
    }
}

/// The distinct devices of `labels` ([`BenchReport::device_label`]), in order of first use.
pub fn distinct_devices<S: AsRef<str>>(labels: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut devices: Vec<String> = vec![];
    for label in labels {
        if !devices.iter().any(|d| d == label.as_ref()) {
            devices.push(label.as_ref().to_string());
        }
    }
    devices
}

/// The value at quantile `q` of sorted values (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Decimal places that show a figure no finer than its uncertainty `width` allows (at least
/// 1, at most 4): a median of 3.4127 ms known to ±0.05 ms is "3.41".
pub fn precision(width: f64, value: f64) -> usize {
    let scale = if width > 0.0 {
        width
    } else {
        value.abs() * 1e-3
    };
    if !(scale.is_finite() && scale > 0.0) {
        return 3;
    }
    ((-scale.log10()).ceil() as i64).clamp(1, 4) as usize
}

/// A model to time: what runs, and its size in bytes (for the report).
pub struct Timed<'a> {
    pub model: &'a pb::ModelProto,
    pub size_bytes: u64,
}

/// What [`benchmark_together`] measured: each model's report, and its times in round order
/// (the same rounds for every model: compare two with [`stats::Comparison::of`]).
pub struct Together {
    pub reports: Vec<BenchReport>,
    pub times: Vec<Vec<f64>>,
}

/// Latency of `models` on `backend` fed `input`, timed in the same rounds: `warmup` untimed
/// runs of each, then `runs` rounds of one run each, the order rotating from round to round.
pub fn benchmark_together(
    models: &[Timed],
    backend: Backend,
    input: &[Feed],
    settings: &BenchSettings,
    progress: &Progress,
) -> Result<Together> {
    crate::jobs::checkpoint("benchmark")?;
    if settings.runs == 0 {
        bail!("runs: at least one run is needed");
    }
    let runners: Vec<Box<dyn Runner>> = models
        .iter()
        .map(|m| backend.load(m.model, input, 1))
        .collect::<Result<_>>()?;
    progress.stage("warming up", (settings.warmup * runners.len()) as u64);
    for _ in 0..settings.warmup {
        for r in &runners {
            progress.check()?;
            r.run(input)?;
            progress.step();
        }
    }
    let n = runners.len();
    progress.stage("measuring latency", (settings.runs * n) as u64);
    let mut times = vec![Vec::with_capacity(settings.runs); n];
    let before = crate::host::cpu_times();
    for round in 0..settings.runs {
        for k in 0..n {
            let i = (round + k) % n;
            progress.check()?;
            let start = Instant::now();
            runners[i].run(input)?;
            times[i].push(start.elapsed().as_secs_f64() * 1000.0);
            progress.step();
        }
    }
    let others = before
        .zip(crate::host::cpu_times())
        .and_then(|(a, b)| a.others_since(b))
        .map(|share| share * 100.0);
    let machine = crate::host::detect();
    let reports = models
        .iter()
        .zip(&runners)
        .zip(&times)
        .map(|((m, r), t)| {
            let mut report = report_of(t, m.size_bytes, backend, r.as_ref(), input, settings);
            report.timed_with = n;
            report.others_cpu_pct = others;
            report.machine = machine.clone();
            report.warnings.extend(busy_warning(others, &machine));
            report
        })
        .collect();
    Ok(Together { reports, times })
}

/// Says when other processes used enough of the CPU to move the figures: over 10% of the
/// machine (a fifth of a core on two), beside them.
fn busy_warning(others_cpu_pct: Option<f64>, machine: &crate::host::Machine) -> Option<String> {
    let pct = others_cpu_pct?;
    (pct > 10.0).then(|| {
        format!(
            "the machine was busy: other processes used {pct:.0}% of its {} cores while this was timed{}; the figures carry that noise (measure again when it is idle, or compare only within one run)",
            machine.cores,
            crate::host::load_average().map_or(String::new(), |l| format!(" (load {l:.1})"))
        )
    })
}

/// One model's report from its times.
fn report_of(
    times: &[f64],
    size_bytes: u64,
    backend: Backend,
    runner: &dyn Runner,
    input: &[Feed],
    settings: &BenchSettings,
) -> BenchReport {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let p = |q| quantile(&sorted, q);
    let (p10, p50, p90) = (p(0.10), p(0.50), p(0.90));
    let spread_pct = (p90 - p10) / p50 * 100.0;
    let mut warnings = vec![];
    if spread_pct > 10.0 {
        warnings.push(format!(
            "latency spread is {spread_pct:.0}% of the median (p10 {p10:.3} ms, p90 {p90:.3} ms): the machine is busy or throttling; compare medians from one run only"
        ));
    }
    BenchReport {
        backend: backend.name().to_string(),
        runtime: runner.describe(),
        input_shape: input.first().map(|f| f.shape.clone()).unwrap_or_default(),
        inputs: crate::tensor::describe_feeds(input),
        runs: settings.runs,
        warmup: settings.warmup,
        min_ms: sorted[0],
        p10_ms: p10,
        p50_ms: p50,
        p90_ms: p90,
        p99_ms: p(0.99),
        max_ms: sorted[sorted.len() - 1],
        spread_pct,
        throughput: vec![Throughput {
            streams: 1,
            per_second: 1000.0 / p50,
        }],
        size_bytes,
        peak_rss_bytes: crate::host::peak_rss_bytes(),
        machine: Default::default(),
        warnings,
        device: None,
        p50_interval_ms: Some(stats::median_interval(&sorted)),
        others_cpu_pct: None,
        timed_with: 1,
    }
}

/// Latency and throughput of `model` fed `input` (bound feeds, one per model input), alone.
pub fn benchmark(
    model: &pb::ModelProto,
    size_bytes: u64,
    backend: Backend,
    input: &[Feed],
    settings: &BenchSettings,
    progress: &Progress,
) -> Result<BenchReport> {
    let mut together = benchmark_together(
        &[Timed { model, size_bytes }],
        backend,
        input,
        settings,
        progress,
    )?;
    let mut report = together.reports.remove(0);
    let threads = settings.threads.max(1);
    if threads > 1 {
        report.throughput = throughput(model, backend, input, settings, progress)?;
    }
    report.peak_rss_bytes = crate::host::peak_rss_bytes();
    Ok(report)
}

/// Runs per second with 1..=threads streams, each its own loaded model, run at once.
fn throughput(
    model: &pb::ModelProto,
    backend: Backend,
    input: &[Feed],
    settings: &BenchSettings,
    progress: &Progress,
) -> Result<Vec<Throughput>> {
    let threads = settings.threads.max(1);
    // Separate models per stream, loaded up front and warmed once each.
    let runners: Vec<Box<dyn Runner>> = (0..threads)
        .map(|_| backend.load(model, input, 1))
        .collect::<Result<_>>()?;
    progress.stage("measuring throughput", threads as u64);
    let mut out = vec![];
    for streams in 1..=threads {
        progress.check()?;
        let per_stream = settings.runs.div_ceil(streams).max(settings.warmup.max(4));
        let start = Instant::now();
        std::thread::scope(|s| -> Result<()> {
            let handles: Vec<_> = runners[..streams]
                .iter()
                .enumerate()
                .map(|(k, r)| {
                    std::thread::Builder::new()
                        .name(format!("quantbench-stream-{k}"))
                        .spawn_scoped(s, move || -> Result<()> {
                            for _ in 0..per_stream {
                                progress.check()?;
                                r.run(input)?;
                            }
                            Ok(())
                        })
                        .map_err(anyhow::Error::from)
                })
                .collect::<Result<_>>()?;
            for h in handles {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a benchmark stream panicked"))??;
            }
            Ok(())
        })?;
        let seconds = start.elapsed().as_secs_f64();
        out.push(Throughput {
            streams,
            per_second: (per_stream * streams) as f64 / seconds,
        });
        progress.step();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 5.0);
        assert_eq!(quantile(&v, 0.9), 9.0);
        assert_eq!(quantile(&v, 0.99), 10.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&[3.0], 0.5), 3.0);
    }

    #[test]
    fn figures_show_the_digits_their_interval_allows() {
        assert_eq!(precision(0.09, 3.4127), 2);
        assert_eq!(precision(0.004, 3.4127), 3);
        assert_eq!(precision(2.0, 80.0), 1);
        assert_eq!(precision(0.0, 0.031), 4);
    }
}
