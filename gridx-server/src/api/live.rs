//! `/v1/events`: a WebSocket of the caller's job and ledger events and every worker
//! event, one JSON object per text frame.

use crate::app::AppState;
use crate::auth::AuthUser;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use gridx_proto::events::ServerEvent;
use tokio::sync::broadcast::error::RecvError;

pub async fn events(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    user: AuthUser,
) -> Response {
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| stream(socket, state, user))
}

async fn stream(mut socket: WebSocket, state: AppState, user: AuthUser) {
    let mut events = state.events.subscribe();
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            received = events.recv() => {
                let event = match received {
                    Ok(envelope) if envelope.visible_to(&user.name, user.is_admin) => envelope.event.clone(),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => ServerEvent::Lagged { missed },
                    Err(RecvError::Closed) => break,
                };
                let Ok(text) = serde_json::to_string(&event) else { continue };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                // Clients only listen; anything but a close is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = crate::app::signalled(&mut shutdown) => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
}
