//! `gridx-server migrate --to postgres://…`: copies an SQLite store into an empty
//! PostgreSQL database, in one transaction, and verifies the ledger on both sides.
//!
//! Every table is copied as it is, row for row and column by column (the two schemas
//! have the same tables and columns at one level: `postgres_schema`'s test holds them
//! together), in an order that keeps every reference valid. Ids are kept, and each
//! identity column then continues after the largest copied id. The append-only
//! ledger and audit log only receive inserts, which their triggers allow.

use super::db::{Db, OptionalExtension, Value};
use super::{StoreError, StoreResult, ledger};

/// The tables in an order that satisfies their references. A table of the SQLite
/// store missing here fails the copy rather than being left behind.
const TABLES: &[&str] = &[
    "users",
    "accounts",
    "workers",
    "jobs",
    "submit_keys",
    "ledger",
    "audit",
    "reliability",
    "replicas",
    "grid_state",
    "judge0_submissions",
    "live_output",
];

/// Tables the target's baseline fills: their copied rows replace the baseline's.
const SEEDED: &[(&str, &str)] = &[("accounts", "id"), ("grid_state", "key")];

/// Tables whose ids are identity columns on PostgreSQL.
const IDENTITIES: &[&str] = &["workers", "jobs", "ledger", "audit"];

/// What a migration copied and found.
#[derive(Debug, Clone)]
pub struct MigrationReport {
    /// Rows per table, in copy order.
    pub rows: Vec<(String, u64)>,
    /// The ledger's verification on the source and on the target.
    pub source: ledger::VerifyReport,
    pub target: ledger::VerifyReport,
}

/// Copies `source` (SQLite, not being served) into `target` (PostgreSQL, schema at
/// the same level, no users yet).
pub fn copy(source: &Db, target: &Db) -> StoreResult<MigrationReport> {
    let Some(sqlite) = source.sqlite() else {
        return Err(StoreError::Conflict(
            "the source of a migration is an SQLite store".into(),
        ));
    };
    let tables: Vec<String> = source.query_all(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        (),
        |r| r.get(0),
    )?;
    if let Some(unknown) = tables.iter().find(|t| !TABLES.contains(&t.as_str())) {
        return Err(StoreError::Conflict(format!(
            "the store has a table this migration does not know ({unknown}): use the gridx-server that wrote it"
        )));
    }
    // A coordinator serving the target would not see what is copied under it (its
    // queue is in memory): refuse while one holds a live lease.
    let served: bool = target
        .query_row(
            "SELECT renewed_at + interval '10 seconds' > now() FROM gridx_leadership WHERE id = 1",
            (),
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(false);
    if served {
        return Err(StoreError::Conflict(
            "a coordinator is serving the target database: stop it, then migrate".into(),
        ));
    }
    let users: i64 = target.query_row("SELECT count(*) FROM users", (), |r| r.get(0))?;
    if users > 0 {
        return Err(StoreError::Conflict(format!(
            "the target database already holds {users} users: migrate into an empty database"
        )));
    }
    let source_report = ledger::verify(source)?;
    if !source_report.violations.is_empty() {
        return Err(StoreError::Conflict(format!(
            "the SQLite store's ledger does not verify ({} violations; see `gridx-server ledger verify`): nothing was copied",
            source_report.violations.len()
        )));
    }

    let tx = target.transaction()?;
    let mut rows = Vec::new();
    for &table in TABLES {
        if !tables.iter().any(|t| t == table) {
            continue;
        }
        let columns = columns_of(sqlite, table)?;
        let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        if let Some((_, key)) = SEEDED.iter().find(|(t, _)| *t == table) {
            tx.execute(
                &format!("DELETE FROM {table} WHERE \"{key}\" IS NOT NULL"),
                (),
            )?;
        }
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            quoted.join(", "),
            placeholders.join(", ")
        );
        let select = format!("SELECT {} FROM {table}", quoted.join(", "));
        let mut copied = 0u64;
        // Row by row through one prepared statement; the source is read in full first
        // (SQLite and PostgreSQL are two connections, so nothing interleaves).
        let values: Vec<Vec<Value>> = source.query_all(&select, (), |r| {
            (0..columns.len())
                .map(|i| r.value(i).cloned())
                .collect::<StoreResult<Vec<Value>>>()
        })?;
        for row in values {
            let params: Vec<&dyn super::db::ToValue> =
                row.iter().map(|v| v as &dyn super::db::ToValue).collect();
            tx.execute(&insert, params.as_slice())?;
            copied += 1;
        }
        if IDENTITIES.contains(&table) {
            tx.query_row(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                                   COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                ),
                (),
                |_| Ok(()),
            )?;
        }
        rows.push((table.to_owned(), copied));
    }
    tx.commit()?;

    let target_report = ledger::verify(target)?;
    Ok(MigrationReport {
        rows,
        source: source_report,
        target: target_report,
    })
}

fn columns_of(sqlite: &rusqlite::Connection, table: &str) -> StoreResult<Vec<String>> {
    let mut stmt = sqlite.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
    let names = stmt
        .query_map([table], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}
