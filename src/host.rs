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
