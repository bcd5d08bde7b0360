//! The live event stream (`/v1/events`), reconnecting with backoff. Its status is
//! reported as events too, so a face can show "reconnecting in 4 s".

use crate::worker::backoff::Backoff;
use futures_util::StreamExt;
use gridx_proto::events::ServerEvent;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Debug, Clone)]
pub enum LiveEvent {
    Connected,
    Disconnected { reason: String, retry_in: Duration },
    Event(Box<ServerEvent>),
}

fn events_url(server: &str) -> Option<String> {
    let server = server.trim().trim_end_matches('/');
    let rest = server
        .strip_prefix("http://")
        .map(|r| format!("ws://{r}"))
        .or_else(|| {
            server
                .strip_prefix("https://")
                .map(|r| format!("wss://{r}"))
        })?;
    Some(format!("{rest}/v1/events"))
}

/// Follows the stream until `stop` turns true, sending everything to `tx`.
pub async fn follow(
    server: String,
    token: String,
    tx: mpsc::UnboundedSender<LiveEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(url) = events_url(&server) else {
        let _ = tx.send(LiveEvent::Disconnected {
            reason: format!("{server} is not an http:// or https:// address"),
            retry_in: Duration::MAX,
        });
        return;
    };
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
    loop {
        let reason = match connect_once(&url, &token, &tx, &mut stop, &mut backoff).await {
            Ok(()) => return,
            Err(reason) => reason,
        };
        let delay = backoff.next_delay();
        if tx
            .send(LiveEvent::Disconnected {
                reason,
                retry_in: delay,
            })
            .is_err()
        {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn connect_once(
    url: &str,
    token: &str,
    tx: &mpsc::UnboundedSender<LiveEvent>,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    let header = format!("Bearer {token}")
        .parse()
        .map_err(|_| "the token is not a valid header".to_owned())?;
    request.headers_mut().insert("Authorization", header);
    let (mut socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .map_err(|_| "timed out connecting".to_owned())?
    .map_err(|e| e.to_string())?;
    backoff.reset();
    if tx.send(LiveEvent::Connected).is_err() {
        return Ok(());
    }
    loop {
        tokio::select! {
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(event) = serde_json::from_str::<ServerEvent>(&text)
                        && tx.send(LiveEvent::Event(Box::new(event))).is_err()
                    {
                        return Ok(());
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Err("the coordinator closed the stream".into()),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(_)) => {}
            },
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
}
