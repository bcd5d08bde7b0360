//! A worker session's outbox: what the queue thread asks the session to send. It is
//! bounded, and the queue never waits on it. A worker that stops reading would
//! otherwise make the coordinator keep every `cancel` and `assign` for it forever;
//! when its outbox is full the session is closed instead (1008, docs/protocol.md
//! §1.3), and its jobs follow the lease rules like any lost connection's.
//!
//! An outbox also counts the bytes it holds, mostly the code and stdin of `assign`s:
//! dispatch gives a worker whose outbox holds [`DISPATCH_BACKLOG_BYTES`] no new job
//! until it has read them, so a worker with many slots that does not read cannot
//! pin that many job specs in memory (the jobs wait in the store instead).

use super::Outbound;
use gridx_proto::protocol::CoordinatorMessage;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{Notify, mpsc};

/// Bytes of messages waiting in a worker's outbox past which it is assigned nothing
/// more until it reads them.
pub const DISPATCH_BACKLOG_BYTES: usize = 8 * 1024 * 1024;

/// About what a message holds in memory: the job spec's code and stdin for an
/// `assign`, and a little for everything.
pub fn weight(message: &Outbound) -> usize {
    let payload = match message {
        Outbound::Send(CoordinatorMessage::Assign { job, .. }) => {
            job.spec.code.len() + job.spec.stdin.len()
        }
        Outbound::Send(CoordinatorMessage::Reject { message, .. })
        | Outbound::Close(Some((_, message))) => message.len(),
        _ => 0,
    };
    128 + payload
}

/// Messages an outbox holds for a worker with `slots` slots. A batch sends a worker
/// at most one `cancel` per attempt it lists (at most 2 × `slots`, hello and
/// heartbeat alike) and one `assign` per free slot, plus a `drain` or a close: twice
/// that is room for a worker that reads, however its batches fall.
pub fn capacity(slots: u32) -> usize {
    6 * slots as usize + 64
}

/// The queue's end: cloned into its model of the session.
#[derive(Debug, Clone)]
pub struct SessionTx {
    tx: mpsc::Sender<Outbound>,
    overflow: Arc<Overflow>,
}

/// The session's end.
#[derive(Debug)]
pub struct SessionRx {
    rx: mpsc::Receiver<Outbound>,
    overflow: Arc<Overflow>,
}

#[derive(Debug, Default)]
struct Overflow {
    happened: AtomicBool,
    notify: Notify,
    /// The [`weight`] of the messages waiting.
    bytes: AtomicUsize,
}

/// What the session gets next from its outbox.
#[derive(Debug)]
pub enum Delivery {
    Message(Outbound),
    /// The outbox filled up: the worker does not read. Close the session.
    Overflowed,
    /// The queue let go of the session (it is shutting down).
    Closed,
}

/// A new outbox holding at most `capacity` messages.
pub fn outbox(capacity: usize) -> (SessionTx, SessionRx) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let overflow = Arc::new(Overflow::default());
    (
        SessionTx {
            tx,
            overflow: overflow.clone(),
        },
        SessionRx { rx, overflow },
    )
}

impl SessionTx {
    /// Queues `message` without waiting. On a full outbox the message is dropped and
    /// the session is told to close; a closed session's messages go nowhere (its jobs
    /// are covered by the lease rules). Returns whether the message was queued.
    pub fn send(&self, message: Outbound) -> bool {
        let weight = weight(&message);
        match self.tx.try_send(message) {
            Ok(()) => {
                self.overflow.bytes.fetch_add(weight, Ordering::AcqRel);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.happened.store(true, Ordering::Release);
                self.overflow.notify.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Whether this outbox overflowed.
    pub fn overflowed(&self) -> bool {
        self.overflow.happened.load(Ordering::Acquire)
    }

    /// The [`weight`] of the messages waiting for the session.
    pub fn backlog_bytes(&self) -> usize {
        self.overflow.bytes.load(Ordering::Acquire)
    }
}

impl SessionRx {
    /// Resolves once the outbox has overflowed: raced against a send that the worker
    /// does not take, so the session ends at once instead of at the send timeout.
    pub async fn overflowed(&self) {
        loop {
            let notified = self.overflow.notify.notified();
            if self.overflow.happened.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// The next message, in order; `Overflowed` as soon as the outbox has overflowed,
    /// before anything still queued (the worker is not reading it anyway).
    pub async fn recv(&mut self) -> Delivery {
        if self.overflow.happened.load(Ordering::Acquire) {
            return Delivery::Overflowed;
        }
        tokio::select! {
            biased;
            _ = self.overflow.notify.notified() => Delivery::Overflowed,
            message = self.rx.recv() => match message {
                Some(message) => {
                    self.overflow.bytes.fetch_sub(weight(&message), Ordering::AcqRel);
                    Delivery::Message(message)
                }
                None => Delivery::Closed,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridx_proto::protocol::CoordinatorMessage;

    fn drain_message() -> Outbound {
        Outbound::Send(CoordinatorMessage::Drain {})
    }

    #[tokio::test]
    async fn messages_arrive_in_order_until_the_outbox_is_full_then_it_overflows() {
        let (tx, mut rx) = outbox(2);
        assert!(tx.send(drain_message()));
        assert!(tx.send(Outbound::Close(None)));
        assert!(!tx.overflowed());
        assert!(matches!(
            rx.recv().await,
            Delivery::Message(Outbound::Send(_))
        ));
        // Reading made room again.
        assert!(tx.send(drain_message()));
        assert!(!tx.send(drain_message()), "the third message does not fit");
        assert!(tx.overflowed());
        // Overflow wins over what is still queued, and stays.
        assert!(matches!(rx.recv().await, Delivery::Overflowed));
        assert!(matches!(rx.recv().await, Delivery::Overflowed));
    }

    #[tokio::test]
    async fn a_waiting_session_hears_of_the_overflow_at_once() {
        let (tx, mut rx) = outbox(1);
        let waiting = tokio::spawn(async move {
            // Takes the first message, then waits for the next.
            let first = rx.recv().await;
            let second = rx.recv().await;
            (first, second)
        });
        assert!(tx.send(drain_message()));
        tokio::task::yield_now().await;
        // Fill the outbox while the session waits, then overflow it.
        while tx.send(drain_message()) {}
        let (first, second) = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("no panic");
        assert!(matches!(first, Delivery::Message(_)));
        assert!(matches!(second, Delivery::Overflowed), "{second:?}");
    }

    #[tokio::test]
    async fn an_overflow_is_heard_while_the_session_is_busy_sending() {
        let (tx, rx) = outbox(1);
        let waiting = tokio::spawn(async move {
            rx.overflowed().await;
            rx
        });
        tokio::task::yield_now().await;
        assert!(tx.send(drain_message()));
        assert!(
            !waiting.is_finished(),
            "a full outbox is not an overflow yet"
        );
        assert!(!tx.send(drain_message()));
        let mut rx = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken by the overflow")
            .expect("no panic");
        assert!(matches!(rx.recv().await, Delivery::Overflowed));
    }

    #[tokio::test]
    async fn a_dropped_queue_end_closes_and_a_dropped_session_end_takes_nothing() {
        let (tx, mut rx) = outbox(4);
        drop(tx);
        assert!(matches!(rx.recv().await, Delivery::Closed));
        let (tx, rx) = outbox(4);
        drop(rx);
        assert!(!tx.send(drain_message()));
        assert!(!tx.overflowed(), "a closed session is not an overflow");
    }

    #[tokio::test]
    async fn the_backlog_counts_the_bytes_of_what_waits() {
        use gridx_proto::protocol::AssignedJob;
        use gridx_proto::{JobId, JobSpec, Language};
        let assign = |code_bytes: usize| {
            Outbound::Send(CoordinatorMessage::Assign {
                job: AssignedJob {
                    gpus: Vec::new(),
                    job_id: JobId(1),
                    spec: JobSpec {
                        gpu_memory_mb: None,
                        gpus: 0,
                        language: Language::Bash,
                        code: "x".repeat(code_bytes),
                        stdin: "y".repeat(10),
                        timeout_s: 1,
                        memory_mb: 32,
                        priority: 0,
                        max_output_bytes: 1,
                    },
                },
                attempt: 1,
            })
        };
        let (tx, mut rx) = outbox(8);
        assert!(tx.send(assign(1000)));
        assert!(tx.send(drain_message()));
        assert_eq!(tx.backlog_bytes(), 128 + 1010 + 128);
        let _ = rx.recv().await;
        assert_eq!(tx.backlog_bytes(), 128);
        let _ = rx.recv().await;
        assert_eq!(tx.backlog_bytes(), 0);
    }

    #[test]
    fn capacity_grows_with_the_slots() {
        assert_eq!(capacity(1), 70);
        assert_eq!(capacity(1024), 6208);
    }
}
