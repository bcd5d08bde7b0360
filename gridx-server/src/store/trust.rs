//! Result checks in the store (docs/trust.md): reliability records of workers and of
//! their owners, the replicas of each job, and the operator's trust marks. The queue
//! decides (`crate::trust` and `crate::queue::rules::validation`); this only reads
//! and writes, inside the caller's transaction.

use super::counters::{self, Counter};
use super::{StoreError, StoreResult};
use crate::params;
use crate::store::db::{Db, OptionalExtension};
use gridx_proto::api::{ReplicaView, Verdict};
use gridx_proto::job::FailureReason;
use gridx_proto::{JobId, JobStatus, UserName, WorkerId};
use std::collections::HashMap;

/// Whose record: a worker's, or an owner's (all of its workers together).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Worker(WorkerId),
    Owner(UserName),
}

impl Subject {
    fn key(&self) -> String {
        match self {
            Subject::Worker(id) => format!("worker:{}", id.0),
            Subject::Owner(name) => format!("owner:{name}"),
        }
    }

    fn parse(key: &str) -> Option<Subject> {
        if let Some(id) = key.strip_prefix("worker:") {
            return id.parse().ok().map(|n| Subject::Worker(WorkerId(n)));
        }
        let name = key.strip_prefix("owner:")?;
        UserName::new(name).ok().map(Subject::Owner)
    }
}

/// A reliability record: what checks found of a worker's (or an owner's) results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub validated: u64,
    pub invalid: u64,
    pub errors: u64,
    pub lost: u64,
    /// Confirmed results in a row since the last invalid one (or restore).
    pub streak: u64,
    /// Invalid results since the last restore: what quarantine counts.
    pub strikes: u64,
    /// Why it is quarantined, if it is.
    pub quarantined: Option<String>,
}

/// Every record in the store, for the queue's start-up and the operator's list.
pub fn all_records(conn: &Db) -> StoreResult<HashMap<Subject, Record>> {
    let mut stmt = conn.prepare(
        "SELECT subject, validated, invalid, errors, lost, streak, strikes, quarantined
         FROM reliability",
    )?;
    let rows = stmt.query_map((), |r| {
        Ok((
            r.get::<String>(0)?,
            Record {
                validated: r.get::<i64>(1)?.max(0) as u64,
                invalid: r.get::<i64>(2)?.max(0) as u64,
                errors: r.get::<i64>(3)?.max(0) as u64,
                lost: r.get::<i64>(4)?.max(0) as u64,
                streak: r.get::<i64>(5)?.max(0) as u64,
                strikes: r.get::<i64>(6)?.max(0) as u64,
                quarantined: r.get(7)?,
            },
        ))
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let (key, record) = row?;
        let subject =
            Subject::parse(&key).ok_or_else(|| StoreError::Corrupt(format!("subject {key:?}")))?;
        out.insert(subject, record);
    }
    Ok(out)
}

/// Writes a record whole (the queue holds the current one in memory).
pub fn save_record(conn: &Db, subject: &Subject, r: &Record, now: i64) -> StoreResult<()> {
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO reliability
             (subject, validated, invalid, errors, lost, streak, strikes, quarantined,
              quarantined_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, CASE WHEN CAST(?8 AS TEXT) IS NULL THEN NULL ELSE CAST(?9 AS BIGINT) END)
         ON CONFLICT (subject) DO UPDATE SET
             validated = excluded.validated, invalid = excluded.invalid,
             errors = excluded.errors, lost = excluded.lost, streak = excluded.streak,
             strikes = excluded.strikes, quarantined = excluded.quarantined,
             quarantined_at = CASE
                 WHEN excluded.quarantined IS NULL THEN NULL
                 ELSE coalesce(reliability.quarantined_at, excluded.quarantined_at) END",
    )?
    .execute(params![
        subject.key(),
        clamp(r.validated),
        clamp(r.invalid),
        clamp(r.errors),
        clamp(r.lost),
        clamp(r.streak),
        clamp(r.strikes),
        r.quarantined,
        now
    ])?;
    Ok(())
}

/// The operator's change counter: a running coordinator reloads trust marks and
/// records when it grows.
pub fn trust_version(conn: &Db) -> StoreResult<i64> {
    counters::read(conn, Counter::Trust)
}

fn bump_trust_version(conn: &Db) -> StoreResult<()> {
    counters::bump(conn, Counter::Trust)
}

/// Marks a worker trusted (its results need no replica, it is never quarantined
/// automatically) or takes the mark back.
pub fn set_trusted(conn: &Db, id: WorkerId, trusted: bool) -> StoreResult<()> {
    let changed = conn.execute(
        "UPDATE workers SET trusted = ?2 WHERE id = ?1",
        params![id.0 as i64, trusted],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("no worker {id}")));
    }
    bump_trust_version(conn)
}

/// Whether one worker is marked trusted (read at each `hello`).
pub fn is_trusted(conn: &Db, id: WorkerId) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached("SELECT trusted FROM workers WHERE id = ?1")?
        .query_row([id.0 as i64], |r| r.get::<bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// Trust marks of every worker.
pub fn trusted_workers(conn: &Db) -> StoreResult<HashMap<WorkerId, bool>> {
    let mut stmt = conn.prepare("SELECT id, trusted FROM workers")?;
    let rows = stmt.query_map((), |r| {
        Ok((WorkerId(r.get::<i64>(0)? as u64), r.get::<bool>(1)?))
    })?;
    rows.collect::<Result<HashMap<_, _>, _>>()
}

/// Lifts a quarantine: the worker's and its owner's strikes and streaks go back to
/// zero (on probation again: every result checked), the counts stay. Returns what
/// was lifted, as sentences.
pub fn restore(conn: &Db, id: WorkerId, owner: &UserName) -> StoreResult<Vec<String>> {
    let mut lifted = Vec::new();
    for subject in [Subject::Worker(id), Subject::Owner(owner.clone())] {
        let reason: Option<Option<String>> = conn
            .query_row(
                "SELECT quarantined FROM reliability WHERE subject = ?1",
                [subject.key()],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(Some(reason)) = reason {
            lifted.push(reason);
        }
        conn.execute(
            "UPDATE reliability SET strikes = 0, streak = 0, quarantined = NULL,
                                    quarantined_at = NULL
             WHERE subject = ?1",
            [subject.key()],
        )?;
    }
    bump_trust_version(conn)?;
    Ok(lifted)
}

/// One result that takes part in a check, as compared: see `crate::trust::ResultKey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReplica<'a> {
    pub job_id: JobId,
    pub attempt: u32,
    pub worker_id: WorkerId,
    pub owner: &'a UserName,
    pub status: JobStatus,
    pub reason: Option<FailureReason>,
    pub exit_code: Option<i32>,
    pub stdout_sha256: &'a str,
    pub stderr_sha256: &'a str,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub compile_output_sha256: Option<&'a str>,
}

pub fn insert_replica(conn: &Db, r: &NewReplica<'_>, now: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO replicas (job_id, attempt, worker_id, owner, status, exit_code,
                               stdout_sha256, stderr_sha256, stdout_truncated,
                               stderr_truncated, verdict, reported_at,
                               compile_output_sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11, ?12)",
    )?
    .execute(params![
        r.job_id.0 as i64,
        r.attempt,
        r.worker_id.0 as i64,
        r.owner.as_str(),
        status_text(r.status, r.reason),
        r.exit_code,
        r.stdout_sha256,
        r.stderr_sha256,
        r.stdout_truncated,
        r.stderr_truncated,
        now,
        r.compile_output_sha256
    ])?;
    Ok(())
}

/// A replica's end state with its reason, as one column: `failed:oom`.
fn status_text(status: JobStatus, reason: Option<FailureReason>) -> String {
    match reason {
        Some(r) => format!("{status}:{r}"),
        None => status.to_string(),
    }
}

fn parse_status_text(text: &str) -> Option<(JobStatus, Option<FailureReason>)> {
    let (status, reason) = match text.split_once(':') {
        Some((s, r)) => (s, Some(r)),
        None => (text, None),
    };
    let status = status.parse().ok()?;
    let reason = match reason {
        None => None,
        Some(r) => Some(serde_json::from_value(serde_json::Value::String(r.to_owned())).ok()?),
    };
    Some((status, reason))
}

/// Every replica of a job, oldest first.
pub fn replicas_of(conn: &Db, job_id: JobId) -> StoreResult<Vec<ReplicaView>> {
    let mut stmt = conn.prepare_cached(
        "SELECT attempt, worker_id, owner, status, exit_code, stdout_sha256, stderr_sha256,
                stdout_truncated, stderr_truncated, verdict, compile_output_sha256
         FROM replicas WHERE job_id = ?1 ORDER BY attempt",
    )?;
    let rows = stmt.query_map([job_id.0 as i64], |r| {
        Ok((
            r.get::<u32>(0)?,
            r.get::<i64>(1)?,
            r.get::<String>(2)?,
            r.get::<String>(3)?,
            r.get::<Option<i32>>(4)?,
            r.get::<String>(5)?,
            r.get::<String>(6)?,
            r.get::<bool>(7)?,
            r.get::<bool>(8)?,
            r.get::<String>(9)?,
            r.get::<Option<String>>(10)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (attempt, worker, owner, status, exit_code, out_sha, err_sha, out_cut, err_cut, v, cc) =
            row?;
        let (status, reason) = parse_status_text(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("replica status {status:?}")))?;
        out.push(ReplicaView {
            attempt,
            worker_id: WorkerId(worker as u64),
            owner: UserName::new(&owner).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            status,
            reason,
            exit_code,
            stdout_sha256: out_sha,
            stderr_sha256: err_sha,
            stdout_truncated: out_cut,
            stderr_truncated: err_cut,
            compile_output_sha256: cc,
            verdict: Verdict::parse(&v)
                .ok_or_else(|| StoreError::Corrupt(format!("verdict {v:?}")))?,
        });
    }
    Ok(out)
}

/// Records the check's verdict on one replica.
pub fn set_verdict(conn: &Db, job_id: JobId, attempt: u32, verdict: Verdict) -> StoreResult<()> {
    conn.prepare_cached("UPDATE replicas SET verdict = ?3 WHERE job_id = ?1 AND attempt = ?2")?
        .execute(params![job_id.0 as i64, attempt, verdict.as_str()])?;
    Ok(())
}

/// How many results of each worker wait for a check (their rewards are pending).
pub fn pending_by_worker(conn: &Db) -> StoreResult<HashMap<WorkerId, u64>> {
    let mut stmt = conn.prepare(
        "SELECT worker_id, COUNT(*) FROM replicas WHERE verdict = 'pending' GROUP BY worker_id",
    )?;
    let rows = stmt.query_map((), |r| {
        Ok((
            WorkerId(r.get::<i64>(0)? as u64),
            r.get::<i64>(1)?.max(0) as u64,
        ))
    })?;
    rows.collect::<Result<HashMap<_, _>, _>>()
}

/// The owners whose workers reported a replica of each live job, for rebuilding the
/// queue: the next replica must come from someone else.
pub fn live_replica_owners(conn: &Db) -> StoreResult<HashMap<JobId, Vec<UserName>>> {
    let mut stmt = conn.prepare(
        "SELECT r.job_id, r.owner FROM replicas r JOIN jobs j ON j.id = r.job_id
         WHERE j.status IN ('queued', 'running') ORDER BY r.job_id, r.attempt",
    )?;
    let rows = stmt.query_map((), |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?)))?;
    let mut out: HashMap<JobId, Vec<UserName>> = HashMap::new();
    for row in rows {
        let (job, owner) = row?;
        let owner = UserName::new(&owner).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        out.entry(JobId(job as u64)).or_default().push(owner);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_statuses_round_trip() {
        for s in [
            Subject::Worker(WorkerId(42)),
            Subject::Owner(UserName::new("alice").expect("name")),
        ] {
            assert_eq!(Subject::parse(&s.key()), Some(s));
        }
        assert_eq!(Subject::parse("nobody:1"), None);
        for (status, reason) in [
            (JobStatus::Succeeded, None),
            (JobStatus::Failed, Some(FailureReason::Oom)),
            (JobStatus::TimedOut, Some(FailureReason::Timeout)),
        ] {
            assert_eq!(
                parse_status_text(&status_text(status, reason)),
                Some((status, reason))
            );
        }
    }
}
