//! Dispatch: queued jobs to free slots, the moment something frees or arrives.

use crate::queue::model::{Effects, RunningJob, State, WorkerState};
use crate::queue::scheduler::QueuedJob;
use crate::queue::transitions::{Change, change_status};
use crate::queue::{DISPATCH_BACKLOG_BYTES, Outbound, outbox};
use crate::store::{StoreError, jobs, now_millis};
use gridx_proto::protocol::{AssignedJob, CoordinatorMessage};
use gridx_proto::{JobId, JobStatus, Language, WorkerId};
use rusqlite::Connection;
use std::cmp::Reverse;
use std::collections::HashMap;

impl State {
    /// Hands queued jobs to free slots: the language whose next job has the highest
    /// priority (then the oldest) first, to the capable worker with most free slots.
    /// A worker's slots are what it claims capped by the operator's `--max-slots`
    /// (`WorkerState::slots`), so a worker that overstates its capacity neither
    /// gets more jobs than its cap nor jumps ahead of the others.
    /// A worker whose outbox already holds [`DISPATCH_BACKLOG_BYTES`] (counting what
    /// this round assigned it) gets nothing more until it has read them.
    pub(in crate::queue) fn dispatch(&mut self, conn: &Connection, fx: &mut Effects) {
        if self.draining {
            return;
        }
        let mut assigned: HashMap<WorkerId, usize> = HashMap::new();
        let ready = |assigned: &HashMap<WorkerId, usize>,
                     id: &WorkerId,
                     w: &WorkerState,
                     language: Language| {
            w.can_take(language)
                && w.session.as_ref().is_some_and(|s| {
                    s.outbox.backlog_bytes() + assigned.get(id).copied().unwrap_or(0)
                        < DISPATCH_BACKLOG_BYTES
                })
        };
        loop {
            let mut best: Option<(i32, Reverse<JobId>, Language)> = None;
            for language in Language::ALL {
                let Some((priority, head)) = self.scheduler.peek(language) else {
                    continue;
                };
                let candidate = (priority, Reverse(head), language);
                if best
                    .as_ref()
                    .is_some_and(|b| (b.0, b.1) >= (candidate.0, candidate.1))
                {
                    continue;
                }
                if self
                    .workers
                    .iter()
                    .any(|(id, w)| ready(&assigned, id, w, language))
                {
                    best = Some(candidate);
                }
            }
            let Some((_, _, language)) = best else {
                return;
            };
            let Some(worker_id) = self
                .workers
                .iter()
                .filter(|(id, w)| ready(&assigned, id, w, language))
                .max_by_key(|(id, w)| (w.free_slots(), Reverse(**id)))
                .map(|(id, _)| *id)
            else {
                return;
            };
            let Some(job) = self.scheduler.pop(language) else {
                return;
            };
            match self.assign(conn, &job, worker_id, fx) {
                Ok(bytes) => *assigned.entry(worker_id).or_default() += bytes,
                Err(e) => {
                    tracing::error!(job = %job.id, worker = %worker_id, error = %e, "dispatch failed; the job stays queued");
                    self.metrics.dispatch_errors.inc();
                    self.scheduler.push_front(job);
                    return;
                }
            }
        }
    }

    fn assign(
        &mut self,
        conn: &Connection,
        job: &QueuedJob,
        worker_id: WorkerId,
        fx: &mut Effects,
    ) -> Result<usize, StoreError> {
        let attempt = job.attempts + 1;
        let spec = jobs::load_spec(conn, job.id)?;
        let Some(worker) = self.workers.get_mut(&worker_id) else {
            return Err(StoreError::NotFound(format!("worker {worker_id}")));
        };
        let change = Change::Assign {
            worker: worker_id,
            attempt,
        };
        change_status(conn, job.id, JobStatus::Queued, change, now_millis())?;
        worker.running.insert(job.id);
        let message = Outbound::Send(CoordinatorMessage::Assign {
            job: AssignedJob {
                job_id: job.id,
                spec,
            },
            attempt,
        });
        let bytes = outbox::weight(&message);
        if let Some(s) = &worker.session {
            fx.outbound.push((s.outbox.clone(), message));
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
        Ok(bytes)
    }
}
