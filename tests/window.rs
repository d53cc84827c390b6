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
    // The window's data folder is the test's own; the user's (under HOME and XDG_DATA_HOME,
    // pointed at empty folders here) is never written.
    let (data, home, xdg) = (
        dir.path().join("data"),
        dir.path().join("home"),
        dir.path().join("xdg"),
    );
    for d in [&home, &xdg] {
        std::fs::create_dir_all(d).unwrap();
    }
    let out = std::process::Command::new(bin())
        .args([
            "screenshot",
            "--out",
            png.to_str().unwrap(),
            "--session-out",
            session.to_str().unwrap(),
        ])
        .env("QUANTBENCH_DATA_DIR", &data)
        .env("HOME", &home)
        .env("XDG_DATA_HOME", &xdg)
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
    let autosaves: Vec<_> = std::fs::read_dir(data.join("sessions"))
        .expect("the autosave went to QUANTBENCH_DATA_DIR")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "ron"))
        .collect();
    assert_eq!(autosaves.len(), 1, "{autosaves:?}");
    // (Mesa may keep a shader cache under HOME: only quantbench's own files count.)
    for d in [&home, &xdg] {
        let ours: Vec<_> = walk(d)
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("quantbench"))
            .collect();
        assert!(
            ours.is_empty(),
            "written outside the test's folder: {ours:?}"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
