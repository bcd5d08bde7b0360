//! A hand-driven worker's side of the protocol, for the suites that play a hostile or
//! scripted worker frame by frame (`hostile_clients`, `exhaustion`).

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// What came next on a WebSocket. The payloads are read through `Debug`, in the
/// panic messages.
#[derive(Debug)]
#[allow(dead_code)]
pub enum Got {
    Json(Value),
    Text(String),
    Close(Option<(u16, String)>),
    Ended(String),
    Silent,
}

/// The next text frame (parsed when it is JSON), the close, the end, or `Silent` after
/// `secs`; pings, pongs and binary frames are skipped.
pub async fn next(ws: &mut Ws, secs: f64) -> Got {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Got::Silent,
            Ok(None) => return Got::Ended("end of stream".into()),
            Ok(Some(Err(e))) => return Got::Ended(e.to_string()),
            Ok(Some(Ok(Message::Text(text)))) => {
                return match serde_json::from_str(&text) {
                    Ok(v) => Got::Json(v),
                    Err(_) => Got::Text(text.to_string()),
                };
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Got::Close(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

pub async fn send_json(ws: &mut Ws, value: &Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .expect("send a frame");
}

pub fn heartbeat() -> Value {
    heartbeat_holding(&[])
}

/// A heartbeat listing the attempts `(job_id, attempt)` the worker holds: a worker must
/// list them, or the coordinator loses them after two heartbeats (docs/protocol.md §3).
pub fn heartbeat_holding(held: &[(u64, u64)]) -> Value {
    let running: Vec<Value> = held
        .iter()
        .map(|(job_id, attempt)| json!({"job_id": job_id, "attempt": attempt}))
        .collect();
    json!({"type": "heartbeat",
           "metrics": {"cpu_percent": 1.0, "memory_used_mb": 1, "memory_total_mb": 1024},
           "running": running})
}
