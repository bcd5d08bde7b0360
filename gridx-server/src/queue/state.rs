//! The queue thread's state and the rules it applies. Every handler does its store
//! writes first and changes memory only once they succeeded, so a failed command
//! (rolled back to its savepoint) leaves memory as it was.

use super::scheduler::{QueuedJob, Scheduler};
use super::{Command, HelloRequest, Outbound, QueueError, QueueSettings, SessionTx};
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

impl StepError {
    fn into_queue_error(self) -> QueueError {
        match self {
            StepError::Refused(e) => e,
            StepError::Store(e) => QueueError::Store(e.to_string()),
        }
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
            let mut tx =
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for command in batch.drain(..) {
                if matches!(command, Command::Stop) {
                    stop = true;
                    continue;
                }
                let mut sp = tx.savepoint()?;
                let ok = self.apply(&sp, command, &mut fx);
                if ok {
                    sp.commit()?;
                } else {
                    sp.rollback()?;
                }
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

    /// Applies one command. Returns false when its savepoint must be rolled back.
    fn apply(&mut self, conn: &Connection, command: Command, fx: &mut Effects) -> bool {
        match command {
            Command::Submit { user, spec, reply } => {
                let result = self.submit(conn, user, spec, fx);
                let ok = result.is_ok();
                fx.replies.push(Reply::Job(
                    reply,
                    result.map_err(StepError::into_queue_error),
                ));
                ok
            }
            Command::Cancel {
                user,
                is_admin,
                job_id,
                reply,
            } => {
                let result = self.cancel(conn, &user, is_admin, job_id, fx);
                let ok = result.is_ok();
                fx.replies.push(Reply::Job(
                    reply,
                    result.map_err(StepError::into_queue_error),
                ));
                ok
            }
            Command::Hello { hello, reply } => {
                let result = self.hello(conn, *hello, fx);
                let ok = result.is_ok();
                fx.replies.push(Reply::Hello(
                    reply,
                    result.map_err(StepError::into_queue_error),
                ));
                ok
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
                true
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
                true
            }
            Command::Stop => true,
        }
    }

    fn log_failure(&self, result: Step<()>) -> bool {
        match result {
            Ok(()) => true,
            Err(StepError::Refused(e)) => {
                tracing::warn!(error = %e, "worker report refused");
                false
            }
            Err(StepError::Store(e)) => {
                tracing::error!(error = %e, "store write failed; the change was rolled back");
                self.metrics.store_errors.inc();
                false
            }
        }
    }

    fn submit(
        &mut self,
        conn: &Connection,
        user: UserName,
        spec: gridx_proto::JobSpec,
        fx: &mut Effects,
    ) -> Step<JobView> {
        if self.draining {
            return Err(StepError::Refused(QueueError::ShuttingDown));
        }
        if self.scheduler.len() as u64 >= self.settings.queue_capacity {
            return Err(StepError::Refused(QueueError::QueueFull(format!(
                "the queue is full ({} jobs waiting); try again later",
                self.scheduler.len()
            ))));
        }
        if self.scheduler.queued_for(&user) >= self.settings.max_queued_per_user {
            return Err(StepError::Refused(QueueError::QueueFull(format!(
                "you already have {} jobs waiting, the most allowed",
                self.settings.max_queued_per_user
            ))));
        }
        let cost = self.settings.job_cost;
        let now = now_millis();
        let id = jobs::insert_job(conn, &user, &spec, cost, now)?;
        let account = ledger::user_account(user.as_str());
        let posted = ledger::post(
            conn,
            LedgerKind::Hold,
            &account,
            ESCROW,
            cost,
            Some(id),
            now,
        )?;
        // Stored and held: now memory.
        fx.posted.extend(posted);
        fx.changed_jobs.push(id);
        fx.submitted += 1;
        self.enqueued_at.insert(id, Instant::now());
        self.scheduler.push(QueuedJob {
            id,
            user: user.clone(),
            language: spec.language,
            priority: spec.priority,
            attempts: 0,
            cost,
        });
        Ok(JobView {
            job_id: id,
            user,
            status: JobStatus::Queued,
            language: spec.language,
            priority: spec.priority,
            timeout_s: spec.timeout_s,
            memory_mb: spec.memory_mb,
            submitted_at: from_unix_millis(now),
            started_at: None,
            finished_at: None,
            worker_id: None,
            attempts: 0,
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            duration_ms: None,
            reason: None,
            message: None,
            cost,
        })
    }

    fn cancel(
        &mut self,
        conn: &Connection,
        user: &UserName,
        is_admin: bool,
        job_id: JobId,
        fx: &mut Effects,
    ) -> Step<JobView> {
        let not_found = || StepError::Refused(QueueError::NotFound);
        let may_touch = |owner: &UserName| is_admin || owner == user;
        if let Some(job) = self.scheduler.get(job_id) {
            if !may_touch(&job.user) {
                return Err(not_found());
            }
            self.finish_queued(conn, job_id, FailureReason::CancelledByUser, None, fx)?;
        } else if let Some(job) = self.running.get(&job_id) {
            if !may_touch(&job.user) {
                return Err(not_found());
            }
            if !job.cancel_requested {
                jobs::mark_cancel_requested(conn, job_id)?;
                let (worker, attempt) = (job.worker, job.attempt);
                if let Some(job) = self.running.get_mut(&job_id) {
                    job.cancel_requested = true;
                }
                // The job ends `cancelled` when the worker confirms, or is lost.
                self.send_to_worker(worker, CoordinatorMessage::Cancel { job_id, attempt }, fx);
            }
        } else {
            let view = jobs::job_view(conn, job_id)?.ok_or_else(not_found)?;
            if !may_touch(&view.user) {
                return Err(not_found());
            }
            return Err(StepError::Refused(QueueError::AlreadyFinished(
                job_id,
                view.status.to_string(),
            )));
        }
        jobs::job_view(conn, job_id)?.ok_or_else(not_found)
    }

    /// Ends a queued job (cancelled, or no attempt left) and refunds its hold.
    fn finish_queued(
        &mut self,
        conn: &Connection,
        job_id: JobId,
        reason: FailureReason,
        message: Option<String>,
        fx: &mut Effects,
    ) -> Step<()> {
        let Some(job) = self.scheduler.get(job_id).cloned() else {
            return Ok(());
        };
        let to = if reason == FailureReason::CancelledByUser {
            JobStatus::Cancelled
        } else {
            JobStatus::Error
        };
        let now = now_millis();
        jobs::mark_finished(
            conn,
            job_id,
            JobStatus::Queued,
            to,
            &Completion {
                reason: Some(reason),
                message,
                ..Completion::default()
            },
            now,
        )?;
        let account = ledger::user_account(job.user.as_str());
        fx.posted.extend(ledger::post(
            conn,
            LedgerKind::Refund,
            ESCROW,
            &account,
            job.cost,
            Some(job_id),
            now,
        )?);
        self.scheduler.remove(job_id);
        self.enqueued_at.remove(&job_id);
        fx.changed_jobs.push(job_id);
        fx.finished.push(to);
        Ok(())
    }

    fn hello(&mut self, conn: &Connection, hello: HelloRequest, fx: &mut Effects) -> Step<u32> {
        if self.draining {
            return Err(StepError::Refused(QueueError::Rejected(
                RejectCode::ShuttingDown,
                "the coordinator is shutting down".into(),
            )));
        }
        let worker_id = hello.worker_id;
        let revoked = users::revoked_among(conn, &[worker_id])?;
        if !revoked.is_empty() {
            return Err(StepError::Refused(QueueError::Rejected(
                RejectCode::Revoked,
                "this worker's token was revoked".into(),
            )));
        }
        // Jobs leased to this worker that it no longer reports are lost now.
        let reported: HashSet<JobAttempt> = hello.running.iter().copied().collect();
        let leased: Vec<JobId> = self
            .workers
            .get(&worker_id)
            .map(|w| w.running.iter().copied().collect())
            .unwrap_or_default();
        for job_id in leased {
            let keep = self.running.get(&job_id).is_some_and(|j| {
                reported.contains(&JobAttempt {
                    job_id,
                    attempt: j.attempt,
                })
            });
            if !keep {
                self.lose_job(conn, job_id, "the worker reconnected without it", fx)?;
            }
        }
        let worker = self
            .workers
            .entry(worker_id)
            .or_insert_with(|| WorkerState {
                name: hello.name.clone(),
                owner: hello.owner.clone(),
                session: None,
                capabilities: None,
                running: HashSet::new(),
                last_seen: Instant::now(),
                last_seen_wall: None,
                metrics: None,
                draining: false,
                revoked: false,
            });
        if let Some(old) = worker.session.take() {
            fx.outbound.push((
                old.outbox,
                Outbound::Close(Some((
                    RejectCode::Replaced,
                    "a newer connection of this worker replaced this one".into(),
                ))),
            ));
        }
        worker.name = hello.name;
        worker.capabilities = Some(hello.capabilities);
        worker.session = Some(Session {
            id: hello.session_id,
            outbox: hello.outbox.clone(),
        });
        worker.last_seen = Instant::now();
        worker.last_seen_wall = Some(now_millis());
        worker.draining = false;
        // Superseded attempts the worker still runs: tell it to stop them. Adopted
        // ones whose cancel was requested meanwhile get their cancel again.
        for attempt in &hello.running {
            let current = self
                .running
                .get(&attempt.job_id)
                .filter(|j| j.worker == worker_id && j.attempt == attempt.attempt);
            let cancel = match current {
                Some(job) => job.cancel_requested,
                None => true,
            };
            if cancel {
                fx.outbound.push((
                    hello.outbox.clone(),
                    Outbound::Send(CoordinatorMessage::Cancel {
                        job_id: attempt.job_id,
                        attempt: attempt.attempt,
                    }),
                ));
            }
        }
        fx.changed_workers.push(worker_id);
        Ok(self.settings.heartbeat_s)
    }

    fn tick(&mut self, conn: &Connection, fx: &mut Effects) -> Step<()> {
        let lease = self.settings.heartbeat * 3;
        let now = Instant::now();
        let expired: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| {
                (w.session.is_some() || !w.running.is_empty())
                    && now.duration_since(w.last_seen) > lease
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            tracing::warn!(worker = %id, "worker lost: silent for 3 heartbeats");
            self.lose_worker(conn, id, "its worker was lost (no heartbeat)", None, fx)?;
        }
        if now.duration_since(self.last_housekeeping) >= Duration::from_secs(1) {
            self.last_housekeeping = now;
            let connected: Vec<WorkerId> = self
                .workers
                .iter()
                .filter(|(_, w)| w.session.is_some())
                .map(|(id, _)| *id)
                .collect();
            for id in users::revoked_among(conn, &connected)? {
                tracing::warn!(worker = %id, "worker token revoked; dropping its session");
                self.lose_worker(
                    conn,
                    id,
                    "its worker's token was revoked",
                    Some((
                        RejectCode::Revoked,
                        "this worker's token was revoked".into(),
                    )),
                    fx,
                )?;
                if let Some(w) = self.workers.get_mut(&id) {
                    w.revoked = true;
                }
            }
            let mut stmt =
                conn.prepare_cached("UPDATE workers SET last_seen = ?2 WHERE id = ?1")?;
            for (id, w) in &self.workers {
                if w.session.is_some()
                    && let Some(at) = w.last_seen_wall
                {
                    stmt.execute(rusqlite::params![id.0 as i64, at])?;
                }
            }
            let totals = [
                ("escrow", ledger::balance(conn, ESCROW)?),
                ("platform", ledger::balance(conn, PLATFORM)?),
                (
                    "granted",
                    Credits::from_millis(-ledger::balance(conn, ledger::MINT)?.millis()),
                ),
            ];
            for (account, amount) in totals {
                self.metrics
                    .ledger_millicredits
                    .get_or_create(&AccountLabel {
                        account: account.into(),
                    })
                    .set(amount.millis());
            }
        }
        if !self.settings.retention.is_zero()
            && now.duration_since(self.last_prune) >= Duration::from_secs(600)
        {
            self.last_prune = now;
            let cutoff = now_millis() - self.settings.retention.as_millis() as i64;
            let pruned = jobs::prune_output(conn, cutoff)?;
            if pruned > 0 {
                tracing::info!(pruned, "dropped the output of jobs past retention");
            }
        }
        Ok(())
    }

    /// A worker is gone for good (lease expired, revoked): close its session and end
    /// or requeue every job it held.
    fn lose_worker(
        &mut self,
        conn: &Connection,
        worker_id: WorkerId,
        why: &str,
        reject: Option<(RejectCode, String)>,
        fx: &mut Effects,
    ) -> Step<()> {
        let held: Vec<JobId> = self
            .workers
            .get(&worker_id)
            .map(|w| w.running.iter().copied().collect())
            .unwrap_or_default();
        for job_id in held {
            self.lose_job(conn, job_id, why, fx)?;
        }
        if let Some(w) = self.workers.get_mut(&worker_id) {
            if let Some(s) = w.session.take() {
                fx.outbound.push((s.outbox, Outbound::Close(reject)));
            }
            // Reset the lease clock so an idle, disconnected worker is not lost again.
            w.last_seen = Instant::now();
        }
        fx.changed_workers.push(worker_id);
        Ok(())
    }

    /// A running job's attempt is lost: back to the queue for another attempt, or
    /// `error` (refunded) when none is left, or `cancelled` (refunded) if its owner had
    /// asked to cancel it. The lost attempt earns its worker nothing.
    fn lose_job(
        &mut self,
        conn: &Connection,
        job_id: JobId,
        why: &str,
        fx: &mut Effects,
    ) -> Step<()> {
        let Some(job) = self.running.get(&job_id) else {
            return Ok(());
        };
        let now = now_millis();
        let account = ledger::user_account(job.user.as_str());
        let (worker, attempt, user, language, priority, cost) = (
            job.worker,
            job.attempt,
            job.user.clone(),
            job.language,
            job.priority,
            job.cost,
        );
        let ending = if job.cancel_requested {
            Some((
                JobStatus::Cancelled,
                FailureReason::CancelledByUser,
                format!("cancelled; {why}"),
            ))
        } else if attempt >= self.settings.max_attempts {
            Some((
                JobStatus::Error,
                FailureReason::RetriesExhausted,
                format!(
                    "attempt {attempt} of {} failed: {why}",
                    self.settings.max_attempts
                ),
            ))
        } else {
            None
        };
        match ending {
            Some((to, reason, message)) => {
                jobs::mark_finished(
                    conn,
                    job_id,
                    JobStatus::Running,
                    to,
                    &Completion {
                        reason: Some(reason),
                        message: Some(message),
                        ..Completion::default()
                    },
                    now,
                )?;
                fx.posted.extend(ledger::post(
                    conn,
                    LedgerKind::Refund,
                    ESCROW,
                    &account,
                    cost,
                    Some(job_id),
                    now,
                )?);
                fx.finished.push(to);
            }
            None => {
                jobs::mark_requeued(conn, job_id)?;
                self.metrics.requeued_jobs.inc();
                self.enqueued_at.insert(job_id, Instant::now());
                self.scheduler.push_front(QueuedJob {
                    id: job_id,
                    user,
                    language,
                    priority,
                    attempts: attempt,
                    cost,
                });
            }
        }
        self.running.remove(&job_id);
        if let Some(w) = self.workers.get_mut(&worker) {
            w.running.remove(&job_id);
        }
        fx.changed_jobs.push(job_id);
        Ok(())
    }

    fn on_worker_message(
        &mut self,
        conn: &Connection,
        worker_id: WorkerId,
        session_id: u64,
        message: WorkerMessage,
        fx: &mut Effects,
    ) -> Step<()> {
        let Some(worker) = self.workers.get_mut(&worker_id) else {
            return Ok(());
        };
        if worker.session.as_ref().is_none_or(|s| s.id != session_id) {
            // A replaced or closed session: its words no longer count.
            return Ok(());
        }
        worker.last_seen = Instant::now();
        worker.last_seen_wall = Some(now_millis());
        match message {
            WorkerMessage::Hello { .. } => Err(StepError::Refused(QueueError::Rejected(
                RejectCode::Malformed,
                "hello sent twice".into(),
            ))),
            WorkerMessage::Heartbeat { metrics, running } => {
                worker.metrics = Some(metrics);
                let outbox = worker.session.as_ref().map(|s| s.outbox.clone());
                for attempt in running {
                    let current = self
                        .running
                        .get(&attempt.job_id)
                        .is_some_and(|j| j.worker == worker_id && j.attempt == attempt.attempt);
                    if !current && let Some(outbox) = &outbox {
                        fx.outbound.push((
                            outbox.clone(),
                            Outbound::Send(CoordinatorMessage::Cancel {
                                job_id: attempt.job_id,
                                attempt: attempt.attempt,
                            }),
                        ));
                    }
                }
                fx.changed_workers.push(worker_id);
                Ok(())
            }
            WorkerMessage::Started { job_id, attempt } => {
                if !self.is_current(job_id, attempt, worker_id) {
                    self.metrics.fenced_reports.inc();
                    tracing::info!(job = %job_id, attempt, worker = %worker_id, "refused `started` of a superseded attempt");
                    return Ok(());
                }
                jobs::mark_started(conn, job_id, now_millis())?;
                fx.changed_jobs.push(job_id);
                Ok(())
            }
            WorkerMessage::Finished {
                job_id,
                attempt,
                outcome,
            } => {
                if !self.is_current(job_id, attempt, worker_id) {
                    self.metrics.fenced_reports.inc();
                    tracing::info!(job = %job_id, attempt, worker = %worker_id, "refused `finished` of a superseded attempt");
                    return Ok(());
                }
                self.finish_running(conn, job_id, outcome, fx)
            }
        }
    }

    fn is_current(&self, job_id: JobId, attempt: u32, worker: WorkerId) -> bool {
        self.running
            .get(&job_id)
            .is_some_and(|j| j.attempt == attempt && j.worker == worker)
    }

    /// Ends a running job with its worker's outcome and settles it.
    fn finish_running(
        &mut self,
        conn: &Connection,
        job_id: JobId,
        outcome: RunOutcome,
        fx: &mut Effects,
    ) -> Step<()> {
        let Some(job) = self.running.get(&job_id) else {
            return Ok(());
        };
        let (mut status, mut reason) = outcome.final_status();
        let mut message = outcome.message.clone();
        if outcome.end == RunEnd::Cancelled && !job.cancel_requested {
            // Nobody asked: the worker gave up on it. That is the platform's failure.
            status = JobStatus::Error;
            reason = Some(FailureReason::SandboxError);
            message = Some("the worker cancelled the job on its own".into());
        }
        let cap = self.settings.max_output_bytes;
        let (stdout, stdout_cut) = cap_output(outcome.stdout, cap);
        let (stderr, stderr_cut) = cap_output(outcome.stderr, cap);
        let now = now_millis();
        jobs::mark_finished(
            conn,
            job_id,
            JobStatus::Running,
            status,
            &Completion {
                exit_code: outcome.exit_code,
                stdout,
                stderr,
                stdout_truncated: outcome.stdout_truncated || stdout_cut,
                stderr_truncated: outcome.stderr_truncated || stderr_cut,
                duration_ms: Some(outcome.duration_ms),
                reason,
                message,
            },
            now,
        )?;
        let owner = self
            .workers
            .get(&job.worker)
            .map(|w| w.owner.clone())
            .ok_or_else(|| {
                StepError::Store(StoreError::NotFound(format!("worker {}", job.worker)))
            })?;
        match status.settlement(true) {
            Some(Settlement::PayWorker) => {
                let (reward, fee) = job.cost.split_permille(self.settings.reward_permille);
                let to = ledger::user_account(owner.as_str());
                fx.posted.extend(ledger::post(
                    conn,
                    LedgerKind::Reward,
                    ESCROW,
                    &to,
                    reward,
                    Some(job_id),
                    now,
                )?);
                fx.posted.extend(ledger::post(
                    conn,
                    LedgerKind::Fee,
                    ESCROW,
                    PLATFORM,
                    fee,
                    Some(job_id),
                    now,
                )?);
            }
            Some(Settlement::Refund) => {
                let to = ledger::user_account(job.user.as_str());
                fx.posted.extend(ledger::post(
                    conn,
                    LedgerKind::Refund,
                    ESCROW,
                    &to,
                    job.cost,
                    Some(job_id),
                    now,
                )?);
            }
            None => {}
        }
        let worker = job.worker;
        self.running.remove(&job_id);
        if let Some(w) = self.workers.get_mut(&worker) {
            w.running.remove(&job_id);
            fx.changed_workers.push(worker);
        }
        fx.changed_jobs.push(job_id);
        fx.finished.push(status);
        Ok(())
    }

    fn send_to_worker(&self, worker: WorkerId, message: CoordinatorMessage, fx: &mut Effects) {
        if let Some(s) = self.workers.get(&worker).and_then(|w| w.session.as_ref()) {
            fx.outbound
                .push((s.outbox.clone(), Outbound::Send(message)));
        }
    }

    /// Hands queued jobs to free slots: the language whose next job has the highest
    /// priority (then the oldest) first, to the capable worker with most free slots.
    fn dispatch(&mut self, conn: &Connection, fx: &mut Effects) {
        if self.draining {
            return;
        }
        loop {
            let mut best: Option<(i32, std::cmp::Reverse<JobId>, Language)> = None;
            for language in Language::ALL {
                let Some((priority, head)) = self.scheduler.peek(language) else {
                    continue;
                };
                let candidate = (priority, std::cmp::Reverse(head), language);
                if best
                    .as_ref()
                    .is_some_and(|b| (b.0, b.1) >= (candidate.0, candidate.1))
                {
                    continue;
                }
                if self.workers.values().any(|w| w.can_take(language)) {
                    best = Some(candidate);
                }
            }
            let Some((_, _, language)) = best else {
                return;
            };
            let Some(worker_id) = self
                .workers
                .iter()
                .filter(|(_, w)| w.can_take(language))
                .max_by_key(|(id, w)| (w.free_slots(), std::cmp::Reverse(**id)))
                .map(|(id, _)| *id)
            else {
                return;
            };
            let Some(job) = self.scheduler.pop(language) else {
                return;
            };
            if let Err(e) = self.assign(conn, &job, worker_id, fx) {
                tracing::error!(job = %job.id, worker = %worker_id, error = %e, "dispatch failed; the job stays queued");
                self.metrics.dispatch_errors.inc();
                self.scheduler.push_front(job);
                return;
            }
        }
    }

    fn assign(
        &mut self,
        conn: &Connection,
        job: &QueuedJob,
        worker_id: WorkerId,
        fx: &mut Effects,
    ) -> Result<(), StoreError> {
        let attempt = job.attempts + 1;
        let spec = jobs::load_spec(conn, job.id)?;
        jobs::mark_assigned(conn, job.id, worker_id, attempt, now_millis())?;
        let Some(worker) = self.workers.get_mut(&worker_id) else {
            return Err(StoreError::NotFound(format!("worker {worker_id}")));
        };
        worker.running.insert(job.id);
        if let Some(s) = &worker.session {
            fx.outbound.push((
                s.outbox.clone(),
                Outbound::Send(CoordinatorMessage::Assign {
                    job: AssignedJob {
                        job_id: job.id,
                        spec,
                    },
                    attempt,
                }),
            ));
        }
        if let Some(at) = self.enqueued_at.remove(&job.id) {
            fx.dispatch_latencies.push(at.elapsed().as_secs_f64());
        }
        self.running.insert(
            job.id,
            RunningJob {
                user: job.user.clone(),
                language: job.language,
                priority: job.priority,
                cost: job.cost,
                worker: worker_id,
                attempt,
                cancel_requested: false,
            },
        );
        fx.changed_jobs.push(job.id);
        fx.changed_workers.push(worker_id);
        Ok(())
    }

    /// After commit: answer callers, message workers, publish events and stats.
    fn deliver(&mut self, conn: &Connection, fx: Effects) {
        for reply in fx.replies {
            match reply {
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
                            .publish(Audience::User(user), ServerEvent::Ledger { entry });
                    }
                }
            }
        }
        self.publish_stats();
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

/// Cuts output to `cap` bytes at a character boundary. A worker is supposed to cap its
/// output itself; the coordinator does not trust it to.
fn cap_output(mut text: String, cap: usize) -> (String, bool) {
    if text.len() <= cap {
        return (text, false);
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

#[cfg(test)]
mod tests {
    use super::cap_output;

    #[test]
    fn output_is_cut_at_a_character_boundary() {
        assert_eq!(cap_output("héllo".into(), 2), ("h".into(), true));
        assert_eq!(cap_output("abc".into(), 3), ("abc".into(), false));
    }
}
