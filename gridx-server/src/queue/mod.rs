//! The queue: the only writer of job state.
//!
//! One OS thread owns the write connection and all scheduling state. API handlers and
//! worker sessions send it [`Command`]s; it takes every command waiting, applies them
//! in one transaction, dispatches queued jobs to free slots, commits once (group
//! commit), and only then answers callers, sends messages to workers and publishes
//! events. Nothing is promised to anyone before it is on disk. Refusals are decided
//! before a command writes anything, so there is no savepoint per command: a store
//! error aborts the whole batch and memory is rebuilt from the store.
//!
//! - `batch`: the engine (one transaction per batch, effects after commit)
//! - `model`: what the thread holds in memory, rebuilt from the store
//! - `transitions`: the one function that changes a job's status
//! - `rules`: jobs (submit, cancel, endings), sessions (handshake, reports,
//!   reconciliation, leases), dispatch, result checks, accounts (the operator's
//!   actions and what a disable does to queued jobs)
//! - `housekeeping`: the tick's periodic work and what is published
//! - `outbox`: each worker session's bounded outbox
//! - `scheduler`: priority and fair share among queued jobs
//! - credits move only through `crate::settlement`

mod batch;
mod housekeeping;
mod model;
pub(crate) mod outbox;
mod refusals;
mod rules;
pub mod scheduler;
mod transitions;
mod workers;

use crate::events::{EventBus, WorkerBoard};
use crate::metrics::Metrics;
use crate::store::Db;
use gridx_proto::api::JobView;
use gridx_proto::config::ServerConfig;
use gridx_proto::protocol::{
    Capabilities, CoordinatorMessage, JobAttempt, RejectCode, WorkerMessage,
};
use gridx_proto::{Credits, JobId, JobSpec, UserName, WorkerId};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

pub use model::QueueStats;

/// What the queue says back when it refuses something.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum QueueError {
    #[error("balance {balance} is below the job cost {cost}")]
    InsufficientCredits { balance: Credits, cost: Credits },
    #[error("{0}")]
    QueueFull(String),
    #[error("no such job")]
    NotFound,
    #[error("job {0} already finished ({1})")]
    AlreadyFinished(JobId, String),
    #[error("{1}")]
    Rejected(RejectCode, String),
    #[error("the coordinator is shutting down")]
    ShuttingDown,
    #[error("the Idempotency-Key {0:?} was already used for a different job request")]
    KeyReused(String),
    #[error(
        "priority {priority} is above your maximum of {max}; an operator can raise it with `gridx-server user set NAME --max-priority N`"
    )]
    PriorityNotAllowed { priority: i32, max: i32 },
    #[error("{0}")]
    NoSuchUser(String),
    /// An operator's request that cannot be done as asked (an empty reason, a debit
    /// past the balance).
    #[error("{0}")]
    Invalid(String),
    #[error("the account {0} is disabled by the operator ({1}); ask the operator to enable it")]
    AccountDisabled(UserName, String),
    #[error("the store failed: {0}")]
    Store(String),
}

/// An operator's action over the API (`/v1/admin/users/…`), applied by the queue.
#[derive(Debug, Clone)]
pub enum AdminAction {
    Credit {
        user: UserName,
        amount: Credits,
        reason: String,
    },
    Disable {
        user: UserName,
        reason: String,
    },
    Enable {
        user: UserName,
    },
    RotateToken {
        user: UserName,
    },
}

/// What an [`AdminAction`] did.
#[derive(Debug, Clone)]
pub enum AdminOutcome {
    Credited(crate::store::ledger::Posted),
    /// A disable or enable, with the queued jobs it cancelled.
    State {
        cancelled: u32,
    },
    Token(String),
}

/// A submit's idempotency key, with a hash of the job it asks for: a replay must ask
/// for the same job.
#[derive(Debug, Clone)]
pub struct SubmitKey {
    pub key: String,
    pub request_sha256: String,
}

/// What a submit did: made a job, or found the one an earlier submit with the same
/// key made (`replayed`).
#[derive(Debug)]
pub struct Submitted {
    pub view: JobView,
    pub replayed: bool,
}

pub use outbox::{
    DISPATCH_BACKLOG_BYTES, Delivery, SessionRx, SessionTx, capacity as outbox_capacity, outbox,
};

/// What the queue asks a worker session to do.
#[derive(Debug, Clone)]
pub enum Outbound {
    Send(CoordinatorMessage),
    /// Send `reject` with this code, then close the connection; `None` only when the
    /// worker's lease ran out (the session closes with 1008, docs/protocol.md §1.3).
    Close(Option<(RejectCode, String)>),
}

/// A worker connection that passed token checks and waits for `welcome`.
#[derive(Debug)]
pub struct HelloRequest {
    pub worker_id: WorkerId,
    pub name: String,
    pub owner: UserName,
    pub capabilities: Capabilities,
    pub running: Vec<JobAttempt>,
    pub session_id: u64,
    pub outbox: SessionTx,
}

/// One job to submit, as the queue takes it.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub spec: JobSpec,
    /// Whether its result may be checked by replicas (`validate` in the request).
    pub validate: bool,
    pub key: Option<SubmitKey>,
    /// What the Judge0 API stores beside a job it submits (`crate::judge0`), in the
    /// job's transaction. Never sent to a worker.
    pub judge0: Option<crate::store::judge0::Judge0Link>,
}

impl NewJob {
    /// A job as `/v1` submits it.
    pub fn new(spec: JobSpec, validate: bool) -> NewJob {
        NewJob {
            spec,
            validate,
            key: None,
            judge0: None,
        }
    }
}

pub enum Command {
    Submit {
        user: UserName,
        job: NewJob,
        reply: oneshot::Sender<Result<Submitted, QueueError>>,
    },
    /// Several submits of one user, applied in order in the same transaction: each
    /// is accepted or refused on its own (`POST /v1/jobs/batch`).
    SubmitBatch {
        user: UserName,
        jobs: Vec<NewJob>,
        reply: oneshot::Sender<Result<Vec<Result<Submitted, QueueError>>, QueueError>>,
    },
    Cancel {
        user: UserName,
        is_admin: bool,
        job_id: JobId,
        reply: oneshot::Sender<Result<JobView, QueueError>>,
    },
    Admin {
        admin: UserName,
        action: AdminAction,
        reply: oneshot::Sender<Result<AdminOutcome, QueueError>>,
    },
    Hello {
        hello: Box<HelloRequest>,
        reply: oneshot::Sender<Result<u32, QueueError>>,
    },
    FromWorker {
        worker_id: WorkerId,
        session_id: u64,
        message: WorkerMessage,
    },
    SessionClosed {
        worker_id: WorkerId,
        session_id: u64,
    },
    Tick,
    /// Stop dispatching, send `drain` to every worker.
    Drain {
        reply: oneshot::Sender<()>,
    },
    /// Close every session and end the thread.
    Stop,
}

/// The cloneable sending side used by the API and sessions.
#[derive(Clone)]
pub struct QueueHandle {
    tx: mpsc::Sender<Command>,
    stats: watch::Receiver<QueueStats>,
}

impl QueueHandle {
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, QueueError>>) -> Command,
    ) -> Result<T, QueueError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| QueueError::ShuttingDown)?;
        rx.await.map_err(|_| QueueError::ShuttingDown)?
    }

    pub async fn submit(&self, user: UserName, job: NewJob) -> Result<Submitted, QueueError> {
        self.call(|reply| Command::Submit { user, job, reply })
            .await
    }

    /// Submits several jobs in one transaction; one result per job, in order.
    pub async fn submit_batch(
        &self,
        user: UserName,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<Result<Submitted, QueueError>>, QueueError> {
        self.call(|reply| Command::SubmitBatch { user, jobs, reply })
            .await
    }

    pub async fn cancel(
        &self,
        user: UserName,
        is_admin: bool,
        job_id: JobId,
    ) -> Result<JobView, QueueError> {
        self.call(|reply| Command::Cancel {
            user,
            is_admin,
            job_id,
            reply,
        })
        .await
    }

    /// An admin's action on an account, audited under the admin's name.
    pub async fn admin(
        &self,
        admin: UserName,
        action: AdminAction,
    ) -> Result<AdminOutcome, QueueError> {
        self.call(|reply| Command::Admin {
            admin,
            action,
            reply,
        })
        .await
    }

    /// Returns the heartbeat interval to put in `welcome`.
    pub async fn hello(&self, hello: HelloRequest) -> Result<u32, QueueError> {
        self.call(|reply| Command::Hello {
            hello: Box::new(hello),
            reply,
        })
        .await
    }

    pub async fn worker_message(
        &self,
        worker_id: WorkerId,
        session_id: u64,
        message: WorkerMessage,
    ) {
        let _ = self
            .tx
            .send(Command::FromWorker {
                worker_id,
                session_id,
                message,
            })
            .await;
    }

    pub async fn session_closed(&self, worker_id: WorkerId, session_id: u64) {
        let _ = self
            .tx
            .send(Command::SessionClosed {
                worker_id,
                session_id,
            })
            .await;
    }

    pub async fn tick(&self) -> bool {
        self.tx.send(Command::Tick).await.is_ok()
    }

    pub async fn drain(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Drain { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }

    pub async fn stop(&self) {
        let _ = self.tx.send(Command::Stop).await;
    }

    pub fn stats(&self) -> QueueStats {
        self.stats.borrow().clone()
    }

    pub fn watch_stats(&self) -> watch::Receiver<QueueStats> {
        self.stats.clone()
    }
}

/// Settings the queue needs from the server config.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub heartbeat: Duration,
    pub heartbeat_s: u32,
    pub max_attempts: u32,
    pub job_cost: Credits,
    pub gpu_cost: Credits,
    pub reward_permille: u16,
    pub queue_capacity: u64,
    pub max_queued_per_user: u64,
    pub max_output_bytes: usize,
    pub retention: Duration,
    pub policy: crate::trust::Policy,
}

impl QueueSettings {
    pub fn from_config(c: &ServerConfig) -> Self {
        Self {
            heartbeat: Duration::from_secs(u64::from(c.heartbeat_s)),
            heartbeat_s: c.heartbeat_s,
            max_attempts: c.max_attempts,
            job_cost: c.job_cost,
            gpu_cost: c.gpu_cost,
            reward_permille: c.reward_permille,
            queue_capacity: c.queue_capacity,
            max_queued_per_user: c.max_queued_per_user,
            max_output_bytes: c.limits.max_output_bytes,
            retention: Duration::from_secs(u64::from(c.retention_days) * 86_400),
            policy: crate::trust::Policy::from(&c.validation),
        }
    }
}

/// Most commands folded into one transaction.
const MAX_BATCH: usize = 1024;

/// Starts the queue thread over an open write connection.
pub fn start(
    conn: Db,
    settings: QueueSettings,
    events: EventBus,
    board: WorkerBoard,
    metrics: Arc<Metrics>,
) -> Result<(QueueHandle, std::thread::JoinHandle<()>), crate::store::StoreError> {
    let (tx, mut rx) = mpsc::channel::<Command>(65_536);
    let (stats_tx, stats_rx) = watch::channel(QueueStats::default());
    // The state is loaded on the queue's own thread, which owns the connection from
    // the start: PostgreSQL's synchronous client must not run on the caller's, an
    // async runtime's. The caller waits for the load's outcome.
    let (loaded_tx, loaded_rx) = std::sync::mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name("gridx-queue".into())
        .spawn(move || {
            let mut conn = conn;
            let mut state =
                match model::State::load(&conn, settings, events, board, metrics, stats_tx) {
                    Ok(state) => {
                        let _ = loaded_tx.send(Ok(()));
                        state
                    }
                    Err(e) => {
                        let _ = loaded_tx.send(Err(e));
                        return;
                    }
                };
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.blocking_recv() {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(cmd) => batch.push(cmd),
                        Err(_) => break,
                    }
                }
                let stop = state.run_batch(&mut conn, &mut batch);
                batch.clear();
                if stop {
                    break;
                }
            }
            state.close_all_sessions();
        })
        .map_err(|_| crate::store::StoreError::Unavailable)?;
    loaded_rx
        .recv()
        .map_err(|_| crate::store::StoreError::Unavailable)??;
    Ok((
        QueueHandle {
            tx,
            stats: stats_rx,
        },
        handle,
    ))
}
