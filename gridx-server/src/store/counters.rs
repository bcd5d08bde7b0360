//! Change counters in `grid_state`: an admin command writing the store from another
//! process grows one, and the running coordinator, which reads them once a second,
//! reloads what it keeps in memory when one grew.

use super::StoreResult;
use crate::store::db::{Db, OptionalExtension};

/// What a counter stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Trust marks and records (`worker trust`, `worker restore`).
    Trust,
    /// Disabled accounts (`user disable`, `user enable`).
    Users,
}

impl Counter {
    fn key(self) -> &'static str {
        match self {
            Counter::Trust => "trust_version",
            Counter::Users => "users_version",
        }
    }
}

/// The counter's value (0 before its first change).
pub fn read(conn: &Db, counter: Counter) -> StoreResult<i64> {
    Ok(conn
        .prepare_cached("SELECT value FROM grid_state WHERE key = ?1")?
        .query_row([counter.key()], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Grows the counter, inside the caller's transaction that made the change.
pub fn bump(conn: &Db, counter: Counter) -> StoreResult<()> {
    conn.prepare_cached("UPDATE grid_state SET value = value + 1 WHERE key = ?1")?
        .execute([counter.key()])?;
    Ok(())
}
