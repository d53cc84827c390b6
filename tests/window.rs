//! The real window under a display (Xvfb in tests/run_all.sh): `quantbench screenshot` runs the
//! standard preset on the MNIST sample, then writes a PNG of the window and the session.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[test]
#[ignore = "opens a real window: tests/run_all.sh runs it under Xvfb (cargo test -- --ignored)"]
fn screenshot_command_runs_the_preset_and_writes_the_window_as_png() {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "no DISPLAY: run it under a display (tests/run_all.sh starts Xvfb)"
    );
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("shot.png");
    let session = dir.path().join("session.ron");
    let out = std::process::Command::new(bin())
        .args([
            "screenshot",
            "--out",
            png.to_str().unwrap(),
            "--session-out",
            session.to_str().unwrap(),
        ])
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let image = image::open(&png).expect("a PNG").to_rgba8();
    assert_eq!((image.width(), image.height()), (1280, 800));
    // A drawn window, not a blank frame: many distinct colours.
    let mut colours: Vec<u32> = image.pixels().map(|p| u32::from_le_bytes(p.0)).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 100, "only {} colours", colours.len());
    let s = quantbench::session::Session::load(&session).unwrap();
    assert_eq!(s.experiments.len(), 7);
    assert!(s
        .experiments
        .iter()
        .all(|e| e.result.error.is_none() && !e.result.evals.is_empty()));
}
