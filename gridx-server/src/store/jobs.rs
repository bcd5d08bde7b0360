//! Job rows. Only the queue (`crate::queue`) calls the writing functions here, inside
//! its transactions; the API reads through [`job_view`], [`list_jobs`] and
//! [`job_output`].

use super::{StoreError, StoreResult};
use crate::params;
use crate::store::db::{Db, OptionalExtension, Row};
use gridx_proto::api::{JobSummary, JobValidation, JobView, OutputStream, ValidationOutcome};
use gridx_proto::job::FailureReason;
use gridx_proto::time_fmt::from_unix_millis;
use gridx_proto::{Credits, JobId, JobSpec, JobStatus, Language, UserName, WorkerId};

const VIEW_COLUMNS: &str = "id, \"user\", status, language, priority, timeout_s, memory_mb,
    submitted_at, started_at, finished_at, worker_id, attempts, exit_code, stdout, stderr,
    stdout_truncated, stderr_truncated, duration_ms, reason, message, cost, refusals, refusal,
    gpus, validate, validation, compile_output, gpu_memory_mb, gpu_indices";

/// The view's columns with the output's byte lengths in place of the output:
/// `octet_length` counts a TEXT value's bytes without loading it, so a summary costs
/// the same whatever the job printed.
const SUMMARY_COLUMNS: &str = "id, \"user\", status, language, priority, timeout_s, memory_mb,
    submitted_at, started_at, finished_at, worker_id, attempts, exit_code,
    octet_length(stdout), octet_length(stderr), stdout_truncated, stderr_truncated,
    duration_ms, reason, message, cost, refusals, refusal, gpus";

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("bad {what} {value:?}"))
}

fn view_from_row(r: &Row) -> crate::store::StoreResult<JobView> {
    let summary = summary_from_row(r)?;
    Ok(JobView {
        job_id: summary.job_id,
        user: summary.user,
        status: summary.status,
        language: summary.language,
        priority: summary.priority,
        timeout_s: summary.timeout_s,
        memory_mb: summary.memory_mb,
        submitted_at: summary.submitted_at,
        started_at: summary.started_at,
        finished_at: summary.finished_at,
        worker_id: summary.worker_id,
        attempts: summary.attempts,
        exit_code: summary.exit_code,
        stdout: r.get(13)?,
        stderr: r.get(14)?,
        stdout_truncated: summary.stdout_truncated,
        stderr_truncated: summary.stderr_truncated,
        compile_output: r.get(26)?,
        duration_ms: summary.duration_ms,
        reason: summary.reason,
        message: summary.message,
        refusals: summary.refusals,
        refusal: summary.refusal,
        cost: summary.cost,
        validation: JobValidation {
            required: r.get(24)?,
            outcome: r
                .get::<Option<String>>(25)?
                .as_deref()
                .and_then(ValidationOutcome::parse),
            replicas: Vec::new(),
            waiting: None,
        },
        gpus: summary.gpus,
        gpu_memory_mb: r.get(27)?,
        gpu_indices: parse_indices(r.get::<Option<String>>(28)?.as_deref())
            .map_err(|text| corrupt("gpu_indices", text))?,
        waiting: None,
    })
}

/// `gpu_indices` as stored: NVML indices joined by commas, NULL for none.
fn format_indices(indices: &[u32]) -> Option<String> {
    (!indices.is_empty()).then(|| {
        indices
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    })
}

fn parse_indices(text: Option<&str>) -> Result<Vec<u32>, &str> {
    match text {
        None | Some("") => Ok(Vec::new()),
        Some(t) => t.split(',').map(|i| i.parse().map_err(|_| t)).collect(),
    }
}

/// A row of [`VIEW_COLUMNS`] or [`SUMMARY_COLUMNS`] (the same places) as a summary;
/// columns 13 and 14 are only read as lengths when they are lengths.
fn summary_from_row(r: &Row) -> crate::store::StoreResult<JobSummary> {
    let user: String = r.get(1)?;
    let status: String = r.get(2)?;
    let language: String = r.get(3)?;
    let reason: Option<String> = r.get(18)?;
    let length = |i: usize| -> StoreResult<u64> { Ok(r.value(i)?.byte_length()) };
    Ok(JobSummary {
        job_id: JobId(r.get::<i64>(0)? as u64),
        user: UserName::new(&user).map_err(|_| corrupt("user", &user))?,
        status: status.parse().map_err(|_| corrupt("status", &status))?,
        language: language
            .parse()
            .map_err(|_| corrupt("language", &language))?,
        priority: r.get(4)?,
        timeout_s: r.get(5)?,
        memory_mb: r.get(6)?,
        submitted_at: from_unix_millis(r.get(7)?),
        started_at: r.get::<Option<i64>>(8)?.map(from_unix_millis),
        finished_at: r.get::<Option<i64>>(9)?.map(from_unix_millis),
        worker_id: r.get::<Option<i64>>(10)?.map(|w| WorkerId(w as u64)),
        attempts: r.get(11)?,
        exit_code: r.get(12)?,
        stdout_bytes: length(13)?,
        stderr_bytes: length(14)?,
        stdout_truncated: r.get(15)?,
        stderr_truncated: r.get(16)?,
        duration_ms: r.get::<Option<i64>>(17)?.map(|d| d.max(0) as u64),
        reason: match reason {
            None => None,
            Some(text) => Some(parse_reason(&text).ok_or_else(|| corrupt("reason", &text))?),
        },
        message: r.get(19)?,
        cost: Credits::from_millis(r.get(20)?),
        refusals: r.get(21)?,
        refusal: r.get(22)?,
        gpus: r.get(23)?,
    })
}

fn parse_reason(text: &str) -> Option<FailureReason> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

/// Stores a new queued job and returns its id. The caller holds its cost in the same
/// transaction.
pub fn insert_job(
    conn: &Db,
    user: &UserName,
    spec: &JobSpec,
    cost: Credits,
    now: i64,
) -> StoreResult<JobId> {
    insert_checked_job(conn, user, spec, true, cost, now)
}

/// [`insert_job`], saying whether the job's result may be checked by replicas.
pub fn insert_checked_job(
    conn: &Db,
    user: &UserName,
    spec: &JobSpec,
    validate: bool,
    cost: Credits,
    now: i64,
) -> StoreResult<JobId> {
    let id: i64 = conn.prepare_cached(
        "INSERT INTO jobs (\"user\", status, language, code, stdin, timeout_s, memory_mb, priority,
                           max_output_bytes, cost, submitted_at, validate, gpus, gpu_memory_mb)
         VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         RETURNING id",
    )?
    .query_row(params![
        user.as_str(),
        spec.language.as_str(),
        spec.code,
        spec.stdin,
        spec.timeout_s,
        spec.memory_mb,
        spec.priority,
        spec.max_output_bytes as i64,
        cost.millis(),
        now,
        validate,
        spec.gpus,
        spec.gpu_memory_mb
    ], |r| r.get(0))?;
    Ok(JobId(id as u64))
}

/// The job a user's earlier submit with this idempotency key made, with the hash of
/// that request.
pub fn find_submit_key(
    conn: &Db,
    user: &UserName,
    key: &str,
) -> StoreResult<Option<(JobId, String)>> {
    conn.prepare_cached(
        "SELECT job_id, request_sha256 FROM submit_keys WHERE \"user\" = ?1 AND key = ?2",
    )?
    .query_row(params![user.as_str(), key], |row| {
        Ok((JobId(row.get::<i64>(0)? as u64), row.get(1)?))
    })
    .optional()
}

/// Remembers which job a submit with this key made (same transaction as the job).
pub fn insert_submit_key(
    conn: &Db,
    user: &UserName,
    key: &str,
    request_sha256: &str,
    job_id: JobId,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO submit_keys (\"user\", key, request_sha256, job_id) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![user.as_str(), key, request_sha256, job_id.0 as i64])?;
    Ok(())
}

/// A job with its output and the replicas of its result check.
pub fn job_view(conn: &Db, id: JobId) -> StoreResult<Option<JobView>> {
    let sql = format!("SELECT {VIEW_COLUMNS} FROM jobs WHERE id = ?1");
    let Some(mut view) = conn
        .prepare_cached(&sql)?
        .query_row([id.0 as i64], view_from_row)
        .optional()?
    else {
        return Ok(None);
    };
    view.validation.replicas = super::trust::replicas_of(conn, id)?;
    Ok(Some(view))
}

/// A job without its output (for live events): its size does not depend on the output.
pub fn job_summary(conn: &Db, id: JobId) -> StoreResult<Option<JobSummary>> {
    let sql = format!("SELECT {SUMMARY_COLUMNS} FROM jobs WHERE id = ?1");
    conn.prepare_cached(&sql)?
        .query_row([id.0 as i64], summary_from_row)
        .optional()
}

/// One of a job's outputs, exactly as stored, with the job's owner (the caller decides
/// who may read it). `None`: no such job.
pub fn job_output(
    conn: &Db,
    id: JobId,
    stream: OutputStream,
) -> StoreResult<Option<(UserName, String)>> {
    let sql = match stream {
        OutputStream::Stdout => "SELECT \"user\", stdout FROM jobs WHERE id = ?1",
        OutputStream::Stderr => "SELECT \"user\", stderr FROM jobs WHERE id = ?1",
    };
    conn.prepare_cached(sql)?
        .query_row([id.0 as i64], |r| {
            let user: String = r.get(0)?;
            Ok((
                UserName::new(&user).map_err(|_| corrupt("user", &user))?,
                r.get(1)?,
            ))
        })
        .optional()
}

/// Jobs newest first, optionally only one user's and one status, before a cursor, as
/// summaries (no output). Returns the page and the cursor of the next page.
pub fn list_jobs(
    conn: &Db,
    user: Option<&UserName>,
    status: Option<JobStatus>,
    limit: u32,
    before: Option<JobId>,
) -> StoreResult<(Vec<JobSummary>, Option<JobId>)> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM jobs
         WHERE (CAST(?1 AS TEXT) IS NULL OR \"user\" = ?1) AND (CAST(?2 AS TEXT) IS NULL OR status = ?2) AND id < ?3
         ORDER BY id DESC LIMIT ?4"
    );
    // Ids past i64::MAX cannot exist; such a cursor means "from the newest".
    let before = before.map_or(i64::MAX, |b| i64::try_from(b.0).unwrap_or(i64::MAX));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            user.map(|u| u.as_str()),
            status.map(|s| s.as_str()),
            before,
            i64::from(limit) + 1
        ],
        summary_from_row,
    )?;
    let mut jobs = rows.collect::<Result<Vec<_>, _>>()?;
    let next = if jobs.len() > limit as usize {
        jobs.truncate(limit as usize);
        jobs.last().map(|j| j.job_id)
    } else {
        None
    };
    Ok((jobs, next))
}

/// What the worker needs to run a job.
pub fn load_spec(conn: &Db, id: JobId) -> StoreResult<JobSpec> {
    conn.prepare_cached(
        "SELECT language, code, stdin, timeout_s, memory_mb, priority, max_output_bytes, gpus,
                gpu_memory_mb
         FROM jobs WHERE id = ?1",
    )?
    .query_row([id.0 as i64], |r| {
        let language: String = r.get(0)?;
        Ok(JobSpec {
            language: language
                .parse()
                .map_err(|_| corrupt("language", &language))?,
            code: r.get(1)?,
            stdin: r.get(2)?,
            timeout_s: r.get(3)?,
            memory_mb: r.get(4)?,
            priority: r.get(5)?,
            max_output_bytes: r.get::<i64>(6)?.max(0) as usize,
            gpus: r.get(7)?,
            gpu_memory_mb: r.get(8)?,
        })
    })
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("no job {id}")))
}

fn expect_one(changed: usize, id: JobId, what: &str) -> StoreResult<()> {
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "job {id}: {what} matched {changed} rows"
        )))
    }
}

/// Records that a running attempt's process started (a fact within `running`, not
/// an edge of the state machine).
pub fn mark_started(conn: &Db, id: JobId, now: i64) -> StoreResult<()> {
    let changed = conn
        .prepare_cached("UPDATE jobs SET started_at = ?2 WHERE id = ?1 AND status = 'running'")?
        .execute(params![id.0 as i64, now])?;
    expect_one(changed, id, "start")
}

pub fn mark_cancel_requested(conn: &Db, id: JobId) -> StoreResult<()> {
    conn.prepare_cached("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1")?
        .execute([id.0 as i64])?;
    Ok(())
}

/// The facts written when a job reaches a terminal state.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// What the compiler printed (a compiled language), apart from stderr.
    pub compile_output: Option<String>,
    pub duration_ms: Option<u64>,
    pub reason: Option<FailureReason>,
    pub message: Option<String>,
    /// How the result was accepted (docs/trust.md); `None` is written as `no_result`.
    pub validation: Option<ValidationOutcome>,
}

/// What is written with a status change, besides the status itself.
#[derive(Debug, Clone, Copy)]
pub enum StatusWrite<'a> {
    /// To `running`: the worker and the attempt it now runs as, and the worker's
    /// GPUs it gets.
    Assigned {
        worker: WorkerId,
        attempt: u32,
        gpus: &'a [u32],
    },
    /// Back to `queued` after a lost or refused attempt: the worker and times are
    /// cleared; the attempt count stays, the next assignment increments it. A refusal
    /// also counts one more refusal and keeps its sentence.
    Requeued { refusal: Option<&'a str> },
    /// To a terminal state: the facts of the end.
    Finished(&'a Completion),
}

/// Persists a status change the queue decided (`crate::queue::transitions` checks the
/// edge; this only writes it). `from` is the state the queue believes the job is in;
/// the row must agree, so a lost race can never overwrite a result.
pub fn write_status(
    conn: &Db,
    id: JobId,
    from: JobStatus,
    to: JobStatus,
    write: StatusWrite<'_>,
    now: i64,
) -> StoreResult<()> {
    let changed = match write {
        StatusWrite::Assigned {
            worker,
            attempt,
            gpus,
        } => conn
            .prepare_cached(
                "UPDATE jobs SET status = ?3, worker_id = ?4, attempts = ?5, assigned_at = ?6,
                                 started_at = NULL, gpu_indices = ?7
                 WHERE id = ?1 AND status = ?2",
            )?
            .execute(params![
                id.0 as i64,
                from.as_str(),
                to.as_str(),
                worker.0 as i64,
                attempt,
                now,
                format_indices(gpus)
            ])?,
        StatusWrite::Requeued { refusal } => conn
            .prepare_cached(
                "UPDATE jobs SET status = ?3, worker_id = NULL, started_at = NULL,
                                 assigned_at = NULL, gpu_indices = NULL,
                                 refusal = coalesce(?4, refusal),
                                 refusals = refusals + CASE WHEN ?4 IS NULL THEN 0 ELSE 1 END
                 WHERE id = ?1 AND status = ?2",
            )?
            .execute(params![id.0 as i64, from.as_str(), to.as_str(), refusal])?,
        StatusWrite::Finished(done) => conn
            .prepare_cached(
                "UPDATE jobs SET status = ?3, finished_at = ?4, exit_code = ?5, stdout = ?6,
                                 stderr = ?7, stdout_truncated = ?8, stderr_truncated = ?9,
                                 duration_ms = ?10, reason = ?11, message = ?12,
                                 validation = ?13, compile_output = ?14
                 WHERE id = ?1 AND status = ?2",
            )?
            .execute(params![
                id.0 as i64,
                from.as_str(),
                to.as_str(),
                now,
                done.exit_code,
                done.stdout,
                done.stderr,
                done.stdout_truncated,
                done.stderr_truncated,
                done.duration_ms.map(|d| d.min(i64::MAX as u64) as i64),
                done.reason.map(|r| r.as_str()),
                done.message,
                done.validation
                    .unwrap_or(ValidationOutcome::NoResult)
                    .as_str(),
                done.compile_output,
            ])?,
    };
    expect_one(changed, id, &format!("{from} -> {to}"))?;
    // The attempt's live output ends with it: a result carries the whole output, and
    // a next attempt starts from nothing (`live_output`).
    if matches!(
        write,
        StatusWrite::Requeued { .. } | StatusWrite::Finished(_)
    ) {
        super::live_output::clear(conn, id)?;
    }
    Ok(())
}

/// A queued or running job as the queue keeps it in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveJob {
    pub id: JobId,
    pub user: UserName,
    pub language: Language,
    pub priority: i32,
    pub status: JobStatus,
    pub worker: Option<WorkerId>,
    pub attempts: u32,
    pub cancel_requested: bool,
    pub cost: Credits,
    pub timeout_s: u32,
    pub memory_mb: u32,
    pub refusals: u32,
    /// Its current attempt said `started` (a running job only).
    pub started: bool,
    /// Its result may be checked by replicas.
    pub validate: bool,
    pub gpus: u32,
    pub gpu_memory_mb: Option<u32>,
    /// The worker's GPUs its running attempt holds.
    pub gpu_indices: Vec<u32>,
}

/// Every queued and running job, oldest first, for rebuilding the queue at start-up.
pub fn live_jobs(conn: &Db) -> StoreResult<Vec<LiveJob>> {
    let mut stmt = conn.prepare(
        "SELECT id, \"user\", language, priority, status, worker_id, attempts, cancel_requested, cost,
                timeout_s, memory_mb, refusals, started_at IS NOT NULL, validate, gpus,
                gpu_memory_mb, gpu_indices
         FROM jobs WHERE status IN ('queued', 'running') ORDER BY id",
    )?;
    let rows = stmt.query_map((), |r| {
        let user: String = r.get(1)?;
        let language: String = r.get(2)?;
        let status: String = r.get(4)?;
        Ok(LiveJob {
            id: JobId(r.get::<i64>(0)? as u64),
            user: UserName::new(&user).map_err(|_| corrupt("user", &user))?,
            language: language
                .parse()
                .map_err(|_| corrupt("language", &language))?,
            priority: r.get(3)?,
            status: status.parse().map_err(|_| corrupt("status", &status))?,
            worker: r.get::<Option<i64>>(5)?.map(|w| WorkerId(w as u64)),
            attempts: r.get(6)?,
            cancel_requested: r.get(7)?,
            cost: Credits::from_millis(r.get(8)?),
            timeout_s: r.get(9)?,
            memory_mb: r.get(10)?,
            refusals: r.get(11)?,
            started: r.get(12)?,
            validate: r.get(13)?,
            gpus: r.get(14)?,
            gpu_memory_mb: r.get(15)?,
            gpu_indices: parse_indices(r.get::<Option<String>>(16)?.as_deref())
                .map_err(|text| corrupt("gpu_indices", text))?,
        })
    })?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// Drops the code, stdin and output of jobs that finished before `cutoff`; the row
/// and its ledger entries stay. Returns how many jobs were pruned.
pub fn prune_output(conn: &Db, cutoff: i64) -> StoreResult<usize> {
    super::judge0::keep_verdicts(conn, cutoff)?;
    conn.execute(
        "UPDATE jobs SET code = '', stdin = '', stdout = '', stderr = '',
                        compile_output = CASE WHEN compile_output IS NULL THEN compile_output ELSE '' END,
                        output_pruned = 1
         WHERE output_pruned = 0 AND finished_at IS NOT NULL AND finished_at < ?1",
        [cutoff],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ledger;
    use gridx_proto::api::LedgerKind;

    fn store() -> Db {
        crate::store::testing::memory_store(&["a"], "a")
    }

    use crate::store::testing::spec;

    #[test]
    fn retention_drops_old_output_but_keeps_the_row_and_ledger() {
        let conn = store();
        let user = UserName::new("a").unwrap();
        ledger::post(
            &conn,
            LedgerKind::Grant,
            ledger::MINT,
            "user:a",
            Credits::from_whole(5),
            None,
            0,
            None,
        )
        .unwrap();
        let old = insert_job(&conn, &user, &spec(), Credits::from_whole(1), 0).unwrap();
        let new = insert_job(&conn, &user, &spec(), Credits::from_whole(1), 0).unwrap();
        for (id, finished) in [(old, 1_000), (new, 9_000)] {
            let assigned = StatusWrite::Assigned {
                worker: WorkerId(1),
                attempt: 1,
                gpus: &[],
            };
            write_status(
                &conn,
                id,
                JobStatus::Queued,
                JobStatus::Running,
                assigned,
                0,
            )
            .unwrap();
            let done = Completion {
                stdout: "out".into(),
                stderr: "err".into(),
                exit_code: Some(0),
                ..Completion::default()
            };
            let write = StatusWrite::Finished(&done);
            write_status(
                &conn,
                id,
                JobStatus::Running,
                JobStatus::Succeeded,
                write,
                finished,
            )
            .unwrap();
        }
        assert_eq!(prune_output(&conn, 5_000).unwrap(), 1);
        assert_eq!(
            prune_output(&conn, 5_000).unwrap(),
            0,
            "pruning is idempotent"
        );
        let old_view = job_view(&conn, old).unwrap().unwrap();
        assert_eq!(
            (old_view.stdout.as_str(), old_view.status),
            ("", JobStatus::Succeeded)
        );
        assert_eq!(load_spec(&conn, old).unwrap().code, "");
        assert_eq!(job_view(&conn, new).unwrap().unwrap().stdout, "out");
    }

    #[test]
    fn summaries_and_lists_carry_output_lengths_and_the_output_reads_exactly() {
        let conn = store();
        let user = UserName::new("a").unwrap();
        let id = insert_job(&conn, &user, &spec(), Credits::ZERO, 0).unwrap();
        let assigned = StatusWrite::Assigned {
            worker: WorkerId(1),
            attempt: 1,
            gpus: &[],
        };
        write_status(
            &conn,
            id,
            JobStatus::Queued,
            JobStatus::Running,
            assigned,
            0,
        )
        .unwrap();
        let stdout = "é\u{0}\u{FFFD}\r\n\"\\".to_owned();
        let done = Completion {
            stdout: stdout.clone(),
            stderr: "x".repeat(10),
            stderr_truncated: true,
            exit_code: Some(0),
            ..Completion::default()
        };
        let write = StatusWrite::Finished(&done);
        write_status(
            &conn,
            id,
            JobStatus::Running,
            JobStatus::Succeeded,
            write,
            1,
        )
        .unwrap();
        let view = job_view(&conn, id).unwrap().unwrap();
        let summary = job_summary(&conn, id).unwrap().unwrap();
        assert_eq!(summary, view.summary());
        assert_eq!(summary.stdout_bytes, stdout.len() as u64);
        assert_eq!((summary.stderr_bytes, summary.stderr_truncated), (10, true));
        let (listed, _) = list_jobs(&conn, Some(&user), None, 10, None).unwrap();
        assert_eq!(listed, vec![summary]);
        assert_eq!(
            job_output(&conn, id, OutputStream::Stdout).unwrap(),
            Some((user.clone(), stdout))
        );
        assert_eq!(
            job_output(&conn, id, OutputStream::Stderr)
                .unwrap()
                .unwrap()
                .1,
            "x".repeat(10)
        );
        assert_eq!(
            job_output(&conn, JobId(99), OutputStream::Stdout).unwrap(),
            None
        );
    }

    /// The row must be in the state the queue names, so a lost race cannot overwrite
    /// a result. (Which edges exist is the queue's `transitions`, tested there.)
    #[test]
    fn a_write_from_a_state_the_row_is_not_in_changes_nothing() {
        let conn = store();
        let user = UserName::new("a").unwrap();
        let id = insert_job(&conn, &user, &spec(), Credits::ZERO, 0).unwrap();
        let done = Completion::default();
        let write = StatusWrite::Finished(&done);
        write_status(&conn, id, JobStatus::Queued, JobStatus::Cancelled, write, 1).unwrap();
        assert!(
            write_status(&conn, id, JobStatus::Queued, JobStatus::Cancelled, write, 2).is_err()
        );
        assert!(
            write_status(
                &conn,
                id,
                JobStatus::Running,
                JobStatus::Succeeded,
                write,
                2
            )
            .is_err()
        );
        assert_eq!(
            job_view(&conn, id).unwrap().unwrap().status,
            JobStatus::Cancelled
        );
    }
}
