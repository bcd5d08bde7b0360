//! Coordinators in failover, from the clients' side: the `server` setting lists every
//! coordinator (`URL,URL,…`), and the one-shot commands, the API client, the live
//! stream and the worker host reach whichever leads, past a standby (503, "this
//! coordinator is a standby") and an address nobody listens on. Against fake
//! coordinators on loopback ports: a standby, a leader, and a mute one that reads a
//! request and hangs up without an answer.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use futures_util::{SinkExt, StreamExt};
use gridx_proto::protocol::{CoordinatorMessage, WorkerMessage, decode_worker_message, encode};
use gridx_proto::{JobId, WorkerId};
use gridx_tui::client::live::{LiveEvent, follow};
use gridx_tui::client::{ApiClient, ClientError, Coordinators};
use gridx_tui::worker::host::{HostOptions, WorkerEvent, WorkerHost};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

const JOB: &str = include_str!("../../gridx-proto/tests/fixtures/job_view.json");

#[derive(Clone, Copy)]
enum Role {
    /// Answers everything 503, as a standby does.
    Standby,
    /// Answers `GET /v1/jobs/42` and `POST /v1/jobs` with job 42, welcomes workers
    /// and serves the event stream; with `drops`, it hangs up on a worker right after
    /// welcoming it (a leader that lost the leadership and exited).
    Leader { drops: bool },
    /// Reads a request and closes without answering: the answer is lost.
    Mute,
}

/// A fake coordinator: its address, its role (which may change: a standby takes
/// over), and the first line of every request it got.
struct Fake {
    url: String,
    role: Arc<Mutex<Role>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    async fn start(role: Role) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let role = Arc::new(Mutex::new(role));
        let (log, now) = (seen.clone(), role.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let role = *now.lock().unwrap();
                tokio::spawn(serve(stream, role, log.clone()));
            }
        });
        Fake { url, role, seen }
    }

    fn turn(&self, role: Role) {
        *self.role.lock().unwrap() = role;
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests' first lines contain `text`.
    fn count(&self, text: &str) -> usize {
        self.seen().iter().filter(|l| l.contains(text)).count()
    }
}

/// An address nobody listens on: bound, then released.
fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

async fn serve(mut stream: TcpStream, role: Role, seen: Arc<Mutex<Vec<String>>>) {
    let line = request_line(&stream).await;
    seen.lock().unwrap().push(line.clone());
    let upgrade = line.contains("/v1/worker/connect") || line.contains("/v1/events");
    match role {
        Role::Leader { drops } if upgrade => {
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            if line.contains("/v1/worker/connect") {
                welcome(&mut ws).await;
                if drops {
                    return;
                }
            }
            // Held open, its frames (heartbeats) read and dropped.
            while let Some(Ok(_)) = ws.next().await {}
        }
        Role::Leader { .. } => {
            read_request(&mut stream).await;
            let answer =
                if line.starts_with("GET /v1/jobs/42 ") || line.starts_with("POST /v1/jobs ") {
                    http("200 OK", JOB)
                } else {
                    http("404 Not Found", "")
                };
            let _ = stream.write_all(answer.as_bytes()).await;
        }
        Role::Standby => {
            read_request(&mut stream).await;
            let body = r#"{"error":{"code":"unavailable","message":"this coordinator is a standby; the leader is http://127.0.0.1:1"}}"#;
            let answer = http("503 Service Unavailable", body)
                .replace("\r\n\r\n", "\r\nRetry-After: 1\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
        }
        Role::Mute => read_request(&mut stream).await,
    }
}

fn http(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The request line, peeked (a WebSocket upgrade is then read by tungstenite).
async fn request_line(stream: &TcpStream) -> String {
    let mut buf = [0u8; 512];
    for _ in 0..500 {
        let n = stream.peek(&mut buf).await.unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        if let Some((line, _)) = text.split_once("\r\n") {
            return line.to_owned();
        }
        if n == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    String::new()
}

/// Reads one request: its headers and a Content-Length body.
async fn read_request(stream: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length = text[..end]
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            return;
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Reads the worker's hello and welcomes it.
async fn welcome(ws: &mut Ws) {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let hello = decode_worker_message(&text, usize::MAX).unwrap();
                assert!(matches!(hello, WorkerMessage::Hello { .. }), "{hello:?}");
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("no hello: {other:?}"),
        }
    }
    let welcome = CoordinatorMessage::Welcome {
        worker_id: WorkerId(1),
        heartbeat_s: 30,
        reads_refused: true,
        reads_output: true,
    };
    let text = encode(&welcome).unwrap();
    ws.send(Message::Text(text.into())).await.unwrap();
}

fn coordinators(urls: &[&str]) -> Coordinators {
    Coordinators::new(&urls.join(","), None, false).unwrap()
}

#[tokio::test]
async fn a_one_shot_command_reaches_the_leader_past_a_dead_address_and_a_standby() {
    let standby = Fake::start(Role::Standby).await;
    let leader = Fake::start(Role::Leader { drops: false }).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gridx.toml");
    std::fs::write(&config, "").unwrap();
    let servers = format!("{}, {} ,{}", dead_address(), standby.url, leader.url);
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridx-tui"))
        .env_clear()
        .env("HOME", dir.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("--config")
        .arg(&config)
        .args([
            "--server", &servers, "--token", "gxu_x", "--json", "job", "42",
        ])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the command ends in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(job["job_id"], 42, "{stdout}");
    assert_eq!(standby.seen(), ["GET /v1/jobs/42 HTTP/1.1"]);
    assert_eq!(leader.seen(), ["GET /v1/jobs/42 HTTP/1.1"]);
}

#[tokio::test]
async fn a_submit_goes_past_a_standby_and_the_leader_is_remembered() {
    let standby = Fake::start(Role::Standby).await;
    let leader = Fake::start(Role::Leader { drops: false }).await;
    let client = ApiClient::new(
        coordinators(&[&standby.url, &leader.url]),
        Some("gxu_x".into()),
    )
    .unwrap();
    assert_eq!(client.base_url(), standby.url, "the first address first");
    let request = serde_json::from_str(r#"{"language":"bash","code":"echo hi"}"#).unwrap();
    let job = client.submit(&request).await.unwrap();
    assert_eq!(job.job_id, JobId(42));
    assert_eq!(client.base_url(), leader.url, "the leader is remembered");
    // The next request, and a clone's, go to the leader straight away.
    client.job(JobId(42)).await.unwrap();
    client.clone().job(JobId(42)).await.unwrap();
    assert_eq!(standby.seen(), ["POST /v1/jobs HTTP/1.1"]);
    assert_eq!(leader.count("POST /v1/jobs "), 1, "submitted once");
    assert_eq!(leader.count("GET /v1/jobs/42 "), 2);
}

#[tokio::test]
async fn a_sent_cancel_is_not_resent_but_a_read_moves_on() {
    let mute = Fake::start(Role::Mute).await;
    let leader = Fake::start(Role::Leader { drops: false }).await;
    let client = ApiClient::new(
        coordinators(&[&mute.url, &leader.url]),
        Some("gxu_x".into()),
    )
    .unwrap();
    // The cancel reached the mute coordinator and its answer was lost: it may have
    // been applied, so it is not sent to the next one.
    match client.cancel(JobId(42)).await {
        Err(ClientError::Network { url, .. }) => assert_eq!(url, mute.url),
        other => panic!("expected the lost answer, got {other:?}"),
    }
    assert!(leader.seen().is_empty(), "{:?}", leader.seen());
    // A read may be sent again: on to the leader.
    assert_eq!(client.job(JobId(42)).await.unwrap().job_id, JobId(42));
    assert_eq!(mute.count("/v1/jobs/42"), 2, "{:?}", mute.seen());
    assert_eq!(leader.seen(), ["GET /v1/jobs/42 HTTP/1.1"]);
}

#[tokio::test]
async fn no_leader_names_every_coordinator_and_one_keeps_its_own_error() {
    let (a, b) = (
        Fake::start(Role::Standby).await,
        Fake::start(Role::Standby).await,
    );
    let dead = dead_address();
    let client =
        ApiClient::new(coordinators(&[&a.url, &dead, &b.url]), Some("gxu_x".into())).unwrap();
    let err = client.job(JobId(42)).await.unwrap_err();
    assert!(matches!(err, ClientError::NoLeader(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("no coordinator of 3 answered as the leader ("),
        "{text}"
    );
    for url in [&a.url, &dead, &b.url] {
        assert!(text.contains(url.as_str()), "{text}");
    }
    assert!(text.contains("this coordinator is a standby"), "{text}");
    // One address: the standby's answer as it is, as before.
    let one = ApiClient::new(coordinators(&[&a.url]), Some("gxu_x".into())).unwrap();
    match one.job(JobId(42)).await {
        Err(ClientError::Api {
            status: 503, code, ..
        }) => assert_eq!(code, "unavailable"),
        other => panic!("expected the standby's 503, got {other:?}"),
    }
}

#[tokio::test]
async fn waiting_rides_out_a_failover() {
    let (a, b) = (
        Fake::start(Role::Standby).await,
        Fake::start(Role::Standby).await,
    );
    let client = ApiClient::new(coordinators(&[&a.url, &b.url]), Some("gxu_x".into())).unwrap();
    let wait = tokio::spawn(async move { client.wait(JobId(42)).await });
    // Nobody leads for a while, then the second takes over.
    while b.count("GET /v1/jobs/42 ") < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.turn(Role::Leader { drops: false });
    let job = tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("the wait ends once a coordinator leads")
        .unwrap()
        .unwrap();
    assert_eq!(job.job_id, JobId(42));
}

#[tokio::test]
async fn the_live_stream_follows_the_leader() {
    let standby = Fake::start(Role::Standby).await;
    let leader = Fake::start(Role::Leader { drops: false }).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let following = tokio::spawn(follow(
        coordinators(&[&dead_address(), &standby.url, &leader.url]),
        "gxu_x".into(),
        tx,
        stop_rx,
    ));
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Some(LiveEvent::Connected { coordinator })) => {
            assert_eq!(coordinator.as_deref(), Some(leader.url.as_str()));
        }
        other => panic!("expected a connection to the leader, got {other:?}"),
    }
    assert_eq!(standby.seen(), ["GET /v1/events HTTP/1.1"]);
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), following)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_worker_moves_to_the_next_coordinator_when_its_leader_goes() {
    // The first leader hangs up after its welcome, as a deposed leader's process
    // exits; a standby and the new leader follow in the list.
    let old = Fake::start(Role::Leader { drops: true }).await;
    let standby = Fake::start(Role::Standby).await;
    let new = Fake::start(Role::Leader { drops: false }).await;
    let work_dir = tempfile::tempdir().unwrap();
    let options = HostOptions {
        coordinators: coordinators(&[&old.url, &standby.url, &new.url]),
        token: "gxw_x".into(),
        name: "failover".into(),
        slots: 1,
        work_dir: work_dir.path().to_owned(),
        grace: Duration::from_secs(1),
        max_backoff: Duration::from_secs(30),
        admission: gridx_tui::worker::admission::Settings {
            max_job_memory_mb: 512,
            memory_budget_mb: Some(1024),
            max_job_timeout_s: 60,
        },
        gpus: gridx_tui::worker::gpus::Loan::none(),
    };
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let executor = Arc::new(gridx_tui::worker::exec::noop::NoopExecutor);
    let mut host = WorkerHost::new(options, executor, events_tx);
    let first = host.authenticate().await.unwrap();
    assert_eq!(first.1.coordinator, 0);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let run = tokio::spawn(host.run(first, shutdown_rx));
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("the worker reports in time")
            .expect("the host runs");
        match event {
            WorkerEvent::Connected { coordinator, .. } => {
                seen.push(format!("connected {}", coordinator.unwrap_or_default()));
                if seen.len() > 1 {
                    break;
                }
            }
            WorkerEvent::Disconnected { retry_in, .. } => {
                seen.push(format!("disconnected, retry in {retry_in:?}"));
            }
            _ => {}
        }
    }
    // Lost, then at once the next coordinator, the standby, and the new leader: one
    // round, no pause (a pause would report a retry delay) and no return to the one
    // that went.
    assert_eq!(
        seen,
        [
            format!("connected {}", old.url),
            "disconnected, retry in None".to_owned(),
            format!("connected {}", new.url),
        ]
    );
    assert_eq!(old.count("/v1/worker/connect"), 1);
    assert_eq!(standby.count("/v1/worker/connect"), 1);
    assert_eq!(new.count("/v1/worker/connect"), 1);
    let _ = shutdown_tx.send(true);
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the host stops in time")
        .unwrap()
        .unwrap();
}
