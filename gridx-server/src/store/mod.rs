//! The SQLite store. One connection writes (owned by the queue's thread, see
//! `crate::queue`); a small pool of read-only connections serves the API. Every state
//! change happens inside a transaction together with the ledger rows it causes.

pub mod jobs;
pub mod ledger;
pub mod reader;
pub mod schema;
#[cfg(test)]
pub(crate) mod testing;
pub mod users;

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("schema migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("the store is unavailable")]
    Unavailable,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The database file inside a data directory.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("gridx.db")
}

/// Opens (creating and migrating if needed) the store for writing.
pub fn open_writer(data_dir: &Path) -> StoreResult<Connection> {
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    let mut conn = Connection::open(database_path(data_dir))?;
    configure(&conn)?;
    // WAL lets readers (the API, admin commands, backups) run while the queue writes.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    schema::migrations().to_latest(&mut conn)?;
    Ok(conn)
}

/// Opens a read-only connection to an existing store.
pub fn open_reader(data_dir: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        database_path(data_dir),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    Ok(conn)
}

fn configure(conn: &Connection) -> StoreResult<()> {
    // Admin commands write from another process while `serve` runs: wait, don't fail.
    conn.busy_timeout(Duration::from_secs(10))?;
    // FULL: a commit is on disk before the API answers. Group commit amortises it.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

pub(crate) fn now_millis() -> i64 {
    gridx_proto::time_fmt::to_unix_millis(gridx_proto::time_fmt::now())
}
