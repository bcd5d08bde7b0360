//! One worker's WebSocket session: the handshake (hello within the timeout, token,
//! protocol version), then frames both ways until either side closes. Every decision
//! about jobs is the queue's; the session only translates, and refuses any frame
//! that is not a valid message before the queue sees it.
//!
//! Every connection the coordinator ends gets a WebSocket close frame with a status
//! code (`CloseCode`, listed in docs/protocol.md §1.3): after a `reject` its reason is
//! the reject code; for a frame refused after `welcome` (which gets no `reject`) it
//! is the decode error.

use crate::app::AppState;
use crate::queue::{HelloRequest, Outbound, QueueError};
use crate::store::users;
use crate::tokens;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::StreamExt;
use gridx_proto::PROTOCOL_VERSION;
use gridx_proto::protocol::{
    CloseCode, CoordinatorMessage, RejectCode, WorkerMessage, close_reason, decode_worker_message,
    encode, hello_protocol,
};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long, after its close frame, the coordinator waits for the worker's: a
/// closing handshake lets the reject and the close reach a peer that is still
/// sending, where dropping the socket at once could reset the connection first.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Tokens longer than this are unknown without a lookup.
const MAX_TOKEN_BYTES: usize = 256;

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

/// How a connection ends, and what the worker is told.
#[derive(Debug)]
enum End {
    /// The worker closed the connection or vanished: there is nobody to tell.
    Gone,
    /// `reject {code, message}`, then a close with status `close` and the reject
    /// code as its reason.
    Reject {
        code: RejectCode,
        message: String,
        close: CloseCode,
    },
    /// A close frame alone: a frame refused after `welcome`, or a silent worker.
    Close(CloseCode, String),
}

impl End {
    fn reject(code: RejectCode, message: impl Into<String>) -> End {
        End::Reject {
            code,
            message: message.into(),
            close: code.close_code(),
        }
    }

    /// `reject malformed` with the close status that says how the frame was wrong.
    fn malformed(message: impl Into<String>, close: CloseCode) -> End {
        End::Reject {
            code: RejectCode::Malformed,
            message: message.into(),
            close,
        }
    }
}

/// Tells the worker how its connection ends. Returns whether a close frame went out,
/// so the caller waits for the worker's answering close.
async fn announce(socket: &mut WebSocket, end: &End) -> bool {
    let (close, reason) = match end {
        End::Gone => return false,
        End::Reject {
            code,
            message,
            close,
        } => {
            tracing::info!(%code, %message, "worker connection rejected");
            let reject = CoordinatorMessage::Reject {
                code: *code,
                message: message.clone(),
            };
            let _ = send(socket, &reject).await;
            (*close, code.as_str().to_owned())
        }
        End::Close(close, reason) => (*close, reason.clone()),
    };
    let frame = CloseFrame {
        code: close.code(),
        reason: close_reason(&reason).into(),
    };
    socket.send(Message::Close(Some(frame))).await.is_ok()
}

/// Waits a moment for the worker's close frame, discarding what comes before it.
async fn linger(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(message)) = socket.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// What a failed read means: a close status and a reason for a frame the worker
/// sent wrong, or None when the connection itself failed (nobody left to tell).
/// tungstenite's error reaches us boxed inside axum's, so its kind is told by its
/// text; tests/protocol_errors.rs pins each case.
fn read_failure(error: &axum::Error, max_bytes: usize) -> Option<(CloseCode, String)> {
    let text = error.to_string();
    if text.starts_with("Space limit exceeded") {
        Some((
            CloseCode::TooBig,
            format!("a frame over the limit of {max_bytes} bytes"),
        ))
    } else if text.starts_with("UTF-8 encoding error") {
        Some((
            CloseCode::InvalidPayload,
            "a text frame that is not UTF-8".into(),
        ))
    } else if text.starts_with("WebSocket protocol error") && !text.contains("reset") {
        Some((CloseCode::ProtocolError, text))
    } else {
        None
    }
}

/// A worker that passed the handshake and is registered with the queue.
struct Registered {
    worker_id: gridx_proto::WorkerId,
    session_id: u64,
    heartbeat_s: u32,
    label: String,
    owner: gridx_proto::UserName,
    inbox: mpsc::UnboundedReceiver<Outbound>,
}

async fn session(mut socket: WebSocket, state: AppState) {
    let mut registered = match handshake(&mut socket, &state).await {
        Ok(registered) => registered,
        Err(end) => {
            if announce(&mut socket, &end).await {
                linger(&mut socket).await;
            }
            return;
        }
    };
    let (worker_id, session_id) = (registered.worker_id, registered.session_id);
    let welcome = CoordinatorMessage::Welcome {
        worker_id,
        heartbeat_s: registered.heartbeat_s,
    };
    let end = if send(&mut socket, &welcome).await {
        tracing::info!(worker = %worker_id, name = %registered.label, owner = %registered.owner, "worker connected");
        frames(&mut socket, &state, &mut registered).await
    } else {
        End::Gone
    };
    let closed = announce(&mut socket, &end).await;
    state.queue.session_closed(worker_id, session_id).await;
    if closed {
        linger(&mut socket).await;
    }
    tracing::info!(worker = %worker_id, "worker session closed");
}

/// The first frame must be a valid `hello`, in time, with a known token; then the
/// worker is registered with the queue (which may still refuse it).
async fn handshake(socket: &mut WebSocket, state: &AppState) -> Result<Registered, End> {
    let config = &state.config;
    let max = config.max_ws_frame_bytes;
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(u64::from(config.hello_timeout_s));

    // 1. The first data frame must be a hello, in time. Pings may come first.
    let text = loop {
        let frame = match tokio::time::timeout_at(deadline, socket.recv()).await {
            Err(_) => {
                return Err(End::reject(
                    RejectCode::HelloTimeout,
                    format!("no hello within {} s", config.hello_timeout_s),
                ));
            }
            Ok(None) => return Err(End::Gone),
            // Too large, or not a WebSocket frame at all: say why before closing.
            Ok(Some(Err(e))) => {
                return Err(match read_failure(&e, max) {
                    Some((close, why)) => {
                        End::malformed(format!("the first frame could not be read: {why}"), close)
                    }
                    None => End::Gone,
                });
            }
            Ok(Some(Ok(frame))) => frame,
        };
        match frame {
            Message::Text(text) => break text,
            Message::Binary(_) => {
                return Err(End::malformed(
                    "the first frame must be a JSON hello in a text frame, not binary",
                    CloseCode::Unsupported,
                ));
            }
            Message::Close(_) => return Err(End::Gone),
            Message::Ping(_) | Message::Pong(_) => {}
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
            return Err(End::malformed(
                "the first frame must be a hello",
                CloseCode::PolicyViolation,
            ));
        }
        Err(e) => {
            // A worker of another version may not decode here at all: tell it so.
            return Err(match hello_protocol(&text) {
                Some(other) if other != u64::from(PROTOCOL_VERSION) => mismatch(&other.to_string()),
                _ => End::malformed(e.to_string(), e.close_code()),
            });
        }
    };
    if protocol != PROTOCOL_VERSION {
        return Err(mismatch(&protocol.to_string()));
    }

    // 2. The token.
    let record = if token.starts_with(tokens::WORKER_PREFIX) && token.len() <= MAX_TOKEN_BYTES {
        let token = token.clone();
        match state
            .reader
            .read(move |conn| users::worker_by_token(conn, &token))
            .await
        {
            Ok(record) => record,
            Err(e) => {
                tracing::error!(error = %e, "could not check a worker token");
                return Err(End::reject(
                    RejectCode::ShuttingDown,
                    "the coordinator's store is unavailable",
                ));
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
        return Err(End::reject(RejectCode::BadToken, message));
    };
    if record.revoked {
        return Err(End::reject(
            RejectCode::Revoked,
            "this worker's token was revoked",
        ));
    }

    // 3. Register with the queue; the caller sends `welcome`.
    let session_id = state.new_session_id();
    let (outbox, inbox) = mpsc::unbounded_channel();
    let heartbeat_s = match state
        .queue
        .hello(HelloRequest {
            worker_id: record.id,
            name: name.clone(),
            owner: record.owner.clone(),
            capabilities,
            running,
            session_id,
            outbox,
        })
        .await
    {
        Ok(heartbeat_s) => heartbeat_s,
        Err(QueueError::Rejected(code, message)) => return Err(End::reject(code, message)),
        Err(e) => return Err(End::reject(RejectCode::ShuttingDown, e.to_string())),
    };
    Ok(Registered {
        worker_id: record.id,
        session_id,
        heartbeat_s,
        label: name,
        owner: record.owner,
        inbox,
    })
}

fn mismatch(theirs: &str) -> End {
    End::reject(
        RejectCode::ProtocolMismatch,
        format!("this coordinator speaks protocol {PROTOCOL_VERSION}, the worker {theirs}"),
    )
}

/// Frames both ways until one side ends the session. Only valid messages reach the
/// queue: a frame that does not decode ends the session with a close frame saying
/// why, and no `reject` (whose codes answer the handshake or drop a session).
async fn frames(socket: &mut WebSocket, state: &AppState, session: &mut Registered) -> End {
    let max = state.config.max_ws_frame_bytes;
    let worker_id = session.worker_id;
    // Silence is judged by the queue's lease; this read timeout only frees the
    // socket of a peer that vanished without closing.
    let idle = Duration::from_secs(
        u64::from(session.heartbeat_s) * u64::from(gridx_proto::protocol::SILENT_HEARTBEATS) + 5,
    );
    loop {
        tokio::select! {
            incoming = tokio::time::timeout(idle, socket.recv()) => {
                let message = match incoming {
                    Err(_) => {
                        tracing::info!(worker = %worker_id, "worker silent; closing its socket");
                        return End::Close(
                            CloseCode::PolicyViolation,
                            format!("no frame for {} s", idle.as_secs()),
                        );
                    }
                    Ok(None) => return End::Gone,
                    Ok(Some(Err(e))) => {
                        let failure = read_failure(&e, max);
                        tracing::warn!(worker = %worker_id, error = %e, "could not read a frame; dropping the connection");
                        return failure.map_or(End::Gone, |(close, why)| End::Close(close, why));
                    }
                    Ok(Some(Ok(message))) => message,
                };
                match message {
                    Message::Text(text) => match decode_worker_message(&text, max) {
                        Ok(WorkerMessage::Hello { .. }) => {
                            tracing::warn!(worker = %worker_id, "hello after welcome; dropping the connection");
                            return End::Close(CloseCode::PolicyViolation, "hello after welcome".into());
                        }
                        Ok(message) => {
                            state.queue.worker_message(worker_id, session.session_id, message).await;
                        }
                        Err(e) => {
                            tracing::warn!(worker = %worker_id, error = %e, "protocol error; dropping the connection");
                            return End::Close(e.close_code(), e.to_string());
                        }
                    },
                    Message::Binary(_) => {
                        tracing::warn!(worker = %worker_id, "binary frame; dropping the connection");
                        return End::Close(
                            CloseCode::Unsupported,
                            "binary frames are not part of the protocol".into(),
                        );
                    }
                    Message::Close(_) => return End::Gone,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            outgoing = session.inbox.recv() => match outgoing {
                Some(Outbound::Send(message)) => {
                    if !send(socket, &message).await {
                        return End::Gone;
                    }
                }
                Some(Outbound::Close(Some((code, message)))) => return End::reject(code, message),
                // The queue gave up on the worker without a reject: its lease ran out.
                Some(Outbound::Close(None)) => {
                    return End::Close(
                        CloseCode::PolicyViolation,
                        "the coordinator gave up on this worker (no heartbeat in time)".into(),
                    );
                }
                None => {
                    return End::reject(RejectCode::ShuttingDown, "the coordinator is shutting down");
                }
            },
        }
    }
}
