//! One worker token and one client against every overload limit at once
//! (docs/operations.md, "What is limited"), against the real `gridx-server` binary:
//! oversized first frames, many sockets from one address, heartbeats at every bound
//! in a storm, fields out of bounds, thousands of made-up attempts, workers and event
//! subscribers that never read. The coordinator's RSS must stay bounded while a
//! well-behaved worker and user keep being served; their latency before and during
//! the flood is recorded in `target/gridx-e2e-figures.txt` (docs/reliability.md).
//!
//! Its own test binary, so that no other test shares the machine with the flood
//! (cargo runs test binaries one after another). The limits one by one are in
//! `gridx-server/tests/overload.rs`.

use futures_util::{SinkExt, StreamExt};
use gridx_e2e::Grid;
use gridx_e2e::fake_worker::{Got, Ws, heartbeat, heartbeat_holding, next, send_json};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------------
// Helpers: raw HTTP (the worker's frames are the harness's `fake_worker`).
// ---------------------------------------------------------------------------------

/// The longest a GET of the well-behaved user may take during the flood.
const MAX_STALL: Duration = Duration::from_secs(3);

async fn finish_job(ws: &mut Ws, job_id: u64, attempt: u64, stdout: &str) {
    send_json(
        ws,
        &json!({"type": "started", "job_id": job_id, "attempt": attempt}),
    )
    .await;
    send_json(
        ws,
        &json!({"type": "finished", "job_id": job_id, "attempt": attempt,
                "outcome": {"end": "exited", "exit_code": 0, "stdout": stdout,
                            "stderr": "", "duration_ms": 1}}),
    )
    .await;
}

/// Registers a worker; returns its token.
fn add_worker(grid: &Grid, owner: &str, name: &str) -> String {
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
    v["token"].as_str().expect("token").to_owned()
}

/// The status and body of a raw HTTP/1.1 response head (a 101 has no body).
struct RawResponse {
    status: u16,
}

async fn read_response(stream: &mut (impl AsyncRead + Unpin), secs: u64) -> Option<RawResponse> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(RawResponse { status })
}

// ---------------------------------------------------------------------------------
// The flood
// ---------------------------------------------------------------------------------

/// The coordinator's resident memory (`VmRSS`) may not pass this during the flood.
const MAX_RSS_MIB: f64 = 200.0;
/// How long the flood lasts: past the send timeout (10 s), so that peers that do not
/// read are dropped within it.
const FLOOD: Duration = Duration::from_secs(20);

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// A TCP connection to the coordinator on `port` from the loopback address
/// 127.0.0.`last` (each attacker has its own, as it would have its own host); with a
/// small receive buffer for the ones that never read, so they stop taking bytes soon.
async fn tcp_from(port: u16, last: u8, small_receive_buffer: bool) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, last], 0)))?;
    if small_receive_buffer {
        socket.set_recv_buffer_size(4096)?;
    }
    socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
}

/// A WebSocket to `path` from 127.0.0.`last`; `Err` holds the refused upgrade's
/// status and body (status 0: the connection failed).
async fn ws_from(
    port: u16,
    last: u8,
    path: &str,
    token: Option<&str>,
    small_receive_buffer: bool,
) -> Result<Ws, (u16, String)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let stream = tcp_from(port, last, small_receive_buffer)
        .await
        .map_err(|e| (0, e.to_string()))?;
    let mut request = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .expect("request");
    if let Some(token) = token {
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
    }
    match tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err((
            response.status().as_u16(),
            response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        )),
        Err(e) => Err((0, e.to_string())),
    }
}

/// Counts of what the attacks met, by kind. A kind that starts with "UNEXPECTED"
/// fails the test.
#[derive(Clone, Default)]
struct Tally(Arc<std::sync::Mutex<std::collections::BTreeMap<String, u32>>>);

impl Tally {
    fn add(&self, kind: impl Into<String>) {
        if let Ok(mut map) = self.0.lock() {
            *map.entry(kind.into()).or_default() += 1;
        }
    }

    fn get(&self, kind: &str) -> u32 {
        self.snapshot().get(kind).copied().unwrap_or(0)
    }

    fn snapshot(&self) -> std::collections::BTreeMap<String, u32> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// A hello; the attackers' workers offer no language the users' bash jobs need.
fn hostile_hello(token: &str, slots: u32, languages: &[&str], running: Value) -> Value {
    json!({
        "type": "hello", "protocol": 1, "token": token, "name": "w",
        "capabilities": {"languages": languages, "slots": slots, "executor": "docker",
                         "cpu_cores": 1, "memory_mb": 1024, "gpus": 0},
        "running": running
    })
}

fn fake_attempts(first: u64, n: u64) -> Value {
    json!(
        (first..first + n)
            .map(|id| json!({"job_id": id, "attempt": 1}))
            .collect::<Vec<_>>()
    )
}

/// A heartbeat with every field at its bound (about 200 KB): the largest a worker may
/// send, and what each worker event about it then carries to every subscriber.
fn heartbeat_at_every_bound() -> Value {
    let gpus: Vec<Value> = (0..256)
        .map(|i| {
            json!({"index": i, "name": "G".repeat(256), "utilization_percent": 100,
                   "memory_used_mb": 1u64 << 30, "memory_total_mb": 1u64 << 30,
                   "temperature_c": 200, "power_w": 100000.0, "power_limit_w": 100000.0})
        })
        .collect();
    json!({"type": "heartbeat", "running": [],
           "metrics": {"cpu_percent": 100.0, "cpu_per_core": vec![99.99; 16384],
                       "memory_used_mb": 1u64 << 30, "memory_total_mb": 1u64 << 30,
                       "gpus": gpus, "gpu_note": "n".repeat(1024)}})
}

/// Frames that each break one bound, sent after a valid hello of one slot.
fn frames_out_of_bounds() -> Vec<(&'static str, Value)> {
    let mut frames = Vec::new();
    let mut beat = heartbeat();
    beat["metrics"]["cpu_per_core"] = json!(vec![1.0; 16385]);
    frames.push(("cpu_per_core", beat));
    let mut beat = heartbeat();
    beat["metrics"]["gpus"] = json!(vec![json!({"index": 0, "name": "g"}); 257]);
    frames.push(("gpus", beat));
    let mut beat = heartbeat();
    beat["metrics"]["gpu_note"] = json!("n".repeat(1025));
    frames.push(("gpu_note", beat));
    let mut beat = heartbeat();
    beat["metrics"]["gpus"] = json!([{"index": 0, "name": "g".repeat(257)}]);
    frames.push(("name", beat));
    frames.push(("running", heartbeat_holding(&[(1, 1), (2, 1), (3, 1)])));
    frames.push((
        "message",
        json!({"type": "finished", "job_id": 1, "attempt": 1,
               "outcome": {"end": "sandbox_error", "stdout": "", "stderr": "",
                           "duration_ms": 1, "message": "m".repeat(16385)}}),
    ));
    frames
}

/// Reads until the connection ends; returns the close status, if a close came.
async fn close_status(ws: &mut Ws, secs: u64) -> Option<u16> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
        }
    }
}

/// Connects as a worker from 127.0.0.`last` and completes the handshake.
async fn hostile_worker(port: u16, last: u8, hello: &Value, deaf: bool) -> Result<Ws, String> {
    let mut ws = ws_from(port, last, "/v1/worker/connect", None, deaf)
        .await
        .map_err(|e| format!("upgrade refused: {e:?}"))?;
    send_json(&mut ws, hello).await;
    match next(&mut ws, 5.0).await {
        Got::Json(v) if v["type"] == "welcome" => Ok(ws),
        other => Err(format!("no welcome: {other:?}")),
    }
}

/// Every attack, each in its own task until `stop`. Addresses: 127.0.0.2 oversized
/// first frames, .3 idle worker sockets, .4 the hostile workers, .5 event streams.
fn start_attacks(
    port: u16,
    stop: &Arc<AtomicBool>,
    tally: &Tally,
    tokens: &Hostile,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let spawn =
        |tasks: &mut Vec<_>, f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
            tasks.push(tokio::spawn(f));
        };

    // Oversized first frames: a header announcing 16 MiB, then zeros for as long as
    // the coordinator reads. It must stop at 64 KiB and answer `reject malformed`,
    // close 1009.
    for _ in 0..2 {
        let (stop, tally) = (stop.clone(), tally.clone());
        spawn(
            &mut tasks,
            Box::pin(async move {
                while !stop.load(Ordering::SeqCst) {
                    tally.add(oversized_first_frame(port).await);
                }
            }),
        );
    }

    // Idle worker sockets that never send a hello, and event streams never read.
    for (path, last, token) in [
        ("/v1/worker/connect", 3, None),
        ("/v1/events", 5, Some(tokens.mallory.clone())),
    ] {
        let (stop, tally) = (stop.clone(), tally.clone());
        spawn(
            &mut tasks,
            Box::pin(async move {
                let mut held = std::collections::VecDeque::new();
                while !stop.load(Ordering::SeqCst) {
                    match ws_from(port, last, path, token.as_deref(), true).await {
                        Ok(ws) => {
                            tally.add(format!("{path} from one address: opened"));
                            held.push_back(ws);
                            if held.len() > 64 {
                                held.pop_front();
                            }
                        }
                        Err((429, body)) if body.contains("per_address") => {
                            tally.add(format!("{path} from one address: 429"));
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(other) => tally.add(format!("UNEXPECTED {path}: {other:?}")),
                    }
                }
            }),
        );
    }

    // A heartbeat storm of frames at every bound, reading what comes back.
    {
        let (stop, tally, token) = (stop.clone(), tally.clone(), tokens.storm.clone());
        spawn(
            &mut tasks,
            Box::pin(async move {
                let beat = heartbeat_at_every_bound().to_string();
                while !stop.load(Ordering::SeqCst) {
                    let ws = match hostile_worker(
                        port,
                        4,
                        &hostile_hello(&token, 1, &[], json!([])),
                        false,
                    )
                    .await
                    {
                        Ok(ws) => ws,
                        Err(e) => {
                            tally.add(format!("UNEXPECTED storm: {e}"));
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    };
                    let (mut sink, mut stream) = ws.split();
                    let reader =
                        tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
                    while !stop.load(Ordering::SeqCst) {
                        if sink.send(Message::Text(beat.clone().into())).await.is_err() {
                            tally.add("UNEXPECTED storm: the session ended");
                            break;
                        }
                        tally.add("storm: heartbeats sent");
                    }
                    reader.abort();
                }
            }),
        );
    }

    // Fields out of bounds, one per session (each must end with 1007), and hellos
    // listing thousands of made-up attempts (each must get `reject malformed`).
    {
        let (stop, tally, token) = (stop.clone(), tally.clone(), tokens.fields.clone());
        spawn(
            &mut tasks,
            Box::pin(async move {
                let frames = frames_out_of_bounds();
                let mut round = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    round += 1;
                    let (field, frame) = &frames[round % frames.len()];
                    match hostile_worker(port, 4, &hostile_hello(&token, 1, &[], json!([])), false)
                        .await
                    {
                        Ok(mut ws) => {
                            send_json(&mut ws, frame).await;
                            match close_status(&mut ws, 5).await {
                                Some(1007) => tally.add("fields out of bounds: closed 1007"),
                                other => tally
                                    .add(format!("UNEXPECTED {field} out of bounds: {other:?}")),
                            }
                        }
                        Err(e) => tally.add(format!("UNEXPECTED fields: {e}")),
                    }
                    let Ok(mut ws) = ws_from(port, 4, "/v1/worker/connect", None, false).await
                    else {
                        tally.add("UNEXPECTED fields: upgrade refused");
                        continue;
                    };
                    let liar = hostile_hello(&token, 1024, &[], fake_attempts(1_000_000, 5000));
                    send_json(&mut ws, &liar).await;
                    match next(&mut ws, 5.0).await {
                        Got::Json(v) if v["type"] == "reject" && v["code"] == "malformed" => {
                            tally.add("hello with 5000 made-up attempts: reject malformed");
                        }
                        other => tally.add(format!("UNEXPECTED 5000 attempts: {other:?}")),
                    }
                }
            }),
        );
    }

    // A worker that never reads, claiming its slots' worth of made-up attempts in
    // every heartbeat (each new one earns a cancel it never reads).
    {
        let (stop, tally, token) = (stop.clone(), tally.clone(), tokens.liar.clone());
        spawn(
            &mut tasks,
            Box::pin(async move {
                let mut next_id = 2_000_000u64;
                while !stop.load(Ordering::SeqCst) {
                    let hello = hostile_hello(&token, 1024, &[], fake_attempts(next_id, 1024));
                    let mut ws = match hostile_worker(port, 4, &hello, true).await {
                        Ok(ws) => ws,
                        Err(e) => {
                            tally.add(format!("UNEXPECTED liar: {e}"));
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    };
                    let started = Instant::now();
                    while !stop.load(Ordering::SeqCst) {
                        next_id += 1024;
                        let beat = json!({"type": "heartbeat", "running": fake_attempts(next_id, 1024),
                                      "metrics": {"cpu_percent": 1.0, "memory_used_mb": 1,
                                                  "memory_total_mb": 2}});
                        let sent = tokio::time::timeout(
                            Duration::from_secs(30),
                            ws.send(Message::Text(beat.to_string().into())),
                        )
                        .await;
                        if !matches!(sent, Ok(Ok(()))) {
                            tally.add(format!(
                                "deaf liar dropped after {} s",
                                started.elapsed().as_secs()
                            ));
                            break;
                        }
                    }
                }
            }),
        );
    }

    // A worker that never reads the jobs it is assigned (big ones, from mallory).
    {
        let (stop, tally, token) = (stop.clone(), tally.clone(), tokens.deaf.clone());
        spawn(
            &mut tasks,
            Box::pin(async move {
                while !stop.load(Ordering::SeqCst) {
                    let hello = hostile_hello(&token, 64, &["node"], json!([]));
                    let mut ws = match hostile_worker(port, 4, &hello, true).await {
                        Ok(ws) => ws,
                        Err(e) => {
                            // Its previous session may still hold the token for a moment.
                            tally.add(format!("deaf: {}", e.split(':').next().unwrap_or_default()));
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                    };
                    let started = Instant::now();
                    while !stop.load(Ordering::SeqCst) {
                        let sent = tokio::time::timeout(
                            Duration::from_secs(30),
                            ws.send(Message::Text(heartbeat().to_string().into())),
                        )
                        .await;
                        if !matches!(sent, Ok(Ok(()))) {
                            tally.add(format!(
                                "deaf worker dropped after {} s",
                                started.elapsed().as_secs()
                            ));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }),
        );
    }
    tasks
}

/// One oversized first frame on a raw connection; says how it was answered.
async fn oversized_first_frame(port: u16) -> String {
    let Ok(stream) = tcp_from(port, 2, false).await else {
        return "UNEXPECTED oversized first frame: no connection".into();
    };
    let (mut reader, mut writer) = stream.into_split();
    let upgrade = b"GET /v1/worker/connect HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    if writer.write_all(upgrade).await.is_err() {
        return "UNEXPECTED oversized first frame: upgrade not sent".into();
    }
    let Some(head) = read_response(&mut reader, 5).await else {
        return "UNEXPECTED oversized first frame: no upgrade answer".into();
    };
    if head.status == 429 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        return "oversized first frame: 429 before the upgrade".into();
    }
    if head.status != 101 {
        return format!("UNEXPECTED oversized first frame: {}", head.status);
    }
    // FIN + text, masked, 64-bit length of 16 MiB, mask 0.
    let mut header = vec![0x81u8, 0xff];
    header.extend_from_slice(&(16u64 << 20).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    let sender = tokio::spawn(async move {
        let chunk = vec![b' '; 64 * 1024];
        if writer.write_all(&header).await.is_err() {
            return;
        }
        for _ in 0..256 {
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut answer: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(8);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    sender.abort();
    let text = String::from_utf8_lossy(&answer);
    // The reject (a text frame), then a close frame whose status is 1009 (0x03f1).
    let close_1009 = answer
        .windows(4)
        .any(|w| w[0] == 0x88 && w[2..4] == [0x03, 0xf1]);
    if text.contains("\"malformed\"") && close_1009 {
        "oversized first frame: reject malformed, close 1009".into()
    } else {
        format!("UNEXPECTED oversized first frame answered {text:?}")
    }
}

struct Hostile {
    mallory: String,
    storm: String,
    fields: String,
    liar: String,
    deaf: String,
}

/// The well-behaved worker: takes every bash job, reports it at once, heartbeats
/// every second; returns how many jobs it ran, or what went wrong.
async fn good_worker(mut ws: Ws, stop: Arc<AtomicBool>) -> Result<u32, String> {
    let mut ran = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // As the reference worker does: a late tick does not burst, and a frame that is
    // waiting is handled before the next heartbeat (which would not list its job).
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            biased;
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                    match v["type"].as_str() {
                        Some("assign") => {
                            let (id, attempt) = (v["job"]["job_id"].as_u64().unwrap_or(0), v["attempt"].as_u64().unwrap_or(0));
                            finish_job(&mut ws, id, attempt, "ok\n").await;
                            ran += 1;
                        }
                        Some("cancel") => {}
                        _ => return Err(format!("the good worker got {v}")),
                    }
                }
                Some(Ok(Message::Close(f))) => return Err(format!("the good worker was closed: {f:?}")),
                None | Some(Err(_)) => return Err("the good worker's connection ended".into()),
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => send_json(&mut ws, &heartbeat()).await,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    Ok(ran)
}

/// Latencies the well-behaved user saw.
#[derive(Default)]
struct Latencies {
    finish: Vec<Duration>,
    get: Vec<Duration>,
    errors: Vec<String>,
}

impl Latencies {
    /// "p50/p95/max ms" of a sample.
    fn summary(samples: &[Duration]) -> String {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| {
            ms.get(((ms.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        format!("{:.0}/{:.0}/{:.0} ms", at(0.5), at(0.95), at(1.0))
    }
}

/// What the well-behaved user's own event stream said: a job that succeeded, or that
/// the stream ended (it is read all the time, as a dashboard reads it).
enum Heard {
    Succeeded(u64),
    Ended(String),
}

/// Reads the user's event stream until it ends, passing on what [`measure`] needs.
fn follow_events(
    mut events: Ws,
    tx: tokio::sync::mpsc::UnboundedSender<Heard>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let heard = match events.next().await {
                // Worker events carry large views in this test: only job events and
                // `lagged` are parsed.
                Some(Ok(Message::Text(text))) if text.starts_with("{\"type\":\"job\"") => {
                    let v: Value = serde_json::from_str(&text).unwrap_or_default();
                    if v["job"]["status"] != "succeeded" {
                        continue;
                    }
                    Heard::Succeeded(v["job"]["job_id"].as_u64().unwrap_or(0))
                }
                Some(Ok(Message::Text(text))) if text.starts_with("{\"type\":\"lagged\"") => {
                    Heard::Ended(format!("the user's own event stream lagged: {text}"))
                }
                Some(Ok(_)) => continue,
                other => Heard::Ended(format!("the user's event stream ended: {other:?}")),
            };
            let ended = matches!(heard, Heard::Ended(_));
            if tx.send(heard).is_err() || ended {
                return;
            }
        }
    })
}

/// The well-behaved user: `rounds` times, one GET round trip (`/v1/balance`) and one
/// job from submit until its `succeeded` event arrives on its own event stream.
async fn measure(
    http: &reqwest::Client,
    port: u16,
    token: &str,
    heard: &mut tokio::sync::mpsc::UnboundedReceiver<Heard>,
    rounds: u32,
    pace: Duration,
) -> Latencies {
    let url = format!("http://127.0.0.1:{port}");
    let mut seen = Latencies::default();
    for round in 0..rounds {
        let started = Instant::now();
        match http
            .get(format!("{url}/v1/balance"))
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => seen.get.push(started.elapsed()),
            Ok(r) => seen.errors.push(format!("GET: {}", r.status())),
            Err(e) => seen.errors.push(format!("GET: {e}")),
        }
        let started = Instant::now();
        let submitted = http
            .post(format!("{url}/v1/jobs"))
            .bearer_auth(token)
            .json(&json!({"language": "bash", "code": format!("echo {round}")}))
            .send()
            .await;
        let id = match submitted {
            Ok(r) if r.status() == 201 => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["job_id"].as_u64()),
            Ok(r) => {
                seen.errors.push(format!("submit: {}", r.status()));
                None
            }
            Err(e) => {
                seen.errors.push(format!("submit: {e}"));
                None
            }
        };
        if let Some(id) = id {
            let deadline = started + Duration::from_secs(10);
            loop {
                match tokio::time::timeout_at(deadline, heard.recv()).await {
                    Ok(Some(Heard::Succeeded(done))) if done == id => {
                        seen.finish.push(started.elapsed());
                        break;
                    }
                    Ok(Some(Heard::Succeeded(_))) => {}
                    Ok(Some(Heard::Ended(why))) => {
                        seen.errors.push(why);
                        return seen;
                    }
                    Ok(None) | Err(_) => {
                        seen.errors
                            .push(format!("job {id}: no succeeded event within 10 s"));
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(pace).await;
    }
    seen
}

async fn metric_value(http: &reqwest::Client, port: u16, line_start: &str) -> u64 {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0)
}

/// docs/operations.md, "What is limited", all at once: oversized first frames, idle
/// sockets from one address, heartbeats at every bound in a storm, fields out of
/// bounds, thousands of made-up attempts, workers that never read, event streams
/// never read. The coordinator's memory stays under [`MAX_RSS_MIB`], and a
/// well-behaved worker and user keep being served; their latency is measured before
/// and during the flood and recorded in `target/gridx-e2e-figures.txt`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_token_and_one_client_cannot_exhaust_the_coordinator() {
    let grid = Grid::start().await;
    let port = grid.port;
    let pid = grid.server_pid().expect("the coordinator's pid");
    if let Err(e) = tcp_from(port, 2, false).await {
        gridx_e2e::skip::skip("loopback addresses other than 127.0.0.1 (127.0.0.2-5)", e);
        return;
    }
    let alice = grid.user("alice", "1000");
    let mallory = grid.user("mallory", "1000");
    let good_token = add_worker(&grid, "alice", "good");
    let hostile = Hostile {
        mallory: mallory.clone(),
        storm: add_worker(&grid, "mallory", "storm"),
        fields: add_worker(&grid, "mallory", "fields"),
        liar: add_worker(&grid, "mallory", "liar"),
        deaf: add_worker(&grid, "mallory", "deaf"),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let stop_good = Arc::new(AtomicBool::new(false));
    let good = hostile_worker(
        port,
        1,
        &hostile_hello(&good_token, 1, &["bash"], json!([])),
        false,
    )
    .await
    .expect("the good worker's welcome");
    let good = tokio::spawn(good_worker(good, stop_good.clone()));
    let (events, _) = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://127.0.0.1:{port}/v1/events")
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {alice}").parse().expect("header"),
        );
        tokio_tungstenite::connect_async(request)
            .await
            .expect("alice's events")
    };
    let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let follower = follow_events(events, heard_tx);

    // Before: the well-behaved user alone.
    let before = measure(
        &http,
        port,
        &alice,
        &mut heard,
        20,
        Duration::from_millis(100),
    )
    .await;
    let idle_rss = rss_mib(pid).expect("VmRSS of gridx-server");

    // The flood, with the coordinator's RSS sampled every 100 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Tally::default();
    let peak = Arc::new(std::sync::Mutex::new(idle_rss));
    let sampler = tokio::spawn({
        let (stop, peak) = (stop.clone(), peak.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                if let (Some(rss), Ok(mut peak)) = (rss_mib(pid), peak.lock()) {
                    *peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let flood_started = Instant::now();
    let attacks = start_attacks(port, &stop, &tally, &hostile);
    // Mallory's big node jobs, which only the deaf worker takes (and never reads).
    let big_jobs = tokio::spawn({
        let (http, mallory) = (http.clone(), mallory.clone());
        async move {
            for i in 0..50 {
                let code = format!("// {i}\n{}", "x".repeat(200 * 1024));
                let response = http
                    .post(format!("http://127.0.0.1:{port}/v1/jobs"))
                    .bearer_auth(&mallory)
                    .json(&json!({"language": "node", "code": code}))
                    .send()
                    .await;
                if !response.is_ok_and(|r| r.status() == 201) {
                    return Err(format!("mallory's big job {i} was refused"));
                }
            }
            Ok(())
        }
    });
    let during = measure(
        &http,
        port,
        &alice,
        &mut heard,
        40,
        Duration::from_millis(400),
    )
    .await;
    tokio::time::sleep_until(flood_started + FLOOD).await;
    let shed = |what: &'static str| {
        let http = http.clone();
        async move { metric_value(&http, port, &format!("gridx_shed_total{{what=\"{what}\"}}")).await }
    };
    let (heartbeats, connections, outbox, send_timeout, lagged) = (
        shed("heartbeat").await,
        shed("connection").await,
        shed("outbox").await,
        shed("send_timeout").await,
        shed("lagged").await,
    );
    stop.store(true, Ordering::SeqCst);
    for task in attacks {
        task.abort();
    }
    sampler.await.expect("sampler");
    let peak_rss = peak.lock().map(|p| *p).unwrap_or(f64::MAX);
    stop_good.store(true, Ordering::SeqCst);
    let ran = good.await.expect("good worker task");
    follower.abort();
    big_jobs
        .await
        .expect("mallory's submits")
        .expect("mallory's big jobs");

    let seen = tally.snapshot();
    let figures = format!(
        "FIGURES exhaustion (2 s idle, then {} s of flood): coordinator RSS {idle_rss:.1} MiB before, \
         peak {peak_rss:.1} MiB during (bound {MAX_RSS_MIB:.0}); user submit->finish p50/p95/max \
         {} before, {} during; GET /v1/balance {} before, {} during; shed: {heartbeats} heartbeats, \
         {connections} connections, {outbox} outboxes, {send_timeout} send timeouts, {lagged} lagged \
         subscribers; attacks: {seen:?}",
        FLOOD.as_secs(),
        Latencies::summary(&before.finish),
        Latencies::summary(&during.finish),
        Latencies::summary(&before.get),
        Latencies::summary(&during.get),
    );
    gridx_e2e::record_figures(&figures);
    let log = std::fs::read_to_string(grid.dir.path().join("server.log")).unwrap_or_default();
    let last: Vec<&str> = log.lines().rev().take(40).collect();
    let context = format!(
        "{figures}\n--- the last lines of gridx-server's log (warnings) ---\n{}",
        last.into_iter().rev().collect::<Vec<_>>().join("\n")
    );

    // Memory stayed bounded.
    assert!(
        peak_rss < MAX_RSS_MIB,
        "coordinator RSS reached {peak_rss:.1} MiB: {context}"
    );
    // The well-behaved worker and user were served throughout.
    assert!(before.errors.is_empty(), "{:?}: {context}", before.errors);
    assert!(
        during.errors.is_empty(),
        "the user during the flood: {:?}: {context}",
        during.errors
    );
    // Every job of the user ran; one may run twice when, under load, two heartbeats
    // crossed its `assign` and it was requeued (docs/protocol.md §3).
    assert!(
        ran.as_ref().is_ok_and(|n| *n >= 60),
        "the good worker: {ran:?}: {context}"
    );
    for (what, samples, bound) in [
        ("submit->finish", &during.finish, Duration::from_secs(5)),
        ("GET", &during.get, MAX_STALL),
    ] {
        let slowest = samples.iter().max().copied().unwrap_or_default();
        assert!(
            slowest <= bound,
            "{what} took {slowest:?} during the flood: {context}"
        );
    }
    // Every attack met its limit, and nothing else.
    let unexpected: Vec<_> = seen
        .keys()
        .filter(|k| k.starts_with("UNEXPECTED"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}: {context}");
    for kind in [
        "oversized first frame: reject malformed, close 1009",
        "/v1/worker/connect from one address: 429",
        "/v1/events from one address: 429",
        "fields out of bounds: closed 1007",
        "hello with 5000 made-up attempts: reject malformed",
    ] {
        assert!(tally.get(kind) > 0, "never seen: {kind}: {context}");
    }
    assert!(
        heartbeats > 0,
        "no heartbeat of the storm was dropped: {context}"
    );
    // The worker that never reads its big assignments fills any socket buffer, so it
    // is dropped by the send timeout if not before. (The liar's cancels are small:
    // it is dropped when its outbox overflows, which its first burst of heartbeats
    // usually does, or once the kernel's buffers for it are full.)
    assert!(
        seen.keys().any(|k| k.starts_with("deaf worker dropped")) && outbox + send_timeout > 0,
        "the worker that never reads was not dropped: {context}"
    );
    assert!(
        lagged + send_timeout > 0,
        "no event stream was dropped: {context}"
    );
    grid.assert_ledger_verifies();
}
