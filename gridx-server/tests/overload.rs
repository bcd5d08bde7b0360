//! The overload limits of docs/operations.md ("What is limited"), one by one, over
//! real HTTP and WebSockets against an in-process coordinator: connection limits per
//! address and in all, the failed-token limit on the worker socket, a `running` list
//! longer than twice the slots, and heartbeats past the rate. `tests/hostile_clients.rs`
//! floods them all at once against the binary and measures what others see.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use futures_util::StreamExt;
use gridx_proto::protocol::{JobAttempt, WorkerMessage};
use gridx_proto::{JobId, metrics::HostMetrics};
use std::net::IpAddr;
use std::time::Duration;
use support::{FakeWorker, Socket, TestServer, hello, raw_socket, send};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A WebSocket to `path` from the local address `from` (any of 127/8 on Linux), with
/// an optional bearer token; `Err((status, body))` when the upgrade was refused.
async fn ws_from(
    server: &TestServer,
    from: IpAddr,
    path: &str,
    token: Option<&str>,
) -> Result<Socket, (u16, String)> {
    let mut request = format!("{}{path}", server.ws_base)
        .into_client_request()
        .unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    }
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((from, 0).into())
        .expect("bind a loopback address");
    let stream = socket.connect(addr).await.expect("connect");
    match tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
    {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((status, body))
        }
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

async fn metric(server: &TestServer, line_start: &str) -> u64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The close frame (code, reason) that ends `socket`, skipping other messages.
async fn closed_with(socket: &mut Socket) -> Option<(u16, String)> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("the connection ends within 5 s");
        match frame {
            Some(Ok(Message::Close(Some(f)))) => {
                return Some((u16::from(f.code), f.reason.to_string()));
            }
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn worker_sockets_past_the_per_address_limit_get_429_and_past_the_total_503() {
    let server = TestServer::start_with(|c| {
        c.max_worker_connections_per_address = 2;
        c.max_worker_connections = 3;
        c.hello_timeout_s = 30;
    })
    .await;
    let a = IpAddr::from([127, 0, 0, 1]);
    let b = IpAddr::from([127, 0, 0, 2]);
    let path = "/v1/worker/connect";
    let first = ws_from(&server, a, path, None).await.expect("first");
    let _second = ws_from(&server, a, path, None).await.expect("second");
    let (status, body) = ws_from(&server, a, path, None).await.expect_err("refused");
    assert_eq!(
        (status, error_code(&body).as_str()),
        (429, "rate_limited"),
        "{body}"
    );
    assert!(
        body.contains("max_worker_connections_per_address"),
        "{body}"
    );
    // Another address has its own share, until the total is reached.
    let _third = ws_from(&server, b, path, None)
        .await
        .expect("another address");
    let (status, body) = ws_from(&server, b, path, None).await.expect_err("refused");
    assert_eq!(
        (status, error_code(&body).as_str()),
        (503, "unavailable"),
        "{body}"
    );
    assert!(body.contains("server.max_worker_connections"), "{body}");
    // A closed connection frees its slot.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match ws_from(&server, a, path, None).await {
            Ok(_) => break,
            Err(refused) => assert!(
                tokio::time::Instant::now() < deadline,
                "the slot was not freed: {refused:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric(&server, "gridx_shed_total{what=\"connection\"}").await >= 2);
}

#[tokio::test]
async fn event_streams_past_the_per_address_limit_get_429() {
    let server = TestServer::start_with(|c| c.max_event_streams_per_address = 1).await;
    let alice = server.add_user("alice", 1);
    let a = IpAddr::from([127, 0, 0, 1]);
    let _open = ws_from(&server, a, "/v1/events", Some(&alice))
        .await
        .expect("first stream");
    let (status, body) = ws_from(&server, a, "/v1/events", Some(&alice))
        .await
        .expect_err("refused");
    assert_eq!(
        (status, error_code(&body).as_str()),
        (429, "rate_limited"),
        "{body}"
    );
    assert!(body.contains("max_event_streams_per_address"), "{body}");
    // A wrong token is still a 401, checked first.
    let (status, _) = ws_from(&server, a, "/v1/events", Some("gxu_wrong"))
        .await
        .expect_err("refused");
    assert_eq!(status, 401);
}

/// Guessing worker tokens spends the same per-address budget as guessing API tokens;
/// once it is spent, the upgrade itself is refused, before any hello is read.
#[tokio::test]
async fn guessing_worker_tokens_gets_429_before_the_upgrade_and_other_addresses_are_served() {
    let server = TestServer::start().await;
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let guesser = IpAddr::from([127, 0, 0, 3]);
    let mut refused_upgrades = 0;
    for i in 0..40 {
        match ws_from(&server, guesser, "/v1/worker/connect", None).await {
            Ok(mut socket) => {
                let guess = format!("gxw_{i:064x}");
                send(&mut socket, &hello(&guess, 1, vec![])).await;
                let _ = socket.next().await;
            }
            Err((status, body)) => {
                assert_eq!(
                    (status, error_code(&body).as_str()),
                    (429, "rate_limited"),
                    "{body}"
                );
                refused_upgrades += 1;
            }
        }
    }
    assert!(
        refused_upgrades >= 15,
        "only {refused_upgrades} of 40 guesses were refused before the upgrade"
    );
    // The real worker on another address is not held back.
    let worker = FakeWorker::connect(&server, &token, 1).await;
    drop(worker);
}

#[tokio::test]
async fn a_running_list_longer_than_twice_the_slots_is_refused() {
    let server = TestServer::start().await;
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let fake = |n: u64| -> Vec<JobAttempt> {
        (1..=n)
            .map(|i| JobAttempt {
                job_id: JobId(i),
                attempt: 1,
            })
            .collect()
    };
    // In hello: more than twice the slots gets reject malformed.
    let mut socket = raw_socket(&server).await;
    send(&mut socket, &hello(&token, 2, fake(5))).await;
    match support::recv(&mut socket, 5).await {
        Some(gridx_proto::protocol::CoordinatorMessage::Reject { code, message }) => {
            assert_eq!(code, gridx_proto::protocol::RejectCode::Malformed);
            assert!(message.contains("running"), "{message}");
        }
        other => panic!("expected reject malformed, got {other:?}"),
    }
    // In a heartbeat: the session ends with 1007, naming the field.
    let mut worker = FakeWorker::connect(&server, &token, 2).await;
    worker.heartbeat(fake(5)).await;
    let (code, reason) = closed_with(&mut worker.socket)
        .await
        .expect("a close frame");
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("running"), "{reason}");
    // Twice the slots is the most: each unknown attempt gets one cancel.
    let mut worker = FakeWorker::connect(&server, &token, 2).await;
    worker.heartbeat(fake(4)).await;
    for _ in 0..4 {
        match worker.recv(5).await {
            Some(gridx_proto::protocol::CoordinatorMessage::Cancel { .. }) => {}
            other => panic!("expected a cancel, got {other:?}"),
        }
    }
}

/// A heartbeat storm: past the burst and the rate, heartbeats are dropped (counted,
/// not stored, not broadcast), the coordinator reads no faster than the rate allows,
/// and the session stays open.
#[tokio::test]
async fn heartbeats_past_the_rate_are_dropped_and_the_session_stays() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 1);
    let (worker_id, token) = server.add_worker("alice");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let started = tokio::time::Instant::now();
    for i in 0..200u32 {
        worker
            .send(WorkerMessage::Heartbeat {
                metrics: HostMetrics {
                    memory_used_mb: u64::from(i),
                    ..Default::default()
                },
                running: vec![],
                draining: false,
            })
            .await;
    }
    tokio::time::sleep_until(started + Duration::from_secs(2)).await;
    let dropped = metric(&server, "gridx_shed_total{what=\"heartbeat\"}").await;
    // heartbeat_s = 1: a burst of 10, then 4 a second pass, and each one past the
    // rate is dropped and pauses reading until the next would pass.
    assert!(
        (4..=20).contains(&dropped),
        "{dropped} heartbeats dropped in the first 2 s of a storm"
    );
    let (_, workers) = server.get_json(&alice, "/v1/workers").await;
    let me = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["worker_id"] == worker_id.0)
        .cloned()
        .unwrap();
    assert_eq!(me["status"], "online", "the storm closed the session: {me}");
    let stored = me["metrics"]["memory_used_mb"].as_u64().unwrap();
    assert!(
        (9..60).contains(&stored),
        "the coordinator kept up with the storm instead of holding it back: {me}"
    );
}
