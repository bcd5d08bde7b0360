//! What the Judge0-compatible API (`crate::judge0`) keeps beside each job it submits:
//! its token, its Judge0 language id, the expected output and the request's settings.

use super::StoreResult;
use crate::params;
use crate::store::db::{Db, OptionalExtension, Row};
use gridx_proto::{JobId, UserName};

/// A Judge0 submission's own data, stored with its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judge0Link {
    /// A v4 UUID, lowercase.
    pub token: String,
    pub language_id: u16,
    /// Compared with the job's stdout by Judge0's rule; `None`: no comparison.
    pub expected_output: Option<String>,
    /// The request's limits and options as JSON (`crate::judge0::request::Settings`).
    pub settings: String,
    /// Whether the output matched `expected_output`, fixed when retention blanked
    /// the output (`None` before: it is compared when read).
    pub matched: Option<bool>,
    /// Where to PUT the submission when it ends (`crate::judge0::callback`).
    pub callback_url: Option<String>,
}

/// Stores the link, in the transaction that stores the job.
pub fn insert(conn: &Db, job_id: JobId, link: &Judge0Link) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO judge0_submissions
             (token, job_id, language_id, expected_output, settings, callback_url)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        link.token,
        job_id.0 as i64,
        link.language_id,
        link.expected_output,
        link.settings,
        link.callback_url
    ])?;
    Ok(())
}

fn row(r: &Row) -> crate::store::StoreResult<(JobId, Judge0Link)> {
    Ok((
        JobId(r.get::<i64>(0)? as u64),
        Judge0Link {
            token: r.get(1)?,
            language_id: r.get(2)?,
            expected_output: r.get(3)?,
            settings: r.get(4)?,
            matched: r.get(5)?,
            callback_url: r.get(6)?,
        },
    ))
}

/// The job of a token, if that user owns it (another user's token is not found).
pub fn find(conn: &Db, token: &str, owner: &UserName) -> StoreResult<Option<(JobId, Judge0Link)>> {
    conn.prepare_cached(
        "SELECT s.job_id, s.token, s.language_id, s.expected_output, s.settings, s.matched,
                    s.callback_url
             FROM judge0_submissions s JOIN jobs j ON j.id = s.job_id
             WHERE s.token = ?1 AND j.\"user\" = ?2",
    )?
    .query_row(params![token, owner.as_str()], row)
    .optional()
}

/// A page of a user's Judge0 submissions, newest first, and how many there are.
pub fn page(
    conn: &Db,
    owner: &UserName,
    limit: u32,
    offset: u64,
) -> StoreResult<(Vec<(JobId, Judge0Link)>, u64)> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.job_id, s.token, s.language_id, s.expected_output, s.settings, s.matched,
                    s.callback_url
         FROM judge0_submissions s JOIN jobs j ON j.id = s.job_id
         WHERE j.\"user\" = ?1 ORDER BY s.job_id DESC LIMIT ?2 OFFSET ?3",
    )?;
    let rows = stmt
        .query_map(
            params![owner.as_str(), limit, offset.min(i64::MAX as u64) as i64],
            row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let total: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM judge0_submissions s JOIN jobs j ON j.id = s.job_id
             WHERE j.\"user\" = ?1",
        )?
        .query_row([owner.as_str()], |r| r.get(0))?;
    Ok((rows, total as u64))
}

/// A job's code and stdin, for the `source_code` and `stdin` fields.
pub fn input(conn: &Db, job_id: JobId) -> StoreResult<Option<(String, String)>> {
    conn.prepare_cached("SELECT code, stdin FROM jobs WHERE id = ?1")?
        .query_row([job_id.0 as i64], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// Before retention blanks the output of jobs that ended before `cutoff`, fixes the
/// verdict of each of their Judge0 submissions that has an expected output, so that
/// Accepted stays Accepted (`crate::store::jobs::prune_output` calls it first).
pub fn keep_verdicts(conn: &Db, cutoff: i64) -> StoreResult<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.job_id, s.expected_output, s.settings, j.stdout, j.stderr
         FROM judge0_submissions s JOIN jobs j ON j.id = s.job_id
         WHERE s.expected_output IS NOT NULL AND s.matched IS NULL
           AND j.output_pruned = 0 AND j.finished_at IS NOT NULL AND j.finished_at < ?1",
    )?;
    let rows = stmt
        .query_map([cutoff], |r| {
            Ok((
                r.get::<i64>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
                r.get::<String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut update =
        conn.prepare_cached("UPDATE judge0_submissions SET matched = ?2 WHERE job_id = ?1")?;
    for (job_id, expected, settings, stdout, stderr) in rows {
        let output = crate::judge0::status::program_output(
            &stdout,
            &stderr,
            crate::judge0::status::redirects(&settings),
        );
        let matched = crate::judge0::status::matches(&expected, &output);
        update.execute(params![job_id, matched])?;
    }
    Ok(())
}

/// The Judge0 submission of a job that asked for a callback, if it did.
pub fn with_callback(conn: &Db, job_id: JobId) -> StoreResult<Option<Judge0Link>> {
    Ok(conn
        .prepare_cached(
            "SELECT s.job_id, s.token, s.language_id, s.expected_output, s.settings, s.matched,
                    s.callback_url
             FROM judge0_submissions s
             WHERE s.job_id = ?1 AND s.callback_url IS NOT NULL",
        )?
        .query_row([job_id.0 as i64], row)
        .optional()?
        .map(|(_, link)| link))
}
