//! Live output: the pieces of a running job's output as they arrive from its worker,
//! for the viewers of `GET /v1/jobs/{id}/output` (docs/api.md).
//!
//! The queue stores each piece in its transaction (`store::live_output`) and, after
//! the commit, hands it to this hub, which passes it to the job's viewers, if any. A
//! viewer subscribes before it reads what is stored, so nothing committed after its
//! read is missed, and it drops what it already has by the piece's offset. A viewer
//! that falls more than [`VIEWER_BACKLOG`] pieces behind reads the store again.
//!
//! The hub never blocks the queue: a job with no viewer costs one map lookup.

use gridx_proto::JobId;
use gridx_proto::api::OutputChunk;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Pieces a viewer may fall behind before it must read the store again.
pub const VIEWER_BACKLOG: usize = 256;

/// What a viewer hears about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveEvent {
    /// A new piece of this attempt's output, stored.
    Chunk {
        attempt: u32,
        chunk: Arc<OutputChunk>,
    },
    /// The attempt's output is no longer live: the job ended, or its attempt ended
    /// and the job waits for another (its next attempt starts from nothing).
    Reset,
}

/// The job's viewers, by job.
#[derive(Clone, Default)]
pub struct LiveHub {
    jobs: Arc<Mutex<HashMap<JobId, broadcast::Sender<LiveEvent>>>>,
}

/// One viewer's subscription to a job: releases the job's entry when dropped, however
/// the viewer ends (a client that goes away mid-request included).
pub struct Following {
    hub: LiveHub,
    job: JobId,
    rx: Option<broadcast::Receiver<LiveEvent>>,
}

impl Following {
    pub async fn recv(&mut self) -> Result<LiveEvent, broadcast::error::RecvError> {
        match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => Err(broadcast::error::RecvError::Closed),
        }
    }

    /// Drops what is queued: the viewer reads the store again instead.
    pub fn skip_queued(&mut self) {
        self.rx = self.rx.as_ref().map(|rx| rx.resubscribe());
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        drop(self.rx.take());
        self.hub.release(self.job);
    }
}

impl LiveHub {
    /// Follows `job` until the returned subscription is dropped.
    pub fn follow(&self, job: JobId) -> Following {
        Following {
            hub: self.clone(),
            job,
            rx: Some(self.subscribe(job)),
        }
    }

    /// Starts following `job`. Dropping the receiver stops it; the job's entry goes
    /// with its last viewer, at the next piece (or at [`LiveHub::release`]).
    pub fn subscribe(&self, job: JobId) -> broadcast::Receiver<LiveEvent> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        match jobs.get(&job) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(VIEWER_BACKLOG);
                jobs.insert(job, sender);
                receiver
            }
        }
    }

    /// Forgets `job` if nobody follows it any more: a viewer calls it when it stops
    /// (a job that ended never publishes again, so its entry would stay).
    pub fn release(&self, job: JobId) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.get(&job).is_some_and(|s| s.receiver_count() == 0) {
            jobs.remove(&job);
        }
    }

    /// Whether anyone follows any job (the queue skips building events otherwise).
    pub fn has_viewers(&self) -> bool {
        !self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Passes `event` to `job`'s viewers, if any.
    pub fn publish(&self, job: JobId, event: LiveEvent) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = jobs.get(&job)
            && sender.send(event).is_err()
        {
            // Nobody listens any more.
            jobs.remove(&job);
        }
    }

    /// Jobs followed right now (for tests and metrics).
    pub fn followed(&self) -> usize {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridx_proto::api::OutputStream;

    fn chunk(offset: u64, text: &str) -> LiveEvent {
        LiveEvent::Chunk {
            attempt: 1,
            chunk: Arc::new(OutputChunk {
                stream: OutputStream::Stdout,
                offset,
                text: text.into(),
            }),
        }
    }

    #[tokio::test]
    async fn viewers_hear_their_job_only_and_leave_nothing_behind() {
        let hub = LiveHub::default();
        let mut a = hub.subscribe(JobId(1));
        let mut b = hub.subscribe(JobId(1));
        let mut other = hub.subscribe(JobId(2));
        hub.publish(JobId(1), chunk(0, "hi"));
        assert_eq!(a.recv().await.ok(), Some(chunk(0, "hi")));
        assert_eq!(b.recv().await.ok(), Some(chunk(0, "hi")));
        assert!(other.try_recv().is_err());
        drop((a, b));
        hub.publish(JobId(1), chunk(2, "!"));
        assert_eq!(hub.followed(), 1, "job 1's entry went with its viewers");
        drop(other);
        hub.publish(JobId(3), chunk(0, "nobody"));
        assert_eq!(hub.followed(), 1);
        hub.release(JobId(2));
        assert_eq!(hub.followed(), 0, "a viewer that stops releases its job");
        // A subscription releases its job however it ends.
        let following = hub.follow(JobId(7));
        assert_eq!(hub.followed(), 1);
        drop(following);
        assert_eq!(hub.followed(), 0);
    }
}
