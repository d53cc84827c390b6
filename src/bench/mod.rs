//! Speed: latency distribution at batch 1 after warm-up, and throughput with 1..N concurrent
//! streams, each with its own loaded model, as a serving loop runs them.

pub mod explain;

pub mod remote;

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

impl Default for BenchSettings {
    fn default() -> Self {
        BenchSettings {
            runs: 100,
            warmup: 10,
            threads: 1,
        }
    }
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
}

impl BenchReport {
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

/// Latency and throughput of `model` fed `input` (bound feeds, one per model input).
pub fn benchmark(
    model: &pb::ModelProto,
    size_bytes: u64,
    backend: Backend,
    input: &[Feed],
    settings: &BenchSettings,
    progress: &Progress,
) -> Result<BenchReport> {
    crate::jobs::checkpoint("benchmark")?;
    if settings.runs == 0 {
        bail!("runs: at least one run is needed");
    }
    let threads = settings.threads.max(1);
    let runner = backend.load(model, input, 1)?;
    progress.stage("warming up", settings.warmup as u64);
    for _ in 0..settings.warmup {
        progress.check()?;
        runner.run(input)?;
        progress.step();
    }
    progress.stage("measuring latency", settings.runs as u64);
    let mut times = Vec::with_capacity(settings.runs);
    for _ in 0..settings.runs {
        progress.check()?;
        let start = Instant::now();
        runner.run(input)?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        progress.step();
    }
    times.sort_by(f64::total_cmp);
    let p = |q| quantile(&times, q);
    let (p10, p50, p90) = (p(0.10), p(0.50), p(0.90));
    let spread_pct = (p90 - p10) / p50 * 100.0;
    let mut throughput = vec![];
    if threads > 1 {
        // Separate models per stream, loaded up front and warmed once each.
        let runners: Vec<Box<dyn Runner>> = (0..threads)
            .map(|_| backend.load(model, input, 1))
            .collect::<Result<_>>()?;
        progress.stage("measuring throughput", threads as u64);
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
            throughput.push(Throughput {
                streams,
                per_second: (per_stream * streams) as f64 / seconds,
            });
            progress.step();
        }
    } else {
        throughput.push(Throughput {
            streams: 1,
            per_second: 1000.0 / p50,
        });
    }
    let machine = crate::host::detect();
    let mut warnings = vec![];
    if spread_pct > 10.0 {
        warnings.push(format!(
            "latency spread is {spread_pct:.0}% of the median (p10 {p10:.3} ms, p90 {p90:.3} ms): the machine is busy or throttling; compare medians from one run only"
        ));
    }
    Ok(BenchReport {
        backend: backend.name().to_string(),
        runtime: runner.describe(),
        input_shape: input.first().map(|f| f.shape.clone()).unwrap_or_default(),
        inputs: crate::tensor::describe_feeds(input),
        runs: settings.runs,
        warmup: settings.warmup,
        min_ms: times[0],
        p10_ms: p10,
        p50_ms: p50,
        p90_ms: p90,
        p99_ms: p(0.99),
        max_ms: times[times.len() - 1],
        spread_pct,
        throughput,
        size_bytes,
        peak_rss_bytes: crate::host::peak_rss_bytes(),
        machine,
        warnings,
        device: None,
    })
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
}
