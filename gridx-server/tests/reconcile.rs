//! Heartbeat reconciliation: a worker's `running` list against the coordinator's
//! leases, at every heartbeat. The failure it recovers from is made on purpose: a
//! trigger in the real store aborts the batch that carries a worker's `finished`.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use gridx_proto::JobId;
use gridx_proto::job::RunEnd;
use gridx_proto::protocol::{CoordinatorMessage, JobAttempt};
use std::time::Duration;
use support::{FakeWorker, TestServer};

async fn metrics(server: &TestServer) -> String {
    server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics body")
}

/// Polls /metrics until it contains `line`.
async fn wait_metric(server: &TestServer, line: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(server).await;
        if text.contains(line) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{line} never appeared in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next message within `wait`, or `None` if nothing came.
async fn next_within(worker: &mut FakeWorker, wait: Duration) -> Option<CoordinatorMessage> {
    tokio::time::timeout(wait, worker.recv(10))
        .await
        .ok()
        .flatten()
}

fn store(server: &TestServer) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(server.data_dir.join("gridx.db")).expect("open store");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn
}

#[tokio::test]
async fn a_finished_lost_with_a_failed_batch_is_recovered_by_the_next_heartbeats() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let id = server.submit_ok(&alice, "echo hi").await;
    let (job_id, attempt, _) = worker.expect_assign().await;
    assert_eq!((job_id, attempt), (id, 1));
    worker
        .send(gridx_proto::protocol::WorkerMessage::Started { job_id, attempt })
        .await;
    worker.heartbeat(vec![JobAttempt { job_id, attempt }]).await;

    // Every batch that tries to finish a job now fails in the store.
    store(&server)
        .execute_batch(
            "CREATE TRIGGER fail_finish BEFORE UPDATE OF status ON jobs
             WHEN NEW.status = 'succeeded'
             BEGIN SELECT RAISE(ABORT, 'injected store failure'); END;",
        )
        .expect("create the failing trigger");
    worker
        .finish(id, 1, RunEnd::Exited, Some(0), "lost\n")
        .await;
    wait_metric(&server, "gridx_store_errors_total 1").await;
    store(&server)
        .execute_batch("DROP TRIGGER fail_finish")
        .expect("drop the trigger");
    assert_eq!(server.job(&alice, id).await["status"], "running");

    // The worker thinks it is done: its heartbeats no longer list the attempt. One
    // heartbeat is not enough (it may have crossed an `assign`); the second loses it.
    worker.heartbeat(vec![]).await;
    assert!(
        next_within(&mut worker, Duration::from_millis(500))
            .await
            .is_none(),
        "one missing heartbeat must not lose the attempt"
    );
    assert_eq!(server.job(&alice, id).await["status"], "running");
    worker.heartbeat(vec![]).await;
    let (again, attempt, _) = worker.expect_assign().await;
    assert_eq!(
        (again, attempt),
        (id, 2),
        "requeued and assigned as attempt 2"
    );

    // The lost attempt is fenced: its late report changes nothing and pays nobody.
    worker
        .finish(id, 1, RunEnd::Exited, Some(0), "stale\n")
        .await;
    wait_metric(&server, "gridx_fenced_reports_total 1").await;
    worker.run_ok(id, 2, "fresh\n").await;
    let job = server.wait_status(&alice, id, "succeeded", 5).await;
    assert_eq!(
        (job["stdout"].as_str(), job["attempts"].as_u64()),
        (Some("fresh\n"), Some(2))
    );
    assert_eq!(server.balance(&alice).await.millis(), 9_000);
    assert_eq!(server.balance(&bob).await.millis(), 800);
    assert!(
        metrics(&server)
            .await
            .contains("gridx_requeued_jobs_total 1")
    );
    server.assert_ledger_ok();
}

#[tokio::test]
async fn an_attempt_the_worker_runs_without_a_lease_gets_one_cancel() {
    let server = TestServer::start().await;
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let stray = JobAttempt {
        job_id: JobId(77),
        attempt: 3,
    };
    worker.heartbeat(vec![stray]).await;
    match next_within(&mut worker, Duration::from_secs(5)).await {
        Some(CoordinatorMessage::Cancel { job_id, attempt }) => {
            assert_eq!(JobAttempt { job_id, attempt }, stray)
        }
        other => panic!("expected one cancel, got {other:?}"),
    }
    for _ in 0..3 {
        worker.heartbeat(vec![stray]).await;
    }
    let more = next_within(&mut worker, Duration::from_millis(800)).await;
    assert!(
        more.is_none(),
        "the stray is cancelled once, not at every heartbeat: {more:?}"
    );
    // Once the worker stops reporting it and it comes back, it is cancelled again.
    worker.heartbeat(vec![]).await;
    worker.heartbeat(vec![stray]).await;
    assert!(matches!(
        next_within(&mut worker, Duration::from_secs(5)).await,
        Some(CoordinatorMessage::Cancel { .. })
    ));
}
