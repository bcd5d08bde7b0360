//! The in-memory run queue: priority first, then round-robin between users (fair
//! share), separately per language so a job waiting for a Node worker never blocks a
//! Python job behind it. Pure data structure: no I/O, no clocks.
//!
//! Not every worker may take every job (an owner-only executor takes only its
//! owner's, admission caps, refusals), so a worker takes the first job in this order
//! that it may take ([`Scheduler::pop_for`]); a job no worker may take stays queued
//! without holding up the ones behind it.

use gridx_proto::{JobId, Language, UserName};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// The most queued jobs one look for a worker's next job examines, all users and
/// priority levels together. A worker that may take few of the jobs ahead (small caps,
/// a full memory budget) would otherwise scan the whole queue, up to
/// `server.queue_capacity` jobs, for every dispatch. Every user a look visits has at
/// least one job queued at that level (the rotation holds no others), so this also
/// bounds how many users one look visits.
pub const MAX_LOOKAHEAD: usize = 16_384;

/// The most jobs of one user at one priority level that one look examines; past it,
/// the look goes on to the next user. Without it one user's deep queue of jobs that no
/// ready worker may take (a flood of 8 GB jobs on a grid of small workers) would use up
/// [`MAX_LOOKAHEAD`] alone and, since a user passed over keeps their turn, hold up
/// every other user's jobs of that language. With it, a job waits only behind this
/// many of its own user's jobs at its level, or behind
/// `MAX_LOOKAHEAD / MAX_LOOKAHEAD_PER_USER` (64) users each holding this many that
/// nobody may take.
pub const MAX_LOOKAHEAD_PER_USER: usize = 256;

/// A queued job as the scheduler needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    pub id: JobId,
    pub user: UserName,
    pub language: Language,
    pub priority: i32,
    /// Attempts already made (0 for a new job); the scheduler only carries it.
    pub attempts: u32,
    /// Of those attempts, how many a worker refused (they do not count as failed).
    pub refusals: u32,
    pub cost: gridx_proto::Credits,
    /// What the job asks of its worker, which the worker's caps must admit.
    pub memory_mb: u32,
    pub timeout_s: u32,
    /// The GPUs it asks for, which the worker must have free.
    pub gpus: gridx_proto::gpu::GpuRequest,
    /// Its result check: `validate`, and the owners that already reported a replica.
    pub check: crate::trust::JobCheck,
}

#[derive(Default)]
struct Level {
    /// Users with jobs at this level, in turn order.
    rotation: VecDeque<UserName>,
    per_user: HashMap<UserName, VecDeque<JobId>>,
}

#[derive(Default)]
pub struct Scheduler {
    by_language: HashMap<Language, BTreeMap<Reverse<i32>, Level>>,
    index: HashMap<JobId, QueuedJob>,
    per_user: HashMap<UserName, u64>,
}

/// Where the job a worker would take next sits.
struct Found {
    level: Reverse<i32>,
    user: UserName,
    /// The user's place in the level's rotation when the job was taken in their turn
    /// (`None` when only this user's jobs were looked at).
    turn: Option<usize>,
    /// The job's place in its user's queue.
    position: usize,
    id: JobId,
}

impl Scheduler {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn queued_for(&self, user: &UserName) -> u64 {
        self.per_user.get(user).copied().unwrap_or(0)
    }

    /// Every queued job, in no particular order.
    pub fn jobs(&self) -> impl Iterator<Item = &QueuedJob> {
        self.index.values()
    }

    pub fn get(&self, id: JobId) -> Option<&QueuedJob> {
        self.index.get(&id)
    }

    /// Adds a job behind its user's other jobs of the same priority.
    pub fn push(&mut self, job: QueuedJob) {
        self.insert(job, false);
    }

    /// Adds a job in front of its user's other jobs: for a job whose worker was lost,
    /// which has waited longer than anything behind it.
    pub fn push_front(&mut self, job: QueuedJob) {
        self.insert(job, true);
    }

    fn insert(&mut self, job: QueuedJob, front: bool) {
        if self.index.contains_key(&job.id) {
            return;
        }
        let level = self
            .by_language
            .entry(job.language)
            .or_default()
            .entry(Reverse(job.priority))
            .or_default();
        let queue = level.per_user.entry(job.user.clone()).or_insert_with(|| {
            level.rotation.push_back(job.user.clone());
            VecDeque::new()
        });
        if front {
            queue.push_front(job.id);
        } else {
            queue.push_back(job.id);
        }
        *self.per_user.entry(job.user.clone()).or_default() += 1;
        self.index.insert(job.id, job);
    }

    /// The priority and id of the job [`Scheduler::pop_for`] would return next.
    pub fn peek_for(
        &self,
        language: Language,
        only_user: Option<&UserName>,
        fits: impl Fn(&QueuedJob) -> bool,
    ) -> Option<(i32, JobId)> {
        self.find(language, only_user, &fits)
            .map(|f| (f.level.0, f.id))
    }

    /// Takes the next job of a language that a worker may take: the highest priority
    /// level holding one that `fits`, then, among its users in turn order, the first
    /// with such a job (their first such job); that user goes to the back of the
    /// rotation, and users passed over keep their turn. With `only_user` (a worker
    /// that runs its owner's jobs alone) only that user's jobs are looked at, and the
    /// rotation is left as it was: the owner's own worker does not use up the owner's
    /// turn on the shared ones, nor disturb anyone else's.
    pub fn pop_for(
        &mut self,
        language: Language,
        only_user: Option<&UserName>,
        fits: impl Fn(&QueuedJob) -> bool,
    ) -> Option<QueuedJob> {
        let found = self.find(language, only_user, &fits)?;
        let levels = self.by_language.get_mut(&language)?;
        let level = levels.get_mut(&found.level)?;
        let queue = level.per_user.get_mut(&found.user)?;
        queue.remove(found.position);
        let emptied = queue.is_empty();
        if emptied {
            level.per_user.remove(&found.user);
        }
        match found.turn {
            Some(turn) => {
                if let Some(user) = level.rotation.remove(turn)
                    && !emptied
                {
                    level.rotation.push_back(user);
                }
            }
            None if emptied => level.rotation.retain(|u| *u != found.user),
            None => {}
        }
        if level.rotation.is_empty() {
            levels.remove(&found.level);
        }
        self.forget(found.id)
    }

    /// The first job in scheduling order that `fits`, examining at most
    /// [`MAX_LOOKAHEAD_PER_USER`] jobs of each user at each level and
    /// [`MAX_LOOKAHEAD`] in all. In the common case (the first job fits) that is one.
    fn find(
        &self,
        language: Language,
        only_user: Option<&UserName>,
        fits: &impl Fn(&QueuedJob) -> bool,
    ) -> Option<Found> {
        let mut budget = MAX_LOOKAHEAD;
        for (&level_key, level) in self.by_language.get(&language)? {
            // Only the owner's jobs, out of turn; or everybody's, in turn order.
            let owner = only_user.map(|user| (None, user));
            let rotation = only_user.is_none().then(|| {
                let turns = level.rotation.iter().enumerate();
                turns.map(|(turn, user)| (Some(turn), user))
            });
            for (turn, user) in owner.into_iter().chain(rotation.into_iter().flatten()) {
                let Some(queue) = level.per_user.get(user) else {
                    continue;
                };
                for (position, id) in queue.iter().enumerate().take(MAX_LOOKAHEAD_PER_USER) {
                    if budget == 0 {
                        return None;
                    }
                    budget -= 1;
                    if self.index.get(id).is_some_and(fits) {
                        return Some(Found {
                            level: level_key,
                            user: user.clone(),
                            turn,
                            position,
                            id: *id,
                        });
                    }
                }
            }
        }
        None
    }

    /// Removes a queued job (cancelled). Returns it if it was queued.
    pub fn remove(&mut self, id: JobId) -> Option<QueuedJob> {
        let job = self.index.get(&id)?.clone();
        let levels = self.by_language.get_mut(&job.language)?;
        let key = Reverse(job.priority);
        let level = levels.get_mut(&key)?;
        if let Some(queue) = level.per_user.get_mut(&job.user) {
            queue.retain(|j| *j != id);
            if queue.is_empty() {
                level.per_user.remove(&job.user);
                level.rotation.retain(|u| *u != job.user);
            }
        }
        if level.rotation.is_empty() {
            levels.remove(&key);
        }
        self.forget(id)
    }

    fn forget(&mut self, id: JobId) -> Option<QueuedJob> {
        let job = self.index.remove(&id)?;
        if let Some(n) = self.per_user.get_mut(&job.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(&job.user);
            }
        }
        Some(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64, user: &str, language: Language, priority: i32) -> QueuedJob {
        QueuedJob {
            gpus: Default::default(),
            id: JobId(id),
            user: UserName::new(user).unwrap(),
            language,
            priority,
            attempts: 0,
            refusals: 0,
            cost: gridx_proto::Credits::ZERO,
            memory_mb: 256,
            timeout_s: 30,
            check: Default::default(),
        }
    }

    fn user(name: &str) -> UserName {
        UserName::new(name).unwrap()
    }

    /// The next job for a worker that may take anything.
    fn pop(s: &mut Scheduler, language: Language) -> Option<QueuedJob> {
        s.pop_for(language, None, |_| true)
    }

    fn drain(s: &mut Scheduler, language: Language) -> Vec<u64> {
        std::iter::from_fn(|| pop(s, language))
            .map(|j| j.id.0)
            .collect()
    }

    #[test]
    fn one_users_flood_does_not_starve_another() {
        let mut s = Scheduler::default();
        for i in 1..=10_000 {
            s.push(job(i, "flood", Language::Python, 0));
        }
        s.push(job(20_000, "single", Language::Python, 0));
        let first_two: Vec<_> = (0..2)
            .map(|_| pop(&mut s, Language::Python).unwrap())
            .collect();
        assert!(
            first_two.iter().any(|j| j.id == JobId(20_000)),
            "{first_two:?}"
        );
        assert_eq!(s.len(), 9_999);
        assert_eq!(s.queued_for(&user("flood")), 9_999);
    }

    #[test]
    fn priority_comes_first_then_submission_order() {
        let mut s = Scheduler::default();
        s.push(job(1, "a", Language::Bash, 0));
        s.push(job(2, "a", Language::Bash, 5));
        s.push(job(3, "a", Language::Bash, 0));
        assert_eq!(
            s.peek_for(Language::Bash, None, |_| true),
            Some((5, JobId(2)))
        );
        assert_eq!(drain(&mut s, Language::Bash), vec![2, 1, 3]);
        assert!(s.is_empty());
    }

    #[test]
    fn users_alternate_at_the_same_priority() {
        let mut s = Scheduler::default();
        for i in 1..=3 {
            s.push(job(i, "a", Language::Node, 0));
            s.push(job(10 + i, "b", Language::Node, 0));
        }
        let users: Vec<_> = std::iter::from_fn(|| pop(&mut s, Language::Node))
            .map(|j| j.user.to_string())
            .collect();
        assert_eq!(users, ["a", "b", "a", "b", "a", "b"]);
    }

    #[test]
    fn languages_queue_separately() {
        let mut s = Scheduler::default();
        s.push(job(1, "a", Language::Node, 0));
        s.push(job(2, "a", Language::Python, 0));
        assert_eq!(pop(&mut s, Language::Python).map(|j| j.id), Some(JobId(2)));
        assert_eq!(pop(&mut s, Language::Python), None);
        assert_eq!(pop(&mut s, Language::Node).map(|j| j.id), Some(JobId(1)));
    }

    #[test]
    fn removed_and_requeued_jobs() {
        let mut s = Scheduler::default();
        s.push(job(1, "a", Language::Python, 0));
        s.push(job(2, "a", Language::Python, 0));
        assert_eq!(s.remove(JobId(1)).map(|j| j.id), Some(JobId(1)));
        assert_eq!(s.remove(JobId(1)), None);
        s.push_front(job(3, "a", Language::Python, 0));
        assert_eq!(drain(&mut s, Language::Python), vec![3, 2]);
        assert!(s.is_empty());
        assert_eq!(s.queued_for(&user("a")), 0);
    }

    /// An owner-only worker takes its owner's highest-priority job, and everybody
    /// else's order is as it would have been without it.
    #[test]
    fn an_owner_only_worker_takes_its_owners_best_job_without_disturbing_the_rotation() {
        let mut s = Scheduler::default();
        s.push(job(1, "a", Language::Bash, 0));
        s.push(job(2, "b", Language::Bash, 0));
        s.push(job(3, "b", Language::Bash, 0));
        s.push(job(4, "c", Language::Bash, 0));
        s.push(job(5, "b", Language::Bash, 7));
        s.push(job(6, "a", Language::Bash, 0));
        let b = user("b");
        assert_eq!(
            s.peek_for(Language::Bash, Some(&b), |_| true),
            Some((7, JobId(5)))
        );
        assert_eq!(
            s.pop_for(Language::Bash, Some(&b), |_| true)
                .map(|j| j.id.0),
            Some(5)
        );
        // b's next is at priority 0, taken out of turn: the rotation a, b, c stands.
        assert_eq!(
            s.pop_for(Language::Bash, Some(&b), |_| true)
                .map(|j| j.id.0),
            Some(2)
        );
        assert_eq!(drain(&mut s, Language::Bash), vec![1, 3, 4, 6]);
        // A user with nothing queued gets nothing, whatever is queued for others.
        s.push(job(7, "a", Language::Bash, 0));
        assert_eq!(s.pop_for(Language::Bash, Some(&b), |_| true), None);
        assert_eq!(s.len(), 1);
    }

    /// The owner's last job taken out of turn leaves the rotation; the others keep
    /// theirs.
    #[test]
    fn taking_a_users_last_job_out_of_turn_removes_them_from_the_rotation() {
        let mut s = Scheduler::default();
        s.push(job(1, "a", Language::Bash, 0));
        s.push(job(2, "b", Language::Bash, 0));
        s.push(job(3, "a", Language::Bash, 0));
        assert_eq!(
            s.pop_for(Language::Bash, Some(&user("b")), |_| true)
                .map(|j| j.id.0),
            Some(2)
        );
        assert_eq!(drain(&mut s, Language::Bash), vec![1, 3]);
        assert!(s.is_empty());
    }

    /// A job no worker may take stays queued, and the ones behind it are taken;
    /// a user passed over keeps their turn.
    #[test]
    fn a_job_that_does_not_fit_waits_without_blocking_the_others() {
        let mut s = Scheduler::default();
        let mut big = job(1, "a", Language::Python, 0);
        big.memory_mb = 8192;
        s.push(big);
        s.push(job(2, "a", Language::Python, 0));
        s.push(job(3, "b", Language::Python, 0));
        let small = |j: &QueuedJob| j.memory_mb <= 4096;
        // a's turn, a's first job does not fit: a's second does, and a goes to the back.
        assert_eq!(
            s.pop_for(Language::Python, None, small).map(|j| j.id.0),
            Some(2)
        );
        assert_eq!(
            s.pop_for(Language::Python, None, small).map(|j| j.id.0),
            Some(3)
        );
        assert_eq!(s.pop_for(Language::Python, None, small), None);
        assert_eq!(s.get(JobId(1)).map(|j| j.memory_mb), Some(8192));
        assert_eq!(drain(&mut s, Language::Python), vec![1]);

        // b's job fits nobody: a, passed over nothing, goes on taking turns.
        let mut s = Scheduler::default();
        let mut big = job(10, "b", Language::Python, 0);
        big.memory_mb = 8192;
        s.push(job(11, "a", Language::Python, 0));
        s.push(big);
        s.push(job(12, "a", Language::Python, 0));
        s.push(job(13, "c", Language::Python, 0));
        let order: Vec<u64> = std::iter::from_fn(|| s.pop_for(Language::Python, None, small))
            .map(|j| j.id.0)
            .collect();
        assert_eq!(order, vec![11, 13, 12]);
        // Then b, passed over all along, is first in line for a worker that fits.
        s.push(job(14, "a", Language::Python, 0));
        assert_eq!(drain(&mut s, Language::Python), vec![10, 14]);
    }

    fn big(id: u64, user: &str) -> QueuedJob {
        QueuedJob {
            memory_mb: 8192,
            ..job(id, user, Language::Bash, 0)
        }
    }

    fn small(j: &QueuedJob) -> bool {
        j.memory_mb <= 4096
    }

    /// A look examines at most [`MAX_LOOKAHEAD_PER_USER`] jobs of one user at a level.
    #[test]
    fn a_look_examines_at_most_the_lookahead_of_one_user() {
        let mut s = Scheduler::default();
        for i in 1..=MAX_LOOKAHEAD_PER_USER as u64 {
            s.push(big(i, "a"));
        }
        s.push(job(1_000_000, "a", Language::Bash, 0));
        assert_eq!(s.peek_for(Language::Bash, None, small), None);
        assert_eq!(s.peek_for(Language::Bash, Some(&user("a")), small), None);
        s.remove(JobId(1));
        assert_eq!(
            s.peek_for(Language::Bash, None, small),
            Some((0, JobId(1_000_000)))
        );
    }

    /// One user's deep queue of jobs nobody may take, at the head of the rotation,
    /// does not hold up another user's job: the look goes on to the next user once
    /// it has examined its share of the first's.
    #[test]
    fn one_users_jobs_that_fit_nobody_do_not_hold_up_anothers() {
        let mut s = Scheduler::default();
        for i in 1..=5000 {
            s.push(big(i, "flood"));
        }
        s.push(job(1_000_000, "other", Language::Bash, 0));
        assert_eq!(
            s.peek_for(Language::Bash, None, small),
            Some((0, JobId(1_000_000)))
        );
        assert_eq!(
            s.pop_for(Language::Bash, None, small).map(|j| j.id.0),
            Some(1_000_000)
        );
        // The flood kept its turn: the first worker that fits it takes its first job.
        s.push(job(1_000_001, "other", Language::Bash, 0));
        assert_eq!(pop(&mut s, Language::Bash).map(|j| j.id.0), Some(1));
        // And so at a higher priority level: the flood there does not hide the other
        // user's job at a lower one.
        let mut s = Scheduler::default();
        for i in 1..=5000 {
            s.push(QueuedJob {
                priority: 5,
                ..big(i, "flood")
            });
        }
        s.push(job(1_000_000, "other", Language::Bash, 0));
        assert_eq!(
            s.peek_for(Language::Bash, None, small),
            Some((0, JobId(1_000_000)))
        );
    }

    /// The whole look is bounded too, across users and levels: past
    /// [`MAX_LOOKAHEAD`] jobs examined it finds nothing.
    #[test]
    fn a_look_examines_at_most_the_lookahead_in_all() {
        let users = MAX_LOOKAHEAD / MAX_LOOKAHEAD_PER_USER;
        let mut s = Scheduler::default();
        let mut id = 0;
        for u in 0..users {
            for _ in 0..MAX_LOOKAHEAD_PER_USER {
                id += 1;
                s.push(big(id, &format!("u{u}")));
            }
        }
        s.push(job(1_000_000, "last", Language::Bash, 0));
        assert_eq!(s.peek_for(Language::Bash, None, small), None);
        s.remove(JobId(1));
        assert_eq!(
            s.peek_for(Language::Bash, None, small),
            Some((0, JobId(1_000_000)))
        );
    }
}
