//! Dispatch: queued jobs to free slots, the moment something frees or arrives.

use super::*;

impl State {
    /// Hands queued jobs to free slots: the language whose next job has the highest
    /// priority (then the oldest) first, to the capable worker with most free slots.
    pub(super) fn dispatch(&mut self, conn: &Connection, fx: &mut Effects) {
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

    pub(super) fn assign(
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
}
