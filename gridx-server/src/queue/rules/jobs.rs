//! Job rules: submit, cancel, and every way a job ends. Status changes go through
//! `transitions::change_status`, credits through `crate::settlement`.

use super::validation::Mishap;
use crate::queue::model::{Effects, State, Step, StepError};
use crate::queue::scheduler::QueuedJob;
use crate::queue::transitions::{Change, change_status};
use crate::queue::{NewJob, QueueError, Submitted};
use crate::settlement::{self, Ending, Movement, SettleError};
use crate::store::Db;
use crate::store::jobs::{self, Completion};
use crate::store::ledger::{self, PostError};
use crate::store::{StoreError, now_millis, users};
use crate::trust::JobCheck;
use gridx_proto::api::{JobValidation, JobView};
use gridx_proto::job::{FailureReason, RunEnd, RunOutcome};
use gridx_proto::protocol::CoordinatorMessage;
use gridx_proto::time_fmt::from_unix_millis;
use gridx_proto::{Credits, JobId, JobStatus, UserName, WorkerId};
use std::time::Instant;

/// Settlement failures inside the queue: any of them after the checks the rules make
/// first is an inconsistency, which aborts the batch.
fn settle_error(e: SettleError) -> StepError {
    StepError::Store(match e {
        SettleError::Post(PostError::Store(s)) => s,
        other => StoreError::Conflict(other.to_string()),
    })
}

/// How an attempt came back without a result.
enum TakenBack<'a> {
    /// Its worker was lost, or shut down under it (why): a failed attempt.
    Lost(&'a str),
    /// Its worker refused it (the sentence the job keeps): not a failed attempt.
    Refused(&'a str),
    /// Its worker reported a platform failure while the job's result was being
    /// checked (why): a failed attempt, counted as an error in the worker's record.
    Errored(&'a str),
}

/// A job about to end, with what its settlement needs.
pub(super) struct Ended<'a> {
    pub(super) id: JobId,
    pub(super) from: JobStatus,
    pub(super) to: JobStatus,
    pub(super) user: &'a UserName,
    pub(super) cost: Credits,
    /// The owners of the workers whose results were accepted (the one that ran the
    /// attempt, or the replicas that agreed); empty when nobody's was (queued, lost,
    /// no quorum), which pays nobody.
    pub(super) paid: Vec<&'a UserName>,
}

impl State {
    /// Ends a job: its status, then its settlement, in the caller's transaction.
    /// Replicas still pending are closed `inconclusive` by the caller first
    /// (`close_replicas`) when the ending is not a check's verdict.
    pub(super) fn end_job(
        &self,
        conn: &Db,
        end: Ended<'_>,
        done: &Completion,
        fx: &mut Effects,
    ) -> Step<()> {
        let now = now_millis();
        let change = Change::Finish {
            to: end.to,
            completion: done,
        };
        let to = change_status(conn, end.id, end.from, change, now)?;
        let movement = Movement::End(Ending {
            status: to,
            reported_by_worker: !end.paid.is_empty(),
            user: end.user,
            paid: end.paid,
            cost: end.cost,
            reward_permille: self.settings.reward_permille,
        });
        fx.posted
            .extend(settlement::settle(conn, &movement, Some(end.id), now).map_err(settle_error)?);
        fx.changed_jobs.push(end.id);
        fx.finished.push(to);
        Ok(())
    }

    pub(in crate::queue) fn submit(
        &mut self,
        conn: &Db,
        user: UserName,
        job: NewJob,
        fx: &mut Effects,
    ) -> Step<Submitted> {
        let NewJob {
            spec,
            validate,
            key,
            judge0,
        } = job;
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
        // The operator decides precedence: a user may not ask for more than their
        // maximum (`user add/set --max-priority`), read in this transaction. Lowering
        // one's own priority is always allowed. An account disabled since its request
        // was authenticated submits nothing.
        let (max, disabled) = users::submit_rights(conn, &user)?;
        if let Some(reason) = disabled {
            return Err(StepError::Refused(QueueError::AccountDisabled(
                user, reason,
            )));
        }
        if spec.priority > max {
            return Err(StepError::Refused(QueueError::PriorityNotAllowed {
                priority: spec.priority,
                max,
            }));
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
        let cost = settlement::price(self.settings.job_cost, self.settings.gpu_cost, spec.gpus)
            .map_err(|e| {
                StepError::Refused(QueueError::Invalid(format!(
                    "the job's price cannot be computed: {e}"
                )))
            })?;
        let now = now_millis();
        // Decide before writing: a batch has no savepoint per command, so a refusal
        // must come before the first write. The balance is locked for this
        // transaction (`balance_to_spend`), so no admin command's debit can come
        // between this check and the hold below.
        let balance = ledger::balance_to_spend(conn, &ledger::user_account(user.as_str()))?;
        if balance < cost {
            return Err(StepError::Refused(QueueError::InsufficientCredits {
                balance,
                cost,
            }));
        }
        let id = jobs::insert_checked_job(conn, &user, &spec, validate, cost, now)?;
        let hold = Movement::Hold { user: &user, cost };
        // An `Insufficient` here cannot happen after the check above; if it does, the
        // batch aborts rather than keep a job without its hold.
        let posted = settlement::settle(conn, &hold, Some(id), now).map_err(settle_error)?;
        if let Some(key) = &key {
            jobs::insert_submit_key(conn, &user, &key.key, &key.request_sha256, id)?;
        }
        if let Some(link) = &judge0 {
            crate::store::judge0::insert(conn, id, link)?;
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
            refusals: 0,
            cost,
            memory_mb: spec.memory_mb,
            timeout_s: spec.timeout_s,
            gpus: spec.gpu_request(),
            check: JobCheck {
                validate,
                replica_owners: Vec::new(),
            },
        });
        let view = JobView {
            gpus: spec.gpus,
            gpu_memory_mb: spec.gpu_memory_mb,
            gpu_indices: Vec::new(),
            waiting: None,
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
            compile_output: None,
            duration_ms: None,
            reason: None,
            message: None,
            refusals: 0,
            refusal: None,
            cost,
            validation: JobValidation {
                required: validate,
                outcome: None,
                replicas: Vec::new(),
                waiting: None,
            },
        };
        Ok(Submitted {
            view,
            replayed: false,
        })
    }

    pub(in crate::queue) fn cancel(
        &mut self,
        conn: &Db,
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
                // Not a status change: the job ends `cancelled` when the worker
                // confirms, or is lost.
                jobs::mark_cancel_requested(conn, job_id)?;
                let (worker, attempt) = (job.worker, job.attempt);
                if let Some(job) = self.running.get_mut(&job_id) {
                    job.cancel_requested = true;
                }
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
    pub(in crate::queue) fn finish_queued(
        &mut self,
        conn: &Db,
        job_id: JobId,
        reason: FailureReason,
        message: Option<String>,
        fx: &mut Effects,
    ) -> Step<()> {
        let Some(job) = self.scheduler.get(job_id).cloned() else {
            return Ok(());
        };
        let to = if matches!(
            reason,
            FailureReason::CancelledByUser | FailureReason::UserDisabled
        ) {
            JobStatus::Cancelled
        } else {
            JobStatus::Error
        };
        let done = Completion {
            reason: Some(reason),
            message,
            ..Completion::default()
        };
        let end = Ended {
            id: job_id,
            from: JobStatus::Queued,
            to,
            user: &job.user,
            cost: job.cost,
            paid: Vec::new(),
        };
        if !job.check.replica_owners.is_empty() {
            self.close_replicas(conn, job_id, None, fx)?;
        }
        self.end_job(conn, end, &done, fx)?;
        self.scheduler.remove(job_id);
        self.enqueued_at.remove(&job_id);
        self.refusals.forget(job_id);
        Ok(())
    }

    /// Ends a running job with its worker's outcome and settles it.
    pub(in crate::queue) fn finish_running(
        &mut self,
        conn: &Db,
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
            if let Some(mut w) = self.workers.get_mut(&worker) {
                w.draining = true;
                fx.changed_workers.push(worker);
            }
            return self.lose_job(conn, job_id, "its worker shut down", fx);
        }
        let (mut to, mut reason) = outcome.final_status();
        let mut message = outcome.message.clone();
        if outcome.end == RunEnd::Cancelled && !job.cancel_requested {
            // Nobody asked: the worker gave up on it. That is the platform's failure.
            to = JobStatus::Error;
            reason = Some(FailureReason::SandboxError);
            message = Some("the worker cancelled the job on its own".into());
        }
        if outcome.end == RunEnd::CompileError && !job.language.is_compiled() {
            // Only a compiled language has a compile step: a worker that says
            // otherwise failed, and nobody pays for it.
            to = JobStatus::Error;
            reason = Some(FailureReason::SandboxError);
            message = Some(format!(
                "the worker reported a compile error for {}, which is not compiled",
                job.language
            ));
        }
        // Compiler messages belong to compiled languages only; the decoder bounded
        // their size.
        let compile_output = outcome
            .compile_output
            .filter(|_| job.language.is_compiled());
        let cap = self.settings.max_output_bytes;
        let (stdout, stdout_cut) = cap_output(outcome.stdout, cap);
        let (stderr, stderr_cut) = cap_output(outcome.stderr, cap);
        let done = Completion {
            exit_code: outcome.exit_code,
            stdout,
            stderr,
            stdout_truncated: outcome.stdout_truncated || stdout_cut,
            stderr_truncated: outcome.stderr_truncated || stderr_cut,
            compile_output,
            duration_ms: Some(outcome.duration_ms),
            reason,
            message,
            validation: None,
        };
        let worker = job.worker;
        let owner = self
            .workers
            .get(&worker)
            .map(|w| w.owner.clone())
            .ok_or_else(|| StepError::Store(StoreError::NotFound(format!("worker {worker}"))))?;
        let (user, cost, checked) = (
            job.user.clone(),
            job.cost,
            !job.check.replica_owners.is_empty(),
        );
        match to {
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::TimedOut => {
                // A result: the check decides (`rules::validation`).
                self.judge_result(conn, job_id, to, done, worker, &owner, fx)?;
            }
            JobStatus::Error if checked => {
                // A platform failure in the middle of a check: the replicas so far
                // wait for another run, which counts as a failed attempt.
                let why = format!(
                    "its worker failed to run it: {}",
                    done.message.as_deref().unwrap_or("sandbox error")
                );
                return self.take_back(conn, job_id, TakenBack::Errored(&why), fx);
            }
            _ => {
                // Cancelled on request (the worker's time is paid, as before checks
                // existed: a cancel is not a result), or a platform failure.
                if to == JobStatus::Error {
                    self.note_mishap(conn, worker, Mishap::Error, fx)?;
                }
                let paid = if to == JobStatus::Cancelled {
                    vec![&owner]
                } else {
                    Vec::new()
                };
                if checked {
                    self.close_replicas(conn, job_id, None, fx)?;
                }
                let end = Ended {
                    id: job_id,
                    from: JobStatus::Running,
                    to,
                    user: &user,
                    cost,
                    paid,
                };
                self.end_job(conn, end, &done, fx)?;
                self.refusals.forget(job_id);
                self.release(job_id, worker, fx);
            }
        }
        Ok(())
    }

    /// A running job's attempt is lost: back to the queue for another attempt, or
    /// `error` (refunded) when none is left, or `cancelled` (refunded) if its owner had
    /// asked to cancel it. The lost attempt earns its worker nothing.
    pub(in crate::queue) fn lose_job(
        &mut self,
        conn: &Db,
        job_id: JobId,
        why: &str,
        fx: &mut Effects,
    ) -> Step<()> {
        self.take_back(conn, job_id, TakenBack::Lost(why), fx)
    }

    /// The worker holding a job's current attempt refused it (past its admission
    /// caps) without running it: back to the front of the queue, like a lost attempt
    /// but charging nobody and not counting toward `max_attempts`, with the refusal
    /// on the job for its owner to read; the job is not offered to that worker again
    /// for a while (`State::refusals`, `refusals::REFUSAL_HOLD`). If its owner had
    /// asked to cancel it, it ends `cancelled` (refunded) instead. The caller has
    /// made sure the attempt had not started (a started one is lost instead).
    pub(in crate::queue) fn refused_job(
        &mut self,
        conn: &Db,
        job_id: JobId,
        worker_id: WorkerId,
        reason: &str,
        fx: &mut Effects,
    ) -> Step<()> {
        let name = self
            .workers
            .get(&worker_id)
            .map(|w| w.name.as_str())
            .unwrap_or("?");
        // The reason is the worker's words, bounded by the decoder; what cannot be
        // printed is not kept, so it shows as the one line it is.
        let reason: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let sentence = format!("refused by worker {name} (#{worker_id}): {}", reason.trim());
        self.take_back(conn, job_id, TakenBack::Refused(&sentence), fx)?;
        if self.scheduler.get(job_id).is_some() {
            self.refusals.record(job_id, worker_id, Instant::now());
        }
        Ok(())
    }

    /// The one way an attempt comes back without a result (lost or refused): the job
    /// is requeued at the front of its user's queue, or ends.
    fn take_back(
        &mut self,
        conn: &Db,
        job_id: JobId,
        how: TakenBack<'_>,
        fx: &mut Effects,
    ) -> Step<()> {
        let Some(job) = self.running.get(&job_id) else {
            return Ok(());
        };
        let (worker, attempt) = (job.worker, job.attempt);
        let (why, refusal) = match how {
            TakenBack::Lost(why) | TakenBack::Errored(why) => (why, None),
            TakenBack::Refused(sentence) => (sentence, Some(sentence)),
        };
        // A refused attempt never ran, and a replica that reported a result ran to
        // its end: neither is a failed one.
        let refusals = job.refusals + u32::from(refusal.is_some());
        let failed = attempt
            .saturating_sub(refusals)
            .saturating_sub(job.check.replica_owners.len() as u32);
        let ending = if job.cancel_requested {
            Some((
                JobStatus::Cancelled,
                FailureReason::CancelledByUser,
                format!("cancelled; {why}"),
            ))
        } else if refusal.is_none() && failed >= self.settings.max_attempts {
            Some((
                JobStatus::Error,
                FailureReason::RetriesExhausted,
                format!(
                    "attempt {failed} of {} failed: {why}",
                    self.settings.max_attempts
                ),
            ))
        } else {
            None
        };
        match ending {
            Some((to, reason, message)) => {
                let done = Completion {
                    reason: Some(reason),
                    message: Some(message),
                    ..Completion::default()
                };
                let (user, cost) = (job.user.clone(), job.cost);
                if !job.check.replica_owners.is_empty() {
                    self.close_replicas(conn, job_id, None, fx)?;
                }
                let end = Ended {
                    id: job_id,
                    from: JobStatus::Running,
                    to,
                    user: &user,
                    cost,
                    paid: Vec::new(),
                };
                self.end_job(conn, end, &done, fx)?;
                self.refusals.forget(job_id);
            }
            None => {
                change_status(
                    conn,
                    job_id,
                    JobStatus::Running,
                    Change::Requeue { refusal },
                    now_millis(),
                )?;
                if refusal.is_none() {
                    self.metrics.requeued_jobs.inc();
                }
                self.enqueued_at.insert(job_id, Instant::now());
                self.scheduler.push_front(QueuedJob {
                    id: job_id,
                    user: job.user.clone(),
                    language: job.language,
                    priority: job.priority,
                    attempts: attempt,
                    refusals,
                    cost: job.cost,
                    memory_mb: job.memory_mb,
                    timeout_s: job.timeout_s,
                    gpus: job.gpus,
                    check: job.check.clone(),
                });
                fx.changed_jobs.push(job_id);
            }
        }
        match how {
            TakenBack::Lost(_) => self.note_mishap(conn, worker, Mishap::Lost, fx)?,
            TakenBack::Errored(_) => self.note_mishap(conn, worker, Mishap::Error, fx)?,
            TakenBack::Refused(_) => {}
        }
        // A lost attempt may still run on its worker, GPUs and all: they stay busy
        // there while it reports the attempt (`WorkerState::lost_gpus`).
        if matches!(how, TakenBack::Lost(_))
            && let Some(mut w) = self.workers.get_mut(&worker)
        {
            w.remember_lost_gpus(gridx_proto::protocol::JobAttempt { job_id, attempt });
        }
        self.release(job_id, worker, fx);
        Ok(())
    }

    /// Forgets a lease in memory once its end or requeue is written.
    pub(super) fn release(&mut self, job_id: JobId, worker: WorkerId, fx: &mut Effects) {
        self.running.remove(&job_id);
        if let Some(mut w) = self.workers.get_mut(&worker) {
            w.release(job_id);
            fx.changed_workers.push(worker);
        }
    }
}

/// Cuts output to `cap` bytes at a character boundary. A worker is supposed to cap its
/// output itself; the coordinator does not trust it to.
pub(super) fn cap_output(mut text: String, cap: usize) -> (String, bool) {
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
