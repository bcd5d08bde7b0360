//! Live output over a real coordinator (docs/api.md, `GET /v1/jobs/{id}/output`; the
//! worker's `output`, docs/protocol.md §3): a viewer sees a running job's output as
//! its worker sends it; resends and gaps do not garble it; a coordinator restart
//! loses none of it; and what a viewer put together equals the stored output.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use gridx_proto::JobId;
use gridx_proto::api::{OutputChunk, OutputEnd, OutputStream};
use gridx_proto::job::RunEnd;
use gridx_proto::protocol::{JobAttempt, WorkerMessage};
use std::time::Duration;
use support::{FakeWorker, TestServer};
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Output(OutputChunk),
    Reset,
    End(OutputEnd),
}

/// Opens `GET /v1/jobs/{id}/output` and passes each event on as it comes.
async fn viewer(
    server: &TestServer,
    token: &str,
    id: JobId,
    follow: bool,
) -> mpsc::UnboundedReceiver<Seen> {
    let response = server
        .http
        .get(server.url(&format!("/v1/jobs/{id}/output?follow={follow}")))
        .bearer_auth(token)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut events = response.bytes_stream().eventsource();
        loop {
            // A dropped receiver closes the connection (the stream goes with the task).
            let event = tokio::select! {
                event = events.next() => event,
                () = tx.closed() => break,
            };
            let Some(Ok(event)) = event else {
                break;
            };
            let seen = match event.event.as_str() {
                "output" => Seen::Output(serde_json::from_str(&event.data).expect("a chunk")),
                "reset" => Seen::Reset,
                "end" => Seen::End(serde_json::from_str(&event.data).expect("an end")),
                other => panic!("unknown event {other}"),
            };
            if tx.send(seen).is_err() {
                break;
            }
        }
    });
    rx
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Option<Seen> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event in time")
}

fn output(stream: OutputStream, offset: u64, text: &str) -> Seen {
    Seen::Output(OutputChunk {
        stream,
        offset,
        text: text.into(),
    })
}

fn piece(job: JobId, attempt: u32, stream: OutputStream, offset: u64, text: &str) -> WorkerMessage {
    WorkerMessage::Output {
        job_id: job,
        attempt,
        stream,
        offset,
        text: text.into(),
    }
}

/// Alice's job, started on a worker of carol's: (alice's token, the worker's token,
/// the worker, the job, its attempt).
async fn a_running_job(server: &TestServer) -> (String, String, FakeWorker, JobId, u32) {
    let alice = server.add_user("alice", 10);
    server.add_user("carol", 0);
    let (_, token) = server.add_worker("carol");
    let mut worker = FakeWorker::connect(server, &token, 1).await;
    let job = server.submit_ok(&alice, "echo tick").await;
    let (job_id, attempt, _) = worker.expect_assign().await;
    assert_eq!(job_id, job);
    worker
        .send(WorkerMessage::Started {
            job_id: job,
            attempt,
        })
        .await;
    (alice, token, worker, job, attempt)
}

#[tokio::test]
async fn a_viewer_follows_a_running_job_across_a_coordinator_restart() {
    let server = TestServer::start().await;
    let (alice, token, mut worker, job, attempt) = a_running_job(&server).await;
    let bob = server.add_user("bob", 10);

    // Another user's job is not theirs to watch.
    let other = server
        .http
        .get(server.url(&format!("/v1/jobs/{job}/output")))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("an answer");
    assert_eq!(other.status(), 404);

    let mut seen = viewer(&server, &alice, job, true).await;
    let (out, err) = (OutputStream::Stdout, OutputStream::Stderr);
    worker.send(piece(job, attempt, out, 0, "tick 1\n")).await;
    assert_eq!(next(&mut seen).await, Some(output(out, 0, "tick 1\n")));
    // A resend that overlaps: only what is new comes through.
    worker
        .send(piece(job, attempt, out, 0, "tick 1\ntick 2\n"))
        .await;
    assert_eq!(next(&mut seen).await, Some(output(out, 7, "tick 2\n")));
    // A gap (pieces lost on the way) and a superseded attempt are dropped.
    worker.send(piece(job, attempt, out, 100, "lost\n")).await;
    worker
        .send(piece(job, attempt + 1, out, 14, "stale\n"))
        .await;
    worker.send(piece(job, attempt, err, 0, "warn\n")).await;
    assert_eq!(next(&mut seen).await, Some(output(err, 0, "warn\n")));

    // A late viewer gets what is stored, from the start.
    let mut late = viewer(&server, &alice, job, false).await;
    assert_eq!(
        next(&mut late).await,
        Some(output(out, 0, "tick 1\ntick 2\n"))
    );
    assert_eq!(next(&mut late).await, Some(output(err, 0, "warn\n")));
    assert_eq!(
        next(&mut late).await,
        None,
        "follow=false closes after what is there"
    );

    // The coordinator restarts while the job runs: the stream closes, the worker
    // reconnects with its job and sends its output again from the start.
    drop(worker);
    let server = server.restart().await;
    assert_eq!(
        next(&mut seen).await,
        None,
        "the old stream ended with its coordinator"
    );
    let running = vec![JobAttempt {
        job_id: job,
        attempt,
    }];
    let mut worker = FakeWorker::connect_with(&server, &token, 1, running)
        .await
        .expect("the worker rejoins");
    let mut seen = viewer(&server, &alice, job, true).await;
    assert_eq!(
        next(&mut seen).await,
        Some(output(out, 0, "tick 1\ntick 2\n"))
    );
    assert_eq!(next(&mut seen).await, Some(output(err, 0, "warn\n")));
    worker
        .send(piece(job, attempt, out, 0, "tick 1\ntick 2\ntick 3\n"))
        .await;
    assert_eq!(next(&mut seen).await, Some(output(out, 14, "tick 3\n")));

    // It ends: the rest of the output comes from the result, then `end`.
    worker
        .send(WorkerMessage::Finished {
            job_id: job,
            attempt,
            outcome: gridx_proto::job::RunOutcome {
                end: RunEnd::Exited,
                exit_code: Some(0),
                stdout: "tick 1\ntick 2\ntick 3\ndone\n".into(),
                stderr: "warn\n".into(),
                stdout_truncated: false,
                stderr_truncated: false,
                duration_ms: 5,
                message: None,
                compile_output: None,
            },
        })
        .await;
    let mut stdout = "tick 1\ntick 2\ntick 3\n".to_owned();
    loop {
        match next(&mut seen).await {
            Some(Seen::Output(chunk)) => {
                assert_eq!(chunk.stream, out);
                assert_eq!(chunk.offset as usize, stdout.len(), "contiguous");
                stdout.push_str(&chunk.text);
            }
            Some(Seen::End(end)) => {
                assert_eq!(end.exit_code, Some(0));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(next(&mut seen).await, None, "the stream closes after `end`");
    let view = server.job(&alice, job).await;
    assert_eq!(
        view["stdout"],
        stdout.as_str(),
        "the pieces put together are the output"
    );
    // Live pieces go once the job ends; a viewer now gets the stored output whole.
    let mut after = viewer(&server, &alice, job, true).await;
    assert_eq!(next(&mut after).await, Some(output(out, 0, &stdout)));
    assert_eq!(next(&mut after).await, Some(output(err, 0, "warn\n")));
    assert!(matches!(next(&mut after).await, Some(Seen::End(_))));
    server.assert_ledger_ok();
}

/// A job whose worker is lost mid-run: its viewer is told to start over, and the
/// next attempt's output starts from offset 0.
#[tokio::test]
async fn a_lost_attempt_resets_the_viewer() {
    let server = TestServer::start_with(|c| c.heartbeat_s = 1).await;
    let (alice, _, mut worker, job, attempt) = a_running_job(&server).await;
    server.add_user("dave", 0);
    let mut seen = viewer(&server, &alice, job, true).await;
    worker
        .send(piece(job, attempt, OutputStream::Stdout, 0, "first try\n"))
        .await;
    assert_eq!(
        next(&mut seen).await,
        Some(output(OutputStream::Stdout, 0, "first try\n"))
    );
    // The worker vanishes; its lease runs out and the job waits for another.
    drop(worker);
    assert_eq!(next(&mut seen).await, Some(Seen::Reset));
    let (_, token2) = server.add_worker("dave");
    let mut second = FakeWorker::connect(&server, &token2, 1).await;
    let (_, attempt2, _) = second.expect_assign().await;
    assert!(attempt2 > attempt);
    second
        .send(WorkerMessage::Started {
            job_id: job,
            attempt: attempt2,
        })
        .await;
    second
        .send(piece(job, attempt2, OutputStream::Stdout, 0, "second\n"))
        .await;
    assert_eq!(
        next(&mut seen).await,
        Some(output(OutputStream::Stdout, 0, "second\n"))
    );
    second.run_ok(job, attempt2, "second\n").await;
    assert!(matches!(next(&mut seen).await, Some(Seen::End(_))));
    server.assert_ledger_ok();
}

/// A worker that sends more than the output cap, faster than the protocol's rate, and
/// a piece larger than a piece may be: the coordinator keeps the cap's worth, slows the
/// worker down instead of dropping pieces, and ends the session on the oversized one.
#[tokio::test]
async fn a_flood_of_output_is_capped_slowed_and_bounded() {
    let server = TestServer::start_with(|c| c.limits.max_output_bytes = 4096).await;
    let (alice, _, mut worker, job, attempt) = a_running_job(&server).await;
    // 80 pieces of 100 bytes: past the cap (4096), and past the burst (64) at one
    // slot's rate (8 a second), so the last 16 are read about 2 s later (the bucket
    // itself is unit-tested in worker_session.rs).
    for i in 0..80u64 {
        worker
            .send(piece(
                job,
                attempt,
                OutputStream::Stdout,
                i * 100,
                &"x".repeat(100),
            ))
            .await;
    }
    let mut seen = viewer(&server, &alice, job, true).await;
    let mut stored = 0usize;
    while stored < 4096 {
        match next(&mut seen).await {
            Some(Seen::Output(chunk)) => stored += chunk.text.len(),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stored, 4096, "exactly the cap");
    // The flood was read at the session's rate, not dropped: a heartbeat sent after it
    // is read after the last piece, and the session is still up.
    worker
        .heartbeat(vec![JobAttempt {
            job_id: job,
            attempt,
        }])
        .await;
    let (status, _) = server.get_json(&alice, "/v1/workers").await;
    assert_eq!(status, 200);
    // A piece over 64 KiB is a decode error: the session ends, with a close frame.
    worker
        .send(piece(
            job,
            attempt,
            OutputStream::Stderr,
            0,
            &"y".repeat(64 * 1024 + 1),
        ))
        .await;
    let mut closed = false;
    for _ in 0..20 {
        if worker.recv(1).await.is_none() {
            closed = true;
            break;
        }
    }
    assert!(closed, "an oversized piece ends the session");
    server.assert_ledger_ok();
}

/// The output a job ends with must go on from what came live; when it does not (the
/// accepted result is not what the worker streamed), the viewer is told to start over
/// and gets the accepted output whole, so its pieces since the last `reset` are the
/// stored output.
#[tokio::test]
async fn a_result_that_does_not_go_on_from_the_live_output_is_sent_whole_after_a_reset() {
    let server = TestServer::start().await;
    let (alice, _, mut worker, job, attempt) = a_running_job(&server).await;
    let mut seen = viewer(&server, &alice, job, true).await;
    let out = OutputStream::Stdout;
    worker.send(piece(job, attempt, out, 0, "wrong\n")).await;
    assert_eq!(next(&mut seen).await, Some(output(out, 0, "wrong\n")));
    worker
        .finish(job, attempt, RunEnd::Exited, Some(0), "right, and more\n")
        .await;
    assert_eq!(next(&mut seen).await, Some(Seen::Reset));
    assert_eq!(
        next(&mut seen).await,
        Some(output(out, 0, "right, and more\n"))
    );
    assert!(matches!(next(&mut seen).await, Some(Seen::End(_))));
}

/// Output streams count against the event-stream limits: past the per-address limit
/// a new one is refused with 429, and closing one makes room again.
#[tokio::test]
async fn output_streams_are_limited_per_address() {
    let server = TestServer::start_with(|c| c.max_event_streams_per_address = 2).await;
    let alice = server.add_user("alice", 10);
    let job = server.submit_ok(&alice, "echo waits").await;
    let first = viewer(&server, &alice, job, true).await;
    let _second = viewer(&server, &alice, job, true).await;
    let third = server
        .http
        .get(server.url(&format!("/v1/jobs/{job}/output")))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("an answer");
    assert_eq!(third.status(), 429);
    drop(first);
    // The closed stream's slot is freed once its viewer notices (its next send or the
    // keep-alive); try for a while.
    let mut opened = false;
    for _ in 0..40 {
        let again = server
            .http
            .get(server.url(&format!("/v1/jobs/{job}/output?follow=false")))
            .bearer_auth(&alice)
            .send()
            .await
            .expect("an answer");
        if again.status() == 200 {
            opened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(opened, "a closed stream makes room");
}
