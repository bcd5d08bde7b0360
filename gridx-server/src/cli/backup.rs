//! `gridx-server backup FILE`: SQLite's online backup, safe while `serve` writes.

use color_eyre::eyre::{Context, Result, bail, eyre};
use gridx_server::store;
use std::path::Path;
use std::process::ExitCode;

pub fn backup(data_dir: &Path, file: &Path) -> Result<ExitCode> {
    if file.exists() {
        bail!("{} already exists; choose a new file", file.display());
    }
    let conn = store::open_inspector(data_dir)
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    // A copy of the store is as private as the store: the file is made owner-only
    // before a byte is written into it, whatever the umask.
    store::create_private_file(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            eyre!("{} already exists; choose a new file", file.display())
        }
        _ => eyre!(e).wrap_err(format!("creating {}", file.display())),
    })?;
    let Some(sqlite) = conn.sqlite() else {
        bail!("backup copies an SQLite store; back up PostgreSQL with pg_dump or its own tools");
    };
    if let Err(e) = sqlite.backup(rusqlite::MAIN_DB, file, None) {
        let _ = std::fs::remove_file(file);
        return Err(eyre!(e).wrap_err(format!("writing {}", file.display())));
    }
    eprintln!(
        "backed up {} to {}",
        store::database_path(data_dir).display(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}
