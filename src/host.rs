//! Facts about the host: the CPU model, the instruction sets that decide int8 speed, core count,
//! memory (what is available, peak use). Recorded with every benchmark so figures from
//! different machines are not mixed; checked before large allocations.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    /// Present instruction sets among those that matter for int8 kernels.
    pub int8_features: Vec<String>,
    pub os: String,
    /// The machine's host name: which device a figure comes from.
    #[serde(default)]
    pub host: String,
}

/// This machine's host name (the kernel's; empty where it does not say).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// (name shown, /proc/cpuinfo flag): x86 AVX2, AVX-512 VNNI, AVX-VNNI, AMX; ARM dot product.
const FEATURES: [(&str, &str); 6] = [
    ("AVX2", "avx2"),
    ("AVX-512F", "avx512f"),
    ("AVX-512 VNNI", "avx512_vnni"),
    ("AVX-VNNI", "avx_vnni"),
    ("AMX-INT8", "amx_int8"),
    ("NEON dot-product", "asimddp"),
];

pub fn detect() -> Machine {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let cpu = field("model name")
        .or_else(|| field("Model"))
        .or_else(|| field("CPU part").map(|p| format!("ARM part {p}")))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect())
        .unwrap_or_default();
    Machine {
        cpu,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        int8_features: FEATURES
            .iter()
            .filter(|(_, flag)| flags.contains(flag))
            .map(|(name, _)| name.to_string())
            .collect(),
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        host: host_name(),
    }
}

impl Machine {
    pub fn has_vnni(&self) -> bool {
        self.int8_features
            .iter()
            .any(|f| f.contains("VNNI") || f.contains("AMX"))
    }
}

/// Memory the system can give this process now without swapping (MemAvailable), in bytes;
/// `None` where the system does not say.
pub fn memory_available_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    })
}

/// Refuses, before allocating, `bytes` that `what` would need beyond what the machine has.
pub fn check_fits_in_memory(bytes: u64, what: &dyn std::fmt::Display) -> anyhow::Result<()> {
    if let Some(available) = memory_available_bytes() {
        if bytes > available {
            anyhow::bail!(
                "{what} would need {} of memory; this machine has {} available",
                crate::onnx::inspect::human_bytes(bytes),
                crate::onnx::inspect::human_bytes(available)
            );
        }
    }
    Ok(())
}

/// Peak resident memory of this process so far (VmHWM), in bytes.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Clock ticks the machine spent busy and in all, and those this process spent, since boot
/// (Linux's /proc/stat and /proc/self/stat): two samples tell what other processes used in
/// between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
    ours: u64,
}

/// The machine's and this process's CPU time now; `None` where the system does not say.
pub fn cpu_times() -> Option<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ours = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_times(&stat, &ours)
}

fn parse_cpu_times(stat: &str, self_stat: &str) -> Option<CpuTimes> {
    let fields: Vec<u64> = stat
        .lines()
        .find(|l| l.starts_with("cpu "))?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    let total = busy + at(3) + at(4);
    // Fields after the command name (which may hold spaces, hence from the last ')'):
    // utime and stime are the 14th and 15th of the line, the 12th and 13th after it.
    let after = &self_stat[self_stat.rfind(')')? + 1..];
    let rest: Vec<&str> = after.split_whitespace().collect();
    let ours = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
    Some(CpuTimes { busy, total, ours })
}

impl CpuTimes {
    /// The share of the whole machine (all cores) that other processes kept busy between
    /// `self` and `later`, 0..1.
    pub fn others_since(self, later: CpuTimes) -> Option<f64> {
        let total = later.total.checked_sub(self.total)?;
        if total == 0 {
            return None;
        }
        let busy = later.busy.saturating_sub(self.busy);
        let ours = later.ours.saturating_sub(self.ours);
        Some(busy.saturating_sub(ours) as f64 / total as f64)
    }
}

/// The one-minute load average (runnable processes), where the system says.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_processes_share_is_the_machines_busy_time_less_ours() {
        let stat =
            |user: u64, idle: u64| format!("cpu  {user} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 2 3\n");
        // The command name holds a space and a parenthesis.
        let ours = |t: u64| format!("42 (quant (bench) x) R 1 1 1 0 -1 0 0 0 0 0 {t} 0 0 0 20");
        let a = parse_cpu_times(&stat(100, 900), &ours(10)).unwrap();
        let b = parse_cpu_times(&stat(300, 1100), &ours(60)).unwrap();
        // 400 ticks passed; 200 busy, 50 of them ours: others kept 150 of 400 busy.
        assert_eq!(a.others_since(b), Some(150.0 / 400.0));
        assert_eq!(a.others_since(a), None);
    }
}
