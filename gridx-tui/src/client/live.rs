//! The live event stream (`/v1/events`), reconnecting with backoff. Its status is
//! reported as events too, so a face can show "reconnecting in 4 s".

use crate::backoff::{Backoff, Retry, retry};
use crate::client::tls::Endpoint;
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

/// What following the stream needs between tries: where to, as whom, where events
/// go, and the stop signal.
struct Follower {
    endpoint: Endpoint,
    url: String,
    token: String,
    tx: mpsc::UnboundedSender<LiveEvent>,
    stop: watch::Receiver<bool>,
}

/// Why a stream ended.
enum Ended {
    /// Stopped on purpose, or nobody listens any more: do not reconnect.
    Stopped,
    /// The connection failed or dropped: reconnect after a pause.
    Lost(String),
}

/// Follows the stream until `stop` turns true, sending everything to `tx`: over
/// `wss://` when the endpoint is https, with its TLS configuration.
pub async fn follow(
    endpoint: Endpoint,
    token: String,
    tx: mpsc::UnboundedSender<LiveEvent>,
    stop: watch::Receiver<bool>,
) {
    let mut follower = Follower {
        url: endpoint.ws_url("/v1/events"),
        endpoint,
        token,
        tx,
        stop,
    };
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
    loop {
        let connected = retry(&mut backoff, &mut follower).await;
        let Ok(socket) = connected else { return };
        // Connected: the backoff starts again from its base, and a dropped stream
        // waits about that long before the first reconnect.
        match follower.stream(socket).await {
            Ended::Stopped => return,
            Ended::Lost(reason) => {
                let delay = backoff.next_delay();
                if !follower.pause(&reason, delay).await {
                    return;
                }
            }
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Retry for Follower {
    type Output = Socket;
    type Error = String;

    async fn attempt(&mut self) -> Result<Socket, String> {
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| e.to_string())?;
        let header = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| "the token is not a valid header".to_owned())?;
        request.headers_mut().insert("Authorization", header);
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            true,
            Some(self.endpoint.ws_connector()),
        );
        let (socket, _) = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| "timed out connecting".to_owned())?
            .map_err(|e| self.endpoint.explain(&e))?;
        Ok(socket)
    }

    /// Reports the loss and waits; false when stopped meanwhile or nobody listens.
    async fn pause(&mut self, reason: &String, delay: Duration) -> bool {
        let report = LiveEvent::Disconnected {
            reason: reason.clone(),
            retry_in: delay,
        };
        if self.tx.send(report).is_err() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = self.stop.wait_for(|s| *s) => false,
        }
    }
}

impl Follower {
    /// Forwards the events of one connection until it ends.
    async fn stream(&mut self, mut socket: Socket) -> Ended {
        if self.tx.send(LiveEvent::Connected).is_err() {
            return Ended::Stopped;
        }
        loop {
            tokio::select! {
                frame = socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Ok(event) = serde_json::from_str::<ServerEvent>(&text)
                            && self.tx.send(LiveEvent::Event(Box::new(event))).is_err()
                        {
                            return Ended::Stopped;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => {
                        return Ended::Lost("the coordinator closed the stream".into());
                    }
                    Some(Err(e)) => return Ended::Lost(e.to_string()),
                    Some(Ok(_)) => {}
                },
                _ = self.stop.wait_for(|s| *s) => return Ended::Stopped,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{LiveEvent, follow};
    use crate::client::Endpoint;
    use std::time::Duration;
    use tokio::sync::{mpsc, watch};

    #[tokio::test]
    async fn an_unreachable_coordinator_is_retried_with_growing_waits_until_stopped() {
        // A port nobody listens on: bound, then released.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("its address").port()
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let endpoint = Endpoint::new(&format!("http://127.0.0.1:{port}"), None, false)
            .expect("a loopback address");
        let following = tokio::spawn(follow(endpoint, "gxu_x".into(), tx, stop_rx));
        let mut waits = Vec::new();
        while waits.len() < 2 {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Some(LiveEvent::Disconnected { retry_in, .. })) => waits.push(retry_in),
                other => panic!("expected a disconnect report, got {other:?}"),
            }
        }
        assert!(waits[0] <= Duration::from_millis(500), "{waits:?}");
        assert!(waits[1] >= Duration::from_millis(500), "{waits:?}");
        let _ = stop_tx.send(true);
        tokio::time::timeout(Duration::from_secs(5), following)
            .await
            .expect("stops when told")
            .expect("does not panic");
    }
}
