//! An executor that finishes every job at once without running it: for tests and
//! the coordinator benchmark, never for real work.

use super::{Executor, JobRun, StopToken};
use futures_util::future::BoxFuture;
use gridx_proto::Language;
use gridx_proto::job::{RunEnd, RunOutcome};
use gridx_proto::protocol::ExecutorKind;

pub struct NoopExecutor;

impl Executor for NoopExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Noop
    }

    fn languages(&self) -> Vec<Language> {
        Language::ALL.to_vec()
    }

    fn run(&self, _job: JobRun, _stop: StopToken) -> BoxFuture<'_, RunOutcome> {
        Box::pin(async {
            RunOutcome {
                end: RunEnd::Exited,
                exit_code: Some(0),
                stdout: String::new(),
                stderr: String::new(),
                stdout_truncated: false,
                stderr_truncated: false,
                duration_ms: 0,
                message: None,
                compile_output: None,
            }
        })
    }
}
