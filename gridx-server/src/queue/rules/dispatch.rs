//! Dispatch: queued jobs to free slots, the moment something frees or arrives.

use crate::queue::model::{Effects, Quorum, Reach, RunningJob, State, WorkerState};
use crate::queue::refusals::Refusals;
use crate::queue::scheduler::QueuedJob;
use crate::queue::transitions::{Change, change_status};
use crate::queue::{DISPATCH_BACKLOG_BYTES, Outbound, outbox};
use crate::store::Db;
use crate::store::{StoreError, jobs, now_millis};
use gridx_proto::protocol::{AssignedJob, CoordinatorMessage};
use gridx_proto::{JobId, JobStatus, Language, WorkerId};
use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Which worker gets the next job of which language: the job is the one that
/// worker's `Scheduler::pop_for` takes.
struct Placement {
    language: Language,
    worker: WorkerId,
}

/// Whether worker `id` may take queued `job` at `now`: it may run it, and has not
/// refused it lately.
fn may_take(
    w: &WorkerState,
    id: WorkerId,
    refusals: &Refusals,
    quorum: &Quorum,
    job: &QueuedJob,
    now: Instant,
) -> bool {
    w.may_run(job, quorum.could_check(job)) && !refusals.holds(job.id, id, now)
}

impl State {
    /// Hands queued jobs to free slots: the language whose next job has the highest
    /// priority (then the oldest) first, to the capable worker with most free slots.
    /// A worker's slots are what it claims capped by the operator's `--max-slots`
    /// (`WorkerState::slots`), so a worker that overstates its capacity neither
    /// gets more jobs than its cap nor jumps ahead of the others.
    /// A worker whose outbox already holds [`DISPATCH_BACKLOG_BYTES`] (counting what
    /// this round assigned it) gets nothing more until it has read them.
    /// A worker gets only jobs it may run (`WorkerState::may_run`: its owner's alone
    /// for an owner-only executor, within its admission caps) and none it refused
    /// lately (`refusals::REFUSAL_HOLD`).
    pub(in crate::queue) fn dispatch(&mut self, conn: &Db, fx: &mut Effects) {
        if self.draining {
            return;
        }
        // One clock for the round: a refusal lapses between rounds, not within one.
        let now = Instant::now();
        self.refresh_quorum_languages();
        let mut assigned: HashMap<WorkerId, usize> = HashMap::new();
        // Languages with no job any ready worker may take stay so for the rest of this
        // round (it only removes jobs and fills slots), so they are not searched again.
        let mut stuck: HashSet<Language> = HashSet::new();
        loop {
            let mut heads: Vec<(i32, Reverse<JobId>, Language)> = Language::ALL
                .into_iter()
                .filter(|language| !stuck.contains(language))
                .filter_map(|language| {
                    let (priority, head) = self.scheduler.peek_for(language, None, |_| true)?;
                    Some((priority, Reverse(head), language))
                })
                .collect();
            heads.sort_unstable_by(|a, b| b.cmp(a));
            let mut best = None;
            for (_, _, language) in heads {
                best = self.placement(language, &assigned, now);
                if best.is_some() {
                    break;
                }
                stuck.insert(language);
            }
            let Some(Placement {
                language, worker, ..
            }) = best
            else {
                return;
            };
            let Some(taker) = self.workers.get(&worker) else {
                return;
            };
            let refusals = &self.refusals;
            let quorum = &self.quorum;
            let Some(job) = self.scheduler.pop_for(language, taker.only_user(), |job| {
                may_take(taker, worker, refusals, quorum, job, now)
            }) else {
                return;
            };
            match self.assign(conn, &job, worker, fx) {
                Ok(bytes) => *assigned.entry(worker).or_default() += bytes,
                Err(e) => {
                    tracing::error!(job = %job.id, worker = %worker, error = %e, "dispatch failed; the job stays queued");
                    self.metrics.dispatch_errors.inc();
                    self.scheduler.push_front(job);
                    return;
                }
            }
        }
    }

    /// The next job of `language` to place, and where. Usually the language's next
    /// job in scheduling order goes to the ready worker with most free slots that may
    /// take it, found by walking the index of workers with free slots from the most
    /// free down (`Workers::by_free_slots`) to the first that may take it: a busy
    /// grid's full workers are not visited at all. When no ready worker may take
    /// that job (only owner-only workers of other users are free, or it is past every
    /// free worker's caps), each ready worker looks for the first job it may take
    /// (`Scheduler::pop_for`), and the highest priority (then oldest) of those is
    /// placed, with ties going to the worker with most free slots.
    ///
    /// What that fallback costs: workers alike in what they may run (`Reach`) find
    /// the same job, so each kind looks once, refusals aside; a worker that refused
    /// the job its kind found looks again on its own, the refusals of that one job
    /// read from its own entry. So at most (kinds of ready workers + ready workers
    /// that refused their kind's job) looks of at most `scheduler::MAX_LOOKAHEAD`
    /// jobs each, per job placed.
    fn placement(
        &self,
        language: Language,
        assigned: &HashMap<WorkerId, usize>,
        now: Instant,
    ) -> Option<Placement> {
        let (_, head) = self.scheduler.peek_for(language, None, |_| true)?;
        let head_job = self.scheduler.get(head)?;
        let ready = |id: &WorkerId, w: &WorkerState| {
            w.can_take(language)
                && w.session.as_ref().is_some_and(|s| {
                    s.outbox.backlog_bytes() + assigned.get(id).copied().unwrap_or(0)
                        < DISPATCH_BACKLOG_BYTES
                })
        };
        // The most free slots first, then the lowest id: the first that may take it.
        let first_choice = self.workers.by_free_slots().find(|(id, w)| {
            ready(id, w) && may_take(w, **id, &self.refusals, &self.quorum, head_job, now)
        });
        if let Some((id, _)) = first_choice {
            return Some(Placement {
                language,
                worker: *id,
            });
        }
        let mut looked: HashMap<Option<Reach<'_>>, Option<(i32, JobId)>> = HashMap::new();
        self.workers
            .by_free_slots()
            .filter(|(id, w)| ready(id, w))
            .filter_map(|(id, w)| {
                let kind = *looked.entry(w.reach()).or_insert_with(|| {
                    let quorum = &self.quorum;
                    self.scheduler.peek_for(language, w.only_user(), |job| {
                        w.may_run(job, quorum.could_check(job))
                    })
                });
                let found = match kind {
                    Some((_, job)) if self.refusals.holds(job, *id, now) => {
                        self.scheduler.peek_for(language, w.only_user(), |job| {
                            may_take(w, *id, &self.refusals, &self.quorum, job, now)
                        })
                    }
                    kind => kind,
                };
                let (priority, job) = found?;
                Some((
                    (priority, Reverse(job), w.free_slots(), Reverse(*id)),
                    Placement {
                        language,
                        worker: *id,
                    },
                ))
            })
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, placement)| placement)
    }

    fn assign(
        &mut self,
        conn: &Db,
        job: &QueuedJob,
        worker_id: WorkerId,
        fx: &mut Effects,
    ) -> Result<usize, StoreError> {
        let attempt = job.attempts + 1;
        let spec = jobs::load_spec(conn, job.id)?;
        let Some(mut worker) = self.workers.get_mut(&worker_id) else {
            return Err(StoreError::NotFound(format!("worker {worker_id}")));
        };
        // `may_run` found them free before the pop; nothing ran in between.
        let Some(gpus) = worker.gpus_for(job.gpus) else {
            return Err(StoreError::Conflict(format!(
                "job {}: worker {worker_id} has not the GPUs it was chosen for",
                job.id
            )));
        };
        let change = Change::Assign {
            worker: worker_id,
            attempt,
            gpus: &gpus,
        };
        change_status(conn, job.id, JobStatus::Queued, change, now_millis())?;
        worker.lease(job.id, job.memory_mb, gpus.clone());
        let message = Outbound::Send(CoordinatorMessage::Assign {
            job: AssignedJob {
                job_id: job.id,
                spec,
                gpus,
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
                refusals: job.refusals,
                cancel_requested: false,
                memory_mb: job.memory_mb,
                timeout_s: job.timeout_s,
                gpus: job.gpus,
                started: false,
                check: job.check.clone(),
                live: [0, 0],
            },
        );
        fx.changed_jobs.push(job.id);
        fx.changed_workers.push(worker_id);
        Ok(bytes)
    }
}
