//! `/v1/events`: a WebSocket of the caller's job and ledger events and every worker
//! event, one JSON object per text frame.
//!
//! Streams are limited per address and in all (`server.max_event_streams…`), and a
//! subscriber that falls more than [`MAX_BACKLOG_EVENTS`] events or
//! `server.max_event_backlog_bytes` behind, or does not take a frame within
//! `server.send_timeout_s`, is dropped: it gets `lagged` and a close (docs/api.md).

use crate::app::AppState;
use crate::auth::{AuthUser, peer_ip};
use crate::error::ApiError;
use crate::events::{Next, Subscription};
use crate::metrics::Shed;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use gridx_proto::events::ServerEvent;
use gridx_proto::protocol::CloseCode;
use std::time::Duration;

/// Events a subscriber may fall behind before it is dropped (bytes are configured).
pub const MAX_BACKLOG_EVENTS: usize = 4096;

/// The client's address, for the per-address limit.
pub struct Peer(pub(super) std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(peer_ip(parts)))
    }
}

pub async fn events(
    State(state): State<AppState>,
    Peer(peer): Peer,
    user: AuthUser,
    ws: WebSocketUpgrade,
) -> Response {
    let slot = match state.limits.event_streams.acquire(peer) {
        Ok(slot) => slot,
        Err(refused) => {
            state.metrics.shed(Shed::Connection);
            return ApiError::from(refused).into_response();
        }
    };
    // Subscribed before the upgrade completes, so nothing committed after the 101
    // is missed.
    let subscription = state.events.subscribe(user.name.clone(), user.is_admin);
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            stream(socket, state, subscription).await;
        })
}

async fn stream(mut socket: WebSocket, state: AppState, mut events: Subscription) {
    let mut shutdown = state.shutdown.clone();
    let timeout = Duration::from_secs(u64::from(state.config.send_timeout_s));
    loop {
        tokio::select! {
            next = events.next() => {
                let text = match next {
                    Next::Event(text) => text,
                    Next::Lagged { missed } => {
                        state.metrics.shed(Shed::Lagged);
                        tracing::info!(missed, "an event subscriber fell too far behind; dropping it");
                        lagged(&mut socket, missed, timeout).await;
                        break;
                    }
                };
                let sent = tokio::time::timeout(timeout, socket.send(Message::Text(text.as_ref().into()))).await;
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        state.metrics.shed(Shed::SendTimeout);
                        tracing::info!("an event subscriber did not read for {} s; dropping it", timeout.as_secs());
                        break;
                    }
                }
            }
            incoming = socket.recv() => match incoming {
                // Clients only listen; anything but a close is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = crate::app::signalled(&mut shutdown) => {
                let _ = tokio::time::timeout(timeout, socket.send(Message::Close(None))).await;
                break;
            }
        }
    }
}

/// The last words to a subscriber that fell behind: `lagged` with what it missed,
/// then a close (1008) saying so. It reconnects and refetches.
async fn lagged(socket: &mut WebSocket, missed: u64, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, async {
        if let Ok(text) = serde_json::to_string(&ServerEvent::Lagged { missed }) {
            socket.send(Message::Text(text.into())).await?;
        }
        let close = CloseFrame {
            code: CloseCode::PolicyViolation.code(),
            reason: format!("lagged: {missed} events behind; reconnect and refetch").into(),
        };
        socket.send(Message::Close(Some(close))).await
    })
    .await;
}
