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

/// How long a leader's writer may sit idle inside a transaction before the server
/// ends its session. The queue never waits between the statements of a batch.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(2);

/// TCP keepalives and a send timeout, so that a peer gone without a word (a cut
/// network) is noticed in seconds by both ends instead of hours.
pub fn keepalives(config: &mut tokio_postgres::Config) {
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(10));
}

/// A connection; `epoch` fences every transaction of it (a leader's writer).
pub fn connect(url: &str, epoch: Option<i64>) -> StoreResult<Db> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::NotFound(format!("store URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.application_name("gridx-server");
    keepalives(&mut config);
    if config.get_options().is_none() {
        // The schema's `IF NOT EXISTS` notices are not news. A leader's writer that
        // is cut off in the middle of a transaction would hold its fence (a row
        // lock) until TCP gives up, hours later, and no standby could take over: the
        // server ends such a session once it has idled that long in a transaction.
        let mut options = String::from("-c client_min_messages=warning");
        if epoch.is_some() {
            options.push_str(&format!(
                " -c idle_in_transaction_session_timeout={}",
                IDLE_IN_TRANSACTION.as_millis()
            ));
        }
        config.options(options);
    }
    let client = postgres::Config::from(config).connect(postgres::NoTls)?;
    Ok(Db::postgres(client, epoch))
}

/// A connection to a store whose schema is at this build's level, creating the
/// schema in an empty database. A newer schema is refused by name.
pub fn open(url: &str, epoch: Option<i64>) -> StoreResult<Db> {
    let db = connect(url, epoch)?;
    ensure_schema(&db)?;
    Ok(db)
}

/// A connection to a store that exists, at a level this build reads; creates nothing.
pub fn open_existing(url: &str) -> StoreResult<Db> {
    let db = connect(url, None)?;
    let exists: bool = db.query_row("SELECT to_regclass('schema_level') IS NOT NULL", (), |r| {
        r.get(0)
    })?;
    if !exists {
        return Err(StoreError::NotFound(format!(
            "no Grid-X store in {}; check --store",
            super::redact(url)
        )));
    }
    let level: i64 = db.query_row("SELECT level FROM schema_level WHERE id = 1", (), |r| {
        r.get(0)
    })?;
    if level > BASELINE_LEVEL {
        return Err(newer(level));
    }
    Ok(db)
}

fn newer(level: i64) -> StoreError {
    StoreError::Conflict(format!(
        "the store's schema is at level {level}, newer than this gridx-server \
         understands ({BASELINE_LEVEL}); run the gridx-server that wrote it, or a newer one"
    ))
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
            return Err(newer(level));
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
