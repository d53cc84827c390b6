//! Reading each kind of source into samples, one file each: [`csv`] rows, [`images`] in a
//! folder, [`npz`] archives, ONNX [`test_data`], [`synthetic`] inputs (`.npy` and text sources
//! are `data::npy` and `data::text`).

mod csv;
mod images;
mod npz;
mod synthetic;
mod test_data;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub(crate) use csv::{load_csv, CsvFormat, CsvRows};
pub(crate) use images::load_image_folder;
pub(crate) use npz::load_npz;
pub(crate) use synthetic::synthetic_feed;
pub(crate) use test_data::load_test_data;

/// A text file's contents, through gzip when it ends in `.gz`.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut text = String::new();
    let read = if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file).read_to_string(&mut text)
    } else {
        std::io::BufReader::new(file).read_to_string(&mut text)
    };
    read.with_context(|| format!("{}: cannot read as text", path.display()))?;
    Ok(text)
}

pub(crate) fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

/// Every file under `dir`, sorted, recursively.
pub(crate) fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        collect_files(&e, out)?;
    }
    Ok(())
}
