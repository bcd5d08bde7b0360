//! Several coordinators on one PostgreSQL store, one leading (docs/operations.md,
//! "Several coordinators"). Each `serve` listens at once, as a standby, and runs for
//! leader (`crate::leadership`). The one that leads opens the writer fenced by its
//! epoch, loads the queue from the database, and serves the whole API; the others
//! answer `/healthz` with `{"role":"standby","leader":…}` and everything else with
//! `503 unavailable` naming the leader, so clients and workers given every
//! coordinator's address (`--server URL,URL`) move on to the next, and a load
//! balancer that health-checks `/healthz` sends traffic only to the leader.
//!
//! Standbys do not redirect: a redirect to another host drops the bearer token
//! (HTTP clients strip `Authorization` across origins, rightly), and a WebSocket
//! client does not follow one. They do not proxy either: a proxy would keep a
//! standby in every request's path, and its failure would look like the leader's.
//!
//! A leader that loses the leadership (its database session failed, or a renewal was
//! late) stops serving at once and `serve` exits with an error; its service manager
//! restarts it, as a standby. Its writes could not land anyway (every transaction is
//! fenced by the epoch), and starting over is simpler to reason about than stepping
//! down in place with a queue in memory that may no longer be the database's.

use crate::app::{Coordinator, LaunchError, load_tls, serve_router, signalled};
use crate::leadership::{Candidate, Role, Timing};
use crate::store::{self, Location, StoreError};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridx_proto::PROTOCOL_VERSION;
use gridx_proto::api::{ErrorBody, ErrorCode, HealthResponse};
use gridx_proto::config::ServerConfig;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Runs one coordinator of several on the PostgreSQL store at `url` until
/// `shutdown`: standby until it leads, then the whole coordinator. `advertise` is how
/// the others name it. Returns [`LaunchError::Deposed`] when it led and lost it.
pub async fn launch_replicated(
    config: ServerConfig,
    url: String,
    advertise: String,
    timing: Timing,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), LaunchError> {
    timing.check().map_err(LaunchError::Leadership)?;
    let tls = load_tls(&config)?;
    // Before listening: a database that cannot be reached or holds a newer schema is
    // refused now, not after `listening on`.
    tokio::task::spawn_blocking({
        let url = url.clone();
        move || store::postgres::open(&url, None).map(drop)
    })
    .await
    .map_err(|_| StoreError::Unavailable)??;

    let (role_tx, mut role) = watch::channel(Role::Standby { leader: None });
    let candidacy =
        tokio::spawn(Candidate::new(url.clone(), advertise, timing).run(role_tx, shutdown.clone()));
    let switch = Switch {
        api: Arc::new(RwLock::new(None)),
        role: role.clone(),
        started: Instant::now(),
    };
    let (stop_http_tx, stop_http_rx) = watch::channel(false);
    let (server, renewal) = serve_router(
        &config,
        listener,
        switch.router(),
        tls,
        stop_http_rx,
        shutdown.clone(),
    )?;
    tracing::info!("standby: running for leader");

    let outcome = async {
        let Some(epoch) = wait_to_lead(&mut role, &mut shutdown).await else {
            // Not leading and not told to stop: the candidacy is gone, and a
            // service manager should restart this coordinator.
            return if *shutdown.borrow() {
                Ok(())
            } else {
                Err(LaunchError::CandidacyEnded)
            };
        };
        let db = tokio::task::spawn_blocking({
            let url = url.clone();
            move || store::postgres::open(&url, Some(epoch))
        })
        .await
        .map_err(|_| StoreError::Unavailable)??;
        let coordinator =
            Coordinator::start(config, Location::Postgres(url), db, Some(epoch), &shutdown)?;
        switch.install(Some(coordinator.router()));
        tracing::info!(epoch, "leading: the queue is loaded and the API is served");
        let mut check = tokio::time::interval(Duration::from_millis(500));
        let lost = loop {
            tokio::select! {
                biased;
                _ = signalled(&mut shutdown) => break false,
                _ = check.tick() => {
                    if coordinator.queue_stopped() && !*shutdown.borrow() {
                        switch.install(None);
                        tracing::error!(epoch, "the store's connection is gone: stopping at once");
                        drop(coordinator);
                        return Err(LaunchError::StoreLost(epoch));
                    }
                }
                changed = role.changed() => {
                    // The candidacy steps down on shutdown too: that is not a loss.
                    if *shutdown.borrow() {
                        break false;
                    }
                    let still = matches!(*role.borrow(), Role::Leader { epoch: e } if e == epoch);
                    if changed.is_err() || !still {
                        break true;
                    }
                }
            }
        };
        // Stop serving before anything else: from now on nothing is answered as
        // the leader's.
        switch.install(None);
        if lost {
            // No drain: its queue may be blocked on a database it cannot reach, and
            // nothing it would write can land. The process ends; workers reconnect
            // to the next address, and the new leader recovers their attempts.
            tracing::error!(epoch, "the leadership was lost: stopping at once");
            drop(coordinator);
            return Err(LaunchError::Deposed(epoch));
        }
        coordinator.stop().await;
        Ok(())
    }
    .await;
    candidacy.abort();
    let _ = stop_http_tx.send(true);
    let _ = server.await;
    if let Some(renewal) = renewal {
        renewal.abort();
    }
    outcome
}

/// Waits until this candidate leads (its epoch) or shutdown (`None`).
async fn wait_to_lead(
    role: &mut watch::Receiver<Role>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<i64> {
    loop {
        if let Role::Leader { epoch } = *role.borrow_and_update() {
            return Some(epoch);
        }
        tokio::select! {
            changed = role.changed() => changed.ok()?,
            _ = signalled(shutdown) => return None,
        }
    }
}

/// What the listener serves: the standby's answers, or the leader's API once it
/// leads.
#[derive(Clone)]
struct Switch {
    api: Arc<RwLock<Option<Router>>>,
    role: watch::Receiver<Role>,
    started: Instant,
}

impl Switch {
    fn router(&self) -> Router {
        Router::new().fallback(switched).with_state(self.clone())
    }

    fn install(&self, api: Option<Router>) {
        if let Ok(mut slot) = self.api.write() {
            *slot = api;
        }
    }
}

async fn switched(State(switch): State<Switch>, request: Request) -> Response {
    let api = switch.api.read().ok().and_then(|a| a.clone());
    if let Some(api) = api {
        return match api.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
    }
    let leader = match &*switch.role.borrow() {
        Role::Standby { leader } => leader.clone(),
        // Elected, the queue still loading: a moment, then it serves.
        Role::Leader { .. } => None,
    };
    if request.uri().path() == "/healthz" {
        let body = HealthResponse {
            status: "standby".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: PROTOCOL_VERSION,
            uptime_s: switch.started.elapsed().as_secs(),
            workers_online: 0,
            jobs_queued: 0,
            role: Some("standby".into()),
            leader,
            epoch: None,
        };
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    let message = match &leader {
        Some(l) => format!("this coordinator is a standby; the leader is {l}"),
        None => "this coordinator is a standby and no coordinator leads yet".into(),
    };
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(ErrorBody::new(ErrorCode::Unavailable, message)),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
