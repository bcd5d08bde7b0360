//! Worker sessions, dispatch, leases, fencing and recovery, over real WebSockets.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use futures_util::SinkExt;
use gridx_proto::job::RunEnd;
use gridx_proto::protocol::{CoordinatorMessage, JobAttempt, RejectCode, WorkerMessage};
use gridx_proto::{Credits, JobId};
use std::time::Duration;
use support::{FakeWorker, TestServer, hello, raw_socket, recv, send};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_job_runs_and_its_worker_is_paid() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 2).await;
    let id = server.submit_ok(&alice, "print('hi')").await;
    let (job_id, attempt, spec) = worker.expect_assign().await;
    assert_eq!((job_id, attempt), (id, 1));
    assert_eq!(spec.code, "print('hi')");
    worker.run_ok(id, 1, "hi\n").await;
    let job = server.wait_status(&alice, id, "succeeded", 5).await;
    assert_eq!(job["stdout"], "hi\n");
    assert_eq!(job["exit_code"], 0);
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["worker_id"], worker.worker_id.0);
    assert!(job["started_at"].is_string() && job["finished_at"].is_string());
    assert_eq!(server.balance(&alice).await.millis(), 9_000);
    assert_eq!(server.balance(&bob).await.millis(), 800);
    let (_, ledger) = server.get_json(&bob, "/v1/ledger").await;
    assert_eq!(ledger["entries"][0]["kind"], "reward");
    assert_eq!(ledger["entries"][0]["amount"], 0.8);
    let (_, workers) = server.get_json(&alice, "/v1/workers").await;
    assert_eq!(workers["workers"][0]["status"], "online");
    assert_eq!(workers["workers"][0]["slots"], 2);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn failures_timeouts_and_oom_are_paid_and_reported() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    for (end, exit, want, reason) in [
        (RunEnd::Exited, Some(3), "failed", "non_zero_exit"),
        (RunEnd::Oom, Some(137), "failed", "oom"),
        (RunEnd::TimedOut, None, "timed_out", "timeout"),
        (RunEnd::SandboxError, None, "error", "sandbox_error"),
    ] {
        let id = server.submit_ok(&alice, "x").await;
        let (job_id, attempt, _) = worker.expect_assign().await;
        assert_eq!(job_id, id);
        worker.finish(id, attempt, end, exit, "").await;
        let job = server.wait_status(&alice, id, want, 5).await;
        assert_eq!(job["reason"], reason);
    }
    // Three paid runs, one refunded platform error.
    assert_eq!(server.balance(&alice).await.millis(), 7_000);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn a_lost_worker_is_replaced_and_its_late_result_refused() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 0);
    let carol = server.add_user("carol", 0);
    let (_, bob_token) = server.add_worker("bob");
    let (_, carol_token) = server.add_worker("carol");
    let mut first = FakeWorker::connect(&server, &bob_token, 1).await;
    let id = server.submit_ok(&alice, "print(1)").await;
    let (_, attempt, _) = first.expect_assign().await;
    assert_eq!(attempt, 1);
    first
        .send(WorkerMessage::Started {
            job_id: id,
            attempt,
        })
        .await;

    // The first worker goes silent (but keeps its socket); a second one joins.
    let mut second = FakeWorker::connect(&server, &carol_token, 1).await;
    let keep_alive = tokio::spawn(async move {
        for _ in 0..20 {
            second.heartbeat(vec![]).await;
            if let Ok(Some(CoordinatorMessage::Assign { job, attempt })) =
                tokio::time::timeout(Duration::from_millis(300), second.recv(1)).await
            {
                return (second, job.job_id, attempt);
            }
        }
        panic!("the job was never reassigned");
    });
    let (mut second, job_id, attempt) = keep_alive.await.unwrap();
    assert_eq!((job_id, attempt), (id, 2));
    let job = server.job(&alice, id).await;
    assert_eq!(job["status"], "running");
    assert_eq!(job["attempts"], 2);

    // The first worker's late result is refused: nothing changes, nothing is paid.
    first
        .finish(id, 1, RunEnd::Exited, Some(0), "stale\n")
        .await;
    second.run_ok(id, 2, "fresh\n").await;
    let job = server.wait_status(&alice, id, "succeeded", 5).await;
    assert_eq!(job["stdout"], "fresh\n");
    assert_eq!(server.balance(&bob).await, Credits::ZERO);
    assert_eq!(server.balance(&carol).await.millis(), 800);
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("gridx_requeued_jobs_total 1"), "{metrics}");
    server.assert_ledger_ok();
}

#[tokio::test]
async fn a_job_handed_back_by_a_stopping_worker_runs_elsewhere() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut stopping = FakeWorker::connect(&server, &token, 1).await;
    let id = server.submit_ok(&alice, "print(1)").await;
    let (_, attempt, _) = stopping.expect_assign().await;
    stopping
        .finish(id, attempt, RunEnd::WorkerShutdown, None, "")
        .await;
    let job = server.wait_status(&alice, id, "queued", 5).await;
    assert_eq!(job["attempts"], 1);
    drop(stopping);
    let (_, token) = server.add_worker("bob");
    let mut next = FakeWorker::connect(&server, &token, 1).await;
    let (job_id, attempt, _) = next.expect_assign().await;
    assert_eq!((job_id, attempt), (id, 2));
    next.run_ok(id, attempt, "1\n").await;
    let job = server.wait_status(&alice, id, "succeeded", 5).await;
    assert_eq!(job["attempts"], 2);
    // Paid once, for the attempt that ran; nothing for the one handed back.
    assert_eq!(server.balance(&alice).await.millis(), 9_000);
    assert_eq!(server.balance(&bob).await.millis(), 800);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn a_worker_that_says_it_is_draining_gets_no_more_jobs() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut stopping = FakeWorker::connect(&server, &token, 4).await;
    stopping
        .send(WorkerMessage::Heartbeat {
            metrics: Default::default(),
            running: vec![],
            draining: true,
        })
        .await;
    let (_, workers) = {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (status, workers) = server.get_json(&alice, "/v1/workers").await;
            if workers["workers"][0]["status"] == "draining" || std::time::Instant::now() > deadline
            {
                break (status, workers);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(workers["workers"][0]["status"], "draining", "{workers}");
    let id = server.submit_ok(&alice, "print(1)").await;
    assert!(
        tokio::time::timeout(Duration::from_secs(1), stopping.recv(30))
            .await
            .is_err(),
        "a draining worker was given a job"
    );
    assert_eq!(server.job(&alice, id).await["status"], "queued");
    server.assert_ledger_ok();
}

#[tokio::test]
async fn retries_run_out_into_error_and_a_refund() {
    let server = TestServer::start_with(|c| c.max_attempts = 1).await;
    let alice = server.add_user("alice", 10);
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let id = server.submit_ok(&alice, "print(1)").await;
    worker.expect_assign().await;
    drop(worker); // disconnect and never come back
    let job = server.wait_status(&alice, id, "error", 10).await;
    assert_eq!(job["reason"], "retries_exhausted");
    assert_eq!(server.balance(&alice).await.millis(), 10_000);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn cancelling_a_running_job_goes_through_its_worker() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let id = server.submit_ok(&alice, "while True: pass").await;
    let (_, attempt, _) = worker.expect_assign().await;
    worker
        .send(WorkerMessage::Started {
            job_id: id,
            attempt,
        })
        .await;
    let (status, body) = server
        .post_json(&alice, &format!("/v1/jobs/{id}/cancel"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "running");
    match worker.recv(5).await {
        Some(CoordinatorMessage::Cancel { job_id, attempt: a }) => {
            assert_eq!((job_id, a), (id, attempt))
        }
        other => panic!("expected cancel, got {other:?}"),
    }
    worker
        .finish(id, attempt, RunEnd::Cancelled, None, "partial")
        .await;
    let job = server.wait_status(&alice, id, "cancelled", 5).await;
    assert_eq!(job["stdout"], "partial");
    // Cancelled while running: the worker's owner is paid for the time it gave.
    assert_eq!(server.balance(&bob).await.millis(), 800);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn fair_share_serves_a_single_job_between_a_flood() {
    let server = TestServer::start().await;
    let flood = server.add_user("flood", 100);
    let single = server.add_user("single", 10);
    server.add_user("bob", 0);
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(server.submit_ok(&flood, &format!("print({i})")).await);
    }
    let lonely = server.submit_ok(&single, "print('me')").await;
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let mut order = Vec::new();
    for _ in 0..3 {
        let (job_id, attempt, _) = worker.expect_assign().await;
        order.push(job_id);
        worker.run_ok(job_id, attempt, "").await;
    }
    assert!(
        order.contains(&lonely),
        "the single job waited behind the flood: {order:?}"
    );
}

#[tokio::test]
async fn handshake_errors_are_clear() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let (_, token) = server.add_worker("alice");

    let err = FakeWorker::connect_with(&server, "gxw_nope", 1, vec![])
        .await
        .err()
        .unwrap();
    assert_eq!(err.0, RejectCode::BadToken);
    let err = FakeWorker::connect_with(&server, &alice, 1, vec![])
        .await
        .err()
        .unwrap();
    assert_eq!(err.0, RejectCode::BadToken);
    assert!(err.1.contains("user API token"), "{}", err.1);
    let err = FakeWorker::connect_with(&server, &token, 0, vec![])
        .await
        .err()
        .unwrap();
    assert_eq!(err.0, RejectCode::Malformed);

    let mut socket = raw_socket(&server).await;
    let mut wrong = hello(&token, 1, vec![]);
    if let WorkerMessage::Hello { protocol, .. } = &mut wrong {
        *protocol = 99;
    }
    send(&mut socket, &wrong).await;
    assert!(matches!(
        recv(&mut socket, 5).await,
        Some(CoordinatorMessage::Reject {
            code: RejectCode::ProtocolMismatch,
            ..
        })
    ));

    let mut socket = raw_socket(&server).await;
    socket
        .send(Message::Text("{\"type\":\"heartbeat\"}".into()))
        .await
        .unwrap();
    assert!(matches!(
        recv(&mut socket, 5).await,
        Some(CoordinatorMessage::Reject {
            code: RejectCode::Malformed,
            ..
        })
    ));

    let mut socket = raw_socket(&server).await;
    socket.send(Message::Text("not json".into())).await.unwrap();
    assert!(matches!(
        recv(&mut socket, 5).await,
        Some(CoordinatorMessage::Reject {
            code: RejectCode::Malformed,
            ..
        })
    ));

    // A client that says nothing is shown the door after the hello timeout.
    let mut silent = raw_socket(&server).await;
    match recv(&mut silent, 5).await {
        Some(CoordinatorMessage::Reject { code, .. }) => assert_eq!(code, RejectCode::HelloTimeout),
        other => panic!("expected hello_timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_and_garbage_frames_drop_only_that_worker() {
    let server = TestServer::start_with(|c| c.max_ws_frame_bytes = 64 * 1024).await;
    let alice = server.add_user("alice", 10);
    let (_, bad_token) = server.add_worker("alice");
    let (_, good_token) = server.add_worker("alice");
    let mut bad = FakeWorker::connect(&server, &bad_token, 1).await;
    let mut good = FakeWorker::connect(&server, &good_token, 1).await;
    bad.socket
        .send(Message::Text("x".repeat(200 * 1024).into()))
        .await
        .ok();
    // The bad worker's connection ends; the good one keeps working.
    let mut closed = false;
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_secs(2), bad.recv(2)).await {
            Ok(None) | Err(_) => {
                closed = true;
                break;
            }
            Ok(Some(CoordinatorMessage::Reject { .. })) => {
                closed = true;
                break;
            }
            Ok(Some(_)) => {}
        }
    }
    assert!(closed, "an oversized frame did not end the session");
    let id = server.submit_ok(&alice, "print(1)").await;
    let (job_id, attempt, _) = good.expect_assign().await;
    assert_eq!(job_id, id);
    good.run_ok(id, attempt, "").await;
    server.wait_status(&alice, id, "succeeded", 5).await;

    let (_, garbage_token) = server.add_worker("alice");
    let mut garbage = FakeWorker::connect(&server, &garbage_token, 1).await;
    garbage
        .socket
        .send(Message::Text("{\"type\":\"explode\"}".into()))
        .await
        .unwrap();
    // After welcome: no reject, only a close (its status: tests/protocol_errors.rs).
    assert_eq!(garbage.recv(5).await, None);
    let (status, _) = server.get_json(&alice, "/v1/balance").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_second_connection_replaces_the_first() {
    let server = TestServer::start().await;
    server.add_user("alice", 10);
    let (_, token) = server.add_worker("alice");
    let mut first = FakeWorker::connect(&server, &token, 1).await;
    let _second = FakeWorker::connect(&server, &token, 1).await;
    match first.recv(5).await {
        Some(CoordinatorMessage::Reject { code, .. }) => assert_eq!(code, RejectCode::Replaced),
        other => panic!("expected replaced, got {other:?}"),
    }
}

/// Two hosts with one token: the first replacement goes through (a host reconnecting
/// over its own stale connection) and says who replaced it; in a run of them, a
/// session younger than a second is kept and the newcomer is refused, naming the
/// holder, so the two cannot take the connection from each other thousands of times
/// a second. A second later the newcomer may replace it again.
#[tokio::test]
async fn connections_sharing_a_token_cannot_replace_each_other_in_a_storm() {
    let server = TestServer::start().await;
    server.add_user("alice", 10);
    let (_, token) = server.add_worker("alice");
    let mut first = FakeWorker::connect(&server, &token, 1).await;
    let mut second = FakeWorker::connect(&server, &token, 1).await;
    match first.recv(5).await {
        Some(CoordinatorMessage::Reject { code, message }) => {
            assert_eq!(code, RejectCode::Replaced);
            assert!(message.contains("name="), "{message}");
        }
        other => panic!("expected replaced, got {other:?}"),
    }
    let refused = FakeWorker::connect_with(&server, &token, 1, vec![]).await;
    match refused {
        Err((RejectCode::Replaced, message)) => {
            assert!(
                message.contains("already connected") && message.contains("one host"),
                "{message}"
            );
        }
        Err(other) => panic!("expected a refusal as replaced, got {other:?}"),
        Ok(_) => panic!("a session younger than a second was replaced in a storm"),
    }
    // The holder kept its connection.
    second.heartbeat(vec![]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _third = FakeWorker::connect(&server, &token, 1).await;
    match second.recv(5).await {
        Some(CoordinatorMessage::Reject { code, .. }) => assert_eq!(code, RejectCode::Replaced),
        other => panic!("expected replaced, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reconnecting_worker_keeps_its_job() {
    let server = TestServer::start_with(|c| c.heartbeat_s = 2).await;
    let alice = server.add_user("alice", 10);
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let id = server.submit_ok(&alice, "print(1)").await;
    let (_, attempt, _) = worker.expect_assign().await;
    drop(worker);
    // Reconnect only once the coordinator has seen the connection go (the worker is
    // listed offline), so this is a real reconnect and not a replaced session.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, workers) = server.get_json(&alice, "/v1/workers").await;
        if workers["workers"][0]["status"] == "offline" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dropped worker was never listed offline: {workers}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut worker = FakeWorker::connect_with(
        &server,
        &token,
        1,
        vec![JobAttempt {
            job_id: id,
            attempt,
        }],
    )
    .await
    .expect("welcome");
    // No cancel and no new assignment: the job was adopted.
    assert!(
        tokio::time::timeout(Duration::from_millis(800), worker.recv(1))
            .await
            .is_err()
    );
    worker.run_ok(id, attempt, "ok").await;
    let job = server.wait_status(&alice, id, "succeeded", 5).await;
    assert_eq!(job["attempts"], 1);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn a_superseded_attempt_reported_on_reconnect_is_cancelled() {
    let server = TestServer::start().await;
    server.add_user("alice", 10);
    let (_, token) = server.add_worker("alice");
    let mut worker = FakeWorker::connect_with(
        &server,
        &token,
        1,
        vec![JobAttempt {
            job_id: JobId(77),
            attempt: 1,
        }],
    )
    .await
    .expect("welcome");
    match worker.recv(5).await {
        Some(CoordinatorMessage::Cancel { job_id, attempt }) => {
            assert_eq!((job_id, attempt), (JobId(77), 1))
        }
        other => panic!("expected cancel, got {other:?}"),
    }
}

#[tokio::test]
async fn a_revoked_worker_is_dropped() {
    let server = TestServer::start().await;
    server.add_user("alice", 10);
    let (id, token) = server.add_worker("alice");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    server.revoke_worker(id);
    match worker.recv(5).await {
        Some(CoordinatorMessage::Reject { code, .. }) => assert_eq!(code, RejectCode::Revoked),
        other => panic!("expected revoked, got {other:?}"),
    }
    let err = FakeWorker::connect_with(&server, &token, 1, vec![])
        .await
        .err()
        .unwrap();
    assert_eq!(err.0, RejectCode::Revoked);
}

#[tokio::test]
async fn nothing_is_lost_across_a_restart() {
    let server = TestServer::start_with(|c| c.heartbeat_s = 2).await;
    let alice = server.add_user("alice", 10);
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let running = server.submit_ok(&alice, "print('running')").await;
    let (_, attempt, _) = worker.expect_assign().await;
    let queued = server.submit_ok(&alice, "print('queued')").await;
    drop(worker);
    let server = server.restart().await;
    assert_eq!(server.job(&alice, queued).await["status"], "queued");
    assert_eq!(server.job(&alice, running).await["status"], "running");
    let mut worker = FakeWorker::connect_with(
        &server,
        &token,
        1,
        vec![JobAttempt {
            job_id: running,
            attempt,
        }],
    )
    .await
    .expect("welcome");
    worker.run_ok(running, attempt, "").await;
    let (job_id, attempt2, _) = worker.expect_assign().await;
    assert_eq!(job_id, queued);
    worker.run_ok(queued, attempt2, "").await;
    server.wait_status(&alice, running, "succeeded", 5).await;
    server.wait_status(&alice, queued, "succeeded", 5).await;
    server.assert_ledger_ok();
}

#[tokio::test]
async fn events_stream_the_callers_jobs() {
    use futures_util::StreamExt;
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 10);
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "{}/v1/events",
            server.ws_base
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {alice}").parse().unwrap());
    let (mut events, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    server.submit_ok(&bob, "print('bob')").await;
    let id = server.submit_ok(&alice, "print('alice')").await;
    let mut saw_job = false;
    for _ in 0..10 {
        let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_secs(3), events.next()).await
        else {
            break;
        };
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        if event["type"] == "job" {
            assert_eq!(event["job"]["user"], "alice", "bob's job leaked: {event}");
            assert_eq!(event["job"]["job_id"], id.0);
            saw_job = true;
            break;
        }
    }
    assert!(saw_job);
    let unauthenticated =
        tokio_tungstenite::connect_async(format!("{}/v1/events", server.ws_base)).await;
    assert!(unauthenticated.is_err());
}
