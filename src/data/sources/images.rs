//! A folder of images, class sub-folders giving labels.

use std::path::Path;

use anyhow::Result;

use super::{is_image, sorted_entries};
use crate::data::Labels;
use crate::data::Loaded;

pub(crate) fn load_image_folder(dir: &Path, labels: &Labels) -> Result<Loaded> {
    let mut files = vec![];
    let mut classes = vec![];
    match labels {
        Labels::None => {
            files = sorted_entries(dir)?
                .into_iter()
                .filter(|p| is_image(p))
                .map(|p| (p, None))
                .collect();
        }
        Labels::FromSubfolders => {
            for sub in sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()) {
                let class = classes.len();
                classes.push(
                    sub.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                );
                files.extend(
                    sorted_entries(&sub)?
                        .into_iter()
                        .filter(|p| is_image(p))
                        .map(|p| (p, Some(class))),
                );
            }
        }
    }
    Ok(Loaded::Images { files, classes })
}
