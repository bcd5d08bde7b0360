//! The in-memory run queue: priority first, then round-robin between users (fair
//! share), separately per language so a job waiting for a Node worker never blocks a
//! Python job behind it. Pure data structure: no I/O, no clocks.

use gridx_proto::{JobId, Language, UserName};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// A queued job as the scheduler needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    pub id: JobId,
    pub user: UserName,
    pub language: Language,
    pub priority: i32,
    /// Attempts already made (0 for a new job); the scheduler only carries it.
    pub attempts: u32,
    pub cost: gridx_proto::Credits,
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

    /// The priority and id of the job [`Scheduler::pop`] would return next.
    pub fn peek(&self, language: Language) -> Option<(i32, JobId)> {
        let (Reverse(priority), level) = self.by_language.get(&language)?.iter().next()?;
        let user = level.rotation.front()?;
        let id = level.per_user.get(user)?.front()?;
        Some((*priority, *id))
    }

    /// Takes the next job of a language: highest priority, then the user whose turn it
    /// is; that user goes to the back of the rotation.
    pub fn pop(&mut self, language: Language) -> Option<QueuedJob> {
        let levels = self.by_language.get_mut(&language)?;
        let (&key, level) = levels.iter_mut().next()?;
        let user = level.rotation.pop_front()?;
        let queue = level.per_user.get_mut(&user)?;
        let id = queue.pop_front()?;
        if queue.is_empty() {
            level.per_user.remove(&user);
        } else {
            level.rotation.push_back(user);
        }
        if level.rotation.is_empty() {
            levels.remove(&key);
        }
        self.forget(id)
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
            id: JobId(id),
            user: UserName::new(user).unwrap(),
            language,
            priority,
            attempts: 0,
            cost: gridx_proto::Credits::ZERO,
        }
    }

    #[test]
    fn one_users_flood_does_not_starve_another() {
        let mut s = Scheduler::default();
        for i in 1..=10_000 {
            s.push(job(i, "flood", Language::Python, 0));
        }
        s.push(job(20_000, "single", Language::Python, 0));
        let first_two: Vec<_> = (0..2).map(|_| s.pop(Language::Python).unwrap()).collect();
        assert!(
            first_two.iter().any(|j| j.id == JobId(20_000)),
            "{first_two:?}"
        );
        assert_eq!(s.len(), 9_999);
        assert_eq!(s.queued_for(&UserName::new("flood").unwrap()), 9_999);
    }

    #[test]
    fn priority_comes_first_then_submission_order() {
        let mut s = Scheduler::default();
        s.push(job(1, "a", Language::Bash, 0));
        s.push(job(2, "a", Language::Bash, 5));
        s.push(job(3, "a", Language::Bash, 0));
        assert_eq!(s.peek(Language::Bash), Some((5, JobId(2))));
        let order: Vec<_> = std::iter::from_fn(|| s.pop(Language::Bash))
            .map(|j| j.id.0)
            .collect();
        assert_eq!(order, vec![2, 1, 3]);
        assert!(s.is_empty());
    }

    #[test]
    fn users_alternate_at_the_same_priority() {
        let mut s = Scheduler::default();
        for i in 1..=3 {
            s.push(job(i, "a", Language::Node, 0));
            s.push(job(10 + i, "b", Language::Node, 0));
        }
        let users: Vec<_> = std::iter::from_fn(|| s.pop(Language::Node))
            .map(|j| j.user.to_string())
            .collect();
        assert_eq!(users, ["a", "b", "a", "b", "a", "b"]);
    }

    #[test]
    fn languages_queue_separately() {
        let mut s = Scheduler::default();
        s.push(job(1, "a", Language::Node, 0));
        s.push(job(2, "a", Language::Python, 0));
        assert_eq!(s.pop(Language::Python).map(|j| j.id), Some(JobId(2)));
        assert_eq!(s.pop(Language::Python), None);
        assert_eq!(s.pop(Language::Node).map(|j| j.id), Some(JobId(1)));
    }

    #[test]
    fn removed_and_requeued_jobs() {
        let mut s = Scheduler::default();
        s.push(job(1, "a", Language::Python, 0));
        s.push(job(2, "a", Language::Python, 0));
        assert_eq!(s.remove(JobId(1)).map(|j| j.id), Some(JobId(1)));
        assert_eq!(s.remove(JobId(1)), None);
        s.push_front(job(3, "a", Language::Python, 0));
        assert_eq!(s.pop(Language::Python).map(|j| j.id), Some(JobId(3)));
        assert_eq!(s.pop(Language::Python).map(|j| j.id), Some(JobId(2)));
        assert!(s.is_empty());
        assert_eq!(s.queued_for(&UserName::new("a").unwrap()), 0);
    }
}
