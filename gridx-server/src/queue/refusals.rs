//! Which workers refused which queued jobs lately, so that a job is not handed
//! straight back to a worker that just refused it (docs/jobs.md "Refusals").
//!
//! The exclusion is temporary: a refusal is mostly a passing disagreement about a
//! worker's memory (its budget full for a moment, for example after a reconnect while
//! attempts the coordinator counts as lost still run there). A job that only that
//! worker may take (its owner's owner-only worker, the one host big enough) would
//! otherwise wait for good. In memory only; forgotten when the job ends.

use gridx_proto::{JobId, WorkerId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a worker that refused a job is not offered it again. Long enough that a
/// worker refusing a job for good (its caps and the coordinator's count disagree
/// until something ends there) costs one `assign`, one `refused` and one write per
/// job a minute, not a loop; short enough that a job only that worker may take waits
/// about a minute more, not until the coordinator restarts.
pub(super) const REFUSAL_HOLD: Duration = Duration::from_secs(60);

/// Per job, the workers that refused it within [`REFUSAL_HOLD`], and when.
#[derive(Default)]
pub(super) struct Refusals {
    by_job: HashMap<JobId, HashMap<WorkerId, Instant>>,
}

impl Refusals {
    /// Whether `worker` refused `job` less than [`REFUSAL_HOLD`] before `now`.
    pub(super) fn holds(&self, job: JobId, worker: WorkerId, now: Instant) -> bool {
        self.by_job
            .get(&job)
            .and_then(|workers| workers.get(&worker))
            .is_some_and(|at| now.saturating_duration_since(*at) < REFUSAL_HOLD)
    }

    /// `worker` refused `job` at `now`. The job's refusals that have lapsed are
    /// dropped on the way, so a job keeps at most one entry per worker that refused
    /// it within the hold.
    pub(super) fn record(&mut self, job: JobId, worker: WorkerId, now: Instant) {
        let workers = self.by_job.entry(job).or_default();
        workers.retain(|_, at| now.saturating_duration_since(*at) < REFUSAL_HOLD);
        workers.insert(worker, now);
    }

    /// The job ended: its refusals no longer matter.
    pub(super) fn forget(&mut self, job: JobId) {
        self.by_job.remove(&job);
    }

    /// Whether any job has a refusal on record, lapsed or not.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.by_job.is_empty()
    }

    /// Moves every refusal of `job` `by` into the past (tests of the hold's end).
    #[cfg(test)]
    pub(super) fn age(&mut self, job: JobId, by: Duration) {
        for at in self
            .by_job
            .get_mut(&job)
            .into_iter()
            .flat_map(|w| w.values_mut())
        {
            *at = at.checked_sub(by).expect("an instant that far back");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_holds_for_the_hold_then_lapses() {
        let (job, w1, w2) = (JobId(1), WorkerId(1), WorkerId(2));
        let mut r = Refusals::default();
        let t0 = Instant::now();
        r.record(job, w1, t0);
        assert!(r.holds(job, w1, t0));
        assert!(r.holds(job, w1, t0 + REFUSAL_HOLD - Duration::from_millis(1)));
        assert!(!r.holds(job, w1, t0 + REFUSAL_HOLD));
        assert!(!r.holds(job, w2, t0), "another worker");
        assert!(!r.holds(JobId(2), w1, t0), "another job");
        // A later refusal by another worker drops the lapsed one.
        r.record(job, w2, t0 + REFUSAL_HOLD);
        assert_eq!(r.by_job[&job].len(), 1);
        r.forget(job);
        assert!(r.is_empty());
    }
}
