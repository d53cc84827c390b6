//! Paths as files that name other files store them (sessions, dataset descriptions): relative to
//! the file's own folder where the target lies near it, so that a project folder can move, and
//! absolute otherwise. In memory the engine holds absolute paths.

use std::path::{Component, Path, PathBuf};

/// `path` made absolute (against the current directory) with `.` and `..` removed lexically.
pub fn absolute(path: &Path) -> PathBuf {
    let joined = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `target` as seen from `base` (both absolute), with `..` where needed.
pub fn relative_path(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<_> = target.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return target.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// How a file in `dir` records `target`: relative when `target` lies inside `dir`'s parent
/// (`model.onnx`, `data/photos`, `../models/m.onnx`), absolute when it is further away.
pub fn portable(target: &str, dir: &Path) -> String {
    if target.is_empty() {
        return String::new();
    }
    let target = absolute(Path::new(target));
    let dir = absolute(dir);
    let near = dir.parent().unwrap_or(&dir);
    if target.starts_with(near) && near.parent().is_some() {
        relative_path(&target, &dir).display().to_string()
    } else {
        target.display().to_string()
    }
}

/// The absolute path a file in `dir` means by `recorded`.
pub fn resolve(recorded: &str, dir: &Path) -> String {
    if recorded.is_empty() {
        return String::new();
    }
    let p = Path::new(recorded);
    if p.is_absolute() {
        return absolute(p).display().to_string();
    }
    absolute(&dir.join(p)).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_walk_up_where_needed() {
        assert_eq!(
            relative_path(Path::new("/a/b/photos"), Path::new("/a/c")),
            PathBuf::from("../b/photos")
        );
        assert_eq!(
            relative_path(Path::new("/a/b/x.csv"), Path::new("/a/b")),
            PathBuf::from("x.csv")
        );
    }

    #[test]
    fn near_files_are_recorded_relative_and_far_ones_absolute() {
        let dir = Path::new("/work/project/sessions");
        assert_eq!(portable("/work/project/sessions/m.onnx", dir), "m.onnx");
        assert_eq!(
            portable("/work/project/models/m.onnx", dir),
            "../models/m.onnx"
        );
        assert_eq!(portable("/srv/models/m.onnx", dir), "/srv/models/m.onnx");
        assert_eq!(
            resolve("../models/m.onnx", dir),
            "/work/project/models/m.onnx"
        );
        assert_eq!(resolve("/srv/m.onnx", dir), "/srv/m.onnx");
        // A session at the top of the tree records absolute paths (no parent to stay inside).
        assert_eq!(portable("/m.onnx", Path::new("/")), "/m.onnx");
        assert_eq!(absolute(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
