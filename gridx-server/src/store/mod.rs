//! The SQLite store. One connection writes (owned by the queue's thread, see
//! `crate::queue`); a small pool of read-only connections serves the API. Every state
//! change happens inside a transaction together with the ledger rows it causes.

pub mod audit;
pub mod counters;
pub mod db;
pub mod jobs;
pub mod judge0;
pub mod ledger;
pub mod live_output;
pub mod lock;
pub mod migrate;
pub mod postgres;
pub mod postgres_schema;
pub mod reader;
pub mod schema;
#[cfg(test)]
pub(crate) mod testing;
pub mod trust;
pub mod users;

pub use db::{Db, Engine};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database error: {}", postgres_message(.0))]
    Postgres(#[from] ::postgres::Error),
    /// A query that must return a row returned none (`db::OptionalExtension`).
    #[error("no row")]
    NoRow,
    /// A statement of the transaction failed earlier (and the caller went on), so
    /// PostgreSQL aborted it: nothing of it was committed.
    #[error("the transaction was aborted by an earlier error and rolled back")]
    Aborted,
    /// This coordinator no longer leads: its epoch is not the leadership's.
    #[error("deposed: epoch {ours} no longer leads (the leadership's is {current:?})")]
    Deposed { ours: i64, current: Option<i64> },
    #[error("schema migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("{}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: permission denied: this user may read the store but not write it; run as the store's owner",
        .0.display()
    )]
    NotWritable(PathBuf),
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

/// PostgreSQL's own words: the server's message (with its detail), or the client's
/// error and its cause (the `postgres` crate's display alone says "db error").
fn postgres_message(e: &::postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        };
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Where the store lives: `--store` / `[store] url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite database in this data directory (`sqlite:DIR`; the default, in
    /// `--data-dir`).
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://…` or `postgresql://…`), which several
    /// coordinators may share, one leading.
    Postgres(String),
}

impl Location {
    /// Reads `sqlite:DIR` or a PostgreSQL URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(dir) = text.strip_prefix("sqlite:") {
            if dir.is_empty() {
                return Err("sqlite: needs a data directory, as in sqlite:/var/lib/gridx".into());
            }
            return Ok(Location::Sqlite(PathBuf::from(dir)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            text.parse::<::postgres::Config>()
                .map_err(|e| format!("{}: {e}", redact(text)))?;
            return Ok(Location::Postgres(text.to_owned()));
        }
        Err(format!(
            "{}: a store is sqlite:DIR or postgres://USER@HOST/DATABASE",
            redact(text)
        ))
    }

    /// As it may be printed and logged: a password in the URL is replaced by `***`.
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(dir) => format!("sqlite:{}", dir.display()),
            Location::Postgres(url) => redact(url),
        }
    }
}

/// A store URL with its password (if any) hidden.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Opens the store for an admin command that writes (`user`, `worker`).
pub fn open_writer_at(location: &Location) -> StoreResult<Db> {
    match location {
        Location::Sqlite(dir) => open_writer(dir),
        Location::Postgres(url) => postgres::open(url, None),
    }
}

/// Opens the store to read (the API's readers).
pub fn open_reader_at(location: &Location) -> StoreResult<Db> {
    match location {
        Location::Sqlite(dir) => open_reader(dir),
        Location::Postgres(url) => {
            let db = postgres::connect(url, None)?;
            // Readers read: a bug that made one write would fail, not write.
            db.execute_batch("SET default_transaction_read_only = on")?;
            Ok(db)
        }
    }
}

/// Opens the store to inspect it from an admin command (`ledger verify`, `audit`).
pub fn open_inspector_at(location: &Location) -> StoreResult<Db> {
    match location {
        Location::Sqlite(dir) => open_inspector(dir),
        // Creates nothing: a database without the store's schema is named.
        Location::Postgres(url) => postgres::open_existing(url),
    }
}

/// The database file inside a data directory.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("gridx.db")
}

/// The mode of a data directory the store creates: its owner only.
pub const DIR_MODE: u32 = 0o700;
/// The mode of the database, its WAL and shared-memory files, and backups: the
/// owner may read and write, nobody else anything.
pub const FILE_MODE: u32 = 0o600;

/// Opens (creating and migrating if needed) the store for writing. A data directory
/// it creates is [`DIR_MODE`], a database file it creates [`FILE_MODE`], whatever
/// the umask; SQLite gives the WAL and shared-memory files the database's mode.
/// Existing ones are left as they are ([`exposed_paths`] finds the loose ones).
pub fn open_writer(data_dir: &Path) -> StoreResult<Db> {
    let data_dir_error = |source| StoreError::DataDir {
        path: data_dir.to_owned(),
        source,
    };
    create_private_dir(data_dir).map_err(data_dir_error)?;
    let database = database_path(data_dir);
    match create_private_file(&database) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(data_dir_error(e)),
    }
    let mut conn = Connection::open(&database)?;
    // SQLite opens a file this user may not write read-only, and fails only at the
    // first write ("attempt to write a readonly database"): refuse it now, by name.
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        return Err(StoreError::NotWritable(database));
    }
    configure(&conn)?;
    // Every transaction on a writer takes the write lock at BEGIN. A deferred one
    // that reads and then writes fails at once with "database is locked" (SQLite
    // cannot wait: its snapshot is stale) when the coordinator committed in between,
    // which an admin command next to a busy coordinator meets; an immediate one
    // waits for the lock under the busy timeout instead.
    conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
    // WAL lets readers (the API, admin commands, backups) run while the queue writes.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    schema::migrations().to_latest(&mut conn)?;
    Ok(Db::Sqlite(conn))
}

/// Opens the store for the one coordinator that may serve it: takes its lock
/// ([`lock::ServeLock`], held as long as the returned guard lives), then the write
/// connection.
pub fn open_for_serving(data_dir: &Path) -> StoreResult<(lock::ServeLock, Db)> {
    create_private_dir(data_dir).map_err(|source| StoreError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    let guard = lock::ServeLock::acquire(data_dir)?;
    let conn = open_writer(data_dir)?;
    Ok((guard, conn))
}

/// Opens a read-only connection to an existing store.
pub fn open_reader(data_dir: &Path) -> StoreResult<Db> {
    let conn = Connection::open_with_flags(
        database_path(data_dir),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    Ok(Db::Sqlite(conn))
}

/// Opens an existing store to read it from an admin command (`ledger verify`)
/// without leaving anything behind. A store with no `-wal` file has no coordinator
/// writing it (a stopped one, or a restored backup), so it is opened `immutable`:
/// SQLite then creates no `-wal` or `-shm` file beside it, which the restore steps
/// warn about. A store with one is opened read-only in WAL mode, to see what the
/// running coordinator committed. A missing store is named, not SQLite's
/// "unable to open database file".
pub fn open_inspector(data_dir: &Path) -> StoreResult<Db> {
    let database = database_path(data_dir);
    if !database.is_file() {
        return Err(StoreError::NotFound(format!(
            "no store at {}; check --data-dir or --config",
            database.display()
        )));
    }
    let mut wal = database.clone().into_os_string();
    wal.push("-wal");
    if PathBuf::from(wal).exists() {
        return open_reader(data_dir);
    }
    let mut uri = url_path(&database);
    uri.insert_str(0, "file:");
    uri.push_str("?mode=ro&immutable=1");
    let conn = Connection::open_with_flags(
        uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
            | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(Db::Sqlite(conn))
}

/// A path as the path part of an SQLite `file:` URI: `%`, `?` and `#` escaped.
fn url_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
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

/// Creates `dir` (and missing parents) if it does not exist, with [`DIR_MODE`] set
/// explicitly so the umask cannot widen it. An existing directory is not touched.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)?;
    set_mode(dir, DIR_MODE)
}

/// Creates a new, empty file with [`FILE_MODE`] (umask-independent); fails with
/// `AlreadyExists` if there is one. SQLite takes an empty file as an empty database,
/// so the store and backups are written into files that were private from the start.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    drop(options.open(path)?);
    set_mode(path, FILE_MODE)
}

/// Sets a path's permission bits exactly (no-op off Unix).
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// The data directory and store files (database, WAL, shared memory) that exist and
/// that group or others may use, with their permission bits. `serve` warns about
/// each: the store holds everyone's code, output and token hashes.
pub fn exposed_paths(data_dir: &Path) -> Vec<(PathBuf, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let database = database_path(data_dir);
        let mut paths = vec![data_dir.to_owned(), database.clone()];
        for suffix in ["-wal", "-shm"] {
            let mut name = database.clone().into_os_string();
            name.push(suffix);
            paths.push(PathBuf::from(name));
        }
        paths
            .into_iter()
            .filter_map(|path| {
                let mode = std::fs::metadata(&path).ok()?.permissions().mode() & 0o777;
                (mode & 0o077 != 0).then_some((path, mode))
            })
            .collect()
    }
    #[cfg(not(unix))]
    {
        let _ = data_dir;
        Vec::new()
    }
}

pub(crate) fn now_millis() -> i64 {
    gridx_proto::time_fmt::to_unix_millis(gridx_proto::time_fmt::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_user(conn: &Db, name: &str) -> StoreResult<usize> {
        conn.execute(
            "INSERT INTO users (name, token_hash, created_at) VALUES (?1, CAST(?1 AS BLOB), 0)",
            [name],
        )
    }

    /// An admin command that reads and then writes while the coordinator commits in
    /// between must wait for the lock, not fail with "database is locked" (CI met
    /// this: `worker add` beside a busy coordinator).
    #[test]
    fn a_writer_transaction_that_reads_then_writes_waits_for_another_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let admin = open_writer(dir.path()).expect("admin connection");
        let tx = admin.transaction().expect("begin");
        let users: i64 = tx
            .query_row("SELECT count(*) FROM users", (), |r| r.get(0))
            .expect("read");
        let path = dir.path().to_owned();
        let coordinator = std::thread::spawn(move || {
            let conn = open_writer(&path).expect("coordinator connection");
            add_user(&conn, "coordinator")
        });
        std::thread::sleep(Duration::from_millis(200));
        add_user(&tx, "admin").expect("the admin's write after its read");
        tx.commit().expect("commit");
        coordinator
            .join()
            .expect("thread")
            .expect("the coordinator's write waits, then succeeds");
        let after: i64 = admin
            .query_row("SELECT count(*) FROM users", (), |r| r.get(0))
            .expect("count");
        assert_eq!(after, users + 2);
    }
}
