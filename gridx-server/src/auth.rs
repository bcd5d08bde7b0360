//! Bearer-token authentication as an axum extractor, with per-user rate limiting, a
//! per-address limit on failed attempts (so guessing tokens is slow), and the limits
//! on open WebSocket connections per address and in all.

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::users;
use crate::tokens;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use gridx_proto::UserName;
use gridx_proto::api::ErrorCode;
use gridx_proto::config::ServerConfig;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type KeyedLimiter<K> =
    RateLimiter<K, governor::state::keyed::DefaultKeyedStateStore<K>, DefaultClock>;

/// How long a token that authenticated stays "recent": still looked up from an
/// address whose failed-token budget is spent.
const RECENT_TOKEN_TTL: Duration = Duration::from_secs(600);
/// Most recent tokens remembered; past it, new ones are not until expired ones are
/// forgotten (they then wait out a blocked address like any other token).
const MAX_RECENT_TOKENS: usize = 65_536;

/// The rate and connection limits of the API and the worker endpoint.
pub struct Limits {
    per_user: KeyedLimiter<UserName>,
    failed_auth: KeyedLimiter<IpAddr>,
    /// Addresses whose failed-token budget is spent, until when. Checked before any
    /// token lookup, so a guesser costs no store read once it is limited.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// SHA-256 of user tokens that authenticated recently, and when. A blocked
    /// address still gets these looked up, so a real user behind the same address
    /// (a NAT, a proxy) as a guesser keeps being served. Only the lookup decides.
    recent: Mutex<HashMap<[u8; 32], Instant>>,
    clock: DefaultClock,
    /// Open worker WebSockets.
    pub worker_sockets: Arc<ConnectionLimit>,
    /// Open `/v1/events` streams.
    pub event_streams: Arc<ConnectionLimit>,
}

impl Limits {
    pub fn new(config: &ServerConfig) -> Arc<Self> {
        let rate = NonZeroU32::new(config.rate_limit_per_s).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(rate);
        // Ten failed tokens a second per address, twenty at once: enough for a typo,
        // hopeless for guessing 256 bits.
        let failed = Quota::per_second(NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN));
        Arc::new(Self {
            per_user: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            failed_auth: RateLimiter::keyed(failed),
            blocked: Mutex::default(),
            recent: Mutex::default(),
            clock: DefaultClock::default(),
            worker_sockets: Arc::new(ConnectionLimit::new(
                ConnectionKind::Worker,
                config.max_worker_connections_per_address,
                config.max_worker_connections,
            )),
            event_streams: Arc::new(ConnectionLimit::new(
                ConnectionKind::Events,
                config.max_event_streams_per_address,
                config.max_event_streams,
            )),
        })
    }

    fn retry_after<K: Clone + std::hash::Hash + Eq>(
        &self,
        limiter: &KeyedLimiter<K>,
        key: &K,
    ) -> Option<Duration> {
        match limiter.check_key(key) {
            Ok(()) => None,
            Err(not_until) => Some(not_until.wait_time_from(self.clock.now())),
        }
    }

    /// Before a token is looked up: `Some(seconds to wait)` when `peer` has spent its
    /// failed-token budget and `token` (its SHA-256, if there is one) has not
    /// authenticated recently.
    pub fn refused_before_lookup(&self, peer: IpAddr, token: Option<&[u8; 32]>) -> Option<u64> {
        let now = Instant::now();
        let until = {
            let mut blocked = self.blocked.lock().ok()?;
            match blocked.get(&peer) {
                Some(until) if *until > now => *until,
                Some(_) => {
                    blocked.remove(&peer);
                    return None;
                }
                None => return None,
            }
        };
        let recent = token.is_some_and(|hash| {
            self.recent.lock().is_ok_and(|recent| {
                recent
                    .get(hash)
                    .is_some_and(|at| now.duration_since(*at) < RECENT_TOKEN_TTL)
            })
        });
        (!recent).then(|| whole_seconds(until - now))
    }

    /// A token from `peer` was refused (unknown, rotated, revoked, missing, or of the
    /// wrong kind): counts against the address. `Some(seconds)` when that spent its
    /// budget, so the answer is 429 instead of 401.
    pub fn failed(&self, peer: IpAddr, token: Option<&[u8; 32]>) -> Option<u64> {
        if let (Some(hash), Ok(mut recent)) = (token, self.recent.lock()) {
            recent.remove(hash);
        }
        let wait = self.retry_after(&self.failed_auth, &peer)?;
        if let Ok(mut blocked) = self.blocked.lock() {
            blocked.insert(peer, Instant::now() + wait);
        }
        Some(whole_seconds(wait))
    }

    /// A user token authenticated: it stays looked up from a blocked address.
    fn authenticated(&self, token: [u8; 32]) {
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        // When full, a new token waits for `shrink` (every minute) to make room.
        if recent.len() < MAX_RECENT_TOKENS || recent.contains_key(&token) {
            recent.insert(token, Instant::now());
        }
    }

    /// Forgets idle keys so the limiters' memory stays bounded.
    pub fn shrink(&self) {
        self.per_user.retain_recent();
        self.failed_auth.retain_recent();
        let now = Instant::now();
        if let Ok(mut blocked) = self.blocked.lock() {
            blocked.retain(|_, until| *until > now);
        }
        if let Ok(mut recent) = self.recent.lock() {
            recent.retain(|_, at| now.duration_since(*at) < RECENT_TOKEN_TTL);
        }
    }
}

/// A wait as the whole seconds of a `Retry-After`, at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The client's address, as the accept loop recorded it.
pub fn peer_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Which connections a [`ConnectionLimit`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    Worker,
    Events,
}

impl ConnectionKind {
    fn describe(self) -> &'static str {
        match self {
            ConnectionKind::Worker => "worker connections",
            ConnectionKind::Events => "event streams",
        }
    }

    fn keys(self) -> (&'static str, &'static str) {
        match self {
            ConnectionKind::Worker => (
                "server.max_worker_connections_per_address",
                "server.max_worker_connections",
            ),
            ConnectionKind::Events => (
                "server.max_event_streams_per_address",
                "server.max_event_streams",
            ),
        }
    }
}

/// Long-lived connections of one kind open at once, per client address and in all.
/// A connection holds a [`ConnectionSlot`] for as long as it lives.
#[derive(Debug)]
pub struct ConnectionLimit {
    kind: ConnectionKind,
    per_address: u32,
    total: u32,
    open: Mutex<OpenConnections>,
}

#[derive(Debug, Default)]
struct OpenConnections {
    by_address: HashMap<IpAddr, u32>,
    total: u32,
}

/// Why a connection was refused: one address already holds its share (429), or the
/// coordinator holds as many as it takes in all (503).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionRefused {
    PerAddress(ConnectionKind, u32),
    Total(ConnectionKind, u32),
}

impl From<ConnectionRefused> for ApiError {
    fn from(refused: ConnectionRefused) -> Self {
        let (code, message) = match refused {
            ConnectionRefused::PerAddress(kind, max) => (
                ErrorCode::RateLimited,
                format!(
                    "this address already has {max} open {} ({}); close one first",
                    kind.describe(),
                    kind.keys().0
                ),
            ),
            ConnectionRefused::Total(kind, max) => (
                ErrorCode::Unavailable,
                format!(
                    "the coordinator already has {max} open {} ({}); retry later",
                    kind.describe(),
                    kind.keys().1
                ),
            ),
        };
        ApiError {
            code,
            message,
            retry_after_s: Some(1),
        }
    }
}

impl ConnectionLimit {
    pub fn new(kind: ConnectionKind, per_address: u32, total: u32) -> Self {
        Self {
            kind,
            per_address,
            total,
            open: Mutex::default(),
        }
    }

    /// A slot for one more connection from `peer`, or why there is none.
    pub fn acquire(self: &Arc<Self>, peer: IpAddr) -> Result<ConnectionSlot, ConnectionRefused> {
        let mut open = self
            .open
            .lock()
            .map_err(|_| ConnectionRefused::Total(self.kind, self.total))?;
        if open.total >= self.total {
            return Err(ConnectionRefused::Total(self.kind, self.total));
        }
        let from_peer = open.by_address.entry(peer).or_insert(0);
        if *from_peer >= self.per_address {
            return Err(ConnectionRefused::PerAddress(self.kind, self.per_address));
        }
        *from_peer += 1;
        open.total += 1;
        Ok(ConnectionSlot {
            limit: self.clone(),
            peer,
        })
    }

    /// Connections open now: (from `peer`, in all).
    pub fn open(&self, peer: IpAddr) -> (u32, u32) {
        self.open.lock().map_or((0, 0), |open| {
            (open.by_address.get(&peer).copied().unwrap_or(0), open.total)
        })
    }
}

/// One open connection; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    limit: Arc<ConnectionLimit>,
    peer: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.limit.open.lock() {
            open.total = open.total.saturating_sub(1);
            if let Some(n) = open.by_address.get_mut(&self.peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.by_address.remove(&self.peer);
                }
            }
        }
    }
}

/// An authenticated user. Extracting it checks the token and the rate limit.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub name: UserName,
    pub is_admin: bool,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state, bearer_token(parts)).await
    }
}

/// Checks a presented user token (from whichever header the API reads it), with the
/// failed-token limit per address, the per-user rate limit and disabled accounts.
pub async fn authenticate(
    parts: &Parts,
    state: &AppState,
    token: Option<&str>,
) -> Result<AuthUser, ApiError> {
    let peer = peer_ip(parts);
    let hash = token.map(tokens::hash);
    // The failed-token limit comes first: a limited address costs no lookup.
    if let Some(after) = state.limits.refused_before_lookup(peer, hash.as_ref()) {
        state.metrics.rate_limited.inc();
        return Err(ApiError::rate_limited(after));
    }
    let found = match token {
        Some(token) if token.starts_with(tokens::USER_PREFIX) => {
            let token = token.to_owned();
            state
                .reader
                .read_small(move |conn| users::user_by_token(conn, &token))
                .await?
        }
        _ => None,
    };
    let Some(user) = found else {
        if let Some(after) = state.limits.failed(peer, hash.as_ref()) {
            state.metrics.rate_limited.inc();
            return Err(ApiError::rate_limited(after));
        }
        let message = match token {
            None => "missing `Authorization: Bearer <token>` header".to_owned(),
            Some(t) if t.starts_with(tokens::WORKER_PREFIX) => {
                "this is a worker token; it only works for `gridx-tui worker`".to_owned()
            }
            Some(_) => "unknown or rotated API token".to_owned(),
        };
        return Err(ApiError::unauthorized(message));
    };
    if let Some(hash) = hash {
        state.limits.authenticated(hash);
    }
    // A real token, not a guess: refused with the reason, not counted as a failure.
    if let Some(reason) = user.disabled {
        return Err(ApiError::new(
            gridx_proto::api::ErrorCode::Forbidden,
            crate::queue::QueueError::AccountDisabled(user.name, reason).to_string(),
        ));
    }
    if let Some(wait) = state.limits.retry_after(&state.limits.per_user, &user.name) {
        state.metrics.rate_limited.inc();
        return Err(ApiError::rate_limited(whole_seconds(wait)));
    }
    Ok(AuthUser {
        name: user.name,
        is_admin: user.is_admin,
    })
}

/// The token of an `Authorization: Bearer` header, if well-formed.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty() && token.len() <= 256).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Arc<Limits> {
        Limits::new(&ServerConfig {
            max_worker_connections_per_address: 2,
            max_worker_connections: 3,
            ..ServerConfig::default()
        })
    }

    #[test]
    fn connections_are_limited_per_address_and_in_all_and_freed_on_drop() {
        let limits = limits();
        let (a, b, c) = (
            IpAddr::from([10, 0, 0, 1]),
            IpAddr::from([10, 0, 0, 2]),
            IpAddr::from([10, 0, 0, 3]),
        );
        let sockets = &limits.worker_sockets;
        let a1 = sockets.acquire(a).expect("first");
        let _a2 = sockets.acquire(a).expect("second");
        assert_eq!(
            sockets.acquire(a).unwrap_err(),
            ConnectionRefused::PerAddress(ConnectionKind::Worker, 2)
        );
        let _b1 = sockets.acquire(b).expect("another address");
        assert_eq!(
            sockets.acquire(c).unwrap_err(),
            ConnectionRefused::Total(ConnectionKind::Worker, 3)
        );
        assert_eq!(sockets.open(a), (2, 3));
        drop(a1);
        assert_eq!(sockets.open(a), (1, 2));
        let _c1 = sockets.acquire(c).expect("room again");
        // Each kind counts on its own.
        let _e = limits.event_streams.acquire(a).expect("an event stream");
        let refused = ApiError::from(ConnectionRefused::PerAddress(ConnectionKind::Events, 16));
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert!(
            refused
                .message
                .contains("server.max_event_streams_per_address"),
            "{}",
            refused.message
        );
        let full = ApiError::from(ConnectionRefused::Total(ConnectionKind::Worker, 4096));
        assert_eq!(
            (full.code, full.retry_after_s),
            (ErrorCode::Unavailable, Some(1))
        );
    }

    #[test]
    fn a_spent_failed_token_budget_refuses_before_any_lookup_except_recent_tokens() {
        let limits = limits();
        let peer = IpAddr::from([10, 0, 0, 9]);
        let other = IpAddr::from([10, 0, 0, 10]);
        let known = tokens::hash("gxu_known");
        let guess = tokens::hash("gxu_guess");
        limits.authenticated(known);
        assert_eq!(limits.refused_before_lookup(peer, Some(&guess)), None);
        // The burst of 20 failures is allowed; the next one spends the budget.
        let spent = (0..40).find_map(|_| limits.failed(peer, Some(&guess)));
        assert!(spent.is_some_and(|s| s >= 1), "{spent:?}");
        // Now a guess is refused before it is looked up, as is a missing token...
        assert!(limits.refused_before_lookup(peer, Some(&guess)).is_some());
        assert!(limits.refused_before_lookup(peer, None).is_some());
        // ...but a token that authenticated recently is still looked up,
        assert_eq!(limits.refused_before_lookup(peer, Some(&known)), None);
        // and another address is not affected.
        assert_eq!(limits.refused_before_lookup(other, Some(&guess)), None);
        // A recent token that then fails (rotated) is forgotten.
        let _ = limits.failed(peer, Some(&known));
        assert!(limits.refused_before_lookup(peer, Some(&known)).is_some());
        // The block lasts until the bucket refills: about 100 ms for one more try.
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(limits.refused_before_lookup(peer, Some(&guess)), None);
        limits.shrink();
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2001)), 3);
    }
}
