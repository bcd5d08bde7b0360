//! Job workspaces: one directory per attempt under a single base directory, removed
//! when the attempt ends on every path (the guard removes it on drop).

use std::path::{Path, PathBuf};

/// A directory that is deleted with everything in it when dropped.
#[derive(Debug)]
pub struct Workspace {
    path: PathBuf,
}

impl Workspace {
    /// Creates `<base>/job-<id>-<attempt>-<pid>`, replacing a leftover of the same name.
    pub fn create(base: &Path, job: u64, attempt: u32) -> std::io::Result<Workspace> {
        std::fs::create_dir_all(base)?;
        let path = base.join(format!("job-{job}-{attempt}-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir(&path)?;
        Ok(Workspace { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove a job workspace");
        }
    }
}

/// Removes every workspace a crashed run of this worker left under `base`.
pub fn remove_leftovers(base: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(base) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("job-")
            && std::fs::remove_dir_all(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_is_removed_on_drop() {
        let base = tempfile::tempdir().unwrap();
        let path = {
            let ws = Workspace::create(base.path(), 1, 1).unwrap();
            std::fs::write(ws.path().join("main.py"), "x").unwrap();
            ws.path().to_owned()
        };
        assert!(!path.exists());
    }

    #[test]
    fn leftovers_are_cleaned() {
        let base = tempfile::tempdir().unwrap();
        std::fs::create_dir(base.path().join("job-9-1-1")).unwrap();
        std::fs::create_dir(base.path().join("keep")).unwrap();
        assert_eq!(remove_leftovers(base.path()), 1);
        assert!(base.path().join("keep").exists());
    }
}
