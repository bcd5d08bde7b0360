//! The one function that moves a job: every status change (assign, start, requeue,
//! cancel, finish, error) is checked here against gridx-proto's transition table
//! (`JobStatus::transition`) and then persisted by the store, which decides nothing.

use crate::store::Db;
use crate::store::StoreError;
use crate::store::jobs::{self, Completion, StatusWrite};
use gridx_proto::{JobId, JobStatus, WorkerId};

/// A change to a job's status, as the queue's rules ask for it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change<'a> {
    /// queued -> running on this worker, as this attempt, on these of its GPUs.
    Assign {
        worker: WorkerId,
        attempt: u32,
        gpus: &'a [u32],
    },
    /// The attempt's process started: a fact recorded within `running`, not an edge.
    Start,
    /// running -> queued: the attempt was lost, or refused (with the refusal's
    /// sentence), and the job runs again.
    Requeue { refusal: Option<&'a str> },
    /// To a terminal state (succeeded, failed, timed_out, cancelled, error).
    Finish {
        to: JobStatus,
        completion: &'a Completion,
    },
}

/// Moves job `id` from `from` (the state the queue holds it in) as `change` says, or
/// refuses an edge the state machine does not have. A refusal is a bug in the rules,
/// so it is a store-level conflict: the batch aborts and memory is rebuilt from disk.
pub(super) fn change_status(
    conn: &Db,
    id: JobId,
    from: JobStatus,
    change: Change<'_>,
    now: i64,
) -> Result<JobStatus, StoreError> {
    let (to, write) = match change {
        Change::Start => {
            if from != JobStatus::Running {
                return Err(StoreError::Conflict(format!(
                    "job {id}: cannot start while {from}"
                )));
            }
            jobs::mark_started(conn, id, now)?;
            return Ok(from);
        }
        Change::Assign {
            worker,
            attempt,
            gpus,
        } => (
            JobStatus::Running,
            StatusWrite::Assigned {
                worker,
                attempt,
                gpus,
            },
        ),
        Change::Requeue { refusal } => (JobStatus::Queued, StatusWrite::Requeued { refusal }),
        Change::Finish { to, completion } => {
            if !to.is_terminal() {
                return Err(StoreError::Conflict(format!(
                    "job {id}: {to} is not an end state"
                )));
            }
            (to, StatusWrite::Finished(completion))
        }
    };
    let to = from
        .transition(to)
        .map_err(|e| StoreError::Conflict(format!("job {id}: {e}")))?;
    jobs::write_status(conn, id, from, to, write, now)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;
    use gridx_proto::{Credits, UserName};

    fn store_with_job() -> (Db, JobId) {
        let conn = testing::memory_store(&["a"], "a");
        let user = UserName::new("a").expect("name");
        let id = jobs::insert_job(&conn, &user, &testing::spec(), Credits::ZERO, 0).expect("job");
        (conn, id)
    }

    fn status(conn: &Db, id: JobId) -> JobStatus {
        jobs::job_view(conn, id)
            .expect("read")
            .expect("exists")
            .status
    }

    const ASSIGN: Change<'static> = Change::Assign {
        worker: WorkerId(1),
        attempt: 1,
        gpus: &[],
    };
    const LOST: Change<'static> = Change::Requeue { refusal: None };

    #[test]
    fn a_job_walks_the_edges_of_the_table() {
        let (conn, id) = store_with_job();
        let done = Completion::default();
        assert_eq!(
            change_status(&conn, id, JobStatus::Queued, ASSIGN, 1).expect("assign"),
            JobStatus::Running
        );
        change_status(&conn, id, JobStatus::Running, Change::Start, 2).expect("start");
        change_status(&conn, id, JobStatus::Running, LOST, 3).expect("requeue");
        assert_eq!(status(&conn, id), JobStatus::Queued);
        change_status(&conn, id, JobStatus::Queued, ASSIGN, 4).expect("assign again");
        let refused = Change::Requeue {
            refusal: Some("refused by worker w (#1): too big"),
        };
        change_status(&conn, id, JobStatus::Running, refused, 4).expect("refused");
        let view = jobs::job_view(&conn, id).expect("read").expect("exists");
        assert_eq!(view.refusals, 1);
        assert_eq!(
            view.refusal.as_deref(),
            Some("refused by worker w (#1): too big")
        );
        // A later loss keeps the last refusal's sentence.
        change_status(&conn, id, JobStatus::Queued, ASSIGN, 4).expect("assign again");
        change_status(&conn, id, JobStatus::Running, LOST, 4).expect("lost");
        let view = jobs::job_view(&conn, id).expect("read").expect("exists");
        assert_eq!((view.refusals, view.refusal.is_some()), (1, true));
        change_status(&conn, id, JobStatus::Queued, ASSIGN, 4).expect("assign again");
        let finish = Change::Finish {
            to: JobStatus::Succeeded,
            completion: &done,
        };
        change_status(&conn, id, JobStatus::Running, finish, 5).expect("finish");
        assert_eq!(status(&conn, id), JobStatus::Succeeded);
    }

    #[test]
    fn an_edge_the_table_lacks_is_refused_and_writes_nothing() {
        let (conn, id) = store_with_job();
        let done = Completion::default();
        // queued -> succeeded, queued -> queued (requeue of a queued job), start while
        // queued, a terminal state that is not one, and anything out of a terminal state.
        let finish = |to| Change::Finish {
            to,
            completion: &done,
        };
        assert!(
            change_status(
                &conn,
                id,
                JobStatus::Queued,
                finish(JobStatus::Succeeded),
                1
            )
            .is_err()
        );
        assert!(change_status(&conn, id, JobStatus::Queued, LOST, 1).is_err());
        assert!(change_status(&conn, id, JobStatus::Queued, Change::Start, 1).is_err());
        assert!(
            change_status(&conn, id, JobStatus::Queued, finish(JobStatus::Running), 1).is_err()
        );
        assert_eq!(status(&conn, id), JobStatus::Queued);
        change_status(
            &conn,
            id,
            JobStatus::Queued,
            finish(JobStatus::Cancelled),
            1,
        )
        .expect("cancel a queued job");
        for change in [ASSIGN, LOST, finish(JobStatus::Succeeded)] {
            assert!(change_status(&conn, id, JobStatus::Cancelled, change, 2).is_err());
        }
        assert_eq!(status(&conn, id), JobStatus::Cancelled);
    }

    #[test]
    fn a_row_that_disagrees_with_the_queue_is_a_conflict() {
        let (conn, id) = store_with_job();
        let done = Completion::default();
        // The queue thinks the job runs; the row says queued: a lost race must not
        // overwrite anything.
        let finish = Change::Finish {
            to: JobStatus::Succeeded,
            completion: &done,
        };
        assert!(change_status(&conn, id, JobStatus::Running, finish, 1).is_err());
        assert_eq!(status(&conn, id), JobStatus::Queued);
    }
}
