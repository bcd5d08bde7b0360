//! The queue thread's state and the rules it applies. Every handler does its store
//! writes first and changes memory only once they succeeded, so a failed command
//! (rolled back to its savepoint) leaves memory as it was.

use super::scheduler::{QueuedJob, Scheduler};
use super::{
    Command, HelloRequest, Outbound, QueueError, QueueSettings, SessionTx, SubmitKey, Submitted,
};
use crate::events::{Audience, EventBus, WorkerBoard};
use crate::metrics::{AccountLabel, Metrics};
use crate::store::jobs::{self, Completion};
use crate::store::ledger::{self, ESCROW, PLATFORM, PostError, Posted};
use crate::store::users;
use crate::store::{StoreError, now_millis};
use gridx_proto::api::{JobView, LedgerKind, WorkerStatus, WorkerView};
use gridx_proto::events::ServerEvent;
use gridx_proto::job::{FailureReason, RunEnd, RunOutcome, Settlement};
use gridx_proto::metrics::HostMetrics;
use gridx_proto::protocol::{
    AssignedJob, Capabilities, CoordinatorMessage, JobAttempt, RejectCode, WorkerMessage,
};
use gridx_proto::time_fmt::from_unix_millis;
use gridx_proto::{Credits, JobId, JobStatus, Language, UserName, WorkerId};
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

mod dispatch;
mod jobs_rules;
mod sessions;

/// Counts published after every batch, for `/healthz`, `/metrics` and shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub queued: u64,
    pub running: u64,
    pub workers_online: u32,
    pub draining: bool,
}

struct RunningJob {
    user: UserName,
    language: Language,
    priority: i32,
    cost: Credits,
    worker: WorkerId,
    attempt: u32,
    cancel_requested: bool,
}

struct Session {
    id: u64,
    outbox: SessionTx,
}

struct WorkerState {
    name: String,
    owner: UserName,
    session: Option<Session>,
    capabilities: Option<Capabilities>,
    running: HashSet<JobId>,
    /// Lease clock: the last time anything arrived from this worker.
    last_seen: Instant,
    last_seen_wall: Option<i64>,
    metrics: Option<HostMetrics>,
    draining: bool,
    revoked: bool,
}

impl WorkerState {
    fn status(&self) -> WorkerStatus {
        if self.revoked {
            WorkerStatus::Revoked
        } else if self.session.is_none() {
            WorkerStatus::Offline
        } else if self.draining {
            WorkerStatus::Draining
        } else {
            WorkerStatus::Online
        }
    }

    fn free_slots(&self) -> u32 {
        let slots = self.capabilities.as_ref().map_or(0, |c| c.slots);
        slots.saturating_sub(self.running.len() as u32)
    }

    fn can_take(&self, language: Language) -> bool {
        self.status() == WorkerStatus::Online
            && self.free_slots() > 0
            && self
                .capabilities
                .as_ref()
                .is_some_and(|c| c.languages.contains(&language))
    }
}

enum Reply {
    Submitted(
        oneshot::Sender<Result<Submitted, QueueError>>,
        Result<Submitted, QueueError>,
    ),
    Job(
        oneshot::Sender<Result<JobView, QueueError>>,
        Result<JobView, QueueError>,
    ),
    Hello(
        oneshot::Sender<Result<u32, QueueError>>,
        Result<u32, QueueError>,
    ),
    Done(oneshot::Sender<()>),
}

/// What a batch will do once its transaction committed.
#[derive(Default)]
struct Effects {
    replies: Vec<Reply>,
    outbound: Vec<(SessionTx, Outbound)>,
    changed_jobs: Vec<JobId>,
    posted: Vec<Posted>,
    changed_workers: Vec<WorkerId>,
    dispatch_latencies: Vec<f64>,
    finished: Vec<JobStatus>,
    submitted: u64,
}

pub(super) struct State {
    settings: QueueSettings,
    scheduler: Scheduler,
    enqueued_at: HashMap<JobId, Instant>,
    running: HashMap<JobId, RunningJob>,
    workers: HashMap<WorkerId, WorkerState>,
    draining: bool,
    events: EventBus,
    board: WorkerBoard,
    metrics: Arc<Metrics>,
    stats: watch::Sender<QueueStats>,
    last_housekeeping: Instant,
    last_prune: Instant,
}

type Step<T> = Result<T, StepError>;

/// A command's failure: either a refusal for the caller, or a store error.
enum StepError {
    Refused(QueueError),
    Store(StoreError),
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        StepError::Store(e)
    }
}

impl From<rusqlite::Error> for StepError {
    fn from(e: rusqlite::Error) -> Self {
        StepError::Store(StoreError::Sqlite(e))
    }
}

impl From<PostError> for StepError {
    fn from(e: PostError) -> Self {
        match e {
            PostError::Store(s) => StepError::Store(s),
            PostError::Insufficient { balance, needed } => {
                StepError::Refused(QueueError::InsufficientCredits {
                    balance,
                    cost: needed,
                })
            }
        }
    }
}

/// A command's result for its caller, and the store error that must abort the batch.
fn split<T>(result: Step<T>) -> (Result<T, QueueError>, Option<StoreError>) {
    match result {
        Ok(value) => (Ok(value), None),
        Err(StepError::Refused(e)) => (Err(e), None),
        Err(StepError::Store(e)) => (Err(QueueError::Store(e.to_string())), Some(e)),
    }
}

/// Answers a command that was not applied because its batch already failed.
fn refuse(command: Command, error: &StoreError) {
    let refusal = || QueueError::Store(format!("not applied: {error}"));
    match command {
        Command::Submit { reply, .. } => {
            let _ = reply.send(Err(refusal()));
        }
        Command::Cancel { reply, .. } => {
            let _ = reply.send(Err(refusal()));
        }
        Command::Hello { reply, .. } => {
            let _ = reply.send(Err(refusal()));
        }
        Command::Drain { reply } => {
            let _ = reply.send(());
        }
        Command::FromWorker { .. }
        | Command::SessionClosed { .. }
        | Command::Tick
        | Command::Stop => {}
    }
}

impl State {
    /// Rebuilds the queue from the store: queued jobs go back in the scheduler, running
    /// jobs stay leased to their worker until it reconnects or its lease runs out.
    pub(super) fn load(
        conn: &Connection,
        settings: QueueSettings,
        events: EventBus,
        board: WorkerBoard,
        metrics: Arc<Metrics>,
        stats: watch::Sender<QueueStats>,
    ) -> Result<Self, StoreError> {
        let mut state = State {
            settings,
            scheduler: Scheduler::default(),
            enqueued_at: HashMap::new(),
            running: HashMap::new(),
            workers: HashMap::new(),
            draining: false,
            events,
            board,
            metrics,
            stats,
            last_housekeeping: Instant::now(),
            last_prune: Instant::now() - Duration::from_secs(3600),
        };
        state.reload(conn)?;
        Ok(state)
    }

    fn reload(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut sessions: HashMap<WorkerId, WorkerState> = std::mem::take(&mut self.workers);
        self.scheduler = Scheduler::default();
        self.running.clear();
        for (record, last_seen) in users::all_workers(conn)? {
            let previous = sessions.remove(&record.id);
            let state = match previous {
                Some(mut w) => {
                    w.running.clear();
                    w.revoked = record.revoked;
                    w
                }
                None => WorkerState {
                    name: record.name,
                    owner: record.owner,
                    session: None,
                    capabilities: None,
                    running: HashSet::new(),
                    // A restarted coordinator gives every worker a full lease from now.
                    last_seen: now,
                    last_seen_wall: last_seen,
                    metrics: None,
                    draining: false,
                    revoked: record.revoked,
                },
            };
            self.workers.insert(record.id, state);
        }
        for job in jobs::live_jobs(conn)? {
            match (job.status, job.worker) {
                (JobStatus::Running, Some(worker)) if self.workers.contains_key(&worker) => {
                    if let Some(w) = self.workers.get_mut(&worker) {
                        w.running.insert(job.id);
                    }
                    self.running.insert(
                        job.id,
                        RunningJob {
                            user: job.user,
                            language: job.language,
                            priority: job.priority,
                            cost: job.cost,
                            worker,
                            attempt: job.attempts,
                            cancel_requested: job.cancel_requested,
                        },
                    );
                }
                _ => {
                    self.enqueued_at.entry(job.id).or_insert(now);
                    self.scheduler.push(QueuedJob {
                        id: job.id,
                        user: job.user,
                        language: job.language,
                        priority: job.priority,
                        attempts: job.attempts,
                        cost: job.cost,
                    });
                }
            }
        }
        for id in self.workers.keys().copied().collect::<Vec<_>>() {
            self.publish_worker(id);
        }
        self.publish_stats();
        Ok(())
    }

    /// Applies a batch in one transaction. Returns true when the thread should stop.
    pub(super) fn run_batch(&mut self, conn: &mut Connection, batch: &mut Vec<Command>) -> bool {
        let mut fx = Effects::default();
        let mut stop = false;
        let result = (|| -> Result<(), StoreError> {
            // IMMEDIATE: take the write lock up front. A deferred transaction that reads
            // first could not upgrade (SQLITE_BUSY, no retry) after an admin command
            // wrote from another process.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // No savepoint per command: every refusal is decided before a command
            // writes anything, so only a store error can interrupt one half-way, and
            // that aborts the whole batch (savepoints cost a page copy per command,
            // a third of the queue's time under load).
            let mut failure = None;
            for command in batch.drain(..) {
                if matches!(command, Command::Stop) {
                    stop = true;
                } else if let Some(e) = &failure {
                    refuse(command, e);
                } else if let Err(e) = self.apply(&tx, command, &mut fx) {
                    failure = Some(e);
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
            self.dispatch(&tx, &mut fx);
            tx.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => self.deliver(conn, fx),
            Err(e) => {
                // Nothing of this batch is on disk: tell every caller, and rebuild memory
                // from what is, so the queue never believes something the store does not.
                tracing::error!(error = %e, "queue transaction failed; reloading state from the store");
                self.metrics.store_errors.inc();
                for reply in fx.replies {
                    match reply {
                        Reply::Submitted(tx, _) => {
                            let _ = tx.send(Err(QueueError::Store(e.to_string())));
                        }
                        Reply::Job(tx, _) => {
                            let _ = tx.send(Err(QueueError::Store(e.to_string())));
                        }
                        Reply::Hello(tx, _) => {
                            let _ = tx.send(Err(QueueError::Store(e.to_string())));
                        }
                        Reply::Done(tx) => {
                            let _ = tx.send(());
                        }
                    }
                }
                if let Err(e) = self.reload(conn) {
                    tracing::error!(error = %e, "reloading queue state failed");
                }
            }
        }
        stop
    }

    /// Applies one command. A refusal is answered and is `Ok`; a store error is `Err`
    /// and aborts the batch.
    fn apply(
        &mut self,
        conn: &Connection,
        command: Command,
        fx: &mut Effects,
    ) -> Result<(), StoreError> {
        match command {
            Command::Submit {
                user,
                spec,
                key,
                reply,
            } => {
                let (result, failure) = split(self.submit(conn, user, spec, key, fx));
                fx.replies.push(Reply::Submitted(reply, result));
                failure.map_or(Ok(()), Err)
            }
            Command::Cancel {
                user,
                is_admin,
                job_id,
                reply,
            } => {
                let (result, failure) = split(self.cancel(conn, &user, is_admin, job_id, fx));
                fx.replies.push(Reply::Job(reply, result));
                failure.map_or(Ok(()), Err)
            }
            Command::Hello { hello, reply } => {
                let (result, failure) = split(self.hello(conn, *hello, fx));
                fx.replies.push(Reply::Hello(reply, result));
                failure.map_or(Ok(()), Err)
            }
            Command::FromWorker {
                worker_id,
                session_id,
                message,
            } => {
                let result = self.on_worker_message(conn, worker_id, session_id, message, fx);
                self.log_failure(result)
            }
            Command::SessionClosed {
                worker_id,
                session_id,
            } => {
                if let Some(w) = self.workers.get_mut(&worker_id)
                    && w.session.as_ref().is_some_and(|s| s.id == session_id)
                {
                    w.session = None;
                    fx.changed_workers.push(worker_id);
                }
                Ok(())
            }
            Command::Tick => {
                let result = self.tick(conn, fx);
                self.log_failure(result)
            }
            Command::Drain { reply } => {
                self.draining = true;
                for (id, w) in &mut self.workers {
                    if let Some(s) = &w.session {
                        w.draining = true;
                        fx.outbound.push((
                            s.outbox.clone(),
                            Outbound::Send(CoordinatorMessage::Drain {}),
                        ));
                        fx.changed_workers.push(*id);
                    }
                }
                fx.replies.push(Reply::Done(reply));
                Ok(())
            }
            Command::Stop => Ok(()),
        }
    }

    fn log_failure(&self, result: Step<()>) -> Result<(), StoreError> {
        match result {
            Ok(()) => Ok(()),
            Err(StepError::Refused(e)) => {
                tracing::warn!(error = %e, "worker report refused");
                Ok(())
            }
            Err(StepError::Store(e)) => Err(e),
        }
    }

    /// After commit: answer callers, message workers, publish events and stats.
    fn deliver(&mut self, conn: &Connection, fx: Effects) {
        // Counters first, so whoever hears back sees them already counted.
        self.metrics.jobs_submitted.inc_by(fx.submitted);
        for latency in fx.dispatch_latencies {
            self.metrics.dispatch_latency.observe(latency);
        }
        for status in fx.finished {
            self.metrics
                .jobs_finished
                .get_or_create(&crate::metrics::StatusLabel {
                    status: status.as_str().into(),
                })
                .inc();
        }
        self.publish_stats();

        for reply in fx.replies {
            match reply {
                Reply::Submitted(tx, result) => {
                    let _ = tx.send(result);
                }
                Reply::Job(tx, result) => {
                    let _ = tx.send(result);
                }
                Reply::Hello(tx, result) => {
                    let _ = tx.send(result);
                }
                Reply::Done(tx) => {
                    let _ = tx.send(());
                }
            }
        }
        for (outbox, message) in fx.outbound {
            // A session that just closed has dropped its inbox; its jobs are covered by
            // the lease rules.
            let _ = outbox.send(message);
        }
        let mut workers = fx.changed_workers;
        workers.sort_unstable();
        workers.dedup();
        for id in workers {
            self.publish_worker(id);
        }
        if self.events.has_subscribers() {
            let mut jobs = fx.changed_jobs;
            jobs.sort_unstable();
            jobs.dedup();
            for id in jobs {
                match jobs::job_view(conn, id) {
                    Ok(Some(view)) => self.events.publish(
                        Audience::User(view.user.clone()),
                        ServerEvent::Job { job: view },
                    ),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(job = %id, error = %e, "could not read a job for its event")
                    }
                }
            }
            for posted in fx.posted {
                for account in [&posted.from, &posted.to] {
                    if let Some(user) = account.strip_prefix("user:")
                        && let (Ok(user), Some(entry)) =
                            (UserName::new(user), posted.view_for(account))
                    {
                        self.events
                            .publish(Audience::OwnerOnly(user), ServerEvent::Ledger { entry });
                    }
                }
            }
        }
    }

    fn publish_worker(&self, id: WorkerId) {
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        let caps = w.capabilities.as_ref();
        let view = WorkerView {
            worker_id: id,
            name: w.name.clone(),
            owner: w.owner.clone(),
            status: w.status(),
            languages: caps.map(|c| c.languages.clone()).unwrap_or_default(),
            slots: caps.map_or(0, |c| c.slots),
            running: w.running.len() as u32,
            executor: caps.map(|c| c.executor),
            metrics: w.metrics.clone(),
            last_seen: w.last_seen_wall.map(from_unix_millis),
        };
        self.board.upsert(view.clone());
        if self.events.has_subscribers() {
            self.events
                .publish(Audience::Everyone, ServerEvent::Worker { worker: view });
        }
    }

    fn publish_stats(&self) {
        let mut by_status: HashMap<WorkerStatus, i64> = HashMap::new();
        for w in self.workers.values() {
            *by_status.entry(w.status()).or_default() += 1;
        }
        for status in [
            WorkerStatus::Online,
            WorkerStatus::Draining,
            WorkerStatus::Offline,
            WorkerStatus::Revoked,
        ] {
            Metrics::set_status_gauge(
                &self.metrics.workers_by_state,
                status.as_str(),
                by_status.get(&status).copied().unwrap_or(0),
            );
        }
        let queued = self.scheduler.len() as u64;
        let running = self.running.len() as u64;
        self.metrics.queue_depth.set(queued as i64);
        Metrics::set_status_gauge(&self.metrics.jobs_by_state, "queued", queued as i64);
        Metrics::set_status_gauge(&self.metrics.jobs_by_state, "running", running as i64);
        let stats = QueueStats {
            queued,
            running,
            workers_online: by_status.get(&WorkerStatus::Online).copied().unwrap_or(0) as u32,
            draining: self.draining,
        };
        self.stats.send_if_modified(|old| {
            let changed = *old != stats;
            *old = stats;
            changed
        });
    }

    /// On exit: tell every worker the coordinator is going away.
    pub(super) fn close_all_sessions(&mut self) {
        for w in self.workers.values_mut() {
            if let Some(s) = w.session.take() {
                let _ = s.outbox.send(Outbound::Close(Some((
                    RejectCode::ShuttingDown,
                    "the coordinator is shutting down".into(),
                ))));
            }
        }
    }
}
