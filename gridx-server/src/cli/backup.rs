//! `gridx-server backup FILE`: SQLite's online backup, safe while `serve` writes.

use color_eyre::eyre::{Context, Result, bail};
use gridx_server::store;
use std::path::Path;
use std::process::ExitCode;

pub fn backup(data_dir: &Path, file: &Path) -> Result<ExitCode> {
    if file.exists() {
        bail!("{} already exists; choose a new file", file.display());
    }
    let conn = store::open_reader(data_dir)
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    conn.backup(rusqlite::MAIN_DB, file, None)
        .with_context(|| format!("writing {}", file.display()))?;
    eprintln!(
        "backed up {} to {}",
        store::database_path(data_dir).display(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}
