//! Job rules: submit, cancel, and every way a job ends, each with its settlement.

use super::*;

impl State {
    pub(super) fn submit(
        &mut self,
        conn: &Connection,
        user: UserName,
        spec: gridx_proto::JobSpec,
        key: Option<SubmitKey>,
        fx: &mut Effects,
    ) -> Step<Submitted> {
        // A replay is answered from the store before anything else: it changes
        // nothing, so it succeeds even when the queue is full or the balance spent.
        if let Some(key) = &key
            && let Some((job_id, request_sha256)) = jobs::find_submit_key(conn, &user, &key.key)?
        {
            if request_sha256 != key.request_sha256 {
                return Err(StepError::Refused(QueueError::KeyReused(key.key.clone())));
            }
            let view = jobs::job_view(conn, job_id)?.ok_or_else(|| {
                StepError::Store(StoreError::NotFound(format!(
                    "job {job_id} of a submit key"
                )))
            })?;
            return Ok(Submitted {
                view,
                replayed: true,
            });
        }
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
        let account = ledger::user_account(user.as_str());
        // Decide before writing (there is no savepoint to roll back to). Only this
        // thread ever lowers a balance, so the check holds until the hold below.
        let balance = ledger::balance(conn, &account)?;
        if balance < cost {
            return Err(StepError::Refused(QueueError::InsufficientCredits {
                balance,
                cost,
            }));
        }
        let id = jobs::insert_job(conn, &user, &spec, cost, now)?;
        let posted = ledger::post(
            conn,
            LedgerKind::Hold,
            &account,
            ESCROW,
            cost,
            Some(id),
            now,
        )
        .map_err(|e| match e {
            // Cannot happen after the check above; if it does, abort the batch
            // rather than keep a job without its hold.
            PostError::Insufficient { .. } => StepError::Store(StoreError::Conflict(format!(
                "{account}: balance changed under the queue"
            ))),
            other => StepError::from(other),
        })?;
        if let Some(key) = &key {
            jobs::insert_submit_key(conn, &user, &key.key, &key.request_sha256, id)?;
        }
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
        let view = JobView {
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
        };
        Ok(Submitted {
            view,
            replayed: false,
        })
    }

    pub(super) fn cancel(
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
    pub(super) fn finish_queued(
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

    /// Ends a running job with its worker's outcome and settles it.
    pub(super) fn finish_running(
        &mut self,
        conn: &Connection,
        job_id: JobId,
        outcome: RunOutcome,
        fx: &mut Effects,
    ) -> Step<()> {
        let Some(job) = self.running.get(&job_id) else {
            return Ok(());
        };
        if outcome.end == RunEnd::WorkerShutdown {
            // The job did nothing wrong: its worker stopped (an assignment that raced
            // the worker's drain, or a job outliving its grace). Like a lost worker,
            // that costs an attempt and pays nobody, but the job runs again elsewhere.
            // The worker is draining, so it gets nothing more in this session (it
            // would only hand it back again, burning the job's attempts).
            let worker = job.worker;
            if let Some(w) = self.workers.get_mut(&worker) {
                w.draining = true;
                fx.changed_workers.push(worker);
            }
            return self.lose_job(conn, job_id, "its worker shut down", fx);
        }
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

    /// A running job's attempt is lost: back to the queue for another attempt, or
    /// `error` (refunded) when none is left, or `cancelled` (refunded) if its owner had
    /// asked to cancel it. The lost attempt earns its worker nothing.
    pub(super) fn lose_job(
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
