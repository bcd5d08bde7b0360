//! What the Judge0-compatible API (`crate::judge0`) keeps beside each job it submits:
//! its token, its Judge0 language id, the expected output and the request's settings.

use super::StoreResult;
use gridx_proto::{JobId, UserName};
use rusqlite::{Connection, OptionalExtension, params};

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
}

/// Stores the link, in the transaction that stores the job.
pub fn insert(conn: &Connection, job_id: JobId, link: &Judge0Link) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO judge0_submissions (token, job_id, language_id, expected_output, settings)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        link.token,
        job_id.0 as i64,
        link.language_id,
        link.expected_output,
        link.settings
    ])?;
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(JobId, Judge0Link)> {
    Ok((
        JobId(r.get::<_, i64>(0)? as u64),
        Judge0Link {
            token: r.get(1)?,
            language_id: r.get(2)?,
            expected_output: r.get(3)?,
            settings: r.get(4)?,
        },
    ))
}

/// The job of a token, if that user owns it (another user's token is not found).
pub fn find(
    conn: &Connection,
    token: &str,
    owner: &UserName,
) -> StoreResult<Option<(JobId, Judge0Link)>> {
    Ok(conn
        .prepare_cached(
            "SELECT s.job_id, s.token, s.language_id, s.expected_output, s.settings
             FROM judge0_submissions s JOIN jobs j ON j.id = s.job_id
             WHERE s.token = ?1 AND j.user = ?2",
        )?
        .query_row(params![token, owner.as_str()], row)
        .optional()?)
}

/// A page of a user's Judge0 submissions, newest first, and how many there are.
pub fn page(
    conn: &Connection,
    owner: &UserName,
    limit: u32,
    offset: u64,
) -> StoreResult<(Vec<(JobId, Judge0Link)>, u64)> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.job_id, s.token, s.language_id, s.expected_output, s.settings
         FROM judge0_submissions s JOIN jobs j ON j.id = s.job_id
         WHERE j.user = ?1 ORDER BY s.job_id DESC LIMIT ?2 OFFSET ?3",
    )?;
    let rows = stmt
        .query_map(params![owner.as_str(), limit, offset as i64], row)?
        .collect::<Result<Vec<_>, _>>()?;
    let total: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM judge0_submissions s JOIN jobs j ON j.id = s.job_id
             WHERE j.user = ?1",
        )?
        .query_row([owner.as_str()], |r| r.get(0))?;
    Ok((rows, total as u64))
}

/// A job's code and stdin, for the `source_code` and `stdin` fields.
pub fn input(conn: &Connection, job_id: JobId) -> StoreResult<Option<(String, String)>> {
    Ok(conn
        .prepare_cached("SELECT code, stdin FROM jobs WHERE id = ?1")?
        .query_row([job_id.0 as i64], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}
