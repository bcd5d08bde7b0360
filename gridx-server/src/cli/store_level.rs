//! A store written by a newer `gridx-server` is refused before anything opens it for
//! writing, with a message that says what happened and what to do. The migration
//! library refuses it too, but as "a migration number that is too high", which tells an
//! operator who has just rolled a binary back nothing (docs/operations.md, "Upgrading").

use color_eyre::eyre::{Result, WrapErr, bail};
use gridx_server::store::{database_path, schema};
use std::path::Path;

/// Fails when the store in `data_dir` is at a schema level this binary does not know.
/// A data directory without a store passes: the command creates a current one.
pub fn refuse_newer_store(data_dir: &Path) -> Result<()> {
    let database = database_path(data_dir);
    if !database.exists() {
        return Ok(());
    }
    // Read-only: an older binary must not touch (not even switch to WAL) a store it
    // does not understand.
    // A store this check cannot read (no permission, not a database) is not judged
    // here: the opener that follows names the path and what is wrong with it.
    let Ok(conn) = rusqlite::Connection::open_with_flags(
        &database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return Ok(());
    };
    refuse_newer_sqlite(&conn, &database)
}

/// The same check on a connection already open (the read-only commands' inspector
/// connection, which leaves no `-wal` or `-shm` file behind).
pub fn refuse_newer_level(db: &gridx_server::store::Db, database: &Path) -> Result<()> {
    match db.sqlite() {
        Some(conn) => refuse_newer_sqlite(conn, database),
        None => Ok(()),
    }
}

fn refuse_newer_sqlite(conn: &rusqlite::Connection, database: &Path) -> Result<()> {
    let Ok(found) = conn.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
    else {
        return Ok(());
    };
    let ahead = schema::migrations()
        .pending_migrations(conn)
        .wrap_err_with(|| format!("reading the schema level of {}", database.display()))?;
    if ahead < 0 {
        let known = found + i64::from(ahead);
        bail!(
            "the store {} is at schema level {found}, but this gridx-server {} knows levels up to {known}: \
             a newer gridx-server has upgraded it, and an older one cannot use it. \
             Run the newer gridx-server, or restore the backup taken before the upgrade \
             (docs/operations.md, \"Upgrading\")",
            database.display(),
            env!("CARGO_PKG_VERSION"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_store_of_a_newer_version_is_refused_plainly_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        drop(gridx_server::store::open_writer(dir.path()).unwrap());
        refuse_newer_store(dir.path()).unwrap();

        let latest: i64 = {
            let conn = rusqlite::Connection::open(database_path(dir.path())).unwrap();
            let latest = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            conn.pragma_update(None, "user_version", latest + 1)
                .unwrap();
            latest
        };
        let err = format!("{:#}", refuse_newer_store(dir.path()).unwrap_err());
        let level = latest + 1;
        assert!(
            err.contains(&format!("schema level {level}")) && err.contains("restore the backup"),
            "{err}"
        );
        assert!(err.contains(&format!("up to {latest}")), "{err}");
        // Refused without a write: the level is still the newer one.
        let conn = rusqlite::Connection::open(database_path(dir.path())).unwrap();
        let still: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(still, level);
    }

    #[test]
    fn no_store_yet_is_not_refused() {
        let dir = tempfile::tempdir().unwrap();
        refuse_newer_store(&dir.path().join("absent")).unwrap();
    }
}
