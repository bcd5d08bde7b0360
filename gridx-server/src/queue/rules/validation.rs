//! Result checks (docs/trust.md): what happens when a worker reports a result, and
//! how records change. The rules themselves are `crate::trust`; this applies them in
//! the queue's transaction, writing first and changing memory after.

use super::jobs::Ended;
use crate::metrics::Metrics;
use crate::queue::model::{Effects, State, Step};
use crate::queue::scheduler::QueuedJob;
use crate::queue::transitions::{Change, change_status};
use crate::store::Db;
use crate::store::jobs::Completion;
use crate::store::now_millis;
use crate::store::trust::{self, NewReplica, Record, Subject};
use crate::trust::{ResultKey, Tally, sha256_hex};
use gridx_proto::api::{ReplicaView, ValidationOutcome, Verdict};
use gridx_proto::job::FailureReason;
use gridx_proto::{JobId, JobStatus, UserName, WorkerId};
use std::time::Instant;

/// What went wrong with an attempt that reported no result.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mishap {
    Error,
    Lost,
}

fn key_of(r: &ReplicaView) -> ResultKey {
    ResultKey {
        status: r.status,
        reason: r.reason,
        exit_code: r.exit_code,
        stdout_sha256: r.stdout_sha256.clone(),
        stderr_sha256: r.stderr_sha256.clone(),
        stdout_truncated: r.stdout_truncated,
        stderr_truncated: r.stderr_truncated,
    }
}

/// A uniform draw in `0..1000` the worker cannot predict. Without a random source the
/// result is checked: the safe way to fail.
fn draw_permille() -> u16 {
    let mut bytes = [0u8; 2];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u16::from_le_bytes(bytes) % 1000,
        Err(_) => 0,
    }
}

impl State {
    /// A worker reported a result (succeeded, failed or timed out) of a job it runs:
    /// accept it as it is (a trusted worker, the submitter's own, checks off, a
    /// `validate: false` job, or a record that let it pass the spot check), or keep it
    /// as a replica and compare: a quorum accepts the job, disagreement asks for
    /// another replica, no quorum at the maximum ends it `error`, refunded.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn judge_result(
        &mut self,
        conn: &Db,
        job_id: JobId,
        to: JobStatus,
        mut done: Completion,
        worker: WorkerId,
        owner: &UserName,
        fx: &mut Effects,
    ) -> Step<()> {
        let Some(job) = self.running.get(&job_id) else {
            return Ok(());
        };
        self.metrics.results_reported.inc();
        let standing = self
            .workers
            .get(&worker)
            .map(|w| w.standing)
            .unwrap_or_default();
        let key = ResultKey {
            status: to,
            reason: done.reason,
            exit_code: done.exit_code,
            stdout_sha256: sha256_hex(&done.stdout),
            stderr_sha256: sha256_hex(&done.stderr),
            stdout_truncated: done.stdout_truncated,
            stderr_truncated: done.stderr_truncated,
        };
        // The compiler's words are not compared: honest workers with other compiler
        // versions word them differently (docs/jobs.md). Whether it compiled is in
        // the status and reason; the digest is recorded on the replica.
        let compile_digest = done.compile_output.as_deref().map(sha256_hex);
        let has_replicas = !job.check.replica_owners.is_empty();
        let direct = if !self.policy.enabled() {
            Some(ValidationOutcome::Unvalidated)
        } else if standing.trusted {
            Some(ValidationOutcome::TrustedWorker)
        } else if *owner == job.user {
            Some(ValidationOutcome::OwnWorker)
        } else if !job.check.validate {
            Some(ValidationOutcome::ProvenWorker)
        } else if !has_replicas && !self.policy.spot_check(standing.streak, draw_permille()) {
            Some(ValidationOutcome::NotSpotChecked)
        } else {
            None
        };
        let attempt = job.attempt;
        if let Some(outcome) = direct {
            let mut paid = vec![owner.clone()];
            if has_replicas {
                // A trusted worker's result settles the replicas before it; the
                // submitter's own worker speaks for the submitter only, so theirs
                // stay inconclusive.
                let canonical = (outcome == ValidationOutcome::TrustedWorker).then_some(&key);
                paid.extend(self.close_replicas(conn, job_id, canonical, fx)?);
            }
            done.validation = Some(outcome);
            return self.accept(conn, job_id, to, done, paid, worker, fx);
        }
        let earlier: Vec<ResultKey> = if has_replicas {
            trust::replicas_of(conn, job_id)?
                .iter()
                .map(key_of)
                .collect()
        } else {
            Vec::new()
        };
        let replica = NewReplica {
            job_id,
            attempt,
            worker_id: worker,
            owner,
            status: to,
            reason: done.reason,
            exit_code: done.exit_code,
            stdout_sha256: &key.stdout_sha256,
            stderr_sha256: &key.stderr_sha256,
            stdout_truncated: key.stdout_truncated,
            stderr_truncated: key.stderr_truncated,
            compile_output_sha256: compile_digest.as_deref(),
        };
        trust::insert_replica(conn, &replica, now_millis())?;
        if let Some(mut w) = self.workers.get_mut(&worker) {
            w.pending += 1;
        }
        match self.policy.tally(&earlier, &key) {
            Tally::Accept(_) => {
                let paid = self.close_replicas(conn, job_id, Some(&key), fx)?;
                done.validation = Some(ValidationOutcome::Quorum);
                self.accept(conn, job_id, to, done, paid, worker, fx)
            }
            Tally::NoQuorum => {
                self.close_replicas(conn, job_id, None, fx)?;
                let done = Completion {
                    reason: Some(FailureReason::NoQuorum),
                    message: Some(format!(
                        "no {} of its {} results agreed, so none was accepted; refunded",
                        self.policy.quorum,
                        earlier.len() + 1
                    )),
                    validation: Some(ValidationOutcome::NoQuorum),
                    ..Completion::default()
                };
                let Some(job) = self.running.get(&job_id) else {
                    return Ok(());
                };
                let (user, cost) = (job.user.clone(), job.cost);
                let end = Ended {
                    id: job_id,
                    from: JobStatus::Running,
                    to: JobStatus::Error,
                    user: &user,
                    cost,
                    paid: Vec::new(),
                };
                self.end_job(conn, end, &done, fx)?;
                self.refusals.forget(job_id);
                self.release(job_id, worker, fx);
                Ok(())
            }
            Tally::NeedMore => {
                // Back to the front of its user's queue for a worker of another
                // owner; not a failed attempt, and nobody is paid yet.
                change_status(
                    conn,
                    job_id,
                    JobStatus::Running,
                    Change::Requeue { refusal: None },
                    now_millis(),
                )?;
                let Some(job) = self.running.get(&job_id) else {
                    return Ok(());
                };
                let mut check = job.check.clone();
                check.replica_owners.push(owner.clone());
                let queued = QueuedJob {
                    id: job_id,
                    user: job.user.clone(),
                    language: job.language,
                    priority: job.priority,
                    attempts: job.attempt,
                    refusals: job.refusals,
                    cost: job.cost,
                    memory_mb: job.memory_mb,
                    timeout_s: job.timeout_s,
                    gpus: job.gpus,
                    check,
                };
                self.enqueued_at.insert(job_id, Instant::now());
                self.scheduler.push_front(queued);
                fx.changed_jobs.push(job_id);
                self.release(job_id, worker, fx);
                Ok(())
            }
        }
    }

    /// Ends a job with an accepted result, paying `paid` (owners) their shares.
    #[allow(clippy::too_many_arguments)]
    fn accept(
        &mut self,
        conn: &Db,
        job_id: JobId,
        to: JobStatus,
        done: Completion,
        paid: Vec<UserName>,
        worker: WorkerId,
        fx: &mut Effects,
    ) -> Step<()> {
        let Some(job) = self.running.get(&job_id) else {
            return Ok(());
        };
        let (user, cost) = (job.user.clone(), job.cost);
        let end = Ended {
            id: job_id,
            from: JobStatus::Running,
            to,
            user: &user,
            cost,
            paid: paid.iter().collect(),
        };
        self.end_job(conn, end, &done, fx)?;
        if let Some(outcome) = done.validation {
            Metrics::count(&self.metrics.jobs_accepted, outcome.as_str());
        }
        self.refusals.forget(job_id);
        self.release(job_id, worker, fx);
        Ok(())
    }

    /// Gives every pending replica of a job its verdict: against the accepted result
    /// (`valid` or `invalid`), or `inconclusive` when there is none. Records follow;
    /// returns the owners of the valid ones, in the order they ran.
    pub(super) fn close_replicas(
        &mut self,
        conn: &Db,
        job_id: JobId,
        canonical: Option<&ResultKey>,
        fx: &mut Effects,
    ) -> Step<Vec<UserName>> {
        let mut valid = Vec::new();
        for r in trust::replicas_of(conn, job_id)? {
            if r.verdict != Verdict::Pending {
                continue;
            }
            let verdict = match canonical {
                Some(k) if key_of(&r) == *k => Verdict::Valid,
                Some(_) => Verdict::Invalid,
                None => Verdict::Inconclusive,
            };
            trust::set_verdict(conn, job_id, r.attempt, verdict)?;
            Metrics::count(&self.metrics.replica_verdicts, verdict.as_str());
            match verdict {
                Verdict::Valid => {
                    let bump = |rec: &mut Record| {
                        rec.validated += 1;
                        rec.streak += 1;
                    };
                    self.note(conn, r.worker_id, &r.owner, bump, fx)?;
                    valid.push(r.owner.clone());
                }
                Verdict::Invalid => {
                    let strike = |rec: &mut Record| {
                        rec.invalid += 1;
                        rec.streak = 0;
                        rec.strikes += 1;
                    };
                    self.note(conn, r.worker_id, &r.owner, strike, fx)?;
                    self.quarantine_if_due(conn, r.worker_id, &r.owner, job_id, fx)?;
                }
                Verdict::Inconclusive | Verdict::Pending => {}
            }
            if let Some(mut w) = self.workers.get_mut(&r.worker_id) {
                w.pending = w.pending.saturating_sub(1);
                fx.changed_workers.push(r.worker_id);
            }
        }
        Ok(valid)
    }

    /// Changes a worker's record and its owner's the same way, then where its workers
    /// stand.
    fn note(
        &mut self,
        conn: &Db,
        worker: WorkerId,
        owner: &UserName,
        change: impl Fn(&mut Record),
        fx: &mut Effects,
    ) -> Step<()> {
        let now = now_millis();
        for subject in [Subject::Worker(worker), Subject::Owner(owner.clone())] {
            let mut record = self.record(&subject);
            change(&mut record);
            trust::save_record(conn, &subject, &record, now)?;
            self.records.insert(subject, record);
        }
        fx.changed_workers.push(worker);
        self.refresh_owner(owner, fx);
        Ok(())
    }

    /// Where each of an owner's workers stands after its record changed; only those
    /// whose standing changed are published again (an owner may have thousands).
    fn refresh_owner(&mut self, owner: &UserName, fx: &mut Effects) {
        let ids: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.owner == *owner)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if self.refresh_standing(id) {
                fx.changed_workers.push(id);
            }
        }
    }

    /// A platform error (`sandbox_error`) or an attempt lost with a worker: counted
    /// in its record and its owner's.
    pub(super) fn note_mishap(
        &mut self,
        conn: &Db,
        worker: WorkerId,
        mishap: Mishap,
        fx: &mut Effects,
    ) -> Step<()> {
        let Some(owner) = self.workers.get(&worker).map(|w| w.owner.clone()) else {
            return Ok(());
        };
        let change = |r: &mut Record| match mishap {
            Mishap::Error => r.errors += 1,
            Mishap::Lost => r.lost += 1,
        };
        self.note(conn, worker, &owner, change, fx)
    }

    /// Quarantines a worker, or its owner, whose strikes reached
    /// `quarantine_after`. A worker the operator trusts is never quarantined
    /// automatically (`refresh_standing` ignores its owner's quarantine too).
    fn quarantine_if_due(
        &mut self,
        conn: &Db,
        worker: WorkerId,
        owner: &UserName,
        job_id: JobId,
        fx: &mut Effects,
    ) -> Step<()> {
        let now = now_millis();
        let trusted = self
            .workers
            .get(&worker)
            .is_some_and(|w| w.standing.trusted);
        let subjects = [
            (
                Subject::Worker(worker),
                !trusted,
                "invalid results since it was last restored",
            ),
            (
                Subject::Owner(owner.clone()),
                true,
                "invalid results from its owner's workers",
            ),
        ];
        for (subject, may, what) in subjects {
            let mut record = self.record(&subject);
            if !may || record.quarantined.is_some() || !self.policy.quarantines(record.strikes) {
                continue;
            }
            let reason = format!("{} {what} (the last on job {job_id})", record.strikes);
            tracing::warn!(worker = %worker, owner = %owner, reason = %reason, "quarantined");
            record.quarantined = Some(reason);
            trust::save_record(conn, &subject, &record, now)?;
            self.records.insert(subject, record);
            self.metrics.quarantines.inc();
        }
        self.refresh_owner(owner, fx);
        Ok(())
    }
}
