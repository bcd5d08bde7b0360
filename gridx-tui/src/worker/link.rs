//! The worker's WebSocket link to the coordinator: connect (over TLS for an https
//! address, see `client/tls.rs`), send `hello`, and wait for `welcome` or `reject`.
//! Of several coordinators, the one that leads ([`connect`]).

use crate::client::coordinators::{Coordinators, Tried, standby_refusal};
use crate::client::tls::Endpoint;
use futures_util::{SinkExt, StreamExt};
use gridx_proto::protocol::{
    CloseCode, CoordinatorMessage, RejectCode, WorkerMessage, decode_coordinator_message, encode,
};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest frame accepted from the coordinator.
pub const MAX_FRAME: usize = gridx_proto::protocol::DEFAULT_MAX_FRAME_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot reach the coordinator at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// A standby refused the connection (503): another coordinator leads.
    #[error("{url}: {message}")]
    Standby { url: String, message: String },
    /// Of several coordinators, none welcomed this worker: each was unreachable, a
    /// standby, or refused it for now.
    #[error("{0}")]
    NoLeader(String),
    #[error("the coordinator refused this worker ({code}): {message}{}", next_step(*code))]
    Rejected { code: RejectCode, message: String },
    #[error("the coordinator did not answer the hello within {0} s")]
    NoWelcome(u64),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The coordinator closed the connection with a status code: after a frame of
    /// ours it refused (1007, 1003, 1009, 1008), or as it shut down (1001).
    #[error("the coordinator closed the connection ({}): {reason}", describe_close(*.code))]
    Closed { code: u16, reason: String },
}

/// What the person running a refused worker can do about it, where only someone else
/// can: the coordinator's message says what happened, this says whom to ask.
fn next_step(code: RejectCode) -> &'static str {
    match code {
        RejectCode::Revoked => {
            "; ask the operator for a new worker token (`gridx-server worker add`)"
        }
        _ => "",
    }
}

/// "1007 invalid message" for the codes the protocol names, the bare number else.
fn describe_close(code: u16) -> String {
    CloseCode::from_code(code).map_or_else(|| code.to_string(), |c| c.to_string())
}

impl LinkError {
    /// Whether trying again later could help. A handshake that failed so sends the
    /// worker on to the next coordinator of several at once; one that cannot (a bad
    /// or revoked token: the leader's answer) ends the round.
    pub fn is_retryable(&self) -> bool {
        match self {
            LinkError::Rejected { code, .. } => code.is_retryable(),
            _ => true,
        }
    }
}

/// How long one frame may take to leave. A partitioned network does not fail a
/// send until the kernel's buffer fills or TCP gives up (many minutes); a bound here
/// turns that into a prompt reconnect.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn send(socket: &mut Socket, message: &WorkerMessage) -> Result<(), LinkError> {
    let text = encode(message).map_err(|e| LinkError::Protocol(e.to_string()))?;
    send_frame(socket, Message::Text(text.into())).await
}

/// A WebSocket ping: the coordinator's answering pong is how a worker knows the
/// link is alive even when no work arrives.
pub async fn ping(socket: &mut Socket) -> Result<(), LinkError> {
    send_frame(socket, Message::Ping(Vec::new().into())).await
}

async fn send_frame(socket: &mut Socket, frame: Message) -> Result<(), LinkError> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(frame)).await {
        Ok(sent) => sent.map_err(|e| LinkError::Protocol(e.to_string())),
        Err(_) => Err(LinkError::Protocol(format!(
            "a frame could not be sent within {} s",
            SEND_TIMEOUT.as_secs()
        ))),
    }
}

/// What the coordinator sent: a message, or only a sign of life (a pong).
#[derive(Debug)]
pub enum Inbound {
    Message(CoordinatorMessage),
    Alive,
}

/// Reads the next coordinator message; `None` when the connection is gone.
pub async fn recv(socket: &mut Socket) -> Option<Result<CoordinatorMessage, LinkError>> {
    loop {
        match recv_inbound(socket).await? {
            Ok(Inbound::Alive) => continue,
            Ok(Inbound::Message(message)) => return Some(Ok(message)),
            Err(e) => return Some(Err(e)),
        }
    }
}

/// Like [`recv`], but also reports pongs, for the session's liveness check.
pub async fn recv_inbound(socket: &mut Socket) -> Option<Result<Inbound, LinkError>> {
    loop {
        match socket.next().await? {
            Ok(Message::Text(text)) => {
                return Some(
                    decode_coordinator_message(&text, MAX_FRAME)
                        .map(Inbound::Message)
                        .map_err(|e| LinkError::Protocol(e.to_string())),
                );
            }
            // A close with a status says why (docs/protocol.md §1.3); one without is
            // an ordinary end of the connection.
            Ok(Message::Close(Some(frame))) => {
                return Some(Err(LinkError::Closed {
                    code: u16::from(frame.code),
                    reason: frame.reason.to_string(),
                }));
            }
            Ok(Message::Close(None)) => return None,
            Ok(Message::Binary(_)) => {
                return Some(Err(LinkError::Protocol("unexpected binary frame".into())));
            }
            Ok(Message::Pong(_)) => return Some(Ok(Inbound::Alive)),
            Ok(_) => continue,
            Err(e) => return Some(Err(LinkError::Protocol(e.to_string()))),
        }
    }
}

/// What the coordinator's `welcome` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Welcomed {
    pub worker_id: gridx_proto::WorkerId,
    /// At least 1.
    pub heartbeat_s: u32,
    /// The coordinator reads `refused` (docs/protocol.md §2).
    pub reads_refused: bool,
    /// The coordinator reads `output` (docs/protocol.md §2).
    pub reads_output: bool,
    /// Which coordinator of the list welcomed this worker (its index; 0 for one).
    pub coordinator: usize,
}

/// Connects to whichever coordinator leads and completes the handshake: a round over
/// the coordinators from the last to lead (`client::coordinators`), moving on after
/// every failure but a refusal for good. The caller's backoff applies per round, so a
/// failover costs about one handshake, not a long wait.
pub async fn connect(
    coordinators: &Coordinators,
    hello: &WorkerMessage,
) -> Result<(Socket, Welcomed), LinkError> {
    let round = coordinators
        .round(|index, endpoint| async move {
            match handshake(endpoint, hello).await {
                Ok((socket, welcomed)) => Tried::Answer(Ok((
                    socket,
                    Welcomed {
                        coordinator: index,
                        ..welcomed
                    },
                ))),
                Err(e) if e.is_retryable() => Tried::Next(e),
                Err(e) => Tried::Answer(Err(e)),
            }
        })
        .await;
    match round {
        Ok(answer) => answer,
        Err(mut missed) if missed.len() == 1 => Err(missed.remove(0).1),
        Err(missed) => Err(LinkError::NoLeader(
            coordinators.no_leader(missed.into_iter().map(|(index, e)| (index, e.to_string()))),
        )),
    }
}

/// Connects and completes the handshake. Returns the socket with what `welcome` said.
pub async fn handshake(
    endpoint: &Endpoint,
    hello: &WorkerMessage,
) -> Result<(Socket, Welcomed), LinkError> {
    let url = endpoint.ws_url("/v1/worker/connect");
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        &url,
        Some(config),
        true,
        Some(endpoint.ws_connector()),
    );
    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| LinkError::Unreachable {
            url: url.clone(),
            message: "timed out after 10 s".into(),
        })?
        .map_err(|e| refused(endpoint, &url, e))?;
    send(&mut socket, hello).await?;
    let answer = tokio::time::timeout(Duration::from_secs(10), recv(&mut socket))
        .await
        .map_err(|_| LinkError::NoWelcome(10))?;
    match answer {
        Some(Ok(CoordinatorMessage::Welcome {
            worker_id,
            heartbeat_s,
            reads_refused,
            reads_output,
        })) => Ok((
            socket,
            Welcomed {
                worker_id,
                heartbeat_s: heartbeat_s.max(1),
                reads_refused,
                reads_output,
                coordinator: 0,
            },
        )),
        Some(Ok(CoordinatorMessage::Reject { code, message })) => {
            Err(LinkError::Rejected { code, message })
        }
        Some(Ok(other)) => Err(LinkError::Protocol(format!(
            "expected welcome, got {other:?}"
        ))),
        Some(Err(e)) => Err(e),
        None => Err(LinkError::Unreachable {
            url,
            message: "the connection closed during the handshake".into(),
        }),
    }
}

/// A failed connect: a standby's refusal (503) as such, else why it failed.
fn refused(
    endpoint: &Endpoint,
    url: &str,
    error: tokio_tungstenite::tungstenite::Error,
) -> LinkError {
    use tokio_tungstenite::tungstenite::Error;
    if let Error::Http(response) = &error {
        let body = response.body().as_deref().unwrap_or_default();
        if let Some(message) = standby_refusal(response.status().as_u16(), body) {
            return LinkError::Standby {
                url: url.to_owned(),
                message,
            };
        }
    }
    LinkError::Unreachable {
        url: url.to_owned(),
        message: endpoint.explain(&error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_to_the_worker_endpoint() {
        let url = |server: &str| {
            Endpoint::new(server, None, true)
                .map(|e| e.ws_url("/v1/worker/connect"))
                .ok()
        };
        assert_eq!(
            url("http://127.0.0.1:8420").as_deref(),
            Some("ws://127.0.0.1:8420/v1/worker/connect")
        );
        assert_eq!(
            url("http://h:1/").as_deref(),
            Some("ws://h:1/v1/worker/connect")
        );
        assert_eq!(url("h:1").as_deref(), Some("ws://h:1/v1/worker/connect"));
        assert_eq!(
            url("https://h").as_deref(),
            Some("wss://h/v1/worker/connect")
        );
        assert_eq!(url(""), None);
        assert_eq!(url("ftp://x"), None);
    }

    #[test]
    fn a_revoked_worker_is_told_to_ask_for_a_new_token() {
        let revoked = LinkError::Rejected {
            code: RejectCode::Revoked,
            message: "this worker's token was revoked by the operator".into(),
        };
        assert!(!revoked.is_retryable());
        assert_eq!(
            revoked.to_string(),
            "the coordinator refused this worker (revoked): this worker's token was revoked by the operator; \
             ask the operator for a new worker token (`gridx-server worker add`)"
        );
        let bad = LinkError::Rejected {
            code: RejectCode::BadToken,
            message: "unknown worker token".into(),
        };
        assert!(
            !bad.to_string().contains("gridx-server worker add"),
            "{bad}"
        );
    }

    /// A close after a refused frame is retried (the worker reconnects and keeps
    /// its jobs) and shows the coordinator's reason.
    #[test]
    fn a_close_with_a_code_says_why_and_is_retried() {
        let closed = LinkError::Closed {
            code: 1007,
            reason: "field `metrics.cpu_percent` must be between 0 and 100".into(),
        };
        assert!(closed.is_retryable());
        assert_eq!(
            closed.to_string(),
            "the coordinator closed the connection (1007 invalid message): field `metrics.cpu_percent` must be between 0 and 100"
        );
        let odd = LinkError::Closed {
            code: 4000,
            reason: String::new(),
        };
        assert!(odd.to_string().contains("(4000)"), "{odd}");
    }

    /// Over a real socket: a close frame with a status reaches the host as
    /// `Closed`, with the code and reason the coordinator sent.
    #[tokio::test]
    async fn a_close_frame_is_read_as_closed_with_its_code_and_reason() {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
            let frame = CloseFrame {
                code: 1009.into(),
                reason: "a frame over the limit of 1024 bytes".into(),
            };
            ws.send(Message::Close(Some(frame))).await.expect("close");
            // Answer the worker's closing handshake.
            while let Some(Ok(_)) = ws.next().await {}
        });
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
            .await
            .expect("connect");
        match recv_inbound(&mut socket).await {
            Some(Err(LinkError::Closed { code, reason })) => {
                assert_eq!(code, 1009);
                assert_eq!(reason, "a frame over the limit of 1024 bytes");
            }
            other => panic!("expected Closed, got {other:?}"),
        }
        drop(socket);
        server.await.expect("server task");
    }

    /// What sends the worker to the next coordinator: everything but a refusal for
    /// good, which the leader gave (so the round ends there).
    #[test]
    fn every_failure_moves_on_but_a_refusal_for_good() {
        let moves_on = [
            LinkError::Standby {
                url: "ws://a/v1/worker/connect".into(),
                message: "this coordinator is a standby; the leader is http://b".into(),
            },
            LinkError::Unreachable {
                url: "ws://a/v1/worker/connect".into(),
                message: "Connection refused".into(),
            },
            LinkError::NoWelcome(10),
            LinkError::Rejected {
                code: RejectCode::ShuttingDown,
                message: "shutting down".into(),
            },
        ];
        for e in moves_on {
            assert!(e.is_retryable(), "{e}");
        }
        for code in [RejectCode::BadToken, RejectCode::Revoked] {
            let e = LinkError::Rejected {
                code,
                message: String::new(),
            };
            assert!(!e.is_retryable(), "{e}");
        }
    }

    /// A standby's 503 on the upgrade is told apart from an address that fails.
    #[tokio::test]
    async fn a_standbys_503_is_named_as_such() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.expect("accept");
            let body = r#"{"error":{"code":"unavailable","message":"this coordinator is a standby; the leader is http://b:1"}}"#;
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
        });
        let endpoint = Endpoint::new(&format!("http://{addr}"), None, false).expect("endpoint");
        let hello = WorkerMessage::Heartbeat {
            metrics: Default::default(),
            running: Vec::new(),
            draining: false,
        };
        match handshake(&endpoint, &hello).await {
            Err(LinkError::Standby { url, message }) => {
                assert_eq!(url, format!("ws://{addr}/v1/worker/connect"));
                assert_eq!(
                    message,
                    "this coordinator is a standby; the leader is http://b:1"
                );
            }
            other => panic!("expected a standby's refusal, got {other:?}"),
        }
    }

    /// A token the first coordinator refuses for good ends the round: the second is
    /// not tried (it would be a standby, or the same grid refusing again).
    #[tokio::test]
    async fn a_refusal_for_good_ends_the_round() {
        let refusing = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let other = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let urls = format!(
            "http://{},http://{}",
            refusing.local_addr().expect("addr"),
            other.local_addr().expect("addr")
        );
        tokio::spawn(async move {
            let (tcp, _) = refusing.accept().await.expect("accept");
            let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
            let _hello = ws.next().await;
            let reject = CoordinatorMessage::Reject {
                code: RejectCode::BadToken,
                message: "unknown worker token".into(),
            };
            let text = encode(&reject).expect("encode");
            ws.send(Message::Text(text.into())).await.expect("send");
        });
        // The other one hangs up on whoever comes: a try there would fail otherwise.
        tokio::spawn(async move {
            while let Ok((tcp, _)) = other.accept().await {
                drop(tcp);
            }
        });
        let coordinators = Coordinators::new(&urls, None, false).expect("coordinators");
        let hello = WorkerMessage::Heartbeat {
            metrics: Default::default(),
            running: Vec::new(),
            draining: false,
        };
        match connect(&coordinators, &hello).await {
            Err(LinkError::Rejected { code, .. }) => assert_eq!(code, RejectCode::BadToken),
            other => panic!("expected the refusal, got {other:?}"),
        }
        assert_eq!(coordinators.leader(), 0, "the one that refused led");
    }
}
