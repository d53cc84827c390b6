//! Writes survive being killed: a `quantbench quantize --out` (an export) killed at any moment
//! leaves either the file that was there or the complete new one, never a part; the next write
//! clears the temporary file a killed writer left.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};

use common::*;

fn quantize(mode: &str, out: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args([
        "quantize",
        rapid_model().to_str().unwrap(),
        "--mode",
        mode,
        "--out",
    ])
    .arg(out)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    c
}

fn temporaries(dir: &Path) -> Vec<(String, u64)> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .map(|e| {
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect()
}

fn exited(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_some()
}

#[test]
fn killing_an_export_at_any_moment_leaves_the_old_file_or_the_whole_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (old_path, new_path, out) = (d.join("old.onnx"), d.join("new.onnx"), d.join("out.onnx"));
    assert!(quantize("int8-weights", &old_path)
        .status()
        .unwrap()
        .success());
    assert!(quantize("fp16", &new_path).status().unwrap().success());
    let (old, new) = (
        std::fs::read(&old_path).unwrap(),
        std::fs::read(&new_path).unwrap(),
    );
    assert_ne!(old, new);
    let iterations = 40;
    // Where each kill landed: before the write began, while its temporary file existed (with
    // how much of it written), or after the rename.
    let mut landed: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..iterations {
        std::fs::write(&out, &old).unwrap();
        let mut child = quantize("fp16", &out).spawn().unwrap();
        // Spin (no sleep) until the moment this iteration kills at.
        let moment = match i % 4 {
            0 => "at once",
            1 => loop {
                if !temporaries(d).is_empty() {
                    break "temporary file created";
                }
                if exited(&mut child) {
                    break "after the rename";
                }
            },
            2 => loop {
                let t = temporaries(d);
                if t.iter().any(|(_, len)| *len as usize >= new.len() / 2) {
                    break "temporary file half written or more";
                }
                if exited(&mut child) {
                    break "after the rename";
                }
            },
            _ => loop {
                if std::fs::metadata(&out).is_ok_and(|m| m.len() as usize == new.len()) {
                    break "after the rename";
                }
                if exited(&mut child) {
                    break "after the rename";
                }
            },
        };
        let _ = child.kill();
        child.wait().unwrap();
        let now = std::fs::read(&out).unwrap();
        assert!(
            now == old || now == new,
            "iteration {i} (killed {moment}): out.onnx holds {} bytes, neither the old file ({}) nor the new ({})",
            now.len(),
            old.len(),
            new.len()
        );
        *landed.entry(moment).or_default() += 1;
    }
    eprintln!("{iterations} kills: {landed:?}");
    assert!(
        landed.keys().any(|k| k.starts_with("temporary")),
        "no kill landed mid-write: {landed:?}"
    );
    // The next write to the file clears what killed writers left behind.
    assert!(quantize("fp16", &out).status().unwrap().success());
    assert_eq!(std::fs::read(&out).unwrap(), new);
    assert_eq!(temporaries(d), vec![], "temporary files left");
}
