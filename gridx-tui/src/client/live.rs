//! The live event stream (`/v1/events`), reconnecting with backoff. Its status is
//! reported as events too, so a face can show "reconnecting in 4 s". Of several
//! coordinators it follows whichever leads (`client::coordinators`): a try is a round
//! over them, and the backoff applies per round.

use crate::backoff::{Backoff, Retry, retry};
use crate::client::coordinators::{Coordinators, Tried, standby_refusal};
use crate::client::tls::Endpoint;
use futures_util::StreamExt;
use gridx_proto::events::ServerEvent;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error, Message};

#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// Connected; to `coordinator` (its address) when there are several.
    Connected {
        coordinator: Option<String>,
    },
    Disconnected {
        reason: String,
        retry_in: Duration,
    },
    Event(Box<ServerEvent>),
}

/// What following the stream needs between tries: where to, as whom, where events
/// go, and the stop signal.
struct Follower {
    coordinators: Coordinators,
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
/// `wss://` when the coordinator's address is https, with its TLS configuration.
/// `coordinators` may be an [`Endpoint`] for one.
pub async fn follow(
    coordinators: impl Into<Coordinators>,
    token: String,
    tx: mpsc::UnboundedSender<LiveEvent>,
    stop: watch::Receiver<bool>,
) {
    let mut follower = Follower {
        coordinators: coordinators.into(),
        token,
        tx,
        stop,
    };
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
    loop {
        let connected = retry(&mut backoff, &mut follower).await;
        let Ok((index, socket)) = connected else {
            return;
        };
        // Connected: the backoff starts again from its base, and a dropped stream
        // waits about that long before the first reconnect.
        match follower.stream(index, socket).await {
            Ended::Stopped => return,
            Ended::Lost(reason) => {
                // A leader that loses the leadership exits: the next round starts
                // with the coordinator after it.
                follower.coordinators.lost(index);
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
    /// The socket, with the index of the coordinator it is connected to.
    type Output = (usize, Socket);
    type Error = String;

    /// One round over the coordinators: a standby refuses the upgrade (503).
    async fn attempt(&mut self) -> Result<(usize, Socket), String> {
        let token = &self.token;
        let round = self
            .coordinators
            .round(|index, endpoint| async move {
                match connect(endpoint, token).await {
                    Ok(socket) => Tried::Answer(Ok((index, socket))),
                    Err(Refused::Answered(e)) => Tried::Answer(Err(e)),
                    Err(Refused::Next(e)) => Tried::Next(e),
                }
            })
            .await;
        match round {
            Ok(answer) => answer,
            Err(mut missed) if missed.len() == 1 => Err(missed.remove(0).1),
            Err(missed) => Err(self.coordinators.no_leader(missed)),
        }
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

/// Why one coordinator gave no stream: an answer of the leader's (the token refused),
/// or something the next coordinator may not have (unreachable, a standby).
enum Refused {
    Answered(String),
    Next(String),
}

/// Opens the stream of one coordinator, within 10 s.
async fn connect(endpoint: &Endpoint, token: &str) -> Result<Socket, Refused> {
    let mut request = endpoint
        .ws_url("/v1/events")
        .into_client_request()
        .map_err(|e| Refused::Answered(e.to_string()))?;
    let header = format!("Bearer {token}")
        .parse()
        .map_err(|_| Refused::Answered("the token is not a valid header".to_owned()))?;
    request.headers_mut().insert("Authorization", header);
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        true,
        Some(endpoint.ws_connector()),
    );
    let connected = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| Refused::Next("timed out connecting".to_owned()))?;
    match connected {
        Ok((socket, _)) => Ok(socket),
        Err(Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response.body().as_deref().unwrap_or_default();
            match standby_refusal(status, body) {
                Some(message) => Err(Refused::Next(message)),
                None if status == 503 => {
                    Err(Refused::Next(endpoint.explain(&Error::Http(response))))
                }
                None => Err(Refused::Answered(endpoint.explain(&Error::Http(response)))),
            }
        }
        Err(e) => Err(Refused::Next(endpoint.explain(&e))),
    }
}

impl Follower {
    /// Forwards the events of one connection (to the coordinator at `index`) until it
    /// ends.
    async fn stream(&mut self, index: usize, mut socket: Socket) -> Ended {
        let connected = LiveEvent::Connected {
            coordinator: self.coordinators.label(index),
        };
        if self.tx.send(connected).is_err() {
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
