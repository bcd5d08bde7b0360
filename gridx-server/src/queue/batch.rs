//! The batch engine: every command waiting is applied in one transaction, queued jobs
//! are dispatched in it, it commits once (group commit), and only then are callers
//! answered, workers messaged and events published. Nothing is promised to anyone
//! before it is on disk.

use super::model::{Effects, State, Step, StepError, answer};
use super::{Command, Outbound, QueueError};
use crate::events::Audience;
use crate::store::Db;
use crate::store::{StoreError, jobs};
use gridx_proto::UserName;
use gridx_proto::events::ServerEvent;
use gridx_proto::protocol::{CoordinatorMessage, RejectCode};

/// A command's result for its caller, and the store error that must abort the batch.
fn split<T>(result: Step<T>) -> (Result<T, QueueError>, Option<StoreError>) {
    match result {
        Ok(value) => (Ok(value), None),
        Err(StepError::Refused(e)) => (Err(e), None),
        Err(StepError::Store(e)) => (Err(QueueError::Store(e.to_string())), Some(e)),
    }
}

/// The reply of a command that is not applied because its batch already failed. The
/// failed batch answers every reply with its store error.
fn not_applied(command: Command, fx: &mut Effects) {
    fn refused<T>() -> Result<T, QueueError> {
        Err(QueueError::Store("not applied".into()))
    }
    match command {
        Command::Submit { reply, .. } => fx.replies.push(answer(reply, refused())),
        Command::Cancel { reply, .. } => fx.replies.push(answer(reply, refused())),
        Command::SubmitBatch { reply, .. } => fx.replies.push(answer(reply, refused())),
        Command::Hello { reply, .. } => fx.replies.push(answer(reply, refused())),
        Command::Admin { reply, .. } => fx.replies.push(answer(reply, refused())),
        Command::Drain { reply } => fx.replies.push(Box::new(move |_| {
            let _ = reply.send(());
        })),
        Command::FromWorker { .. }
        | Command::SessionClosed { .. }
        | Command::Tick
        | Command::Stop => {}
    }
}

impl State {
    /// Applies a batch in one transaction. Returns true when the thread should stop.
    pub(super) fn run_batch(&mut self, conn: &mut Db, batch: &mut Vec<Command>) -> bool {
        let mut fx = Effects::default();
        let mut stop = false;
        let result = (|| -> Result<(), StoreError> {
            // IMMEDIATE: take the write lock up front. A deferred transaction that reads
            // first could not upgrade (SQLITE_BUSY, no retry) after an admin command
            // wrote from another process.
            let tx = conn.transaction()?;
            // No savepoint per command: every refusal is decided before a command
            // writes anything, so only a store error can interrupt one half-way, and
            // that aborts the whole batch (savepoints cost a page copy per command,
            // a third of the queue's time under load).
            let mut failure = None;
            for command in batch.drain(..) {
                if matches!(command, Command::Stop) {
                    stop = true;
                } else if failure.is_some() {
                    not_applied(command, &mut fx);
                } else if let Err(e) = self.apply(&tx, command, &mut fx) {
                    failure = Some(e);
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
            // Right after a start: no job of an account disabled while the coordinator
            // was down is dispatched before it is cancelled.
            if self.users_version < 0 {
                match self.apply_account_changes(&tx, &mut fx) {
                    Ok(()) | Err(StepError::Refused(_)) => {}
                    Err(StepError::Store(e)) => return Err(e),
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
                // What workers reported in it is lost with it; heartbeat reconciliation
                // (`rules::sessions`) recovers their jobs.
                tracing::error!(error = %e, "queue transaction failed; reloading state from the store");
                self.metrics.store_errors.inc();
                for reply in fx.replies {
                    reply(Some(&e));
                }
                if let Err(e) = self.reload(conn) {
                    tracing::error!(error = %e, "reloading queue state failed");
                }
                // A PostgreSQL session that ended cannot come back: stop, so that the
                // coordinator stops serving (`crate::replicated`) rather than refuse
                // every command while it still holds the leadership.
                if conn.is_broken() {
                    tracing::error!("the store connection is gone: the queue stops");
                    stop = true;
                }
            }
        }
        stop
    }

    /// Applies one command. A refusal is answered and is `Ok`; a store error is `Err`
    /// and aborts the batch.
    fn apply(&mut self, conn: &Db, command: Command, fx: &mut Effects) -> Result<(), StoreError> {
        match command {
            Command::Submit { user, job, reply } => {
                let (result, failure) = split(self.submit(conn, user, job, fx));
                fx.replies.push(answer(reply, result));
                failure.map_or(Ok(()), Err)
            }
            Command::SubmitBatch { user, jobs, reply } => {
                let mut results = Vec::with_capacity(jobs.len());
                for job in jobs {
                    let (result, failure) = split(self.submit(conn, user.clone(), job, fx));
                    if let Some(e) = failure {
                        // The whole batch (and this transaction) fails: nothing of it
                        // is stored, and the caller hears the store error.
                        fx.replies
                            .push(answer(reply, Err(QueueError::Store(e.to_string()))));
                        return Err(e);
                    }
                    results.push(result);
                }
                fx.replies.push(answer(reply, Ok(results)));
                Ok(())
            }
            Command::Cancel {
                user,
                is_admin,
                job_id,
                reply,
            } => {
                let (result, failure) = split(self.cancel(conn, &user, is_admin, job_id, fx));
                fx.replies.push(answer(reply, result));
                failure.map_or(Ok(()), Err)
            }
            Command::Admin {
                admin,
                action,
                reply,
            } => {
                let (result, failure) = split(self.admin(conn, &admin, action, fx));
                fx.replies.push(answer(reply, result));
                failure.map_or(Ok(()), Err)
            }
            Command::Hello { hello, reply } => {
                let (result, failure) = split(self.hello(conn, *hello, fx));
                fx.replies.push(answer(reply, result));
                failure.map_or(Ok(()), Err)
            }
            Command::FromWorker {
                worker_id,
                session_id,
                message,
            } => {
                let result = self.on_worker_message(conn, worker_id, session_id, message, fx);
                log_refusal(result)
            }
            Command::SessionClosed {
                worker_id,
                session_id,
            } => {
                self.session_closed(worker_id, session_id, fx);
                Ok(())
            }
            Command::Tick => log_refusal(self.tick(conn, fx)),
            Command::Drain { reply } => {
                self.draining = true;
                self.workers.for_each_mut(|id, w| {
                    if let Some(s) = &w.session {
                        w.draining = true;
                        fx.outbound.push((
                            s.outbox.clone(),
                            Outbound::Send(CoordinatorMessage::Drain {}),
                        ));
                        fx.changed_workers.push(id);
                    }
                });
                fx.replies.push(Box::new(move |_| {
                    let _ = reply.send(());
                }));
                Ok(())
            }
            Command::Stop => Ok(()),
        }
    }

    /// After commit: answer callers, message workers, publish events and stats.
    fn deliver(&mut self, conn: &Db, fx: Effects) {
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
            reply(None);
        }
        for (outbox, message) in fx.outbound {
            // A session that just closed has dropped its inbox; its jobs are covered by
            // the lease rules.
            let _ = outbox.send(message);
        }
        let live = self.events.live();
        for (job, event) in fx.live {
            live.publish(job, event);
        }
        if live.has_viewers() {
            // A job whose status moved on: its viewers read it again (an end, or a
            // new attempt that starts its output from nothing).
            for id in &fx.changed_jobs {
                live.publish(*id, crate::live_output::LiveEvent::Reset);
            }
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
                // A summary: an event's size never depends on what the job printed.
                match jobs::job_summary(conn, id) {
                    Ok(Some(job)) => self
                        .events
                        .publish(Audience::User(job.user.clone()), ServerEvent::Job { job }),
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

    /// On exit: tell every worker the coordinator is going away.
    pub(super) fn close_all_sessions(&mut self) {
        self.workers.for_each_mut(|_, w| {
            if let Some(s) = w.session.take() {
                let _ = s.outbox.send(Outbound::Close(Some((
                    RejectCode::ShuttingDown,
                    "the coordinator is shutting down".into(),
                ))));
            }
        });
    }
}

/// A worker's report that was refused is logged (the worker gets nothing back); a
/// store error aborts the batch.
fn log_refusal(result: Step<()>) -> Result<(), StoreError> {
    match result {
        Ok(()) => Ok(()),
        Err(StepError::Refused(e)) => {
            tracing::warn!(error = %e, "worker report refused");
            Ok(())
        }
        Err(StepError::Store(e)) => Err(e),
    }
}
