//! One worker's WebSocket session: the handshake (hello within the timeout, token,
//! protocol version), then frames both ways until either side closes. Every decision
//! about jobs is the queue's; the session only translates, and refuses any frame
//! that is not a valid message before the queue sees it.
//!
//! Every connection the coordinator ends gets a WebSocket close frame with a status
//! code (`CloseCode`, listed in docs/protocol.md §1.3): after a `reject` its reason is
//! the reject code; for a frame refused after `welcome` (which gets no `reject`) it
//! is the decode error.
//!
//! One worker token or one address cannot exhaust the coordinator through here
//! (docs/operations.md, "What is limited"): sockets are limited per address and in
//! all, at most [`PRE_AUTH_READ_BYTES`] are read before the hello's token is checked,
//! heartbeats past a rate are dropped, and a worker that does not read is dropped
//! when its bounded outbox fills or a frame to it takes longer than
//! `server.send_timeout_s`.

use crate::app::AppState;
use crate::auth::peer_ip;
use crate::error::ApiError;
use crate::metrics::Shed;
use crate::queue::{Delivery, HelloRequest, Outbound, QueueError, SessionRx};
use crate::store::users;
use crate::tokens;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use gridx_proto::PROTOCOL_VERSION;
use gridx_proto::protocol::{
    CloseCode, CoordinatorMessage, HEARTBEAT_BURST, HEARTBEATS_PER_INTERVAL, MAX_HELLO_BYTES,
    OUTPUT_BURST, OUTPUTS_PER_SECOND_PER_SLOT, RejectCode, WorkerMessage,
    check_running_within_slots, close_reason, decode_worker_message, encode, hello_protocol,
};
use hyper_util::rt::TokioIo;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// How long, after its close frame, the coordinator waits for the worker's: a
/// closing handshake lets the reject and the close reach a peer that is still
/// sending, where dropping the socket at once could reset the connection first.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Tokens longer than this are unknown without a lookup.
const MAX_TOKEN_BYTES: usize = 256;

/// What the coordinator reads from a connection before its hello's token is
/// checked: the largest hello, its framing (at most 14 bytes) and a few pings.
pub const PRE_AUTH_READ_BYTES: usize = MAX_HELLO_BYTES + 4 * 1024;

type Socket = WebSocketStream<Budgeted<TokioIo<hyper::upgrade::Upgraded>>>;

/// `GET /v1/worker/connect`: checks the failed-token and connection limits, then
/// upgrades to a WebSocket whose reads are held to [`PRE_AUTH_READ_BYTES`] until the
/// hello is verified. The upgrade is done here rather than by axum so that the bound
/// can be lifted once the worker is known (axum's socket cannot change its limits).
pub async fn connect(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let peer = peer_ip(&parts);
    let key = match upgrade_key(&parts.headers) {
        Ok(key) => key,
        Err(why) => return ApiError::invalid(why).into_response(),
    };
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return ApiError::invalid("this connection cannot be upgraded to a WebSocket")
            .into_response();
    };
    // Before anything is read: an address that spent its failed-token budget, or one
    // that holds its share of the sockets, gets nothing.
    if let Some(after) = state.limits.refused_before_lookup(peer, None) {
        state.metrics.rate_limited.inc();
        return ApiError::rate_limited(after).into_response();
    }
    let slot = match state.limits.worker_sockets.acquire(peer) {
        Ok(slot) => slot,
        Err(refused) => {
            state.metrics.shed(Shed::Connection);
            tracing::info!(%peer, ?refused, "worker connection refused");
            return ApiError::from(refused).into_response();
        }
    };
    let max = state.config.max_ws_frame_bytes;
    // Small buffers: tungstenite reads into 128 KiB per connection by default, which
    // is 1.3 GB for 10,000 idle workers; frames larger than the buffer still work.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    tokio::spawn(async move {
        let _slot = slot;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "worker upgrade failed");
                return;
            }
        };
        let io = Budgeted::new(TokioIo::new(upgraded), PRE_AUTH_READ_BYTES);
        let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        session(socket, state, peer).await;
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The `Sec-WebSocket-Key` of a valid WebSocket upgrade request (RFC 6455 §4.2.1).
fn upgrade_key(headers: &HeaderMap) -> Result<String, &'static str> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err(
            "this endpoint is a WebSocket: send `Connection: upgrade` and `Upgrade: websocket`",
        );
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err("only WebSocket version 13 is supported (`Sec-WebSocket-Version: 13`)");
    }
    match headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
    {
        Some(key) if !key.trim().is_empty() => Ok(key.trim().to_owned()),
        _ => Err("a WebSocket upgrade needs a `Sec-WebSocket-Key` header"),
    }
}

/// The upgraded connection with a bound on what may still be read from it. Until
/// the hello is verified at most [`PRE_AUTH_READ_BYTES`] are read, so an
/// unauthenticated peer cannot make the coordinator buffer a frame of
/// `max_ws_frame_bytes`; past the bound a read fails and the session says why.
pub struct Budgeted<S> {
    inner: S,
    /// Bytes that may still be read; `None` once lifted.
    remaining: Option<usize>,
    spent: bool,
}

impl<S> Budgeted<S> {
    pub fn new(inner: S, budget: usize) -> Self {
        Self {
            inner,
            remaining: Some(budget),
            spent: false,
        }
    }

    /// Reads are unbounded from now on (the tungstenite frame limits still hold).
    pub fn lift(&mut self) {
        self.remaining = None;
    }

    /// Whether a read was refused because the budget ran out.
    pub fn spent(&self) -> bool {
        self.spent
    }
}

impl<S: AsyncRead + Unpin> Budgeted<S> {
    /// Reads and drops whatever the peer still sends, for up to `linger`, without
    /// parsing it: the answer to an oversized first frame then reaches a peer that
    /// is still sending, instead of a reset for the unread bytes.
    async fn discard(&mut self, linger: Duration) {
        let mut scratch = [0u8; 4096];
        let _ = tokio::time::timeout(linger, async {
            while let Ok(n) = self.inner.read(&mut scratch).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Budgeted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(remaining) = this.remaining else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if remaining == 0 {
            this.spent = true;
            return Poll::Ready(Err(io::Error::other(
                "the peer sent more than the coordinator reads before a hello",
            )));
        }
        // Through a small buffer, so no more than the budget leaves the socket.
        let mut scratch = [0u8; 4096];
        let want = remaining.min(buf.remaining()).min(scratch.len());
        let mut small = ReadBuf::new(&mut scratch[..want]);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut small))?;
        let read = small.filled();
        buf.put_slice(read);
        this.remaining = Some(remaining - read.len());
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Budgeted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Heartbeats a session passes on to the queue: a token bucket holding
/// [`HEARTBEAT_BURST`], refilled with [`HEARTBEATS_PER_INTERVAL`] per `heartbeat_s`.
/// A heartbeat past it is dropped (docs/protocol.md §3): it renews nothing and is
/// neither stored nor broadcast. The session then reads nothing more from that worker
/// until the bucket holds a heartbeat again, so a storm is held back by TCP and costs
/// the coordinator no more parsing than a worker that heartbeats four times as often
/// as it should.
///
/// `output` messages have a bucket of their own ([`OUTPUT_BURST`], refilled with
/// [`OUTPUTS_PER_SECOND_PER_SLOT`] per slot each second). One past it is not dropped,
/// since a gap would stop the job's live output: it is taken, and then reading pauses
/// until the bucket holds another, which holds a flood back by TCP just the same.
#[derive(Debug)]
struct Rate {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

impl Rate {
    fn heartbeats(heartbeat_s: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(HEARTBEAT_BURST),
            burst: f64::from(HEARTBEAT_BURST),
            per_second: f64::from(HEARTBEATS_PER_INTERVAL) / f64::from(heartbeat_s.max(1)),
            last: now,
        }
    }

    /// The bucket of `output` messages of a worker with `slots`.
    fn outputs(slots: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(OUTPUT_BURST),
            burst: f64::from(OUTPUT_BURST),
            per_second: f64::from(OUTPUTS_PER_SECOND_PER_SLOT) * f64::from(slots.max(1)),
            last: now,
        }
    }

    /// Whether a heartbeat arriving at `now` is passed on.
    fn allow(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the bucket next holds a whole heartbeat.
    fn next_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        let missing = (1.0 - self.tokens).max(0.0);
        now + Duration::from_secs_f64(missing / self.per_second)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
    }
}

/// How a send to the worker went.
enum Sent {
    Ok,
    /// The connection failed.
    Failed,
    /// The frame did not go out within the send timeout: the worker does not read.
    TimedOut,
}

async fn send(socket: &mut Socket, message: &CoordinatorMessage, timeout: Duration) -> Sent {
    match encode(message) {
        Ok(text) => send_frame(socket, Message::Text(text.into()), timeout).await,
        Err(e) => {
            tracing::error!(error = %e, "could not encode a coordinator message");
            Sent::Failed
        }
    }
}

async fn send_frame(socket: &mut Socket, frame: Message, timeout: Duration) -> Sent {
    match tokio::time::timeout(timeout, socket.send(frame)).await {
        Ok(Ok(())) => Sent::Ok,
        Ok(Err(_)) => Sent::Failed,
        Err(_) => Sent::TimedOut,
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

/// Tells the worker how its connection ends, each frame within the send timeout.
/// Returns whether a close frame went out, so the caller waits for the worker's
/// answering close.
async fn announce(socket: &mut Socket, end: &End, timeout: Duration) -> bool {
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
            if !matches!(send(socket, &reject, timeout).await, Sent::Ok) {
                return false;
            }
            (*close, code.as_str().to_owned())
        }
        End::Close(close, reason) => (*close, reason.clone()),
    };
    let frame = CloseFrame {
        code: close.code().into(),
        reason: close_reason(&reason).into(),
    };
    matches!(
        send_frame(socket, Message::Close(Some(frame)), timeout).await,
        Sent::Ok
    )
}

/// Waits a moment for the worker's close frame, discarding what comes before it. A
/// peer that ran out of its pre-hello budget is drained raw instead: its frame is not
/// parsed, only read away.
async fn linger(socket: &mut Socket) {
    if socket.get_ref().spent() {
        socket.get_mut().discard(CLOSE_LINGER).await;
        return;
    }
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
/// tests/protocol_errors.rs pins each case.
fn read_failure(
    error: &WsError,
    budget_spent: bool,
    max_bytes: usize,
) -> Option<(CloseCode, String)> {
    match error {
        WsError::Capacity(_) => Some((
            CloseCode::TooBig,
            format!("a frame over the limit of {max_bytes} bytes"),
        )),
        WsError::Io(_) if budget_spent => Some((
            CloseCode::TooBig,
            format!(
                "more than {PRE_AUTH_READ_BYTES} bytes before the hello was answered (a hello is at most {MAX_HELLO_BYTES} bytes)"
            ),
        )),
        WsError::Utf8(_) => Some((
            CloseCode::InvalidPayload,
            "a text frame that is not UTF-8".into(),
        )),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some((CloseCode::ProtocolError, error.to_string())),
        _ => None,
    }
}

/// A worker that passed the handshake and is registered with the queue.
struct Registered {
    worker_id: gridx_proto::WorkerId,
    session_id: u64,
    heartbeat_s: u32,
    slots: u32,
    label: String,
    owner: gridx_proto::UserName,
    inbox: SessionRx,
}

async fn session(mut socket: Socket, state: AppState, peer: IpAddr) {
    let timeout = Duration::from_secs(u64::from(state.config.send_timeout_s));
    let mut registered = match handshake(&mut socket, &state, peer).await {
        Ok(registered) => registered,
        Err(end) => {
            if announce(&mut socket, &end, timeout).await {
                linger(&mut socket).await;
            }
            return;
        }
    };
    // The token is good: from here on only the frame limits hold.
    socket.get_mut().lift();
    let (worker_id, session_id) = (registered.worker_id, registered.session_id);
    let welcome = CoordinatorMessage::Welcome {
        worker_id,
        heartbeat_s: registered.heartbeat_s,
        reads_refused: true,
        reads_output: true,
    };
    let end = match send(&mut socket, &welcome, timeout).await {
        Sent::Ok => {
            tracing::info!(worker = %worker_id, name = %registered.label, owner = %registered.owner, "worker connected");
            frames(&mut socket, &state, &mut registered).await
        }
        Sent::Failed => End::Gone,
        Sent::TimedOut => timed_out(&state, worker_id),
    };
    let closed = announce(&mut socket, &end, timeout).await;
    state.queue.session_closed(worker_id, session_id).await;
    if closed {
        linger(&mut socket).await;
    }
    tracing::info!(worker = %worker_id, "worker session closed");
}

fn timed_out(state: &AppState, worker_id: gridx_proto::WorkerId) -> End {
    state.metrics.shed(Shed::SendTimeout);
    tracing::warn!(worker = %worker_id, timeout_s = state.config.send_timeout_s, "a frame to the worker did not go out in time; dropping the connection");
    End::Gone
}

/// The first frame must be a valid `hello`, in time, with a known token; then the
/// worker is registered with the queue (which may still refuse it).
async fn handshake(socket: &mut Socket, state: &AppState, peer: IpAddr) -> Result<Registered, End> {
    let config = &state.config;
    let max = config.max_ws_frame_bytes;
    let deadline = Instant::now() + Duration::from_secs(u64::from(config.hello_timeout_s));

    // 1. The first data frame must be a hello, in time. Pings may come first.
    let text = loop {
        let frame = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => {
                return Err(End::reject(
                    RejectCode::HelloTimeout,
                    format!("no hello within {} s", config.hello_timeout_s),
                ));
            }
            Ok(None) => return Err(End::Gone),
            // Too large, or not a WebSocket frame at all: say why before closing.
            Ok(Some(Err(e))) => {
                return Err(match read_failure(&e, socket.get_ref().spent(), max) {
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
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
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

    // 2. The token. A refused one counts against the address, as on the API.
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
        let _ = state.limits.failed(peer, None);
        let message = if token.starts_with(tokens::USER_PREFIX) {
            "this is a user API token; a worker needs a worker token from `gridx-server worker add`"
        } else {
            "unknown worker token"
        };
        return Err(End::reject(RejectCode::BadToken, message));
    };
    if record.revoked {
        let _ = state.limits.failed(peer, None);
        return Err(End::reject(
            RejectCode::Revoked,
            "this worker's token was revoked by the operator",
        ));
    }

    // 3. Register with the queue; the caller sends `welcome`.
    let session_id = state.new_session_id();
    let slots = capabilities.slots;
    let (outbox, inbox) = crate::queue::outbox(crate::queue::outbox_capacity(slots));
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
        slots,
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
/// Heartbeats past the session's rate are dropped, and reading pauses until the rate
/// allows another; a worker that does not read what it is sent is dropped when its
/// outbox fills or a frame to it times out.
async fn frames(socket: &mut Socket, state: &AppState, session: &mut Registered) -> End {
    let max = state.config.max_ws_frame_bytes;
    let timeout = Duration::from_secs(u64::from(state.config.send_timeout_s));
    let worker_id = session.worker_id;
    // Silence is judged by the queue's lease; this read timeout only frees the
    // socket of a peer that vanished without closing.
    let idle = Duration::from_secs(
        u64::from(session.heartbeat_s) * u64::from(gridx_proto::protocol::SILENT_HEARTBEATS) + 5,
    );
    let mut heartbeats = Rate::heartbeats(session.heartbeat_s, Instant::now());
    let mut outputs = Rate::outputs(session.slots, Instant::now());
    let mut dropped = 0u64;
    // Set after a dropped heartbeat: nothing is read from the worker until then.
    let mut resume_at: Option<Instant> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(resume_at.unwrap_or_else(Instant::now)), if resume_at.is_some() => {
                resume_at = None;
            }
            incoming = tokio::time::timeout(idle, socket.next()), if resume_at.is_none() => {
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
                        let failure = read_failure(&e, false, max);
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
                        Ok(WorkerMessage::Heartbeat { ref running, .. })
                            if let Err(e) = check_running_within_slots(running.len(), session.slots) =>
                        {
                            tracing::warn!(worker = %worker_id, error = %e, "protocol error; dropping the connection");
                            return End::Close(e.close_code(), e.to_string());
                        }
                        Ok(WorkerMessage::Heartbeat { .. }) if !heartbeats.allow(Instant::now()) => {
                            state.metrics.shed(Shed::Heartbeat);
                            resume_at = Some(heartbeats.next_at(Instant::now()));
                            dropped += 1;
                            if dropped.is_power_of_two() {
                                tracing::warn!(worker = %worker_id, dropped, "heartbeats past the rate; dropping them");
                            }
                        }
                        Ok(message @ WorkerMessage::Output { .. }) => {
                            state.queue.worker_message(worker_id, session.session_id, message).await;
                            if !outputs.allow(Instant::now()) {
                                resume_at = Some(outputs.next_at(Instant::now()));
                            }
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
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            }
            outgoing = session.inbox.recv() => match outgoing {
                Delivery::Message(Outbound::Send(message)) => {
                    // A worker that does not take this frame while its outbox fills
                    // up is dropped at once, not at the send timeout.
                    let sent = tokio::select! {
                        sent = send(socket, &message, timeout) => sent,
                        () = session.inbox.overflowed() => {
                            state.metrics.shed(Shed::Outbox);
                            tracing::warn!(worker = %worker_id, "the worker does not read its messages; dropping the connection");
                            return End::Gone;
                        }
                    };
                    match sent {
                        Sent::Ok => {}
                        Sent::Failed => return End::Gone,
                        Sent::TimedOut => return timed_out(state, worker_id),
                    }
                }
                Delivery::Message(Outbound::Close(Some((code, message)))) => {
                    return End::reject(code, message);
                }
                // The queue gave up on the worker without a reject: its lease ran out.
                Delivery::Message(Outbound::Close(None)) => {
                    return End::Close(
                        CloseCode::PolicyViolation,
                        "the coordinator gave up on this worker (no heartbeat in time)".into(),
                    );
                }
                Delivery::Overflowed => {
                    state.metrics.shed(Shed::Outbox);
                    let capacity = crate::queue::outbox_capacity(session.slots);
                    tracing::warn!(worker = %worker_id, capacity, "the worker does not read its messages; dropping the connection");
                    return End::Close(
                        CloseCode::PolicyViolation,
                        format!("the worker did not read its messages (more than {capacity} waiting)"),
                    );
                }
                Delivery::Closed => {
                    return End::reject(RejectCode::ShuttingDown, "the coordinator is shutting down");
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_passes_in_a_burst_then_at_eight_a_second_per_slot() {
        let start = Instant::now();
        let mut rate = Rate::outputs(2, start);
        let passed = (0..1000).filter(|_| rate.allow(start)).count();
        assert_eq!(passed, OUTPUT_BURST as usize, "the burst");
        let later = start + Duration::from_secs(1);
        let passed = (0..1000).filter(|_| rate.allow(later)).count();
        assert_eq!(
            passed,
            2 * OUTPUTS_PER_SECOND_PER_SLOT as usize,
            "two slots' worth"
        );
        // The reference worker's pace (two pieces per stream a second) never waits.
        let mut rate = Rate::outputs(1, start);
        for tick in 0..1000u64 {
            let at = start + Duration::from_millis(500 * tick);
            assert!(rate.allow(at) && rate.allow(at), "{tick}");
        }
    }

    #[tokio::test]
    async fn heartbeats_pass_in_a_burst_then_at_four_per_interval() {
        let start = Instant::now();
        let mut rate = Rate::heartbeats(5, start);
        let passed = (0..100).filter(|_| rate.allow(start)).count();
        assert_eq!(passed, HEARTBEAT_BURST as usize, "the burst");
        // One interval later: four more, and no fifth.
        let later = start + Duration::from_secs(5);
        let passed = (0..100).filter(|_| rate.allow(later)).count();
        assert_eq!(passed, HEARTBEATS_PER_INTERVAL as usize);
        // A worker that heartbeats as it should is never held back.
        let mut rate = Rate::heartbeats(1, start);
        for second in 0..1000 {
            assert!(rate.allow(start + Duration::from_secs(second)), "{second}");
        }
        // The bucket never holds more than the burst, however long the pause.
        let mut rate = Rate::heartbeats(1, start);
        let much_later = start + Duration::from_secs(3600);
        let passed = (0..100).filter(|_| rate.allow(much_later)).count();
        assert_eq!(passed, HEARTBEAT_BURST as usize);
        // Empty, it holds the next heartbeat a quarter of an interval later.
        let next = rate.next_at(much_later);
        assert_eq!(next - much_later, Duration::from_millis(250));
        assert!(!rate.allow(next - Duration::from_millis(10)));
        assert!(rate.allow(next));
    }

    #[tokio::test]
    async fn reads_stop_at_the_budget_until_it_is_lifted() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut budgeted = Budgeted::new(server, 10);
        tokio::io::AsyncWriteExt::write_all(&mut client, &[7u8; 25])
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let mut total = 0;
        let error = loop {
            match budgeted.read(&mut buf).await {
                Ok(n) => total += n,
                Err(e) => break e,
            }
        };
        assert_eq!(total, 10, "read past the budget");
        assert!(error.to_string().contains("before a hello"), "{error}");
        assert!(budgeted.spent());
        budgeted.lift();
        let n = budgeted.read(&mut buf).await.expect("lifted");
        assert_eq!(n, 15);
    }

    #[test]
    fn an_upgrade_needs_the_websocket_headers() {
        let mut headers = HeaderMap::new();
        assert!(upgrade_key(&headers).is_err());
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(upgrade_key(&headers).unwrap_err().contains("version 13"));
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        assert!(
            upgrade_key(&headers)
                .unwrap_err()
                .contains("Sec-WebSocket-Key")
        );
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert_eq!(
            upgrade_key(&headers).as_deref(),
            Ok("dGhlIHNhbXBsZSBub25jZQ==")
        );
        // RFC 6455's own example.
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
