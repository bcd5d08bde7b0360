//! Users, workers and their tokens: the admin commands' side of the store.

use super::counters::{self, Counter};
use super::ledger::{self, PostError};
use super::{StoreError, StoreResult, now_millis};
use crate::params;
use crate::store::db::{Db, OptionalExtension};
use crate::tokens;
use gridx_proto::admin::UserAccountView;
use gridx_proto::{Credits, UserName, WorkerId};
use std::collections::HashSet;

/// A user as the API's auth layer knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: UserName,
    pub is_admin: bool,
    /// Why the operator disabled the account, if they did: its token is refused.
    pub disabled: Option<String>,
}

/// A worker as the session layer knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRecord {
    pub id: WorkerId,
    pub name: String,
    pub owner: UserName,
    pub revoked: bool,
    /// The most job attempts the coordinator gives it at once, set by the operator
    /// (`worker add --max-slots`); `None`: as many as its `hello` claims.
    pub max_slots: Option<u32>,
}

fn token() -> StoreResult<String> {
    // An OS without a random source cannot issue tokens; say so instead of panicking.
    tokens::generate(tokens::USER_PREFIX).map_err(|_| StoreError::Unavailable)
}

/// Creates a user who may submit up to priority 0 (see
/// [`create_user_with_max_priority`]).
pub fn create_user(
    conn: &Db,
    name: &UserName,
    credits: Credits,
    admin: bool,
) -> StoreResult<String> {
    create_user_with_max_priority(conn, name, credits, admin, 0)
}

/// Creates a user, opens their account and grants `credits` from the mint, all in one
/// transaction. `max_priority` (0 or more) is the highest priority their submits may
/// ask for. Returns the API token, which is never stored.
pub fn create_user_with_max_priority(
    conn: &Db,
    name: &UserName,
    credits: Credits,
    admin: bool,
    max_priority: i32,
) -> StoreResult<String> {
    let tx = conn.transaction()?;
    let token = create_user_in(&tx, name, credits, admin, max_priority)?;
    tx.commit()?;
    Ok(token)
}

/// [`create_user_with_max_priority`] inside the caller's transaction, so that what
/// goes with it (the command line's audit entry) commits with it or not at all.
pub fn create_user_in(
    tx: &Db,
    name: &UserName,
    credits: Credits,
    admin: bool,
    max_priority: i32,
) -> StoreResult<String> {
    if credits.is_negative() {
        return Err(StoreError::Conflict("credits must not be negative".into()));
    }
    check_max_priority(max_priority)?;
    let token = token()?;
    if exists(tx, name)? {
        return Err(StoreError::Conflict(format!("user {name} already exists")));
    }
    let now = now_millis();
    tx.execute(
        "INSERT INTO users (name, token_hash, is_admin, created_at, max_priority)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            name.as_str(),
            tokens::hash(&token).as_slice(),
            admin,
            now,
            max_priority
        ],
    )?;
    let account = ledger::user_account(name.as_str());
    tx.execute(
        "INSERT INTO accounts (id, balance) VALUES (?1, 0)",
        [&account],
    )?;
    let grant = crate::settlement::Movement::Grant {
        user: name,
        amount: credits,
        reason: None,
    };
    crate::settlement::settle(tx, &grant, None, now).map_err(|e| match e {
        crate::settlement::SettleError::Post(PostError::Store(s)) => s,
        other => StoreError::Conflict(other.to_string()),
    })?;
    Ok(token)
}

/// Replaces a user's token; the old one stops working at once.
pub fn rotate_user_token(conn: &Db, name: &UserName) -> StoreResult<String> {
    let token = token()?;
    let changed = conn.execute(
        "UPDATE users SET token_hash = ?2 WHERE name = ?1",
        params![name.as_str(), tokens::hash(&token).as_slice()],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("no user {name}")));
    }
    Ok(token)
}

fn check_max_priority(max_priority: i32) -> StoreResult<()> {
    if max_priority < 0 {
        return Err(StoreError::Conflict(format!(
            "the maximum priority must be 0 or more, not {max_priority}"
        )));
    }
    Ok(())
}

/// Sets the highest priority a user's submits may ask for (0 or more). Jobs already
/// queued keep theirs.
pub fn set_max_priority(conn: &Db, name: &UserName, max_priority: i32) -> StoreResult<()> {
    check_max_priority(max_priority)?;
    let changed = conn.execute(
        "UPDATE users SET max_priority = ?2 WHERE name = ?1",
        params![name.as_str(), max_priority],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("no user {name}")));
    }
    Ok(())
}

/// What a user may submit: the highest priority, and whether the account is
/// disabled (why). The queue asks on every submit, in the submit's own transaction,
/// so an operator's change applies to the next submit.
pub fn submit_rights(conn: &Db, name: &UserName) -> StoreResult<(i32, Option<String>)> {
    conn.prepare_cached("SELECT max_priority, disabled FROM users WHERE name = ?1")?
        .query_row([name.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no user {name}")))
}

fn exists(conn: &Db, name: &UserName) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM users WHERE name = ?1")?
        .query_row([name.as_str()], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Fails with "no user NAME" unless the user exists.
pub fn require(conn: &Db, name: &UserName) -> StoreResult<()> {
    if exists(conn, name)? {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!("no user {name}")))
    }
}

/// Every user as the operator sees them (`user list`, `GET /v1/admin/users`).
pub fn list_users(conn: &Db) -> StoreResult<Vec<UserAccountView>> {
    user_views(conn, None)
}

/// One user as the operator sees them.
pub fn user_account_view(conn: &Db, name: &UserName) -> StoreResult<UserAccountView> {
    user_views(conn, Some(name))?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("no user {name}")))
}

/// Every user, or only `only`.
fn user_views(conn: &Db, only: Option<&UserName>) -> StoreResult<Vec<UserAccountView>> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.name, u.is_admin, a.balance,
                (SELECT COUNT(*) FROM jobs j WHERE j.\"user\" = u.name), u.max_priority, u.disabled
         FROM users u JOIN accounts a ON a.id = 'user:' || u.name
         WHERE CAST(?1 AS TEXT) IS NULL OR u.name = ?1 ORDER BY u.name",
    )?;
    let rows = stmt.query_map([only.map(UserName::as_str)], |r| {
        Ok((
            r.get::<String>(0)?,
            r.get::<bool>(1)?,
            r.get::<i64>(2)?,
            r.get::<i64>(3)?,
            r.get::<i32>(4)?,
            r.get::<Option<String>>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, admin, balance, jobs, max_priority, disabled) = row?;
        out.push(UserAccountView {
            user: UserName::new(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            admin,
            balance: Credits::from_millis(balance),
            jobs: jobs as u64,
            max_priority,
            disabled,
        });
    }
    Ok(out)
}

/// Disables an account (`reason` given) or enables it (`None`). Returns whether
/// anything changed; the `users_version` grows when it did, so a running coordinator
/// cancels the account's queued jobs (`queue::housekeeping`).
pub fn set_disabled(conn: &Db, name: &UserName, reason: Option<&str>) -> StoreResult<bool> {
    let current: Option<Option<String>> = conn
        .query_row(
            "SELECT disabled FROM users WHERE name = ?1",
            [name.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    let Some(current) = current else {
        return Err(StoreError::NotFound(format!("no user {name}")));
    };
    if current.is_some() == reason.is_some() {
        return Ok(false);
    }
    conn.execute(
        "UPDATE users SET disabled = ?2 WHERE name = ?1",
        params![name.as_str(), reason],
    )?;
    counters::bump(conn, Counter::Users)?;
    Ok(true)
}

/// The accounts the operator disabled.
pub fn disabled_users(conn: &Db) -> StoreResult<HashSet<UserName>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM users WHERE disabled IS NOT NULL")?;
    let mut out = HashSet::new();
    for name in stmt.query_map((), |r| r.get::<String>(0))? {
        out.insert(UserName::new(&name?).map_err(|e| StoreError::Corrupt(e.to_string()))?);
    }
    Ok(out)
}

/// Finds the user a presented API token belongs to.
pub fn user_by_token(conn: &Db, token: &str) -> StoreResult<Option<UserRecord>> {
    let presented = tokens::hash(token);
    let row = conn
        .prepare_cached(
            "SELECT name, is_admin, token_hash, disabled FROM users WHERE token_hash = ?1",
        )?
        .query_row([presented.as_slice()], |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<bool>(1)?,
                r.get::<Vec<u8>>(2)?,
                r.get::<Option<String>>(3)?,
            ))
        })
        .optional()?;
    let Some((name, is_admin, stored, disabled)) = row else {
        return Ok(None);
    };
    if !tokens::matches(&stored, &presented) {
        return Ok(None);
    }
    let name = UserName::new(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Some(UserRecord {
        name,
        is_admin,
        disabled,
    }))
}

/// Registers a worker owned by `owner` with no slot cap of its own (it gets as many
/// as its `hello` claims); returns its id and token.
pub fn add_worker(conn: &Db, owner: &UserName, label: &str) -> StoreResult<(WorkerId, String)> {
    register_worker(conn, owner, label, None)
}

/// Registers a worker owned by `owner`; `max_slots` caps the job attempts the
/// coordinator gives it at once, whatever it claims. Returns its id and token.
pub fn register_worker(
    conn: &Db,
    owner: &UserName,
    label: &str,
    max_slots: Option<u32>,
) -> StoreResult<(WorkerId, String)> {
    check_max_slots(max_slots)?;
    require(conn, owner)?;
    let token = tokens::generate(tokens::WORKER_PREFIX).map_err(|_| StoreError::Unavailable)?;
    let id: i64 = conn.query_row(
        "INSERT INTO workers (name, owner, token_hash, created_at, max_slots)
         VALUES (?1, ?2, ?3, ?4, ?5)
         RETURNING id",
        params![
            label,
            owner.as_str(),
            tokens::hash(&token).as_slice(),
            now_millis(),
            max_slots
        ],
        |r| r.get(0),
    )?;
    Ok((WorkerId(id as u64), token))
}

fn check_max_slots(max_slots: Option<u32>) -> StoreResult<()> {
    if max_slots == Some(0) {
        return Err(StoreError::Conflict(
            "a worker's max slots must be 1 or more".into(),
        ));
    }
    Ok(())
}

/// Sets (or with `None` removes) a worker's slot cap. A running coordinator applies
/// it at the worker's next `hello`.
pub fn set_worker_max_slots(conn: &Db, id: WorkerId, max_slots: Option<u32>) -> StoreResult<()> {
    check_max_slots(max_slots)?;
    let changed = conn.execute(
        "UPDATE workers SET max_slots = ?2 WHERE id = ?1",
        params![id.0 as i64, max_slots],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("no worker {id}")));
    }
    Ok(())
}

/// A worker's slot cap as stored now (the queue reads it at each `hello`).
pub fn worker_max_slots(conn: &Db, id: WorkerId) -> StoreResult<Option<u32>> {
    Ok(conn
        .prepare_cached("SELECT max_slots FROM workers WHERE id = ?1")?
        .query_row([id.0 as i64], |r| r.get::<Option<u32>>(0))
        .optional()?
        .flatten())
}

/// Revokes a worker's token for good. The running coordinator notices within a second
/// and drops the worker's session.
pub fn revoke_worker(conn: &Db, id: WorkerId) -> StoreResult<()> {
    let changed = conn.execute(
        "UPDATE workers SET revoked = 1 WHERE id = ?1",
        [id.0 as i64],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("no worker {id}")));
    }
    Ok(())
}

/// Finds the worker a presented worker token belongs to (revoked ones included, so the
/// caller can say "revoked" rather than "unknown").
pub fn worker_by_token(conn: &Db, token: &str) -> StoreResult<Option<WorkerRecord>> {
    let presented = tokens::hash(token);
    let row = conn
        .prepare_cached(
            "SELECT id, name, owner, revoked, token_hash, max_slots FROM workers
             WHERE token_hash = ?1",
        )?
        .query_row([presented.as_slice()], |r| {
            Ok((
                r.get::<i64>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<bool>(3)?,
                r.get::<Vec<u8>>(4)?,
                r.get::<Option<u32>>(5)?,
            ))
        })
        .optional()?;
    let Some((id, name, owner, revoked, stored, max_slots)) = row else {
        return Ok(None);
    };
    if !tokens::matches(&stored, &presented) {
        return Ok(None);
    }
    Ok(Some(WorkerRecord {
        id: WorkerId(id as u64),
        name,
        owner: UserName::new(&owner).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        revoked,
        max_slots,
    }))
}

/// Every registered worker, for the coordinator's start-up and the workers list.
pub fn all_workers(conn: &Db) -> StoreResult<Vec<(WorkerRecord, Option<i64>)>> {
    let mut stmt = conn.prepare(
        "SELECT id, name, owner, revoked, last_seen, max_slots FROM workers ORDER BY id",
    )?;
    let rows = stmt.query_map((), |r| {
        Ok((
            r.get::<i64>(0)?,
            r.get::<String>(1)?,
            r.get::<String>(2)?,
            r.get::<bool>(3)?,
            r.get::<Option<i64>>(4)?,
            r.get::<Option<u32>>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, owner, revoked, last_seen, max_slots) = row?;
        out.push((
            WorkerRecord {
                id: WorkerId(id as u64),
                name,
                owner: UserName::new(&owner).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                revoked,
                max_slots,
            },
            last_seen,
        ));
    }
    Ok(out)
}

/// Ids of revoked workers among `ids`.
pub fn revoked_among(conn: &Db, ids: &[WorkerId]) -> StoreResult<Vec<WorkerId>> {
    let mut stmt = conn.prepare_cached("SELECT revoked FROM workers WHERE id = ?1")?;
    let mut out = Vec::new();
    for id in ids {
        let revoked: Option<bool> = stmt.query_row([id.0 as i64], |r| r.get(0)).optional()?;
        if revoked != Some(false) {
            out.push(*id);
        }
    }
    Ok(out)
}
