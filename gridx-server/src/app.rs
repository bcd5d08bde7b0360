//! The coordinator as a library: [`launch`] runs it on a listener until a shutdown
//! signal, so tests bind port 0 and the binary stays thin.

use crate::auth::Limits;
use crate::events::{Backlog, EventBus, WorkerBoard};
use crate::metrics::Metrics;
use crate::queue::{self, QueueHandle, QueueSettings};
use crate::store::{self, Location, StoreError, reader::Reader};
use gridx_proto::config::ServerConfig;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Everything a handler or session can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub queue: QueueHandle,
    pub reader: Reader,
    pub events: EventBus,
    pub board: WorkerBoard,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    pub started: Instant,
    pub next_session: Arc<AtomicU64>,
    pub shutdown: watch::Receiver<bool>,
    /// The leadership epoch this coordinator serves under on a shared PostgreSQL
    /// store; `None` on SQLite, where it is the only coordinator.
    pub epoch: Option<i64>,
}

impl AppState {
    pub fn new_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("leadership: {0}")]
    Leadership(String),
    /// This coordinator led with this epoch and lost the leadership.
    #[error("lost the leadership (epoch {0}); restart to stand by")]
    Deposed(i64),
    /// Leading with this epoch, it lost its connection to the store.
    #[error("lost the store's connection while leading (epoch {0}); restart to stand by")]
    StoreLost(i64),
    /// The candidacy ended without a shutdown.
    #[error("the leadership candidacy ended unexpectedly")]
    CandidacyEnded,
}

/// Runs the coordinator on `listener` until `shutdown` turns true: then it stops
/// taking work, sends `drain` to every worker, waits up to `shutdown_grace_s` for
/// running jobs, flushes and returns. Jobs still running then stay `running` in the
/// store and are recovered at the next start. With `[server.tls]` set it speaks TLS,
/// and reloads the certificate on SIGHUP and when its files change.
pub async fn launch(
    config: ServerConfig,
    data_dir: PathBuf,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<(), LaunchError> {
    // Before the store: a bad certificate must not leave anything half started.
    if let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) {
        crate::tls::ServerCert::load(cert, key)?;
    }
    let opened = tokio::task::spawn_blocking({
        let data_dir = data_dir.clone();
        move || store::open_for_serving(&data_dir)
    })
    .await
    .map_err(|_| StoreError::Unavailable)??;
    launch_on(config, data_dir, opened, listener, shutdown).await
}

/// [`launch`] on a store the caller already opened with
/// [`store::open_for_serving`]: `gridx-server serve` opens it before it binds, so a
/// store it cannot use is refused before it says `listening on`.
pub async fn launch_on(
    config: ServerConfig,
    data_dir: PathBuf,
    opened: (store::lock::ServeLock, crate::store::Db),
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), LaunchError> {
    let (_serve_lock, conn) = opened;
    let tls = load_tls(&config)?;
    let mut coordinator =
        Coordinator::start(config, Location::Sqlite(data_dir), conn, None, &shutdown)?;
    let (stop_http_tx, stop_http_rx) = watch::channel(false);
    let server = coordinator.serve_http(listener, tls, stop_http_rx)?;
    signalled(&mut shutdown).await;
    coordinator.stop().await;
    let _ = stop_http_tx.send(true);
    let _ = server.await;
    tracing::info!("coordinator stopped");
    Ok(())
}

/// The TLS certificate of `[server.tls]`, when set.
pub(crate) fn load_tls(
    config: &ServerConfig,
) -> Result<Option<Arc<crate::tls::ServerCert>>, LaunchError> {
    Ok(match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => Some(crate::tls::ServerCert::load(cert, key)?),
        _ => None,
    })
}

/// A running coordinator: its queue, its API and its background tasks.
pub(crate) struct Coordinator {
    pub(crate) state: AppState,
    router: axum::Router,
    queue_thread: std::thread::JoinHandle<()>,
    ticker: tokio::task::JoinHandle<()>,
    callbacks: Option<tokio::task::JoinHandle<()>>,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl Coordinator {
    /// Loads the queue from the store (`conn`, the writer) and builds the API.
    /// `epoch`: the leadership this coordinator holds on a shared store.
    pub(crate) fn start(
        config: ServerConfig,
        location: Location,
        conn: crate::store::Db,
        epoch: Option<i64>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Self, LaunchError> {
        let metrics = Metrics::new();
        let events = EventBus::new(Backlog {
            max_events: crate::api::live::MAX_BACKLOG_EVENTS,
            max_bytes: config.max_event_backlog_bytes,
        });
        let board = WorkerBoard::default();
        let (queue, queue_thread) = queue::start(
            conn,
            QueueSettings::from_config(&config),
            events.clone(),
            board.clone(),
            metrics.clone(),
        )?;
        let state = AppState {
            limits: Limits::new(&config),
            config: Arc::new(config),
            queue: queue.clone(),
            reader: Reader::new(location, 8),
            events,
            board,
            metrics,
            started: Instant::now(),
            next_session: Arc::new(AtomicU64::new(1)),
            shutdown: shutdown.clone(),
            epoch,
        };
        let router = crate::api::router(state.clone());
        let callbacks = state
            .config
            .judge0
            .callbacks
            .then(|| crate::judge0::callback::spawn(state.clone()));
        // Ticks drive leases and housekeeping; dispatch itself is event-driven.
        let ticker = tokio::spawn({
            let queue = queue.clone();
            let limits = state.limits.clone();
            let mut shutdown = shutdown.clone();
            async move {
                let mut interval = tokio::time::interval(Duration::from_millis(500));
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = 0u64;
                loop {
                    tokio::select! {
                        _ = interval.tick() => {
                            if !queue.tick().await { break; }
                            n += 1;
                            if n.is_multiple_of(120) { limits.shrink(); }
                        }
                        _ = signalled(&mut shutdown) => break,
                    }
                }
            }
        });
        Ok(Coordinator {
            state,
            router,
            queue_thread,
            ticker,
            callbacks,
            renewal: None,
        })
    }

    /// Whether the queue's thread ended on its own (its store connection is gone).
    pub(crate) fn queue_stopped(&self) -> bool {
        self.queue_thread.is_finished()
    }

    /// The API, to serve or to switch to.
    pub(crate) fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Serves the API on `listener` (TLS when `tls`), until `stop`.
    fn serve_http(
        &mut self,
        listener: TcpListener,
        tls: Option<Arc<crate::tls::ServerCert>>,
        stop: watch::Receiver<bool>,
    ) -> Result<tokio::task::JoinHandle<()>, LaunchError> {
        let router = self.router();
        serve_router(
            &self.state.config,
            listener,
            router,
            tls,
            stop,
            self.state.shutdown.clone(),
        )
        .map(|(server, renewal)| {
            self.renewal = renewal;
            server
        })
    }

    /// Stops taking work, sends `drain` to every worker, waits up to
    /// `shutdown_grace_s` for running jobs, and stops the queue.
    pub(crate) async fn stop(self) {
        let grace = Duration::from_secs(u64::from(self.state.config.shutdown_grace_s));
        tracing::info!("shutting down: draining workers");
        let queue = self.state.queue.clone();
        queue.drain().await;
        let mut stats = queue.watch_stats();
        let drained = tokio::time::timeout(grace, async {
            let _ = stats.wait_for(|s| s.running == 0).await;
        })
        .await;
        match drained {
            Ok(_) => tracing::info!("all running jobs finished"),
            Err(_) => tracing::warn!(
                running = queue.stats().running,
                "grace period over; running jobs stay leased and are recovered at the next start"
            ),
        }
        self.ticker.abort();
        if let Some(callbacks) = self.callbacks {
            callbacks.abort();
        }
        if let Some(renewal) = self.renewal {
            renewal.abort();
        }
        queue.stop().await;
        let queue_thread = self.queue_thread;
        let _ = tokio::task::spawn_blocking(move || queue_thread.join()).await;
    }
}

/// Serves `router` on `listener` until `stop`, with TLS (and its renewal watcher,
/// returned) when `tls` is given.
pub(crate) fn serve_router(
    config: &ServerConfig,
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<crate::tls::ServerCert>>,
    stop: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
) -> Result<
    (
        tokio::task::JoinHandle<()>,
        Option<tokio::task::JoinHandle<()>>,
    ),
    LaunchError,
> {
    let acceptor = tls.as_ref().map(|t| t.acceptor()).transpose()?;
    let addr = listener.local_addr()?;
    let renewal = match &tls {
        Some(cert) => {
            tracing::info!(%addr, url = %format!("https://{addr}"), fingerprint = %cert.fingerprint(), "coordinator listening (TLS)");
            Some(tokio::spawn(crate::tls::watch_for_renewal(
                cert.clone(),
                shutdown,
            )))
        }
        None => {
            tracing::info!(%addr, url = %format!("http://{addr}"), "coordinator listening");
            None
        }
    };
    let server = tokio::spawn(crate::http::serve(
        listener,
        router,
        Duration::from_secs(u64::from(config.request_timeout_s)),
        acceptor,
        stop,
    ));
    Ok((server, renewal))
}

/// Resolves once a shutdown flag turns true (or its sender is gone). Returns `()` so
/// no watch guard is held across an await in a `select!`.
pub async fn signalled(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|s| *s).await;
}
