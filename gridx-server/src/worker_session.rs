//! One worker's WebSocket session: the handshake (hello within the timeout, token,
//! protocol version), then frames both ways until either side closes. Every decision
//! about jobs is the queue's; the session only translates.

use crate::app::AppState;
use crate::queue::{HelloRequest, Outbound, QueueError};
use crate::store::users;
use crate::tokens;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use gridx_proto::PROTOCOL_VERSION;
use gridx_proto::protocol::{
    CoordinatorMessage, RejectCode, WorkerMessage, decode_worker_message, encode,
};
use std::time::Duration;
use tokio::sync::mpsc;

/// Most slots a worker may claim; more is a typo or a lie.
const MAX_SLOTS: u32 = 1024;

pub async fn connect(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    let max = state.config.max_ws_frame_bytes;
    // Small buffers: tungstenite reads into 128 KiB per connection by default, which
    // is 1.3 GB for 10,000 idle workers; frames larger than the buffer still work.
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| session(socket, state))
}

async fn send(socket: &mut WebSocket, message: &CoordinatorMessage) -> bool {
    match encode(message) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "could not encode a coordinator message");
            false
        }
    }
}

async fn reject(mut socket: WebSocket, code: RejectCode, message: String) {
    tracing::info!(%code, %message, "worker connection rejected");
    let _ = send(&mut socket, &CoordinatorMessage::Reject { code, message }).await;
    let _ = socket.send(Message::Close(None)).await;
}

async fn session(mut socket: WebSocket, state: AppState) {
    let config = state.config.clone();
    let max = config.max_ws_frame_bytes;
    let hello_timeout = Duration::from_secs(u64::from(config.hello_timeout_s));

    // 1. The first frame must be a hello, in time.
    let first = match tokio::time::timeout(hello_timeout, socket.recv()).await {
        Err(_) => {
            return reject(
                socket,
                RejectCode::HelloTimeout,
                format!("no hello within {} s", config.hello_timeout_s),
            )
            .await;
        }
        Ok(None) => return,
        // Too large, or not a WebSocket frame at all: say why before closing (the
        // socket may be unusable; then the close is all the peer gets).
        Ok(Some(Err(e))) => {
            return reject(
                socket,
                RejectCode::Malformed,
                format!("the first frame could not be read: {e}"),
            )
            .await;
        }
        Ok(Some(Ok(message))) => message,
    };
    let text = match first {
        Message::Text(text) => text,
        _ => {
            return reject(
                socket,
                RejectCode::Malformed,
                "the first frame must be a JSON hello".into(),
            )
            .await;
        }
    };
    let (protocol, token, name, capabilities, running) = match decode_worker_message(&text, max) {
        Ok(WorkerMessage::Hello {
            protocol,
            token,
            name,
            capabilities,
            running,
        }) => (protocol, token, name, capabilities, running),
        Ok(_) => {
            return reject(
                socket,
                RejectCode::Malformed,
                "the first frame must be a hello".into(),
            )
            .await;
        }
        Err(e) => return reject(socket, RejectCode::Malformed, e.to_string()).await,
    };
    if protocol != PROTOCOL_VERSION {
        return reject(
            socket,
            RejectCode::ProtocolMismatch,
            format!("this coordinator speaks protocol {PROTOCOL_VERSION}, the worker {protocol}"),
        )
        .await;
    }
    if capabilities.slots == 0 || capabilities.slots > MAX_SLOTS {
        return reject(
            socket,
            RejectCode::Malformed,
            format!("slots must be between 1 and {MAX_SLOTS}"),
        )
        .await;
    }

    // 2. The token.
    let record = if token.starts_with(tokens::WORKER_PREFIX) && token.len() <= 256 {
        let token = token.clone();
        match state
            .reader
            .read(move |conn| users::worker_by_token(conn, &token))
            .await
        {
            Ok(record) => record,
            Err(e) => {
                tracing::error!(error = %e, "could not check a worker token");
                return reject(
                    socket,
                    RejectCode::ShuttingDown,
                    "the coordinator's store is unavailable".into(),
                )
                .await;
            }
        }
    } else {
        None
    };
    let Some(record) = record else {
        let message = if token.starts_with(tokens::USER_PREFIX) {
            "this is a user API token; a worker needs a worker token from `gridx-server worker add`"
        } else {
            "unknown worker token"
        };
        return reject(socket, RejectCode::BadToken, message.into()).await;
    };
    if record.revoked {
        return reject(
            socket,
            RejectCode::Revoked,
            "this worker's token was revoked".into(),
        )
        .await;
    }
    let label = gridx_proto::UserName::new(&name).map_or(record.name.clone(), |n| n.to_string());

    // 3. Register with the queue, then welcome.
    let session_id = state.new_session_id();
    let (outbox, mut inbox) = mpsc::unbounded_channel();
    let worker_id = record.id;
    let heartbeat_s = match state
        .queue
        .hello(HelloRequest {
            worker_id,
            name: label.clone(),
            owner: record.owner.clone(),
            capabilities,
            running,
            session_id,
            outbox,
        })
        .await
    {
        Ok(heartbeat_s) => heartbeat_s,
        Err(QueueError::Rejected(code, message)) => return reject(socket, code, message).await,
        Err(e) => return reject(socket, RejectCode::ShuttingDown, e.to_string()).await,
    };
    if !send(
        &mut socket,
        &CoordinatorMessage::Welcome {
            worker_id,
            heartbeat_s,
        },
    )
    .await
    {
        state.queue.session_closed(worker_id, session_id).await;
        return;
    }
    tracing::info!(worker = %worker_id, name = %label, owner = %record.owner, "worker connected");

    // 4. Frames both ways. Silence is judged by the queue's lease; this read timeout
    //    only frees the socket of a peer that vanished without closing.
    let idle = Duration::from_secs(
        u64::from(heartbeat_s) * u64::from(gridx_proto::protocol::SILENT_HEARTBEATS) + 5,
    );
    loop {
        tokio::select! {
            incoming = tokio::time::timeout(idle, socket.recv()) => {
                let message = match incoming {
                    Err(_) => { tracing::info!(worker = %worker_id, "worker silent; closing its socket"); break; }
                    Ok(None) | Ok(Some(Err(_))) => break,
                    Ok(Some(Ok(message))) => message,
                };
                match message {
                    Message::Text(text) => match decode_worker_message(&text, max) {
                        Ok(message) => state.queue.worker_message(worker_id, session_id, message).await,
                        Err(e) => {
                            tracing::warn!(worker = %worker_id, error = %e, "protocol error; dropping the connection");
                            let _ = send(&mut socket, &CoordinatorMessage::Reject {
                                code: RejectCode::Malformed,
                                message: e.to_string(),
                            }).await;
                            break;
                        }
                    },
                    Message::Binary(_) => {
                        tracing::warn!(worker = %worker_id, "binary frame; dropping the connection");
                        break;
                    }
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            outgoing = inbox.recv() => match outgoing {
                Some(Outbound::Send(message)) => {
                    if !send(&mut socket, &message).await { break; }
                }
                Some(Outbound::Close(reason)) => {
                    if let Some((code, message)) = reason {
                        let _ = send(&mut socket, &CoordinatorMessage::Reject { code, message }).await;
                    }
                    break;
                }
                None => break,
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
    state.queue.session_closed(worker_id, session_id).await;
    tracing::info!(worker = %worker_id, "worker session closed");
}
