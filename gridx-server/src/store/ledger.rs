//! The double-entry credit ledger. Money moves only through [`post`], which updates
//! both balances and appends the entry in the caller's transaction; [`verify`] checks
//! every invariant of docs/jobs.md.

use super::{StoreError, StoreResult};
use crate::params;
use crate::store::db::{Db, OptionalExtension};
use gridx_proto::api::{LedgerEntryView, LedgerKind};
use gridx_proto::time_fmt::from_unix_millis;
use gridx_proto::{Credits, JobId, UserName};

pub const MINT: &str = "mint";
pub const ESCROW: &str = "escrow";
pub const PLATFORM: &str = "platform";

/// The ledger account of a user.
pub fn user_account(user: &str) -> String {
    format!("user:{user}")
}

/// Why a movement could not happen.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("balance {balance} is below {needed}")]
    Insufficient { balance: Credits, needed: Credits },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for PostError {
    fn from(e: rusqlite::Error) -> Self {
        PostError::Store(StoreError::Sqlite(e))
    }
}

/// An entry as written, for the live events of the accounts it touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub id: u64,
    pub at: i64,
    pub kind: LedgerKind,
    pub from: String,
    pub to: String,
    pub amount: Credits,
    pub job_id: Option<JobId>,
    pub from_after: Credits,
    pub to_after: Credits,
    pub reason: Option<String>,
}

impl Posted {
    /// The entry as the owner of `account` sees it, if it touches that account.
    pub fn view_for(&self, account: &str) -> Option<LedgerEntryView> {
        let (amount, balance_after) = if self.from == account {
            (Credits::from_millis(-self.amount.millis()), self.from_after)
        } else if self.to == account {
            (self.amount, self.to_after)
        } else {
            return None;
        };
        Some(LedgerEntryView {
            id: self.id,
            at: from_unix_millis(self.at),
            kind: self.kind,
            amount,
            job_id: self.job_id,
            balance_after,
            reason: self.reason.clone(),
        })
    }
}

/// Moves `amount` from one account to another and appends the entry. Must run inside a
/// transaction; a balance that would go negative (other than the mint's) is refused.
/// A zero amount (a free job) moves nothing and writes nothing. `reason` is the
/// operator's, on a grant or debit made by hand.
#[allow(clippy::too_many_arguments)]
pub fn post(
    conn: &Db,
    kind: LedgerKind,
    from: &str,
    to: &str,
    amount: Credits,
    job_id: Option<JobId>,
    at: i64,
    reason: Option<&str>,
) -> Result<Option<Posted>, PostError> {
    if amount.millis() <= 0 {
        return Ok(None);
    }
    // One statement per side: the debit only applies when the balance covers it (the
    // mint may go negative), and RETURNING gives the balance after, so there is no
    // read-then-write window and half the statements of SELECT + UPDATE.
    let debited: Option<i64> = conn
        .prepare_cached(
            "UPDATE accounts SET balance = balance - ?2
             WHERE id = ?1 AND (id = 'mint' OR balance >= ?2)
             RETURNING balance",
        )?
        .query_row(params![from, amount.millis()], |r| r.get(0))
        .optional()?;
    let from_after = match debited {
        Some(after) => Credits::from_millis(after),
        None => {
            return Err(PostError::Insufficient {
                balance: balance(conn, from)?,
                needed: amount,
            });
        }
    };
    let to_after: i64 = conn
        .prepare_cached(
            "UPDATE accounts SET balance = balance + ?2 WHERE id = ?1 RETURNING balance",
        )?
        .query_row(params![to, amount.millis()], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no ledger account {to}")))?;
    let to_after = Credits::from_millis(to_after);
    let id = conn
        .prepare_cached(
            "INSERT INTO ledger (at, kind, from_account, to_account, amount, job_id,
                             from_balance_after, to_balance_after, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         RETURNING id",
        )?
        .query_row(
            params![
                at,
                kind.as_str(),
                from,
                to,
                amount.millis(),
                job_id.map(|j| j.0 as i64),
                from_after.millis(),
                to_after.millis(),
                reason
            ],
            |r| r.get::<i64>(0),
        )?;
    Ok(Some(Posted {
        id: id as u64,
        at,
        kind,
        from: from.to_owned(),
        to: to.to_owned(),
        amount,
        job_id,
        from_after,
        to_after,
        reason: reason.map(str::to_owned),
    }))
}

/// An account's balance; an unknown account is an error, never an implicit zero.
pub fn balance(conn: &Db, account: &str) -> StoreResult<Credits> {
    balance_by(conn, "SELECT balance FROM accounts WHERE id = ?1", account)
}

fn balance_by(conn: &Db, sql: &str, account: &str) -> StoreResult<Credits> {
    conn.prepare_cached(sql)?
        .query_row([account], |r| r.get::<i64>(0))
        .optional()?
        .map(Credits::from_millis)
        .ok_or_else(|| StoreError::NotFound(format!("no ledger account {account}")))
}

/// [`balance`], read to be spent in this transaction: nobody else may change it
/// until the transaction ends. SQLite's writer already holds the write lock
/// (`BEGIN IMMEDIATE`); PostgreSQL locks the account's row (`FOR UPDATE`), since an
/// admin command's debit could otherwise commit between the check and the hold.
pub fn balance_to_spend(conn: &Db, account: &str) -> StoreResult<Credits> {
    match conn.engine() {
        super::Engine::Sqlite => balance(conn, account),
        super::Engine::Postgres => balance_by(
            conn,
            "SELECT balance FROM accounts WHERE id = ?1 FOR UPDATE",
            account,
        ),
    }
}

/// The newest `limit` entries touching a user's account, signed from their side.
pub fn entries_for_user(
    conn: &Db,
    user: &UserName,
    limit: u32,
) -> StoreResult<Vec<LedgerEntryView>> {
    let account = user_account(user.as_str());
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, kind, from_account, amount, job_id, from_balance_after, to_balance_after,
                reason
         FROM ledger WHERE id IN (
             SELECT id FROM ledger WHERE from_account = ?1
             UNION SELECT id FROM ledger WHERE to_account = ?1)
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![account, limit], |r| {
        Ok((
            r.get::<i64>(0)?,
            r.get::<i64>(1)?,
            r.get::<String>(2)?,
            r.get::<String>(3)?,
            r.get::<i64>(4)?,
            r.get::<Option<i64>>(5)?,
            r.get::<i64>(6)?,
            r.get::<i64>(7)?,
            r.get::<Option<String>>(8)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, at, kind, from, amount, job_id, from_after, to_after, reason) = row?;
        let kind = LedgerKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("ledger kind {kind}")))?;
        let outgoing = from == account;
        out.push(LedgerEntryView {
            id: id as u64,
            at: from_unix_millis(at),
            kind,
            amount: Credits::from_millis(if outgoing { -amount } else { amount }),
            job_id: job_id.map(|j| JobId(j as u64)),
            balance_after: Credits::from_millis(if outgoing { from_after } else { to_after }),
            reason,
        });
    }
    Ok(out)
}

/// Sums for `/metrics` and the verify summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    pub granted: Credits,
    pub escrow: Credits,
    pub platform: Credits,
    pub users: Credits,
    pub entries: u64,
}

pub fn totals(conn: &Db) -> StoreResult<LedgerTotals> {
    // What the mint gave out, net of what operators took back.
    let granted: i64 = conn.query_row(
        "SELECT COALESCE(CAST(SUM(CASE kind WHEN 'grant' THEN amount ELSE -amount END) AS BIGINT), 0)
         FROM ledger WHERE kind IN ('grant', 'debit')",
        (),
        |r| r.get(0),
    )?;
    let users: i64 = conn.query_row(
        "SELECT COALESCE(CAST(SUM(balance) AS BIGINT), 0) FROM accounts WHERE id LIKE 'user:%'",
        (),
        |r| r.get(0),
    )?;
    let entries: i64 = conn.query_row("SELECT COUNT(*) FROM ledger", (), |r| r.get(0))?;
    Ok(LedgerTotals {
        granted: Credits::from_millis(granted),
        escrow: balance(conn, ESCROW)?,
        platform: balance(conn, PLATFORM)?,
        users: Credits::from_millis(users),
        entries: entries as u64,
    })
}

/// The result of `ledger verify`: empty `violations` means every invariant holds.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub totals: LedgerTotals,
    pub jobs: u64,
    pub violations: Vec<String>,
}

/// Checks every ledger invariant of docs/jobs.md:
/// per-account sums equal stored balances; no negative balance (but the mint's); every
/// job holds exactly once and settles at most once (exactly once when terminal, never
/// when live); escrow equals the unsettled holds; the total equals what was granted.
pub fn verify(conn: &Db) -> StoreResult<VerifyReport> {
    // One read transaction: every query sees the same snapshot, so a coordinator
    // writing meanwhile cannot make consistent data look inconsistent.
    let snapshot = conn.snapshot()?;
    let conn: &Db = &snapshot;
    let mut violations = Vec::new();

    let mut stmt = conn.prepare(
        "SELECT a.id, a.balance,
                COALESCE((SELECT CAST(SUM(amount) AS BIGINT) FROM ledger WHERE to_account = a.id), 0)
              - COALESCE((SELECT CAST(SUM(amount) AS BIGINT) FROM ledger WHERE from_account = a.id), 0)
         FROM accounts a",
    )?;
    let rows = stmt.query_map((), |r| {
        Ok((r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<i64>(2)?))
    })?;
    for row in rows {
        let (account, stored, summed) = row?;
        if stored != summed {
            violations.push(format!(
                "account {account}: stored balance {} but entries sum to {}",
                Credits::from_millis(stored),
                Credits::from_millis(summed)
            ));
        }
        if account != MINT && stored < 0 {
            violations.push(format!(
                "account {account}: negative balance {}",
                Credits::from_millis(stored)
            ));
        }
    }

    let mut stmt = conn.prepare(
        "SELECT j.id, j.status, j.cost,
                (SELECT COUNT(*) FROM ledger WHERE job_id = j.id AND kind = 'hold'),
                (SELECT COUNT(*) FROM ledger WHERE job_id = j.id AND kind = 'reward'),
                (SELECT COUNT(*) FROM ledger WHERE job_id = j.id AND kind = 'fee'),
                (SELECT COUNT(*) FROM ledger WHERE job_id = j.id AND kind = 'refund'),
                (SELECT COALESCE(CAST(SUM(amount) AS BIGINT), 0) FROM ledger
                   WHERE job_id = j.id AND kind IN ('reward', 'fee', 'refund')),
                (SELECT COUNT(*) FROM replicas WHERE job_id = j.id AND verdict = 'valid'),
                (SELECT COUNT(*) FROM replicas WHERE job_id = j.id AND verdict = 'pending'),
                j.validation
         FROM jobs j",
    )?;
    let rows = stmt.query_map((), |r| {
        Ok((
            r.get::<i64>(0)?,
            r.get::<String>(1)?,
            r.get::<i64>(2)?,
            r.get::<i64>(3)?,
            r.get::<i64>(4)?,
            r.get::<i64>(5)?,
            r.get::<i64>(6)?,
            r.get::<i64>(7)?,
            r.get::<i64>(8)?,
            r.get::<i64>(9)?,
            r.get::<Option<String>>(10)?,
        ))
    })?;
    let mut jobs = 0u64;
    let mut unsettled_holds = 0i64;
    for row in rows {
        let (
            id,
            status,
            cost,
            holds,
            rewards,
            fees,
            refunds,
            settled_amount,
            valid,
            pending,
            validation,
        ) = row?;
        jobs += 1;
        let live = status == "queued" || status == "running";
        let expected_holds = if cost > 0 { 1 } else { 0 };
        if holds != expected_holds {
            violations.push(format!(
                "job {id}: {holds} holds, expected {expected_holds}"
            ));
        }
        let settlements = refunds + rewards.max(fees);
        // A reward per owner whose result was accepted: one, or with a result check
        // one per agreeing replica and the trusted worker that settled it
        // (docs/trust.md). A reward may come without a fee: with
        // `server.reward_permille` = 1000 the whole hold is the reward.
        let most_rewards = (valid + 1).max(1);
        if rewards > most_rewards || fees > 1 || refunds > 1 || (refunds > 0 && rewards + fees > 0)
        {
            violations.push(format!(
                "job {id}: settled more than once ({rewards} rewards, {fees} fees, {refunds} refunds, {valid} valid replicas)"
            ));
        }
        if rewards > 0 && (status == "error" || validation.as_deref() == Some("no_quorum")) {
            violations.push(format!(
                "job {id}: ended {status} without an accepted result but paid {rewards} rewards"
            ));
        }
        if pending > 0 && !live {
            violations.push(format!(
                "job {id}: is {status} but {pending} of its replicas still wait for a verdict"
            ));
        }
        if cost > 0 && live && settlements > 0 {
            violations.push(format!("job {id}: is {status} but already settled"));
        }
        if cost > 0 && !live && settlements == 0 {
            violations.push(format!("job {id}: is {status} but was never settled"));
        }
        if cost > 0 && !live && settled_amount != cost {
            violations.push(format!(
                "job {id}: settled {} of a hold of {}",
                Credits::from_millis(settled_amount),
                Credits::from_millis(cost)
            ));
        }
        if live {
            unsettled_holds += cost;
        }
    }

    // A reward goes only to the owner of the worker that ran the accepted attempt, or
    // of a replica whose result agreed with it: never to an invalid replica's owner.
    let mut stmt = conn.prepare(
        "SELECT l.job_id, l.to_account FROM ledger l JOIN jobs j ON j.id = l.job_id
         WHERE l.kind = 'reward'
           AND l.to_account NOT IN
               (SELECT 'user:' || w.owner FROM workers w WHERE w.id = j.worker_id)
           AND l.to_account NOT IN
               (SELECT 'user:' || r.owner FROM replicas r
                 WHERE r.job_id = l.job_id AND r.verdict = 'valid')",
    )?;
    let rows = stmt.query_map((), |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?)))?;
    for row in rows {
        let (job, account) = row?;
        violations.push(format!(
            "job {job}: a reward to {account}, whose worker neither ran the accepted attempt nor agreed with it"
        ));
    }

    // By hand, an operator only grants (mint to a user) or debits (a user to the
    // mint), never for a job; everything else moves for a job.
    let mut stmt = conn.prepare(
        "SELECT id, kind, from_account, to_account FROM ledger
         WHERE (kind = 'grant' AND (from_account != 'mint' OR to_account NOT LIKE 'user:%'
                                    OR job_id IS NOT NULL))
            OR (kind = 'debit' AND (to_account != 'mint' OR from_account NOT LIKE 'user:%'
                                    OR job_id IS NOT NULL))
            OR (kind NOT IN ('grant', 'debit') AND job_id IS NULL)",
    )?;
    let rows = stmt.query_map((), |r| {
        Ok((
            r.get::<i64>(0)?,
            r.get::<String>(1)?,
            r.get::<String>(2)?,
            r.get::<String>(3)?,
        ))
    })?;
    for row in rows {
        let (id, kind, from, to) = row?;
        violations.push(format!(
            "entry {id}: a {kind} from {from} to {to} that no rule makes"
        ));
    }

    let totals = totals(conn)?;
    if totals.escrow.millis() != unsettled_holds {
        violations.push(format!(
            "escrow holds {} but unsettled jobs hold {}",
            totals.escrow,
            Credits::from_millis(unsettled_holds)
        ));
    }
    let total: i64 = conn.query_row(
        "SELECT COALESCE(CAST(SUM(balance) AS BIGINT), 0) FROM accounts WHERE id != 'mint'",
        (),
        |r| r.get(0),
    )?;
    if total != totals.granted.millis() {
        violations.push(format!(
            "accounts hold {} in all but {} was granted",
            Credits::from_millis(total),
            totals.granted
        ));
    }
    let mint = balance(conn, MINT)?;
    if mint.millis() != -totals.granted.millis() {
        violations.push(format!(
            "mint is at {mint} but {} was granted",
            totals.granted
        ));
    }
    Ok(VerifyReport {
        totals,
        jobs,
        violations,
    })
}
