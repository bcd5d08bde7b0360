//! Worker-session rules: handshake and adoption, reports and fencing, heartbeat
//! reconciliation, leases and revocation.

use crate::queue::model::{Effects, Session, State, Step, StepError, WorkerState};
use crate::queue::transitions::{Change, change_status};
use crate::queue::{HelloRequest, Outbound, QueueError};
use crate::store::Db;
use crate::store::{now_millis, users};
use gridx_proto::protocol::{
    CoordinatorMessage, JobAttempt, RejectCode, SILENT_HEARTBEATS, WorkerMessage,
};
use gridx_proto::{JobId, JobStatus, WorkerId};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// The youngest session a newer connection with the same token may replace.
pub(in crate::queue) const MIN_SESSION_AGE: Duration = Duration::from_secs(1);
/// How often replacements of one worker's connection are logged (with their count).
pub(in crate::queue) const REPLACEMENT_LOG_EVERY: Duration = Duration::from_secs(10);

/// A worker's self-chosen name for a message: bounded, without control characters.
fn printable(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

impl WorkerState {
    /// Counts a replacement (done or refused) and logs the count at most once per
    /// [`REPLACEMENT_LOG_EVERY`], instead of a line per reconnect.
    fn note_replacement(&mut self, id: WorkerId) {
        self.replacements += 1;
        let due = self
            .replacements_logged_at
            .is_none_or(|at| at.elapsed() >= REPLACEMENT_LOG_EVERY);
        if due {
            tracing::warn!(
                worker = %id,
                name = %printable(&self.name),
                replacements = self.replacements,
                "connections with this worker's token keep replacing each other; two hosts may share it"
            );
            self.replacements = 0;
            self.replacements_logged_at = Some(Instant::now());
        }
    }
}

/// How many heartbeats in a row may leave out a leased attempt before it is lost.
/// One is not enough: a heartbeat can cross the `assign` on the wire.
pub(in crate::queue) const UNREPORTED_HEARTBEATS: u32 = 2;

impl State {
    pub(in crate::queue) fn hello(
        &mut self,
        conn: &Db,
        hello: HelloRequest,
        fx: &mut Effects,
    ) -> Step<u32> {
        if self.draining {
            return Err(StepError::Refused(QueueError::Rejected(
                RejectCode::ShuttingDown,
                "the coordinator is shutting down".into(),
            )));
        }
        let worker_id = hello.worker_id;
        if let Some(mut w) = self.workers.get_mut(&worker_id)
            && let Some(live) = &w.session
            && live.since.elapsed() < MIN_SESSION_AGE
            && w.last_replaced_at
                .is_some_and(|at| at.elapsed() < REPLACEMENT_LOG_EVERY)
        {
            // Two hosts with one token would take the connection from each other as
            // fast as they can reconnect. One replacement is a host reconnecting over
            // its own stale connection and always goes through; in a run of them, a
            // session younger than a second is kept, and the newcomer is told who
            // holds it.
            w.note_replacement(worker_id);
            return Err(StepError::Refused(QueueError::Rejected(
                RejectCode::Replaced,
                format!(
                    "this worker's token is already connected (name={}, for less than a second); a worker token belongs to one host",
                    w.name
                ),
            )));
        }
        let revoked = users::revoked_among(conn, &[worker_id])?;
        if !revoked.is_empty() {
            return Err(StepError::Refused(QueueError::Rejected(
                RejectCode::Revoked,
                "this worker's token was revoked by the operator".into(),
            )));
        }
        // The operator's cap as stored now, so `worker set --max-slots` applies at the
        // next connection.
        let max_slots = users::worker_max_slots(conn, worker_id)?;
        let trusted = crate::store::trust::is_trusted(conn, worker_id)?;
        // Jobs leased to this worker that it no longer reports are lost now.
        let reported: HashSet<JobAttempt> = hello.running.iter().copied().collect();
        for job_id in self.leased_to(worker_id) {
            let keep = self
                .running
                .get(&job_id)
                .is_some_and(|j| reported.contains(&j.attempt(job_id)));
            if !keep {
                self.lose_job(conn, job_id, "the worker reconnected without it", fx)?;
            }
        }
        let mut worker = self.workers.get_or_insert_with(worker_id, || {
            WorkerState::new(hello.name.clone(), hello.owner.clone(), None)
        });
        if let Some(old) = worker.session.take() {
            worker.note_replacement(worker_id);
            worker.last_replaced_at = Some(Instant::now());
            fx.outbound.push((
                old.outbox,
                Outbound::Close(Some((
                    RejectCode::Replaced,
                    format!(
                        "a newer connection with this worker's token (name={}) replaced this one",
                        printable(&hello.name)
                    ),
                ))),
            ));
        }
        worker.name = hello.name;
        worker.capabilities = Some(hello.capabilities);
        worker.max_slots = max_slots;
        worker.session = Some(Session {
            id: hello.session_id,
            outbox: hello.outbox.clone(),
            since: Instant::now(),
        });
        worker.last_seen = Instant::now();
        worker.last_seen_wall = Some(now_millis());
        worker.draining = false;
        worker.unreported.clear();
        worker.strays_cancelled.clear();
        worker.forget_lost_gpus(&reported);
        worker.standing.trusted = trusted;
        drop(worker);
        self.refresh_standing(worker_id);
        // One more online worker may make a quorum possible.
        self.quorum_checked_at = None;
        // Superseded attempts the worker still runs: tell it to stop them. Adopted
        // ones whose cancel was requested meanwhile get their cancel again.
        for attempt in &hello.running {
            let cancel = match self.current(*attempt, worker_id) {
                Some(cancel_requested) => cancel_requested,
                None => {
                    // A stray: remembered, so heartbeats do not cancel it again.
                    if let Some(mut w) = self.workers.get_mut(&worker_id) {
                        w.strays_cancelled.insert(*attempt);
                    }
                    true
                }
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

    pub(in crate::queue) fn on_worker_message(
        &mut self,
        conn: &Db,
        worker_id: WorkerId,
        session_id: u64,
        message: WorkerMessage,
        fx: &mut Effects,
    ) -> Step<()> {
        let Some(mut worker) = self.workers.get_mut(&worker_id) else {
            return Ok(());
        };
        if worker.session.as_ref().is_none_or(|s| s.id != session_id) {
            // A replaced or closed session: its words no longer count.
            return Ok(());
        }
        worker.last_seen = Instant::now();
        worker.last_seen_wall = Some(now_millis());
        drop(worker);
        match message {
            // The session closes on a second `hello` before it reaches the queue; this
            // stays so the rule holds whoever sends the queue messages.
            WorkerMessage::Hello { .. } => Err(StepError::Refused(QueueError::Rejected(
                RejectCode::Malformed,
                "hello sent twice".into(),
            ))),
            WorkerMessage::Heartbeat {
                metrics,
                running,
                draining,
            } => {
                if let Some(mut worker) = self.workers.get_mut(&worker_id) {
                    worker.metrics = Some(metrics);
                    // A worker that says it is stopping gets nothing more this session.
                    worker.draining |= draining;
                }
                fx.changed_workers.push(worker_id);
                self.reconcile(conn, worker_id, &running, fx)
            }
            WorkerMessage::Started { job_id, attempt } => {
                if !self.is_current(job_id, attempt, worker_id) {
                    self.metrics.fenced_reports.inc();
                    tracing::info!(job = %job_id, attempt, worker = %worker_id, "refused `started` of a superseded attempt");
                    return Ok(());
                }
                change_status(
                    conn,
                    job_id,
                    JobStatus::Running,
                    Change::Start,
                    now_millis(),
                )?;
                if let Some(job) = self.running.get_mut(&job_id) {
                    job.started = true;
                }
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
            WorkerMessage::Output {
                job_id,
                attempt,
                stream,
                offset,
                text,
            } => self.live_output(conn, worker_id, job_id, attempt, stream, offset, text, fx),
            WorkerMessage::Refused {
                job_id,
                attempt,
                reason,
            } => {
                if !self.is_current(job_id, attempt, worker_id) {
                    // Nothing to give back: a late refusal of an attempt already lost,
                    // or a worker refusing what it was never given.
                    self.metrics.fenced_reports.inc();
                    tracing::warn!(job = %job_id, attempt, worker = %worker_id, "ignored `refused` of an attempt this worker does not hold");
                    return Ok(());
                }
                if self.running.get(&job_id).is_some_and(|j| j.started) {
                    // A refused job has not started (protocol.md): a worker that
                    // refuses what it said it started has had the job's code, and
                    // perhaps its whole timeout, so the attempt counts as a failed
                    // one. Else such a worker could hold every job it gets and hand it
                    // back for free, again and again.
                    tracing::warn!(job = %job_id, attempt, worker = %worker_id, reason = %reason.escape_debug(), "the worker refused an attempt it had started; it is lost");
                    return self.lose_job(
                        conn,
                        job_id,
                        "its worker refused it after starting it",
                        fx,
                    );
                }
                tracing::info!(job = %job_id, attempt, worker = %worker_id, reason = %reason.escape_debug(), "the worker refused an assignment; requeued");
                self.refused_job(conn, job_id, worker_id, &reason, fx)
            }
        }
    }

    /// Heartbeat reconciliation: the worker's `running` list against its leases.
    /// - A leased attempt missing from [`UNREPORTED_HEARTBEATS`] heartbeats in a row is
    ///   lost (requeued under fencing: its next attempt has a new number, so a late
    ///   report of this one is refused). This is how a `finished` that never reached
    ///   the store (a failed batch) is recovered: without it, heartbeats would keep
    ///   the lease alive and the job would stay `running` forever.
    /// - An attempt the worker runs without a lease gets one `cancel`, not one per
    ///   heartbeat.
    fn reconcile(
        &mut self,
        conn: &Db,
        worker_id: WorkerId,
        running: &[JobAttempt],
        fx: &mut Effects,
    ) -> Step<()> {
        let reported: HashSet<JobAttempt> = running.iter().copied().collect();
        let mut lost = Vec::new();
        let leased: Vec<(JobId, JobAttempt)> = self
            .leased_to(worker_id)
            .into_iter()
            .filter_map(|id| self.running.get(&id).map(|j| (id, j.attempt(id))))
            .collect();
        let mut strays = Vec::new();
        for attempt in &reported {
            if self.current(*attempt, worker_id).is_none() {
                strays.push(*attempt);
            }
        }
        let Some(mut worker) = self.workers.get_mut(&worker_id) else {
            return Ok(());
        };
        for (job_id, attempt) in leased {
            if reported.contains(&attempt) {
                worker.unreported.remove(&job_id);
            } else {
                let misses = worker.unreported.entry(job_id).or_insert(0);
                *misses += 1;
                if *misses >= UNREPORTED_HEARTBEATS {
                    lost.push(job_id);
                }
            }
        }
        // Forget strays the worker has stopped reporting, so a later reappearance
        // (it should not happen) would be cancelled again.
        worker.strays_cancelled.retain(|a| reported.contains(a));
        worker.forget_lost_gpus(&reported);
        let outbox = worker.session.as_ref().map(|s| s.outbox.clone());
        for attempt in strays {
            if worker.strays_cancelled.insert(attempt)
                && let Some(outbox) = &outbox
            {
                fx.outbound.push((
                    outbox.clone(),
                    Outbound::Send(CoordinatorMessage::Cancel {
                        job_id: attempt.job_id,
                        attempt: attempt.attempt,
                    }),
                ));
            }
        }
        drop(worker);
        for job_id in lost {
            tracing::warn!(job = %job_id, worker = %worker_id, "a leased attempt is missing from the worker's heartbeats; it is lost");
            self.lose_job(conn, job_id, "its worker stopped reporting it", fx)?;
        }
        Ok(())
    }

    /// Whether `attempt` is the current lease of `worker`: `Some(cancel_requested)`.
    fn current(&self, attempt: JobAttempt, worker: WorkerId) -> Option<bool> {
        self.running
            .get(&attempt.job_id)
            .filter(|j| j.worker == worker && j.attempt == attempt.attempt)
            .map(|j| j.cancel_requested)
    }

    pub(in crate::queue) fn is_current(
        &self,
        job_id: JobId,
        attempt: u32,
        worker: WorkerId,
    ) -> bool {
        self.current(JobAttempt { job_id, attempt }, worker)
            .is_some()
    }

    fn leased_to(&self, worker: WorkerId) -> Vec<JobId> {
        self.workers
            .get(&worker)
            .map(|w| w.running.keys().copied().collect())
            .unwrap_or_default()
    }

    pub(in crate::queue) fn send_to_worker(
        &self,
        worker: WorkerId,
        message: CoordinatorMessage,
        fx: &mut Effects,
    ) {
        if let Some(s) = self.workers.get(&worker).and_then(|w| w.session.as_ref()) {
            fx.outbound
                .push((s.outbox.clone(), Outbound::Send(message)));
        }
    }

    /// Workers silent for longer than their lease are lost, with their jobs.
    pub(in crate::queue) fn expire_leases(&mut self, conn: &Db, fx: &mut Effects) -> Step<()> {
        let lease = self.settings.heartbeat * SILENT_HEARTBEATS;
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
            tracing::warn!(worker = %id, "worker lost: silent for too many heartbeats");
            self.lose_worker(conn, id, "its worker was lost (no heartbeat)", None, fx)?;
        }
        Ok(())
    }

    /// Connected workers whose token was revoked are dropped, with their jobs.
    pub(in crate::queue) fn drop_revoked(&mut self, conn: &Db, fx: &mut Effects) -> Step<()> {
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
                    "this worker's token was revoked by the operator".into(),
                )),
                fx,
            )?;
            if let Some(mut w) = self.workers.get_mut(&id) {
                w.revoked = true;
            }
        }
        Ok(())
    }

    /// A worker is gone for good (lease expired, revoked): close its session and end
    /// or requeue every job it held.
    pub(in crate::queue) fn lose_worker(
        &mut self,
        conn: &Db,
        worker_id: WorkerId,
        why: &str,
        reject: Option<(RejectCode, String)>,
        fx: &mut Effects,
    ) -> Step<()> {
        for job_id in self.leased_to(worker_id) {
            self.lose_job(conn, job_id, why, fx)?;
        }
        self.quorum_checked_at = None;
        if let Some(mut w) = self.workers.get_mut(&worker_id) {
            if let Some(s) = w.session.take() {
                fx.outbound.push((s.outbox, Outbound::Close(reject)));
            }
            // Reset the lease clock so an idle, disconnected worker is not lost again.
            w.last_seen = Instant::now();
        }
        fx.changed_workers.push(worker_id);
        Ok(())
    }

    /// The session ended (the socket closed). Its leases stay until they expire or the
    /// worker reconnects and says what it still runs.
    pub(in crate::queue) fn session_closed(
        &mut self,
        worker_id: WorkerId,
        session_id: u64,
        fx: &mut Effects,
    ) {
        if let Some(mut w) = self.workers.get_mut(&worker_id)
            && w.session.as_ref().is_some_and(|s| s.id == session_id)
        {
            w.session = None;
            fx.changed_workers.push(worker_id);
            self.quorum_checked_at = None;
        }
    }
}
