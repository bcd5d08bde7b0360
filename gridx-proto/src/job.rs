//! Job states, their legal transitions, and how a run ended.
//!
//! ```text
//!             ┌──────────── worker lost (attempts + 1 ≤ max) ───────────┐
//!             ▼                                                          │
//!   submit → queued ──assign──► running ──► succeeded | failed | timed_out
//!             │                  │   │
//!             │                  │   └──► error (sandbox failure, retries exhausted)
//!             └──► cancelled ◄───┘
//!             └──► error (no attempt left / cannot be run)
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;
use utoipa::ToSchema;

/// Where a job is in its life. The only way to move a job is [`JobStatus::transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Error,
}

/// An attempt to move a job along an edge the state machine does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a job cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: JobStatus,
    pub to: JobStatus,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::TimedOut,
        JobStatus::Cancelled,
        JobStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::TimedOut => "timed_out",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Error => "error",
        }
    }

    /// A terminal job never changes again and has been settled exactly once.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }

    /// The edges of the state machine, as code.
    pub fn can_transition_to(self, to: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, to),
            (Queued, Running)
                | (Queued, Cancelled)
                | (Queued, Error)
                // A lost worker's job goes back to the queue for another attempt.
                | (Running, Queued)
                | (Running, Succeeded)
                | (Running, Failed)
                | (Running, TimedOut)
                | (Running, Cancelled)
                | (Running, Error)
        )
    }

    /// Moves to `to`, or says why not. Never a silent overwrite.
    pub fn transition(self, to: JobStatus) -> Result<JobStatus, IllegalTransition> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// How the escrowed hold is settled when a job enters this state.
    pub fn settlement(self, was_running: bool) -> Option<Settlement> {
        match self {
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::TimedOut => {
                Some(Settlement::PayWorker)
            }
            JobStatus::Cancelled if was_running => Some(Settlement::PayWorker),
            JobStatus::Cancelled | JobStatus::Error => Some(Settlement::Refund),
            JobStatus::Queued | JobStatus::Running => None,
        }
    }
}

/// The two ways a hold leaves escrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// `reward` to the worker's owner and `fee` to the platform.
    PayWorker,
    /// The whole hold back to the user.
    Refund,
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "unknown job status {0:?}: use queued, running, succeeded, failed, timed_out, cancelled or error"
)]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s.trim())
            .ok_or_else(|| UnknownStatus(crate::ids::truncate_for_message(s)))
    }
}

/// Why a job ended other than by its code exiting 0, shown as `reason` in a job view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The job's code exited non-zero.
    NonZeroExit,
    /// The job was killed for exceeding its memory limit.
    Oom,
    /// The job ran past its wall-clock timeout.
    Timeout,
    /// The job's owner cancelled it.
    CancelledByUser,
    /// The job was lost with its worker more often than the retry limit allows.
    RetriesExhausted,
    /// The sandbox could not be created or failed around the job.
    SandboxError,
    /// No connected worker can run this language and the operator bounded the wait.
    NoCapableWorker,
    /// The worker was shut down and killed the job after its grace period.
    WorkerShutdown,
    /// Its replicas disagreed up to `server.validation.max_replicas` (docs/trust.md).
    NoQuorum,
    /// The operator disabled the job's owner while it waited in the queue.
    UserDisabled,
    /// The source did not compile (a compiled language); `compile_output` says why.
    CompileError,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::NonZeroExit => "non_zero_exit",
            FailureReason::Oom => "oom",
            FailureReason::Timeout => "timeout",
            FailureReason::CancelledByUser => "cancelled_by_user",
            FailureReason::RetriesExhausted => "retries_exhausted",
            FailureReason::SandboxError => "sandbox_error",
            FailureReason::NoCapableWorker => "no_capable_worker",
            FailureReason::WorkerShutdown => "worker_shutdown",
            FailureReason::NoQuorum => "no_quorum",
            FailureReason::UserDisabled => "user_disabled",
            FailureReason::CompileError => "compile_error",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a worker reports when a run ends: the facts of the run, from which the
/// coordinator derives the terminal state with [`RunOutcome::final_status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunOutcome {
    /// How the process ended.
    pub end: RunEnd,
    /// Exit code of the job's process, when it exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    #[serde(default)]
    pub stdout_truncated: bool,
    #[serde(default)]
    pub stderr_truncated: bool,
    /// Wall-clock run time inside the sandbox.
    pub duration_ms: u64,
    /// A human sentence for `sandbox_error` and other platform failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the compiler printed (stdout and stderr together), for a compiled
    /// language only, at most `limits::MAX_COMPILE_OUTPUT_BYTES`; absent for the
    /// interpreted ones. Present whether or not the compile succeeded (warnings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_output: Option<String>,
}

/// How a run ended, as the worker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunEnd {
    /// The process exited by itself; `exit_code` says how.
    Exited,
    /// Killed at the wall-clock timeout.
    TimedOut,
    /// Killed by the memory limit.
    Oom,
    /// Killed because the coordinator sent `cancel`.
    Cancelled,
    /// The sandbox failed; the job's code may not have run at all.
    SandboxError,
    /// Killed because the worker shut down and the grace period ran out.
    WorkerShutdown,
    /// The source did not compile; the program never ran. `compile_output` says why.
    /// Only for a compiled language, which only a coordinator that knows it assigns.
    CompileError,
}

impl RunOutcome {
    /// The terminal state and reason this outcome leads to.
    pub fn final_status(&self) -> (JobStatus, Option<FailureReason>) {
        match self.end {
            RunEnd::Exited if self.exit_code == Some(0) => (JobStatus::Succeeded, None),
            RunEnd::Exited => (JobStatus::Failed, Some(FailureReason::NonZeroExit)),
            RunEnd::Oom => (JobStatus::Failed, Some(FailureReason::Oom)),
            RunEnd::TimedOut => (JobStatus::TimedOut, Some(FailureReason::Timeout)),
            RunEnd::Cancelled => (JobStatus::Cancelled, Some(FailureReason::CancelledByUser)),
            RunEnd::SandboxError => (JobStatus::Error, Some(FailureReason::SandboxError)),
            RunEnd::WorkerShutdown => (JobStatus::Error, Some(FailureReason::WorkerShutdown)),
            RunEnd::CompileError => (JobStatus::Failed, Some(FailureReason::CompileError)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobStatus::*;

    #[test]
    fn the_documented_edges_are_legal() {
        for (from, to) in [
            (Queued, Running),
            (Running, Succeeded),
            (Running, Failed),
            (Running, TimedOut),
            (Queued, Cancelled),
            (Running, Cancelled),
            (Running, Error),
            (Queued, Error),
            (Running, Queued),
        ] {
            assert_eq!(from.transition(to), Ok(to), "{from} -> {to}");
        }
    }

    #[test]
    fn terminal_states_never_move() {
        for from in JobStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in JobStatus::ALL {
                assert_eq!(
                    from.transition(to),
                    Err(IllegalTransition { from, to }),
                    "{from} -> {to} must be illegal"
                );
            }
        }
    }

    #[test]
    fn no_skipping_running() {
        for to in [Succeeded, Failed, TimedOut] {
            assert!(Queued.transition(to).is_err());
        }
        assert!(Queued.transition(Queued).is_err());
        assert!(Running.transition(Running).is_err());
    }

    #[test]
    fn settlement_follows_the_credit_rules() {
        assert_eq!(Succeeded.settlement(true), Some(Settlement::PayWorker));
        assert_eq!(TimedOut.settlement(true), Some(Settlement::PayWorker));
        assert_eq!(Cancelled.settlement(true), Some(Settlement::PayWorker));
        assert_eq!(Cancelled.settlement(false), Some(Settlement::Refund));
        assert_eq!(Error.settlement(true), Some(Settlement::Refund));
        assert_eq!(Queued.settlement(false), None);
    }

    #[test]
    fn statuses_parse_from_their_names() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("done".parse::<JobStatus>().is_err());
    }

    #[test]
    fn outcomes_map_to_states() {
        let mut o = RunOutcome {
            end: RunEnd::Exited,
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            duration_ms: 1,
            message: None,
            compile_output: None,
        };
        assert_eq!(o.final_status(), (Succeeded, None));
        o.exit_code = Some(3);
        assert_eq!(o.final_status(), (Failed, Some(FailureReason::NonZeroExit)));
        o.end = RunEnd::Oom;
        assert_eq!(o.final_status(), (Failed, Some(FailureReason::Oom)));
        o.end = RunEnd::TimedOut;
        assert_eq!(o.final_status().0, TimedOut);
        o.end = RunEnd::SandboxError;
        assert_eq!(o.final_status().0, Error);
        o.end = RunEnd::CompileError;
        assert_eq!(
            o.final_status(),
            (Failed, Some(FailureReason::CompileError))
        );
    }
}
