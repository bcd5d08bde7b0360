//! Which worker gets which job, over real WebSockets: a worker's refusal of an
//! assignment past its admission caps (requeued elsewhere, charged once, visible on
//! the job), and owner-only executors (docs/worker.md, docs/jobs.md "Refusals").

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use gridx_proto::protocol::{Capabilities, CoordinatorMessage, ExecutorKind, WorkerMessage};
use gridx_proto::{JobId, WorkerId};
use support::{FakeWorker, TestServer, capabilities};

/// Waits `ms` and returns the first coordinator message that came meanwhile, if any.
/// A heartbeat first keeps the worker's lease (3 s here) across the wait.
async fn anything_within(worker: &mut FakeWorker, ms: u64) -> Option<CoordinatorMessage> {
    worker.heartbeat(vec![]).await;
    worker.recv_within(ms).await
}

fn claiming(executor: ExecutorKind) -> Capabilities {
    Capabilities {
        executor,
        ..capabilities(2)
    }
}

#[tokio::test]
async fn a_refused_job_runs_on_another_worker_charged_once_with_the_refusal_shown() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 0);
    let carol = server.add_user("carol", 0);
    let (bob_worker, bob_token) = server.add_worker("bob");
    let (carol_worker, carol_token) = server.add_worker("carol");
    let mut small = FakeWorker::connect(&server, &bob_token, 2).await;
    let mut big = FakeWorker::connect(&server, &carol_token, 2).await;

    // Equally free: the lower worker id gets it first.
    let id = server.submit_ok(&alice, "print('big')").await;
    let (job_id, attempt, _) = small.expect_assign().await;
    assert_eq!((job_id, attempt), (id, 1));
    small
        .send(WorkerMessage::Refused {
            job_id: id,
            attempt: 1,
            reason: "the job asks for 256 MB of memory, more than this worker's 128 MB per job"
                .into(),
        })
        .await;

    // The other worker gets it, as a new attempt; the refusing one not for a minute.
    let (job_id, attempt, _) = big.expect_assign().await;
    assert_eq!((job_id, attempt), (id, 2));
    // A refusal of an attempt it does not hold is ignored.
    small
        .send(WorkerMessage::Refused {
            job_id: id,
            attempt: 2,
            reason: "not mine".into(),
        })
        .await;
    big.run_ok(id, 2, "big\n").await;
    let job = server.wait_status(&alice, id, "succeeded", 5).await;
    assert_eq!(job["worker_id"], carol_worker.0);
    assert_eq!(job["attempts"], 2);
    assert_eq!(job["refusals"], 1);
    assert_eq!(
        job["refusal"],
        format!(
            "refused by worker fake (#{bob_worker}): the job asks for 256 MB of memory, more than this worker's 128 MB per job"
        )
    );
    assert_eq!(
        anything_within(&mut small, 600)
            .await
            .map(|m| format!("{m:?}")),
        None
    );

    // One hold, one settlement: alice paid the job once, the worker that ran it was
    // rewarded, the one that refused it earned nothing.
    assert_eq!(server.balance(&alice).await.millis(), 9_000);
    assert_eq!(server.balance(&carol).await.millis(), 800);
    assert_eq!(server.balance(&bob).await.millis(), 0);
    let (_, ledger) = server.get_json(&alice, "/v1/ledger").await;
    let kinds: Vec<&str> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["job_id"] == id.0)
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["hold"]);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn a_worker_that_refuses_everything_leaves_the_job_queued_not_failed() {
    let server = TestServer::start_with(|c| c.max_attempts = 1).await;
    let alice = server.add_user("alice", 10);
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let id = server.submit_ok(&alice, "print(1)").await;
    let (_, attempt, _) = worker.expect_assign().await;
    worker
        .send(WorkerMessage::Refused {
            job_id: id,
            attempt,
            reason: "full".into(),
        })
        .await;
    // With one attempt allowed, a lost attempt would have ended it: a refusal does not.
    let job = server.wait_status(&alice, id, "queued", 5).await;
    assert_eq!(job["refusals"], 1);
    assert_eq!(
        anything_within(&mut worker, 800)
            .await
            .map(|m| format!("{m:?}")),
        None
    );
    assert_eq!(server.job(&alice, id).await["status"], "queued");
    assert_eq!(
        server.balance(&alice).await.millis(),
        9_000,
        "held, not charged"
    );
    server.assert_ledger_ok();
}

#[tokio::test]
async fn dispatch_sends_a_worker_nothing_past_the_caps_it_advertised() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let caps = Capabilities {
        max_job_memory_mb: Some(128),
        max_job_timeout_s: Some(10),
        ..capabilities(2)
    };
    let mut worker = FakeWorker::connect_claiming(&server, &token, vec![], caps)
        .await
        .unwrap();
    let submit = |memory_mb: u32, timeout_s: u32| {
        server.submit(
            &alice,
            serde_json::json!({"language": "bash", "code": "true",
                               "memory_mb": memory_mb, "timeout_s": timeout_s}),
        )
    };
    let too_big = submit(256, 5)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let too_long = submit(64, 11)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let fits = submit(128, 10)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let (job_id, _, spec) = worker.expect_assign().await;
    assert_eq!(job_id.0, fits["job_id"].as_u64().unwrap());
    assert_eq!((spec.memory_mb, spec.timeout_s), (128, 10));
    assert_eq!(
        anything_within(&mut worker, 800)
            .await
            .map(|m| format!("{m:?}")),
        None
    );
    for job in [too_big, too_long] {
        let id = JobId(job["job_id"].as_u64().unwrap());
        assert_eq!(server.job(&alice, id).await["status"], "queued");
    }
}

#[tokio::test]
async fn owner_only_workers_never_get_another_users_job() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 10);
    server.add_user("carol", 0);
    let (_, noop_token) = server.add_worker("alice");
    let (_, bare_token) = server.add_worker("alice");
    let (sandboxed_id, sandboxed_token) = server.add_worker("carol");
    let mut noop =
        FakeWorker::connect_claiming(&server, &noop_token, vec![], claiming(ExecutorKind::Noop))
            .await
            .unwrap();
    let mut bare = FakeWorker::connect_claiming(
        &server,
        &bare_token,
        vec![],
        claiming(ExecutorKind::Unsandboxed),
    )
    .await
    .unwrap();

    // bob's job: neither of alice's workers may run it, so it waits.
    let bobs = server.submit_ok(&bob, "print('bob')").await;
    assert_eq!(
        anything_within(&mut noop, 800)
            .await
            .map(|m| format!("{m:?}")),
        None
    );
    assert_eq!(
        anything_within(&mut bare, 100)
            .await
            .map(|m| format!("{m:?}")),
        None
    );
    assert_eq!(server.job(&bob, bobs).await["status"], "queued");

    // alice's job goes to one of hers, though bob's came first.
    let alices = server.submit_ok(&alice, "print('alice')").await;
    let (ran_on, attempt) = tokio::select! {
        (job, attempt, _) = noop.expect_assign() => { assert_eq!(job, alices); (0, attempt) }
        (job, attempt, _) = bare.expect_assign() => { assert_eq!(job, alices); (1, attempt) }
    };
    if ran_on == 0 {
        noop.run_ok(alices, attempt, "").await;
    } else {
        bare.run_ok(alices, attempt, "").await;
    }
    server.wait_status(&alice, alices, "succeeded", 5).await;

    // A sandboxed worker runs bob's.
    let mut sandboxed = FakeWorker::connect_claiming(
        &server,
        &sandboxed_token,
        vec![],
        claiming(ExecutorKind::Docker),
    )
    .await
    .unwrap();
    let (job, attempt, _) = sandboxed.expect_assign().await;
    assert_eq!(job, bobs);
    sandboxed.run_ok(bobs, attempt, "bob\n").await;
    let done = server.wait_status(&bob, bobs, "succeeded", 5).await;
    assert_eq!(done["worker_id"], sandboxed_id.0);

    // The worker list says which executor each worker has.
    let (_, workers) = server.get_json(&bob, "/v1/workers").await;
    let executor = |id: WorkerId| {
        workers["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["worker_id"] == id.0)
            .map(|w| w["executor"].clone())
    };
    assert_eq!(executor(noop.worker_id), Some("noop".into()));
    assert_eq!(executor(bare.worker_id), Some("unsandboxed".into()));
    assert_eq!(executor(sandboxed_id), Some("docker".into()));
    server.assert_ledger_ok();
}

/// A worker sends `refused` only to a coordinator that says it reads it.
#[tokio::test]
async fn the_welcome_says_refused_is_read() {
    let server = TestServer::start().await;
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut socket = support::raw_socket(&server).await;
    support::send(&mut socket, &support::hello(&token, 1, vec![])).await;
    match support::recv(&mut socket, 5).await {
        Some(CoordinatorMessage::Welcome { reads_refused, .. }) => assert!(reads_refused),
        other => panic!("expected welcome, got {other:?}"),
    }
}
