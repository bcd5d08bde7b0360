//! The audit log: every change an operator makes (`gridx-server user …`,
//! `gridx-server worker …`, `/v1/admin/…`), who made it and when. Append-only like the
//! ledger; written in the transaction of the change it records.

use super::{StoreResult, now_millis};
use crate::params;
use crate::store::db::Db;
use gridx_proto::admin::AuditEntry;
use gridx_proto::time_fmt::from_unix_millis;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// `gridx-server` run on the coordinator's host, by this OS user.
    Cli(String),
    /// An admin over the API.
    Admin(gridx_proto::UserName),
}

impl Actor {
    /// The command-line actor for whoever runs this process (`$USER`, else the uid).
    pub fn cli() -> Actor {
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty() && u.len() <= 64 && u.chars().all(|c| c.is_ascii_graphic()))
            .unwrap_or_else(|| {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::MetadataExt;
                    std::fs::metadata("/proc/self")
                        .map(|m| format!("uid {}", m.uid()))
                        .unwrap_or_else(|_| "unknown".into())
                }
                #[cfg(not(unix))]
                {
                    "unknown".to_owned()
                }
            });
        Actor::Cli(user)
    }

    pub fn label(&self) -> String {
        match self {
            Actor::Cli(user) => format!("cli:{user}"),
            Actor::Admin(name) => format!("admin:{name}"),
        }
    }
}

/// Appends one entry.
pub fn record(
    conn: &Db,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: &str,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        now_millis(),
        actor.label(),
        action,
        subject,
        detail
    ])?;
    Ok(())
}

/// The newest `limit` entries, older than entry `before` when given; newest first.
pub fn list(conn: &Db, limit: u32, before: Option<u64>) -> StoreResult<Vec<AuditEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, actor, action, subject, detail FROM audit
         WHERE CAST(?1 AS BIGINT) IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![before.map(|b| b as i64), limit], |r| {
        Ok(AuditEntry {
            id: r.get::<i64>(0)? as u64,
            at: from_unix_millis(r.get(1)?),
            actor: r.get(2)?,
            action: r.get(3)?,
            subject: r.get(4)?,
            detail: r.get(5)?,
        })
    })?;
    rows.collect::<Result<_, _>>()
}
