//! Any text as a dataset description (`dataset.ron`): parsed, opened against the small files in
//! fuzz/fixtures/ (paths that leave that folder are skipped: the fuzzer must not read the
//! machine's files), and its first samples decoded.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use quantbench::data::{Dataset, DatasetDesc, Purpose};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut desc) = ron::from_str::<DatasetDesc>(text) else {
        return;
    };
    let inside = |p: &str| {
        let p = Path::new(p);
        !p.is_absolute() && p.components().all(|c| matches!(c, Component::Normal(_)))
    };
    if !desc.paths_mut().into_iter().all(|p| inside(p)) {
        return;
    }
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let Ok(dataset) = Dataset::from_desc(desc, &base, &base.join("fuzz.ron")) else {
        return;
    };
    for purpose in [Purpose::Calibration, Purpose::Evaluation] {
        if let Ok(range) = dataset.indices(purpose) {
            for i in range.take(3) {
                let _ = dataset.sample(i);
            }
        }
    }
    let _ = dataset.content_sha256();
    let _ = dataset.class_names();
});
