//! Latency on the device that will run the model: the model (and the input it is timed on) is
//! copied over SSH into a temporary folder there, timed by quantbench's own `bench --json` on
//! the device (or, where the device has no quantbench but has ONNX Runtime's Python package,
//! by ONNX Runtime there), and the folder removed. The report carries the device's CPU, cores
//! and int8 instruction sets, as a local one carries this machine's.
//!
//! The system's `ssh` and `scp` do the transport, so the user's keys, agent, `~/.ssh/config`
//! and known hosts apply as in a terminal; `BatchMode` makes a missing key an error instead
//! of a password prompt nobody sees.

use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{BenchReport, BenchSettings};
use crate::runtime::Backend;
use crate::tensor::Feed;

/// `[user@]host[:port]`, the quantbench binary on it, and extra `ssh`/`scp` options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remote {
    /// `host` or `user@host` (an IPv6 address in brackets: `[::1]`).
    pub destination: String,
    pub port: Option<u16>,
    /// quantbench on the device (a path, or a name on its PATH).
    pub binary: String,
    /// Given to both `ssh` and `scp` before the destination: `-i KEY`, `-o Option=value`.
    pub ssh_args: Vec<String>,
}

impl FromStr for Remote {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Remote> {
        let s = s.trim();
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u), r),
            _ => (None, s),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| anyhow!("--remote {s}: an unclosed '[' in the address"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            bail!("--remote {s}: expected [user@]host[:port]");
        }
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| anyhow!("--remote {s}: '{p}' is not a port number"))
            })
            .transpose()?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Ok(Remote {
            destination: match user {
                Some(u) => format!("{u}@{host}"),
                None => host,
            },
            port,
            binary: "quantbench".into(),
            ssh_args: vec![],
        })
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.destination),
            None => write!(f, "{}", self.destination),
        }
    }
}

/// Runs ONNX Runtime's own timing loop where the device has no quantbench: the same warm-up,
/// runs and percentiles as `quantbench bench`, and the device's CPU from /proc/cpuinfo.
const ORT_BENCH: &str = r#"
import json, os, sys, time, platform
import numpy as np, onnxruntime as ort
model, inputs, runs, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
feeds = dict(np.load(inputs))
for _ in range(warmup): s.run(None, feeds)
t = []
for _ in range(runs):
    a = time.perf_counter(); s.run(None, feeds); t.append((time.perf_counter() - a) * 1e3)
t.sort()
q = lambda p: t[min(len(t) - 1, int(round(p / 100 * (len(t) - 1))))]
info = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
def field(k):
    for l in info.splitlines():
        if l.startswith(k): return l.split(":", 1)[1].strip()
flags = next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith(("flags", "Features"))), [])
names = [("AVX2", "avx2"), ("AVX-512F", "avx512f"), ("AVX-512 VNNI", "avx512_vnni"), ("AVX-VNNI", "avx_vnni"), ("AMX-INT8", "amx_int8"), ("NEON dot-product", "asimddp")]
shape = list(next(iter(feeds.values())).shape)
print(json.dumps({
    "backend": "ort", "runtime": "onnxruntime %s (Python, on the device)" % ort.__version__,
    "input_shape": shape, "inputs": "", "runs": runs, "warmup": warmup,
    "min_ms": t[0], "p10_ms": q(10), "p50_ms": q(50), "p90_ms": q(90), "p99_ms": q(99), "max_ms": t[-1],
    "spread_pct": (q(90) - q(10)) / q(50) * 100, "throughput": [],
    "size_bytes": os.path.getsize(model), "peak_rss_bytes": 0,
    "machine": {"cpu": field("model name") or platform.machine(), "cores": os.cpu_count() or 1,
                "int8_features": [n for n, f in names if f in flags],
                "os": "%s %s" % (platform.system().lower(), platform.machine()), "host": platform.node()},
    "warnings": ["timed by ONNX Runtime's Python package on the device (no quantbench there)"],
}))
"#;

impl Remote {
    fn ssh(&self) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]);
        if let Some(p) = self.port {
            c.args(["-p", &p.to_string()]);
        }
        c.args(&self.ssh_args).arg(&self.destination);
        c
    }

    /// Runs `script` (a POSIX shell command line) on the device; its stdout, or an error with
    /// its stderr.
    fn run(&self, script: &str, stdin: Option<&str>) -> Result<String> {
        crate::jobs::checkpoint("run a command over SSH")?;
        let mut command = self.ssh();
        command
            .arg(script)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .context("cannot run ssh (install the OpenSSH client)")?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(text.as_bytes())
                .context("cannot send the script over SSH")?;
        }
        let out = child.wait_with_output().context("ssh")?;
        if !out.status.success() {
            bail!(
                "{self}: `{script}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn copy(&self, local: &Path, remote_path: &str) -> Result<()> {
        crate::jobs::checkpoint("copy a file over SSH")?;
        let mut c = Command::new("scp");
        c.args(["-q", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]);
        if let Some(p) = self.port {
            c.args(["-P", &p.to_string()]);
        }
        let out = c
            .args(&self.ssh_args)
            .arg(local)
            .arg(format!("{}:{remote_path}", self.destination))
            .stdin(Stdio::null())
            .output()
            .context("cannot run scp (install the OpenSSH client)")?;
        if !out.status.success() {
            bail!(
                "{self}: cannot copy {} to {remote_path}: {}",
                local.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// Times the model at `model_path` (and the external-data files beside it that it names) on
/// the device, fed `input`. Returns the device's report.
pub fn benchmark(
    remote: &Remote,
    model_path: &Path,
    input: &[Feed],
    backend: Backend,
    settings: &BenchSettings,
) -> Result<BenchReport> {
    let local = tempfile_dir()?;
    let npz = local.join("input.npz");
    let arrays: Vec<(String, Vec<usize>, crate::tensor::TensorData)> = input
        .iter()
        .map(|f| {
            let mut shape = f.shape.clone();
            if shape.first() != Some(&1) {
                shape.insert(0, 1);
            }
            (f.name.clone(), shape, f.data.clone())
        })
        .collect();
    crate::data::npy::write_npz(&npz, &arrays)?;
    let dir = remote
        .run(
            "mktemp -d \"${TMPDIR:-/tmp}/quantbench-bench.XXXXXX\"",
            None,
        )
        .context("cannot make a folder on the device")?
        .trim()
        .to_string();
    if dir.is_empty() || dir.contains('\'') {
        bail!("{remote}: mktemp gave no usable folder ('{dir}')");
    }
    let result = run_there(remote, &dir, model_path, &npz, backend, settings);
    // Removed whatever happened; a failure to remove is not the user's result.
    let _ = remote.run(&format!("rm -rf '{dir}'"), None);
    let _ = std::fs::remove_dir_all(&local);
    result
}

/// [`benchmark`] of a model in memory (a sweep's quantized model): written to a local
/// temporary folder first (with its external data, when it is over 2 GB), then sent.
pub fn benchmark_model(
    remote: &Remote,
    model: &crate::onnx::pb::ModelProto,
    input: &[Feed],
    backend: Backend,
    settings: &BenchSettings,
) -> Result<BenchReport> {
    let local = tempfile_dir()?;
    let path = local.join("model.onnx");
    let result = crate::onnx::write_model(&path, model, crate::onnx::SINGLE_FILE_LIMIT)
        .and_then(|()| benchmark(remote, &path, input, backend, settings));
    let _ = std::fs::remove_dir_all(&local);
    result
}

fn run_there(
    remote: &Remote,
    dir: &str,
    model_path: &Path,
    npz: &Path,
    backend: Backend,
    settings: &BenchSettings,
) -> Result<BenchReport> {
    let name = model_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.onnx".into());
    let safe = |s: &str| !s.contains('\'');
    if !safe(&name) || !safe(&remote.binary) {
        bail!("{remote}: file names with a quote cannot be sent");
    }
    remote.copy(model_path, &format!("{dir}/{name}"))?;
    for data in crate::onnx::external_data_files(model_path)? {
        let file = data
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        remote.copy(&data, &format!("{dir}/{file}"))?;
    }
    remote.copy(npz, &format!("{dir}/input.npz"))?;
    let binary = &remote.binary;
    let has_quantbench = remote
        .run(
            &format!("command -v '{binary}' >/dev/null && echo yes || echo no"),
            None,
        )?
        .trim()
        == "yes";
    let json = if has_quantbench {
        let ort = match backend {
            // Named: without --backend, `bench` picks ONNX Runtime where it is found.
            Backend::Tract => " --backend tract".to_string(),
            Backend::Ort(o) => format!(
                " --backend ort --ort-opt {}{}",
                o.optimization.name(),
                if o.x64_quant_precision {
                    " --x64-quant-precision"
                } else {
                    ""
                }
            ),
        };
        remote.run(
            &format!(
                "'{binary}' bench '{dir}/{name}' --data '{dir}/input.npz' --runs {} --warmup {} --threads {} --json{ort}",
                settings.runs, settings.warmup, settings.threads.max(1)
            ),
            None,
        )?
    } else {
        let has_ort = remote
            .run(
                "python3 -c 'import onnxruntime, numpy' >/dev/null 2>&1 && echo yes || echo no",
                None,
            )?
            .trim()
            == "yes";
        if !has_ort {
            bail!(
                "{remote}: has neither '{binary}' (--remote-bin PATH to quantbench there) nor ONNX Runtime's Python package"
            );
        }
        remote.run(
            &format!(
                "python3 - '{dir}/{name}' '{dir}/input.npz' {} {}",
                settings.runs, settings.warmup
            ),
            Some(ORT_BENCH),
        )?
    };
    let line = json
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow!("{remote}: the benchmark printed no JSON: {json}"))?;
    let mut report: BenchReport = serde_json::from_str(line)
        .map_err(|e| anyhow!("{remote}: cannot read the device's report: {e}"))?;
    // A report for another runtime than asked would be filed under the wrong one.
    if report.backend != backend.name() {
        bail!(
            "{remote}: asked to time on {}, the device timed on {}",
            backend.name(),
            report.backend
        );
    }
    report
        .warnings
        .push(format!("measured on {remote} over SSH"));
    report.device = Some(remote.to_string());
    Ok(report)
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "quantbench-remote-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_with_users_ports_and_ipv6() {
        let r: Remote = "pi@board.local:2222".parse().unwrap();
        assert_eq!(
            (r.destination.as_str(), r.port),
            ("pi@board.local", Some(2222))
        );
        let r: Remote = "server".parse().unwrap();
        assert_eq!((r.destination.as_str(), r.port), ("server", None));
        let r: Remote = "root@[::1]:22".parse().unwrap();
        assert_eq!((r.destination.as_str(), r.port), ("root@[::1]", Some(22)));
        assert_eq!(r.to_string(), "root@[::1]:22");
        for bad in ["", "host:port", "u@:22", "[::1"] {
            assert!(bad.parse::<Remote>().is_err(), "{bad}");
        }
    }
}
