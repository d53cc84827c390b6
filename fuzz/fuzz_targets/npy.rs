//! Any bytes as a `.npy` array and as a `.npz` archive of them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quantbench::data::npy;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = npy::parse(data) {
        // What a dataset does with an array whose first axis indexes samples.
        for i in 0..a.shape.first().copied().unwrap_or(0).min(3) {
            let _ = a.sample(i);
        }
    }
    let path = std::path::Path::new("fuzz.npz");
    if let Ok(arrays) = npy::read_npz_from(std::io::Cursor::new(data), path) {
        for (_, a) in &arrays {
            let _ = a.sample(0);
        }
    }
});
