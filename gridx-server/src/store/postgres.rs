//! Opening the store on PostgreSQL: a connection, and the schema brought to this
//! build's level the first time (the baseline of `postgres_schema`, and the
//! leadership's table), under a transaction-level advisory lock so that coordinators
//! and admin commands starting together create it once.

use super::db::Db;
use super::postgres_schema::{BASELINE, BASELINE_LEVEL};
use super::{StoreError, StoreResult};
use std::time::Duration;

/// The advisory lock taken while the schema is checked or created: "gRidXSch".
const SCHEMA_LOCK: i64 = 0x6752_6964_5853_6368;

/// How long a connection may take to open; a database that does not answer is named
/// in the error instead of hanging the command.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection; `epoch` fences every transaction of it (a leader's writer).
pub fn connect(url: &str, epoch: Option<i64>) -> StoreResult<Db> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| StoreError::NotFound(format!("store URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.application_name("gridx-server");
    // The schema's `IF NOT EXISTS` notices are not news.
    if config.get_options().is_none() {
        config.options("-c client_min_messages=warning");
    }
    let client = config.connect(postgres::NoTls)?;
    Ok(Db::postgres(client, epoch))
}

/// A connection to a store whose schema is at this build's level, creating the
/// schema in an empty database. A newer schema is refused by name.
pub fn open(url: &str, epoch: Option<i64>) -> StoreResult<Db> {
    let db = connect(url, epoch)?;
    ensure_schema(&db)?;
    Ok(db)
}

/// The schema's level, creating it at the baseline when there is none.
pub fn ensure_schema(db: &Db) -> StoreResult<i64> {
    db.execute_batch("BEGIN")?;
    let result = (|| {
        db.query_row(
            "SELECT 1 FROM (SELECT pg_advisory_xact_lock(?1)) AS locked",
            [SCHEMA_LOCK],
            |_| Ok(()),
        )?;
        let exists: bool =
            db.query_row("SELECT to_regclass('schema_level') IS NOT NULL", (), |r| {
                r.get(0)
            })?;
        if !exists {
            db.execute_batch(BASELINE)?;
        }
        // The leadership's table, so that a fenced transaction finds it even before
        // any coordinator ran for leader.
        db.execute_batch(crate::leadership::TABLE_SQL)?;
        let level: i64 = db.query_row("SELECT level FROM schema_level WHERE id = 1", (), |r| {
            r.get(0)
        })?;
        if level > BASELINE_LEVEL {
            return Err(StoreError::Conflict(format!(
                "the store's schema is at level {level}, newer than this gridx-server \
                 understands ({BASELINE_LEVEL}); run the gridx-server that wrote it, or a newer one"
            )));
        }
        Ok(level)
    })();
    match result {
        Ok(level) => {
            db.execute_batch("COMMIT")?;
            Ok(level)
        }
        Err(e) => {
            let _ = db.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
