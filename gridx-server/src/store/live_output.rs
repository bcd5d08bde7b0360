//! The live output of running jobs (docs/api.md, `GET /v1/jobs/{id}/output`): the
//! pieces each worker sent while its attempt ran, kept so that a viewer who comes
//! late, or after a coordinator restart, sees the output from its start. Only the
//! queue writes here, in its transactions. A job's pieces go when its status is next
//! written (`jobs::write_status`): at its end its output is the `finished` report's,
//! and a new attempt starts from nothing.

use super::StoreResult;
use crate::params;
use crate::store::db::Db;
use gridx_proto::api::{OutputChunk, OutputEnd, OutputStream};
use gridx_proto::{JobId, UserName};
use std::collections::HashMap;

/// Stores one piece, which the queue checked to follow the stored ones.
pub fn append(conn: &Db, job: JobId, chunk: &OutputChunk) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO live_output (job_id, stream, \"offset\", text) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        job.0 as i64,
        chunk.stream.as_str(),
        chunk.offset.min(i64::MAX as u64) as i64,
        chunk.text
    ])?;
    Ok(())
}

/// Forgets a job's pieces.
pub fn clear(conn: &Db, job: JobId) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM live_output WHERE job_id = ?1")?
        .execute([job.0 as i64])?;
    Ok(())
}

/// A job's pieces, stdout's then stderr's, each in order.
pub fn pieces(conn: &Db, job: JobId) -> StoreResult<Vec<OutputChunk>> {
    let mut stmt = conn.prepare_cached(
        "SELECT stream, \"offset\", text FROM live_output WHERE job_id = ?1
         ORDER BY stream DESC, \"offset\"",
    )?;
    let rows = stmt.query_map([job.0 as i64], |r| {
        Ok((r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<String>(2)?))
    })?;
    let mut out: Vec<OutputChunk> = Vec::new();
    for row in rows {
        let (stream, offset, text) = row?;
        let Some(stream) = OutputStream::parse(&stream) else {
            continue;
        };
        let offset = offset.max(0) as u64;
        // Contiguous pieces of one stream are read as one.
        match out.last_mut() {
            Some(last)
                if last.stream == stream && last.offset + last.text.len() as u64 == offset =>
            {
                last.text.push_str(&text);
            }
            _ => out.push(OutputChunk {
                stream,
                offset,
                text,
            }),
        }
    }
    Ok(out)
}

/// What a viewer of `GET /v1/jobs/{id}/output` reads first, and again whenever the
/// job moves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub user: UserName,
    /// The job's attempt number: another one than before means its output starts
    /// again.
    pub attempt: u32,
    /// Queued again after an attempt without a result: no output is live.
    pub queued: bool,
    /// The output so far: the live pieces of a running job, or the whole stored
    /// output (one piece per stream from offset 0) of one that ended.
    pub pieces: Vec<OutputChunk>,
    /// How it ended, once it did.
    pub end: Option<OutputEnd>,
}

pub fn snapshot(conn: &Db, job: JobId) -> StoreResult<Option<Snapshot>> {
    let Some(view) = super::jobs::job_view(conn, job)? else {
        return Ok(None);
    };
    if !view.status.is_terminal() {
        return Ok(Some(Snapshot {
            queued: view.status == gridx_proto::JobStatus::Queued,
            user: view.user,
            attempt: view.attempts,
            pieces: pieces(conn, job)?,
            end: None,
        }));
    }
    let mut whole = Vec::new();
    for (stream, text) in [
        (OutputStream::Stdout, view.stdout),
        (OutputStream::Stderr, view.stderr),
    ] {
        if !text.is_empty() {
            whole.push(OutputChunk {
                stream,
                offset: 0,
                text,
            });
        }
    }
    Ok(Some(Snapshot {
        queued: false,
        user: view.user,
        attempt: view.attempts,
        pieces: whole,
        end: Some(OutputEnd {
            status: view.status,
            exit_code: view.exit_code,
            reason: view.reason,
            message: view.message,
            stdout_truncated: view.stdout_truncated,
            stderr_truncated: view.stderr_truncated,
            compile_output: view.compile_output,
        }),
    }))
}

/// How much of each stream every job with pieces has stored: `[stdout, stderr]`
/// bytes (the queue's memory of it, rebuilt at start).
pub fn lengths(conn: &Db) -> StoreResult<HashMap<JobId, [u64; 2]>> {
    let mut stmt = conn.prepare(
        "SELECT job_id, stream, CAST(SUM(octet_length(text)) AS BIGINT) FROM live_output GROUP BY job_id, stream",
    )?;
    let rows = stmt.query_map((), |r| {
        Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?))
    })?;
    let mut out: HashMap<JobId, [u64; 2]> = HashMap::new();
    for row in rows {
        let (job, stream, bytes) = row?;
        let Some(at) = OutputStream::parse(&stream).map(OutputStream::index) else {
            continue;
        };
        out.entry(JobId(job as u64)).or_default()[at] = bytes.max(0) as u64;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[test]
    fn pieces_are_kept_in_order_counted_and_cleared() {
        let conn = testing::memory_store(&["alice"], "alice");
        conn.execute(
            "INSERT INTO jobs (id, \"user\", status, language, code, stdin, timeout_s, memory_mb,
                               priority, max_output_bytes, submitted_at, cost)
             VALUES (1, 'alice', 'running', 'bash', '', '', 1, 1, 0, 1024, 0, 0)",
            (),
        )
        .unwrap();
        let piece = |stream, offset, text: &str| OutputChunk {
            stream,
            offset,
            text: text.into(),
        };
        for p in [
            piece(OutputStream::Stderr, 0, "oops"),
            piece(OutputStream::Stdout, 0, "héllo "),
            piece(OutputStream::Stdout, 7, "world"),
        ] {
            append(&conn, JobId(1), &p).unwrap();
        }
        let got = pieces(&conn, JobId(1)).unwrap();
        let texts: Vec<&str> = got.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            ["héllo world", "oops"],
            "stdout first, contiguous ones as one"
        );
        assert_eq!(
            lengths(&conn).unwrap()[&JobId(1)],
            [12, 4],
            "bytes of UTF-8"
        );
        clear(&conn, JobId(1)).unwrap();
        assert!(pieces(&conn, JobId(1)).unwrap().is_empty());
        assert!(lengths(&conn).unwrap().is_empty());
    }
}
