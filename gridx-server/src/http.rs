//! The HTTP accept loop: hyper with a header-read timeout (slow clients cannot hold
//! connections open forever), the peer address for rate limiting, WebSocket upgrades,
//! TLS when the coordinator terminates it itself (`tls.rs`), and graceful shutdown.
//!
//! HTTP/1.1 only. With protocol sniffing (HTTP/1 or HTTP/2) a connection that sends
//! nothing, or trickles the HTTP/2 preface, was held open forever: the header timeout
//! only starts once HTTP/1 is detected. Every client of this API (reqwest, curl,
//! WebSockets, a TLS-terminating proxy) speaks HTTP/1.1.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Serves `router` on `listener` until `stop`; over TLS when `tls` is given. A TLS
/// handshake must finish within `header_timeout` too, so a client that opens a
/// connection and sends nothing cannot hold it.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    // Every connection task, so that shutdown can wait for in-flight requests. (hyper-
    // util's GracefulShutdown cannot watch an HTTP/1-only upgradeable connection.)
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(request)
                });
                let builder = builder.clone();
                let tls = tls.clone();
                let mut stop = stop.clone();
                connections.spawn(async move {
                    let Some(acceptor) = tls else {
                        drive(&builder, stream, service, stop, peer).await;
                        return;
                    };
                    let handshake = tokio::select! {
                        done = tokio::time::timeout(header_timeout, handshake(&acceptor, stream)) => done,
                        _ = crate::app::signalled(&mut stop) => return,
                    };
                    match handshake {
                        Ok(Ok(Some(stream))) => drive(&builder, stream, service, stop, peer).await,
                        Ok(Ok(None)) => tracing::debug!(%peer, "plain HTTP on the TLS port; told to use https"),
                        // Scanners, plain-HTTP clients, clients that refuse the
                        // certificate: their own business, at debug level.
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
            _ = crate::app::signalled(&mut stop) => break,
        }
    }
    drop(listener);
    // Let in-flight requests finish, for up to 5 s.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// The TLS handshake of one connection; `None` when the client spoke plain HTTP
/// instead, which is answered with a 400 that says to use https (an `http://` address
/// given for a TLS coordinator is an easy mistake, and a bare reset explains nothing).
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: tokio::net::TcpStream,
) -> std::io::Result<Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 1 && first[0] != TLS_HANDSHAKE {
        refuse_plain_http(stream).await;
        return Ok(None);
    }
    acceptor.accept(stream).await.map(Some)
}

async fn refuse_plain_http(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = gridx_proto::api::ErrorBody::new(
        gridx_proto::api::ErrorCode::InvalidRequest,
        "this coordinator speaks TLS only: use https:// (and wss://) with the same host and port",
    );
    let body = serde_json::to_string(&body).unwrap_or_default();
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    // Read the request out before closing: closing over unread bytes sends a reset,
    // which can reach the client before the answer does.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Serves one connection (plain or TLS) until it ends or `stop`.
async fn drive<S, F>(
    builder: &Builder,
    stream: S,
    service: F,
    mut stop: watch::Receiver<bool>,
    peer: std::net::SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: hyper::service::HttpService<Incoming>,
    F::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    F::ResBody: 'static,
    <F::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        _ = crate::app::signalled(&mut stop) => {
            // Finish the request in flight, then close; idle keep-alives close at once.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
