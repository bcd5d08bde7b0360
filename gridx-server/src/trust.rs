//! The rules of result checks (docs/trust.md), pure: what a result is compared on,
//! when replicas agree, how often a worker's result is checked, and when a record
//! quarantines. The queue applies them (`queue::rules::validation`); the store keeps
//! the records (`store::trust`).
//!
//! Grid-X follows BOINC's redundant computing and adaptive replication, with three
//! differences, each for a stated reason:
//! - Replicas run one after another, not side by side: the check is decided when the
//!   first result arrives (so a worker cannot know whether its result will be
//!   checked), and a job that needs none costs one run. A checked job waits for its
//!   second run instead.
//! - Replicas must come from workers of different owners, not merely different hosts:
//!   one person's many tokens are one voice.
//! - A worker may hold only `1 + streak` jobs whose results are not yet confirmed, so
//!   a new worker claiming 1,024 slots gets one job until its first result is checked
//!   (BOINC's per-host daily quota, counted in results rather than days). Checks of
//!   another owner's result count only while leased (so workers waiting for each
//!   other's checks can still give them).

use gridx_proto::api::{JobView, WorkerStatus, WorkerView};
use gridx_proto::config::ValidationConfig;
use gridx_proto::job::FailureReason;
use gridx_proto::{JobStatus, UserName};
use sha2::{Digest, Sha256};

/// What two results are compared on: the end state with its reason, the exit code,
/// and the SHA-256 of stdout and of stderr as the coordinator stores them (after its
/// own cap), with both truncation flags. Not the compiler's words: honest workers with
/// other compiler versions word them differently (whether it compiled is in the
/// status and reason). Two results agree when all of these are
/// equal. Output cut at the cap compares by the bytes kept and the flag, so two runs
/// that print the same first megabyte agree. Run time and the worker's message are
/// not compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResultKey {
    pub status: JobStatus,
    pub reason: Option<FailureReason>,
    pub exit_code: Option<i32>,
    pub stdout_sha256: String,
    pub stderr_sha256: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

/// What the queue keeps of a live job's check: whether its result may be checked,
/// and the owners whose workers already reported a replica (the next must come from
/// someone else; their count is not a failed attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCheck {
    pub validate: bool,
    pub replica_owners: Vec<UserName>,
}

impl Default for JobCheck {
    fn default() -> Self {
        JobCheck {
            validate: true,
            replica_owners: Vec::new(),
        }
    }
}

/// The SHA-256 of `text`, in lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What the replicas of a job decide, given their results in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tally {
    /// `quorum` of them agree: these indices (the newcomer's is the last) hold the
    /// accepted result.
    Accept(Vec<usize>),
    /// `max_replicas` ran and no `quorum` agree: the job ends `error`, refunded.
    NoQuorum,
    /// Another replica is needed.
    NeedMore,
}

/// The policy as configured: `[server.validation]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub quorum: u32,
    pub max_replicas: u32,
    pub probation: u32,
    pub min_spot_check_permille: u16,
    pub quarantine_after: u32,
    pub trusted_streak: u32,
}

impl From<&ValidationConfig> for Policy {
    fn from(c: &ValidationConfig) -> Self {
        Policy {
            quorum: c.quorum,
            max_replicas: c.max_replicas,
            probation: c.probation,
            min_spot_check_permille: c.min_spot_check_permille,
            quarantine_after: c.quarantine_after,
            trusted_streak: c.trusted_streak,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from(&ValidationConfig::default())
    }
}

impl Policy {
    /// Whether results are checked at all (`quorum` 1 turns checking off).
    pub fn enabled(&self) -> bool {
        self.quorum > 1
    }

    /// The share of a worker's results checked by a replica, in per-mille, for a
    /// worker with `streak` confirmed results in a row: all of them on probation
    /// (`streak < probation`), then `probation / streak`, never below the floor.
    pub fn spot_check_permille(&self, streak: u64) -> u16 {
        if !self.enabled() {
            return 0;
        }
        if streak < u64::from(self.probation) || streak == 0 {
            return 1000;
        }
        let rate = (u64::from(self.probation) * 1000 / streak).min(1000) as u16;
        rate.max(self.min_spot_check_permille)
    }

    /// Whether this result is checked, given a uniform draw in `0..1000` the worker
    /// cannot predict (the caller draws it from the OS).
    pub fn spot_check(&self, streak: u64, draw: u16) -> bool {
        draw < self.spot_check_permille(streak)
    }

    /// How many jobs whose results are not yet confirmed (leased, or reported and
    /// waiting for a replica) a worker may hold at once: `1 + streak`; a check of
    /// another owner's result counts only while leased (`WorkerState::doubt_room`).
    pub fn allowance(&self, streak: u64) -> u64 {
        streak.saturating_add(1)
    }

    /// Whether a record with this many strikes is quarantined.
    pub fn quarantines(&self, strikes: u64) -> bool {
        strikes >= u64::from(self.quarantine_after)
    }

    /// Whether a worker with this streak may run `validate: false` jobs.
    pub fn proven(&self, streak: u64) -> bool {
        streak >= u64::from(self.trusted_streak)
    }

    /// What the replicas of a job decide when result `new` arrives after `earlier`
    /// (all from different owners). Only the newcomer's agreement group can newly
    /// reach a quorum, and the job's stored output must be a member's: so the group
    /// counted is the newcomer's.
    pub fn tally(&self, earlier: &[ResultKey], new: &ResultKey) -> Tally {
        let mut agreeing: Vec<usize> = earlier
            .iter()
            .enumerate()
            .filter(|(_, r)| *r == new)
            .map(|(i, _)| i)
            .collect();
        agreeing.push(earlier.len());
        if agreeing.len() >= self.quorum.max(1) as usize {
            Tally::Accept(agreeing)
        } else if earlier.len() + 1 >= self.max_replicas as usize {
            Tally::NoQuorum
        } else {
            Tally::NeedMore
        }
    }
}

/// Why a queued job waits, when result checks are what hold it, from the workers as
/// the board shows them: `None` when some online worker could take it as far as
/// checks go (it may still wait for a free slot).
pub fn waiting_reason(job: &JobView, workers: &[WorkerView], policy: &Policy) -> Option<String> {
    if job.status != JobStatus::Queued || !policy.enabled() {
        return None;
    }
    let replica_owners: Vec<&UserName> = job.validation.replicas.iter().map(|r| &r.owner).collect();
    let candidates: Vec<&WorkerView> = workers
        .iter()
        .filter(|w| {
            w.status == WorkerStatus::Online
                && w.reliability.quarantined.is_none()
                && w.languages.contains(&job.language)
                && crate::gpu_wait::lends_enough(w, job)
                && !replica_owners.contains(&&w.owner)
        })
        .collect();
    if candidates
        .iter()
        .any(|w| w.reliability.trusted || w.owner == job.user)
    {
        return None;
    }
    if !job.validation.required {
        if candidates
            .iter()
            .any(|w| policy.proven(w.reliability.streak))
        {
            return None;
        }
        return Some(format!(
            "it asked not to be checked (validate: false), so it runs only on a worker the grid trusts: one the operator marked trusted, one of yours, or one with {} confirmed results in a row; none is online",
            policy.trusted_streak
        ));
    }
    if !replica_owners.is_empty() {
        if candidates.is_empty() {
            let owners: Vec<&str> = replica_owners.iter().map(|o| o.as_str()).collect();
            return Some(format!(
                "its result is being checked: replica {} must come from a worker of an owner other than {}, and none that runs {} is online",
                replica_owners.len() + 1,
                owners.join(", "),
                job.language
            ));
        }
        return None;
    }
    let mut owners: Vec<&str> = candidates.iter().map(|w| w.owner.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    if owners.len() >= policy.quorum as usize {
        return None;
    }
    Some(format!(
        "waiting for a quorum: its result is checked by workers of {} different owners, and online workers that run {} belong to {} ({}); an operator can mark a worker trusted (`gridx-server worker trust ID`)",
        policy.quorum,
        job.language,
        owners.len(),
        if owners.is_empty() {
            "nobody".to_owned()
        } else {
            owners.join(", ")
        }
    ))
}

/// How a job's reward is shared by the owners of the replicas that agreed with the
/// accepted result: equal integer shares in milli-credits, the remainder (less than
/// one milli-credit per owner) to the fee. Returns each owner's share and the
/// remainder.
pub fn share_reward(reward_millis: i64, owners: &[&UserName]) -> (i64, i64) {
    let n = owners.len().max(1) as i64;
    let share = reward_millis / n;
    (share, reward_millis - share * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(stdout: &str) -> ResultKey {
        ResultKey {
            status: JobStatus::Succeeded,
            reason: None,
            exit_code: Some(0),
            stdout_sha256: sha256_hex(stdout),
            stderr_sha256: sha256_hex(""),
            stdout_truncated: false,
            stderr_truncated: false,
        }
    }

    #[test]
    fn the_spot_check_rate_falls_with_the_streak_and_never_reaches_zero() {
        let p = Policy::default();
        assert_eq!(p.spot_check_permille(0), 1000);
        assert_eq!(p.spot_check_permille(9), 1000, "on probation");
        assert_eq!(p.spot_check_permille(10), 1000);
        assert_eq!(p.spot_check_permille(20), 500);
        assert_eq!(p.spot_check_permille(100), 100);
        assert_eq!(p.spot_check_permille(200), 50);
        assert_eq!(p.spot_check_permille(1_000_000), 50, "the floor");
        let mut previous = 1000;
        for streak in 0..5000 {
            let rate = p.spot_check_permille(streak);
            assert!(rate <= previous && rate >= 50, "{streak}: {rate}");
            previous = rate;
        }
        assert!(p.spot_check(0, 999), "every draw checks a new worker");
        assert!(!p.spot_check(200, 50) && p.spot_check(200, 49));
        let off = Policy {
            quorum: 1,
            ..Policy::default()
        };
        assert_eq!(off.spot_check_permille(0), 0);
    }

    #[test]
    fn a_quorum_of_equal_results_is_accepted_and_disagreement_asks_for_more() {
        let p = Policy::default();
        assert_eq!(p.tally(&[], &key("a")), Tally::NeedMore);
        assert_eq!(p.tally(&[key("a")], &key("a")), Tally::Accept(vec![0, 1]));
        assert_eq!(p.tally(&[key("fake")], &key("a")), Tally::NeedMore);
        assert_eq!(
            p.tally(&[key("fake"), key("a")], &key("a")),
            Tally::Accept(vec![1, 2])
        );
        assert_eq!(
            p.tally(&[key("a"), key("b")], &key("c")),
            Tally::NoQuorum,
            "three different answers at the maximum"
        );
        let three = Policy {
            quorum: 3,
            max_replicas: 4,
            ..Policy::default()
        };
        assert_eq!(three.tally(&[key("a")], &key("a")), Tally::NeedMore);
        assert_eq!(
            three.tally(&[key("a"), key("b"), key("a")], &key("a")),
            Tally::Accept(vec![0, 2, 3])
        );
    }

    #[test]
    fn every_compared_fact_matters_and_run_time_does_not_exist_in_the_key() {
        let base = key("x");
        let variants = [
            ResultKey {
                status: JobStatus::Failed,
                reason: Some(FailureReason::NonZeroExit),
                exit_code: Some(1),
                ..base.clone()
            },
            ResultKey {
                exit_code: Some(1),
                ..base.clone()
            },
            ResultKey {
                stderr_sha256: sha256_hex("warning"),
                ..base.clone()
            },
            ResultKey {
                stdout_truncated: true,
                ..base.clone()
            },
            ResultKey {
                stderr_truncated: true,
                ..base.clone()
            },
            key("y"),
        ];
        for v in variants {
            assert_ne!(v, base);
            assert_eq!(
                Policy::default().tally(std::slice::from_ref(&base), &v),
                Tally::NeedMore
            );
        }
    }

    #[test]
    fn rewards_are_shared_exactly() {
        let (a, b, c) = (
            UserName::new("a").expect("name"),
            UserName::new("b").expect("name"),
            UserName::new("c").expect("name"),
        );
        assert_eq!(share_reward(800, &[&a]), (800, 0));
        assert_eq!(share_reward(800, &[&a, &b]), (400, 0));
        assert_eq!(share_reward(800, &[&a, &b, &c]), (266, 2));
        assert_eq!(share_reward(1, &[&a, &b]), (0, 1));
    }

    #[test]
    fn allowance_and_quarantine_follow_the_record() {
        let p = Policy::default();
        assert_eq!(p.allowance(0), 1);
        assert_eq!(p.allowance(5), 6);
        assert!(!p.quarantines(1) && p.quarantines(2));
        assert!(!p.proven(199) && p.proven(200));
    }
}
