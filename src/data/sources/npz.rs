//! NumPy `.npz` archives: input name -> array with a leading sample axis; `label` for labels.

use std::path::Path;

use anyhow::{anyhow, bail, Result};

use crate::data::{npy, Loaded};

pub(crate) fn load_npz(path: &Path) -> Result<Loaded> {
    let mut arrays = npy::read_npz(path)?;
    let labels = match arrays
        .iter()
        .position(|(n, _)| n == "label" || n == "labels")
    {
        Some(k) => {
            let (name, a) = arrays.remove(k);
            let values = a.data()?.to_f32();
            let labels = values
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if v >= 0.0 && v.fract() == 0.0 {
                        Ok(v as usize)
                    } else {
                        Err(anyhow!(
                            "{}: '{name}'[{i}] = {v} is not a class index",
                            path.display()
                        ))
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            Some(labels)
        }
        None => None,
    };
    if arrays.is_empty() {
        bail!("{}: the archive holds labels but no inputs", path.display());
    }
    let rows = arrays[0].1.shape.first().copied().unwrap_or(0);
    for (name, a) in &arrays {
        if a.shape.first().copied().unwrap_or(0) != rows {
            bail!(
                "{}: array '{name}' has shape {:?}, but '{}' has {rows} samples along its first axis: every array needs the same leading sample axis",
                path.display(),
                a.shape,
                arrays[0].0
            );
        }
    }
    if let Some(l) = &labels {
        if l.len() != rows {
            bail!("{}: {} labels for {rows} samples", path.display(), l.len());
        }
    }
    Ok(Loaded::Npz {
        arrays,
        labels,
        rows,
    })
}
