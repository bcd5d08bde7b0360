//! Live output (`output` from a worker, docs/protocol.md §3): each piece of a running
//! attempt's output is kept if it continues what is stored, within the coordinator's
//! output cap, and handed to the job's viewers after the commit (`crate::live_output`).

use crate::live_output::LiveEvent;
use crate::queue::model::{Effects, State, Step};
use crate::store::Db;
use crate::store::live_output;
use gridx_proto::api::{OutputChunk, OutputStream};
use gridx_proto::{JobId, WorkerId};
use std::sync::Arc;

/// What part of a piece at `offset` is new when `have` bytes are stored and the
/// stream may hold `cap`: the byte range of `text` to keep, if any. A piece that
/// starts past what is stored (a gap: pieces lost on the way) is dropped whole, as is
/// one whose new part would not start or end on a character boundary.
pub(crate) fn new_part(text: &str, offset: u64, have: u64, cap: u64) -> Option<(usize, usize)> {
    if offset > have || have >= cap {
        return None;
    }
    let end = offset.saturating_add(text.len() as u64);
    if end <= have {
        return None;
    }
    let start = usize::try_from(have - offset).ok()?;
    if !text.is_char_boundary(start) {
        return None;
    }
    let room = usize::try_from(cap - have).unwrap_or(usize::MAX);
    let mut stop = text.len().min(start.saturating_add(room));
    while !text.is_char_boundary(stop) {
        stop -= 1;
    }
    (stop > start).then_some((start, stop))
}

impl State {
    /// A worker's piece of output for an attempt it runs.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::queue) fn live_output(
        &mut self,
        conn: &Db,
        worker_id: WorkerId,
        job_id: JobId,
        attempt: u32,
        stream: OutputStream,
        offset: u64,
        text: String,
        fx: &mut Effects,
    ) -> Step<()> {
        if !self.is_current(job_id, attempt, worker_id) {
            self.metrics.fenced_reports.inc();
            return Ok(());
        }
        let cap = self.settings.max_output_bytes as u64;
        let Some(job) = self.running.get_mut(&job_id) else {
            return Ok(());
        };
        let at = stream.index();
        let have = job.live[at];
        let Some((start, stop)) = new_part(&text, offset, have, cap) else {
            return Ok(());
        };
        let chunk = OutputChunk {
            stream,
            offset: have,
            text: text[start..stop].to_owned(),
        };
        live_output::append(conn, job_id, &chunk)?;
        job.live[at] = have + (stop - start) as u64;
        fx.live.push((
            job_id,
            LiveEvent::Chunk {
                attempt,
                chunk: Arc::new(chunk),
            },
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::new_part;

    #[test]
    fn only_what_continues_the_stored_text_is_kept() {
        // Fresh, whole.
        assert_eq!(new_part("hello", 0, 0, 100), Some((0, 5)));
        // A resend after a reconnect: the known part is skipped.
        assert_eq!(new_part("hello world", 0, 6, 100), Some((6, 11)));
        // Old news, and a gap.
        assert_eq!(new_part("hello", 0, 5, 100), None);
        assert_eq!(new_part("later", 9, 5, 100), None);
        // Cut at the cap, on a character boundary.
        assert_eq!(new_part("aéb", 0, 0, 2), Some((0, 1)));
        assert_eq!(new_part("abc", 0, 0, 2), Some((0, 2)));
        assert_eq!(new_part("abc", 0, 2, 2), None, "full");
        // A resend whose new part would start inside a character.
        assert_eq!(new_part("é!", 0, 1, 100), None);
    }
}
