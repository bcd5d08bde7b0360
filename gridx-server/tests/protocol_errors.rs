//! Every error path of the worker protocol (docs/protocol.md §1, §2 and §6), over a
//! real WebSocket against the coordinator: what each bad frame gets before and after
//! `welcome`, the close codes, fencing of stale reports and repeated cancels.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use futures_util::{SinkExt, StreamExt};
use gridx_proto::job::RunEnd;
use gridx_proto::protocol::{CoordinatorMessage, JobAttempt, WorkerMessage};
use serde_json::{Value, json};
use std::time::Duration;
use support::{FakeWorker, Socket, TestServer, raw_socket};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// What came next on a worker's socket. The payloads are read through `Debug`, in
/// the panic messages.
#[derive(Debug)]
#[allow(dead_code)]
enum Got {
    Reject {
        code: String,
        message: String,
    },
    Message(Value),
    Close {
        code: u16,
        reason: String,
    },
    /// The stream ended without a close frame.
    Ended(String),
}

async fn next(socket: &mut Socket) -> Got {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("an answer within 5 s");
        return match frame {
            None => Got::Ended("end of stream".into()),
            Some(Err(e)) => Got::Ended(e.to_string()),
            Some(Ok(Message::Text(text))) => {
                let v: Value = serde_json::from_str(&text).expect("JSON from the coordinator");
                if v["type"] == "reject" {
                    Got::Reject {
                        code: v["code"].as_str().unwrap_or_default().into(),
                        message: v["message"].as_str().unwrap_or_default().into(),
                    }
                } else {
                    Got::Message(v)
                }
            }
            Some(Ok(Message::Close(Some(frame)))) => Got::Close {
                code: u16::from(frame.code),
                reason: frame.reason.to_string(),
            },
            Some(Ok(Message::Close(None))) => Got::Close {
                code: 1005,
                reason: String::new(),
            },
            Some(Ok(_)) => continue,
        };
    }
}

/// The next frames must be `reject {code}` and a close with `close` and the reject
/// code as its reason. Returns the reject's message.
async fn expect_reject(socket: &mut Socket, code: &str, close: u16, what: &str) -> String {
    let message = match next(socket).await {
        Got::Reject { code: got, message } => {
            assert_eq!(got, code, "{what}: {message}");
            message
        }
        other => panic!("{what}: expected reject {code}, got {other:?}"),
    };
    expect_close(socket, close, code, what).await;
    message
}

/// The next frame must be a close with this status, its reason containing `says`.
async fn expect_close(socket: &mut Socket, code: u16, says: &str, what: &str) -> String {
    match next(socket).await {
        Got::Close { code: got, reason } => {
            assert_eq!(got, code, "{what}: closed with {got} {reason:?}");
            assert!(reason.contains(says), "{what}: reason {reason:?}");
            reason
        }
        other => panic!("{what}: expected a close with {code}, got {other:?}"),
    }
}

async fn send_text(socket: &mut Socket, text: &str) {
    socket
        .send(Message::Text(text.to_owned().into()))
        .await
        .expect("send");
}

fn hello(token: &str) -> Value {
    json!({"type": "hello", "protocol": 1, "token": token, "name": "w-1",
           "capabilities": {"languages": ["python"], "slots": 1, "executor": "docker",
                            "cpu_cores": 1, "memory_mb": 1024, "gpus": 0},
           "running": []})
}

async fn metric(server: &TestServer, name: &str) -> u64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn a_bad_first_frame_gets_reject_malformed_and_a_close_saying_how() {
    let server = TestServer::start_with(|c| c.max_ws_frame_bytes = 64 * 1024).await;
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut bad_name = hello(&token);
    bad_name["name"] = json!("box.example.com");
    let mut zero_slots = hello(&token);
    zero_slots["capabilities"]["slots"] = json!(0);
    let mut many_slots = hello(&token);
    many_slots["capabilities"]["slots"] = json!(1025);
    let mut job_zero = hello(&token);
    job_zero["running"] = json!([{"job_id": 0, "attempt": 1}]);
    let mut attempt_zero = hello(&token);
    attempt_zero["running"] = json!([{"job_id": 4, "attempt": 0}]);
    let mut firecracker = hello(&token);
    firecracker["capabilities"]["executor"] = json!("firecracker");
    let mut cobol = hello(&token);
    cobol["capabilities"]["languages"] = json!(["cobol"]);
    let text_cases: Vec<(&str, String, u16, &str)> = vec![
        // (what, frame, close status, what the reject's message names)
        ("not JSON", "hello?".into(), 1007, "malformed"),
        (
            "unknown type",
            r#"{"type":"explode"}"#.into(),
            1007,
            "explode",
        ),
        ("no type", r#"{"protocol":1}"#.into(), 1007, "type"),
        (
            "a name outside the pattern",
            bad_name.to_string(),
            1007,
            "name",
        ),
        (
            "0 slots",
            zero_slots.to_string(),
            1007,
            "capabilities.slots",
        ),
        (
            "1025 slots",
            many_slots.to_string(),
            1007,
            "capabilities.slots",
        ),
        ("job id 0", job_zero.to_string(), 1007, "running[].job_id"),
        (
            "attempt 0",
            attempt_zero.to_string(),
            1007,
            "running[].attempt",
        ),
        (
            "an unknown executor",
            firecracker.to_string(),
            1007,
            "firecracker",
        ),
        ("an unknown language", cobol.to_string(), 1007, "cobol"),
        (
            "a heartbeat first",
            json!({"type": "heartbeat", "metrics": {"cpu_percent": 1.0, "memory_used_mb": 1,
                   "memory_total_mb": 2}})
            .to_string(),
            1008,
            "must be a hello",
        ),
    ];
    for (what, frame, close, names) in text_cases {
        let mut socket = raw_socket(&server).await;
        send_text(&mut socket, &frame).await;
        let message = expect_reject(&mut socket, "malformed", close, what).await;
        assert!(message.contains(names), "{what}: {message}");
    }

    // A binary first frame: 1003.
    let mut socket = raw_socket(&server).await;
    socket
        .send(Message::Binary(
            hello(&token).to_string().into_bytes().into(),
        ))
        .await
        .expect("send");
    let message = expect_reject(&mut socket, "malformed", 1003, "binary hello").await;
    assert!(message.contains("binary"), "{message}");

    // A text frame that is not UTF-8: 1007.
    let mut socket = raw_socket(&server).await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    socket.send(Message::Frame(frame)).await.expect("send");
    let message = expect_reject(&mut socket, "malformed", 1007, "non-UTF-8 text").await;
    assert!(message.contains("UTF-8"), "{message}");

    // A first frame over the limit: 1009.
    let answer = send_oversized(raw_socket(&server).await, 100 * 1024).await;
    assert!(
        answer.first().is_some_and(|a| a.contains("\"malformed\"")),
        "an oversized first frame: {answer:?}"
    );
    assert!(
        answer.get(1).is_some_and(|a| a.starts_with("close 1009")),
        "an oversized first frame: {answer:?}"
    );
}

/// Sends one text frame of `len` bytes while reading what comes back (the sender
/// may block once the coordinator stops reading), until the connection ends. Each
/// answer reads "text {json}" or "close {code} {reason}".
async fn send_oversized(socket: Socket, len: usize) -> Vec<String> {
    let (mut sink, mut stream) = socket.split();
    let sender =
        tokio::spawn(async move { sink.send(Message::Text("x".repeat(len).into())).await });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(frame)) = stream.next().await {
            match frame {
                Message::Text(text) => answer.push(format!("text {text}")),
                Message::Close(Some(f)) => {
                    answer.push(format!("close {} {}", u16::from(f.code), f.reason));
                }
                Message::Close(None) => answer.push("close".into()),
                _ => {}
            }
        }
    })
    .await;
    sender.abort();
    answer
}

#[tokio::test]
async fn a_bad_frame_after_welcome_gets_a_close_with_the_reason_and_no_reject() {
    let server = TestServer::start_with(|c| c.max_ws_frame_bytes = 64 * 1024).await;
    let alice = server.add_user("alice", 10);
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let (_, good_token) = server.add_worker("bob");
    // A job running on a good worker, which none of the bad frames may touch.
    let mut good = FakeWorker::connect(&server, &good_token, 1).await;
    let id = server.submit_ok(&alice, "print(1)").await;
    let (_, attempt, _) = good.expect_assign().await;

    let started = |job: u64, attempt: u64| {
        json!({"type": "started", "job_id": job, "attempt": attempt}).to_string()
    };
    let finished_as = |end: &str| {
        json!({"type": "finished", "job_id": id.0, "attempt": attempt,
               "outcome": {"end": end, "stdout": "forged", "stderr": "", "duration_ms": 1}})
        .to_string()
    };
    let heartbeat_with = |cpu: f64| {
        json!({"type": "heartbeat", "running": [],
               "metrics": {"cpu_percent": cpu, "memory_used_mb": 1, "memory_total_mb": 2}})
        .to_string()
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        // (what, frame, close status, what the reason names)
        ("not JSON", "}{".into(), 1007, "malformed"),
        (
            "an unknown type",
            r#"{"type":"explode"}"#.into(),
            1007,
            "explode",
        ),
        (
            "a missing field",
            r#"{"type":"started","job_id":1}"#.into(),
            1007,
            "attempt",
        ),
        (
            "a wrong JSON type",
            r#"{"type":"started","job_id":"1","attempt":1}"#.into(),
            1007,
            "malformed",
        ),
        ("an unknown end", finished_as("crashed"), 1007, "crashed"),
        ("job id 0", started(0, 1), 1007, "job_id"),
        ("attempt 0", started(id.0, 0), 1007, "attempt"),
        (
            "cpu at 150 %",
            heartbeat_with(150.0),
            1007,
            "metrics.cpu_percent",
        ),
        (
            "a second hello",
            hello(&good_token).to_string(),
            1008,
            "hello after welcome",
        ),
    ];
    for (what, frame, close, says) in cases {
        let mut bad = FakeWorker::connect(&server, &token, 1).await;
        send_text(&mut bad.socket, &frame).await;
        expect_close(&mut bad.socket, close, says, what).await;
        good.heartbeat(vec![JobAttempt {
            job_id: id,
            attempt,
        }])
        .await;
    }

    let mut bad = FakeWorker::connect(&server, &token, 1).await;
    bad.socket
        .send(Message::Binary(vec![0u8, 159, 146, 150].into()))
        .await
        .expect("send");
    expect_close(&mut bad.socket, 1003, "binary", "a binary frame").await;

    let mut bad = FakeWorker::connect(&server, &token, 1).await;
    let frame = Frame::message(vec![b'{', 0xc3, b'}'], OpCode::Data(Data::Text), true);
    bad.socket.send(Message::Frame(frame)).await.expect("send");
    expect_close(&mut bad.socket, 1007, "UTF-8", "non-UTF-8 text").await;

    let bad = FakeWorker::connect(&server, &token, 1).await;
    let answer = send_oversized(bad.socket, 100 * 1024).await;
    assert!(
        answer.first().is_some_and(|a| a.starts_with("close 1009")),
        "an oversized frame after welcome: {answer:?}"
    );

    // The good worker's job was not touched, and it finishes normally.
    assert_eq!(server.job(&alice, id).await["status"], "running");
    good.run_ok(id, attempt, "real\n").await;
    let job = server.wait_status(&alice, id, "succeeded", 5).await;
    assert_eq!(job["stdout"], "real\n");
    server.assert_ledger_ok();
}

#[tokio::test]
async fn a_hello_of_another_version_is_a_protocol_mismatch_even_when_it_does_not_decode() {
    let server = TestServer::start().await;
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    // A future hello with fields this build does not know, and one it lacks.
    let frame = json!({"type": "hello", "protocol": 2, "token": token, "name": "w",
                       "abilities": {"anything": true}});
    let mut socket = raw_socket(&server).await;
    send_text(&mut socket, &frame.to_string()).await;
    let message = expect_reject(&mut socket, "protocol_mismatch", 1008, "v2 hello").await;
    assert!(message.contains("protocol 1"), "{message}");
}

#[tokio::test]
async fn rejects_are_followed_by_a_close_naming_the_reject_code() {
    let server = TestServer::start().await;
    server.add_user("bob", 0);
    let (worker_id, token) = server.add_worker("bob");

    let mut socket = raw_socket(&server).await;
    send_text(&mut socket, &hello("gxw_unknown").to_string()).await;
    expect_reject(&mut socket, "bad_token", 1008, "unknown token").await;

    // Pings before the hello are fine; the hello must still come in time.
    let mut socket = raw_socket(&server).await;
    socket
        .send(Message::Ping(b"early".to_vec().into()))
        .await
        .expect("ping");
    let message = expect_reject(&mut socket, "hello_timeout", 1008, "no hello").await;
    assert!(message.contains("hello"), "{message}");

    let mut first = FakeWorker::connect(&server, &token, 1).await;
    let _second = FakeWorker::connect(&server, &token, 1).await;
    expect_reject(&mut first.socket, "replaced", 1008, "replaced").await;
    drop(_second);

    let mut live = FakeWorker::connect(&server, &token, 1).await;
    server.revoke_worker(worker_id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        live.heartbeat(vec![]).await;
        match tokio::time::timeout(Duration::from_millis(300), next(&mut live.socket)).await {
            Ok(Got::Reject { code, .. }) => {
                assert_eq!(code, "revoked");
                expect_close(&mut live.socket, 1008, "revoked", "revoked").await;
                break;
            }
            Ok(other) => panic!("expected reject revoked, got {other:?}"),
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "a revoked worker was not dropped"
            ),
        }
    }
}

#[tokio::test]
async fn shutting_down_is_a_reject_and_a_1001_close() {
    let mut server = TestServer::start().await;
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let stop = async { server.stop().await };
    let watch = async {
        // `drain` first, then the reject and the close.
        loop {
            match next(&mut worker.socket).await {
                Got::Message(v) if v["type"] == "drain" => continue,
                Got::Reject { code, .. } => {
                    assert_eq!(code, "shutting_down");
                    break;
                }
                other => panic!("expected drain then reject shutting_down, got {other:?}"),
            }
        }
        expect_close(&mut worker.socket, 1001, "shutting_down", "shutdown").await;
    };
    tokio::join!(stop, watch);
}

#[tokio::test]
async fn reports_for_unknown_or_superseded_attempts_are_fenced_ignored_and_counted() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let id = server.submit_ok(&alice, "print(1)").await;
    let (_, attempt, _) = worker.expect_assign().await;
    assert_eq!(attempt, 1);
    let before = metric(&server, "gridx_fenced_reports_total").await;

    let unknown = gridx_proto::JobId(id.0 + 1000);
    worker
        .send(WorkerMessage::Started {
            job_id: unknown,
            attempt: 1,
        })
        .await;
    worker
        .finish(unknown, 1, RunEnd::Exited, Some(0), "ghost")
        .await;
    worker
        .send(WorkerMessage::Started {
            job_id: id,
            attempt: 2,
        })
        .await;
    worker.finish(id, 2, RunEnd::Exited, Some(0), "stale").await;
    // Nothing came back for them: the session goes on, the job is untouched.
    worker
        .heartbeat(vec![JobAttempt {
            job_id: id,
            attempt,
        }])
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while metric(&server, "gridx_fenced_reports_total").await < before + 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reports not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(&server, "gridx_fenced_reports_total").await,
        before + 4
    );
    let job = server.job(&alice, id).await;
    assert_eq!(job["status"], "running", "{job}");
    assert!(
        job["started_at"].is_null(),
        "a fenced started counted: {job}"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), worker.recv(1))
            .await
            .is_err(),
        "a fenced report got an answer"
    );

    worker.run_ok(id, attempt, "real\n").await;
    let job = server.wait_status(&alice, id, "succeeded", 5).await;
    assert_eq!(job["stdout"], "real\n");
    assert_eq!(server.balance(&bob).await.millis(), 800);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn a_repeated_cancel_ends_the_attempt_once_and_settles_once() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let id = server
        .submit_ok(&alice, "import time; time.sleep(60)")
        .await;
    let (_, attempt, _) = worker.expect_assign().await;
    let held = vec![JobAttempt {
        job_id: id,
        attempt,
    }];

    let (status, _) = server
        .post_json(&alice, &format!("/v1/jobs/{id}/cancel"))
        .await;
    assert_eq!(status, 200);
    match worker.recv(5).await {
        Some(CoordinatorMessage::Cancel { job_id, attempt: a }) => {
            assert_eq!((job_id, a), (id, attempt));
        }
        other => panic!("expected cancel, got {other:?}"),
    }
    // The worker reconnects before reporting: the cancel comes again for the same
    // attempt, which the worker must treat as the one it already has.
    drop(worker);
    let mut worker = FakeWorker::connect_with(&server, &token, 1, held.clone())
        .await
        .expect("welcome");
    match worker.recv(5).await {
        Some(CoordinatorMessage::Cancel { job_id, attempt: a }) => {
            assert_eq!((job_id, a), (id, attempt));
        }
        other => panic!("expected the cancel again, got {other:?}"),
    }
    let before = metric(&server, "gridx_fenced_reports_total").await;
    worker
        .finish(id, attempt, RunEnd::Cancelled, None, "")
        .await;
    // A sloppy worker that reports twice: the second report is fenced.
    worker
        .finish(id, attempt, RunEnd::Cancelled, None, "")
        .await;
    server.wait_status(&alice, id, "cancelled", 5).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while metric(&server, "gridx_fenced_reports_total").await < before + 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "duplicate not fenced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.balance(&alice).await.millis(), 9_000);
    assert_eq!(server.balance(&bob).await.millis(), 800);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn a_websocket_protocol_violation_gets_1002() {
    let server = TestServer::start().await;
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    // A reserved bit set with no extension negotiated breaks RFC 6455 itself.
    let odd_frame = || {
        let mut frame = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true);
        frame.header_mut().rsv1 = true;
        Message::Frame(frame)
    };
    let mut socket = raw_socket(&server).await;
    socket.send(odd_frame()).await.expect("send");
    let message = expect_reject(&mut socket, "malformed", 1002, "rsv1 before hello").await;
    assert!(message.contains("Reserved bits"), "{message}");

    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    worker.socket.send(odd_frame()).await.expect("send");
    expect_close(
        &mut worker.socket,
        1002,
        "Reserved bits",
        "rsv1 after welcome",
    )
    .await;
}

#[tokio::test]
async fn a_silent_worker_is_given_up_with_1008() {
    // heartbeat_s = 1: the lease runs out after 3 s of silence.
    let server = TestServer::start().await;
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let started = tokio::time::Instant::now();
    let reason = expect_close(&mut worker.socket, 1008, "heartbeat", "a silent worker").await;
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "closed after {:?}: {reason}",
        started.elapsed()
    );
}
