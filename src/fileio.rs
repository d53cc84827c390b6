//! Writing files so that a failure, a cancelled job or a killed process never leaves half of
//! one: a temporary file in the same folder, flushed, renamed over the old one, the folder
//! flushed. Every file quantbench writes (models, sessions, PNGs, tables, checkpoints) goes
//! through here.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

/// The directory `path` will be written in, or an error naming both when it does not exist;
/// called before long work so that it does not fail at the end.
pub fn check_output_dir(path: &Path) -> Result<&Path> {
    let dir = folder_of(path);
    if !dir.is_dir() {
        bail!(
            "{}: the output directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    Ok(dir)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, flushed to disk,
/// then renamed over `path` (and the directory flushed), so that a failure, a cancelled job or
/// a killed process leaves either the old file or the complete new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::jobs::checkpoint("write a file")?;
    replace_atomic(path, |f| {
        use std::io::Write;
        f.write_all(bytes)
    })
}

/// Copies `from` to `to` the way [`write_atomic`] writes.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    crate::jobs::checkpoint("copy a file")?;
    let mut source =
        std::fs::File::open(from).with_context(|| format!("{}: cannot open", from.display()))?;
    replace_atomic(to, |f| std::io::copy(&mut source, f).map(|_| ()))
        .with_context(|| format!("copying {}", from.display()))
}

/// Removes the temporary files that writers of `file_name` killed mid-write left in `dir`
/// (`.NAME.PID-N.tmp` of a process that no longer runs).
fn remove_stale_temporaries(dir: &Path, file_name: &str) {
    let prefix = format!(".{file_name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()));
        let gone = pid.is_some_and(|pid| {
            pid != std::process::id()
                && cfg!(target_os = "linux")
                && !Path::new(&format!("/proc/{pid}")).exists()
        });
        if gone {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn replace_atomic(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    // Unique per write: two writes to one path at once (an autosave and a save) never share
    // a temporary file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let dir = check_output_dir(path)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file path", path.display()))?
        .to_string_lossy();
    remove_stale_temporaries(dir, &file_name);
    let tmp = dir.join(format!(
        ".{file_name}.{}-{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename itself survives a power loss once the directory is on disk too.
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow!("{}: cannot write ({e})", path.display()));
    }
    Ok(())
}

/// The SHA-256 of `bytes`, in hex: what names a content (model hashes, data file names).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// The first 12 hex digits of a hash: enough to tell two files apart in a message.
pub fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The folder `path` is in (`.` for a bare file name).
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}
