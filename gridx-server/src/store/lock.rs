//! One coordinator per store. Two `serve` on one data directory would each believe
//! it owns every lease: the second declares the first one's workers lost and requeues
//! their jobs, which then run twice. So `serve` holds an exclusive advisory lock on
//! `gridx.lock` beside the database for as long as it runs, with its pid written in
//! the file so the refusal can name the holder. The kernel drops the lock when the
//! process dies, however it dies, so a crash never leaves a stale lock behind.
//! Admin commands do not take it: they are meant to run beside `serve`.

use super::{StoreError, StoreResult};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file inside a data directory.
pub fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join("gridx.lock")
}

/// Held while `serve` runs; dropping it releases the lock.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

impl ServeLock {
    /// Takes the store's lock, or says who holds it.
    pub fn acquire(data_dir: &Path) -> StoreResult<ServeLock> {
        let path = lock_path(data_dir);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| StoreError::DataDir {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // What the holder wrote; a holder that just started may not have yet.
                let _ = file.take(32).read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "another process".to_owned(),
                };
                return Err(StoreError::Conflict(format!(
                    "another coordinator ({holder}) is serving the store in {}; stop it first, or give this one its own --data-dir",
                    data_dir.display()
                )));
            }
            Err(TryLockError::Error(source)) => {
                return Err(StoreError::DataDir { path, source });
            }
        }
        let pid = std::process::id();
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{pid}"))
            .and_then(|()| file.flush());
        written.map_err(|source| StoreError::DataDir { path, source })?;
        Ok(ServeLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = ServeLock::acquire(dir.path()).expect("the first takes it");
        let refused = ServeLock::acquire(dir.path()).expect_err("the second is refused");
        let text = refused.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("another coordinator"), "{text}");
        drop(first);
        ServeLock::acquire(dir.path()).expect("free again once the first is gone");
    }
}
