//! Any bytes as a CSV of pixel rows (the first three bytes pick the image size, the label
//! column and the header): opened as a dataset and its samples decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quantbench::data::{Dataset, DatasetDesc, ImageSize, LabelColumn, Source};

fuzz_target!(|data: &[u8]| {
    let [a, b, c, rest @ ..] = data else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("quantbench-fuzz-csv-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let gz = c & 8 != 0;
    let path = dir.join(if gz { "rows.csv.gz" } else { "rows.csv" });
    if std::fs::write(&path, rest).is_err() {
        return;
    }
    let label_column = match c % 4 {
        0 => None,
        1 => Some(LabelColumn::First),
        2 => Some(LabelColumn::Last),
        _ => Some(LabelColumn::Index((*b as usize) % 7)),
    };
    let channels = [1, 3][(*a as usize) % 2];
    let desc = DatasetDesc {
        source: Source::Csv {
            path: path.display().to_string(),
            image: ImageSize {
                channels,
                height: 1 + (*a as usize >> 1) % 4,
                width: 1 + (*b as usize) % 4,
            },
            label_column,
            header: c & 4 != 0,
        },
        preprocess: Default::default(),
        calibration: Default::default(),
        evaluation: Default::default(),
        augment: 0,
    };
    let Ok(dataset) = Dataset::from_desc(desc, &dir, &path) else {
        return;
    };
    for i in 0..dataset.len().min(4) {
        let _ = dataset.sample(i);
    }
});
