//! The session file: RON, written atomically with paths relative to the file where they lie
//! near it; older formats migrated on load, newer ones refused by name, a file that does not
//! parse kept as a backup before anything can overwrite it.

use std::path::Path;

use anyhow::{anyhow, Context, Result};

use super::Session;
use crate::data::DatasetDesc;

/// The session file format this build writes: 1 added experiment ids; 2 records paths relative
/// to the session file (where they lie near it, see [`crate::paths::portable`]); 3 writes
/// non-finite figures as words (`"inf"`, `"nan"`: [`crate::eval::figure`]) and records how
/// each result was measured. Older files load (missing fields take defaults, ids are assigned,
/// paths resolved as those versions meant them); newer ones are refused by name.
pub const SESSION_FORMAT: u32 = 3;

impl Session {
    pub fn to_ron(&self) -> Result<String> {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default().struct_names(true))
            .map_err(|e| anyhow!("cannot serialize the session: {e}"))
    }

    /// Parses a session text (paths as written; [`Session::load`] resolves them).
    pub fn from_ron(text: &str) -> Result<Session> {
        Ok(Session::parse(text)?.0)
    }

    /// The session and the format it was written in.
    fn parse(text: &str) -> Result<(Session, u32)> {
        // ron's error starts with line:column.
        let mut session: Session = ron::from_str(text).map_err(|e| anyhow!("at {e}"))?;
        let written_in = session.format;
        if session.format > SESSION_FORMAT {
            return Err(anyhow!(
                "written by quantbench {} in session format {}; this quantbench {} reads up to format {SESSION_FORMAT}",
                session.tool_version,
                session.format,
                env!("CARGO_PKG_VERSION")
            ));
        }
        session.assign_missing_ids();
        session.format = SESSION_FORMAT;
        Ok((session, written_in))
    }

    /// Writes atomically (a crash mid-write leaves the previous file intact), with the paths
    /// it holds relative to the file's folder where they lie near it.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::jobs::checkpoint("save a session")?;
        let dir = session_dir(path);
        let mut portable = self.clone();
        portable.map_paths(&mut |p| *p = crate::paths::portable(p, &dir));
        crate::fileio::write_atomic(path, portable.to_ron()?.as_bytes())
    }

    /// Calls `f` on every file path the session holds: the model, the dataset (and the files
    /// its description names), each result's kept model and data.
    fn map_paths(&mut self, f: &mut dyn FnMut(&mut String)) {
        f(&mut self.model.path);
        if let Some(d) = self.dataset.as_mut() {
            f(&mut d.path);
            d.desc.paths_mut().into_iter().for_each(&mut *f);
        }
        for e in &mut self.experiments {
            if let Some(p) = e.result.model_path.as_mut() {
                f(p);
            }
            if let Some(d) = e.result.data.as_mut() {
                f(&mut d.path);
                d.desc.paths_mut().into_iter().for_each(&mut *f);
            }
        }
    }

    /// Reads a session file; its paths come back absolute. A file that does not parse is
    /// copied to a backup beside it (named in the error) before anything can overwrite it.
    pub fn load(path: &Path) -> Result<Session> {
        crate::jobs::checkpoint("open a session")?;
        let bytes = std::fs::read(path)
            .with_context(|| format!("{}: cannot read session", path.display()))?;
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|e| anyhow!("not UTF-8 text ({e})"))
            .and_then(Session::parse);
        let (mut session, format) = match parsed {
            Ok(p) => p,
            Err(e) => {
                let kept = match keep_backup(path, &bytes) {
                    Ok(backup) => format!("a copy is kept as {}", backup.display()),
                    Err(b) => format!("no backup could be written: {b:#}"),
                };
                return Err(e.context(format!(
                    "{}: not a quantbench session ({kept})",
                    path.display()
                )));
            }
        };
        let dir = session_dir(path);
        if format >= 2 {
            session.map_paths(&mut |p| *p = crate::paths::resolve(p, &dir));
        } else {
            session.migrate_paths(&dir);
        }
        Ok(session)
    }

    /// Before format 2 a session held paths as they were given, relative to the directory
    /// quantbench ran in (the session's own folder is tried first: a moved project), and a
    /// dataset description's paths relative to the description file, as in the file.
    fn migrate_paths(&mut self, dir: &Path) {
        let resolve = |p: &mut String| {
            let beside = crate::paths::resolve(p, dir);
            *p = if p.is_empty() || Path::new(&beside).exists() {
                beside
            } else {
                crate::paths::absolute(Path::new(p.as_str()))
                    .display()
                    .to_string()
            };
        };
        let dataset = |path: &mut String, desc: &mut DatasetDesc| {
            resolve(path);
            let base = Path::new(path.as_str());
            let base = if base.extension().is_some_and(|e| e == "ron") {
                base.parent().unwrap_or(Path::new("")).to_path_buf()
            } else {
                dir.to_path_buf()
            };
            for p in desc.paths_mut() {
                if Path::new(p.as_str()).is_relative() && base != dir {
                    *p = crate::paths::resolve(p, &base);
                } else {
                    resolve(p);
                }
            }
        };
        resolve(&mut self.model.path);
        if let Some(d) = self.dataset.as_mut() {
            dataset(&mut d.path, &mut d.desc);
        }
        for e in &mut self.experiments {
            if let Some(p) = e.result.model_path.as_mut() {
                resolve(p);
            }
            if let Some(d) = e.result.data.as_mut() {
                dataset(&mut d.path, &mut d.desc);
            }
        }
    }
}

fn session_dir(path: &Path) -> std::path::PathBuf {
    crate::paths::absolute(crate::fileio::folder_of(path))
}

/// Copies a session file that does not parse to `NAME.corrupt-N.ron` beside it (the first N
/// free, or the one already holding these bytes), and returns the copy's path.
fn keep_backup(path: &Path, bytes: &[u8]) -> Result<std::path::PathBuf> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "session".into());
    for n in 1..1000 {
        let backup = path.with_file_name(format!("{stem}.corrupt-{n}.ron"));
        match std::fs::read(&backup) {
            Ok(existing) if existing == bytes => return Ok(backup),
            Ok(_) => continue,
            Err(_) => {
                crate::fileio::write_atomic(&backup, bytes)?;
                return Ok(backup);
            }
        }
    }
    Err(anyhow!("1000 backups exist already"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{standard_preset, DatasetRef, Experiment, ExperimentId, ModelRef};

    #[test]
    fn ids_are_never_reused_or_shifted() {
        let mut s = Session::new(
            ModelRef {
                path: "m.onnx".into(),
                sha256: String::new(),
                bytes: 0,
            },
            None,
        );
        let ids: Vec<u64> = standard_preset(10, &crate::host::Machine::default())
            .into_iter()
            .map(|e| s.add(e).0)
            .collect();
        assert_eq!(ids, (1..=7).collect::<Vec<_>>());
        s.experiments.remove(2);
        assert_eq!(s.position(ExperimentId(5)), Some(3));
        assert_eq!(s.position(ExperimentId(3)), None);
        assert_eq!(s.add(Experiment::float()), ExperimentId(8));
        // The newest removed: its id is not given out again.
        s.experiments.retain(|e| e.id != ExperimentId(8));
        assert_eq!(s.add(Experiment::float()), ExperimentId(9));
        s.experiments.retain(|e| e.id != ExperimentId(9));
        // A session written before ids: every experiment gets one, in order.
        let mut text = s.to_ron().unwrap().replace("last_id: 9,", "");
        for id in 1..=9 {
            text = text.replace(&format!(" id: {id},"), "");
        }
        assert!(!text.contains("id:"), "{text}");
        let old = Session::from_ron(&text).unwrap();
        let ids: Vec<u64> = old.experiments.iter().map(|e| e.id.0).collect();
        assert_eq!(ids, (1..=6).collect::<Vec<_>>());
    }

    #[test]
    fn corrupt_and_future_sessions_are_refused_with_where_and_why() {
        let s = Session::new(
            ModelRef {
                path: "m.onnx".into(),
                sha256: String::new(),
                bytes: 0,
            },
            None,
        );
        let text = s.to_ron().unwrap();
        let broken = text.replacen("experiments: [", "experiments: [[", 1);
        let line = broken
            .lines()
            .position(|l| l.contains("experiments: [["))
            .unwrap()
            + 1;
        let e = Session::from_ron(&broken).unwrap_err().to_string();
        assert!(e.starts_with(&format!("at {line}:")), "{e}");
        let future = text.replacen(
            &format!("format: {SESSION_FORMAT},"),
            &format!("format: {},", SESSION_FORMAT + 1),
            1,
        );
        let e = Session::from_ron(&future).unwrap_err().to_string();
        assert!(e.contains("reads up to format"), "{e}");
    }

    /// A format-1 session (paths as given, a description's paths relative to the description)
    /// comes back with absolute paths to the same files; saved again, they are relative to the
    /// session file where they lie near it.
    #[test]
    fn format_one_paths_resolve_to_the_files_they_meant() {
        let top = tempfile::tempdir().unwrap();
        let project = top.path().join("project");
        std::fs::create_dir_all(project.join("data/photos")).unwrap();
        std::fs::write(project.join("model.onnx"), b"m").unwrap();
        std::fs::write(project.join("data/photos.ron"), b"").unwrap();
        let desc = crate::data::DatasetDesc {
            source: crate::data::Source::ImageFolder {
                path: "photos".into(),
                labels: crate::data::Labels::None,
            },
            preprocess: Default::default(),
            calibration: Default::default(),
            evaluation: Default::default(),
            augment: 0,
        };
        let mut s = Session::new(
            ModelRef {
                path: "model.onnx".into(),
                sha256: String::new(),
                bytes: 1,
            },
            Some(DatasetRef {
                path: "data/photos.ron".into(),
                desc,
            }),
        );
        s.format = 1;
        let path = project.join("s.ron");
        let text =
            s.to_ron()
                .unwrap()
                .replacen(&format!("format: {SESSION_FORMAT},"), "format: 1,", 1);
        std::fs::write(&path, text).unwrap();
        let back = Session::load(&path).unwrap();
        let p = |rel: &str| project.join(rel).display().to_string();
        assert_eq!(back.model.path, p("model.onnx"));
        let d = back.dataset.as_ref().unwrap();
        assert_eq!(d.path, p("data/photos.ron"));
        assert_eq!(d.desc.clone().paths_mut()[0].as_str(), p("data/photos"));
        back.save(&path).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.contains("path: \"data/photos\""), "{written}");
        assert!(!written.contains(project.to_str().unwrap()), "{written}");
        assert_eq!(Session::load(&path).unwrap(), back);
    }
}
