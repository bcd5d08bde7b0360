//! Bearer-token authentication as an axum extractor, with per-user rate limiting and
//! a per-address limit on failed attempts (so guessing tokens is slow).

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
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

type KeyedLimiter<K> =
    RateLimiter<K, governor::state::keyed::DefaultKeyedStateStore<K>, DefaultClock>;

/// The rate limiters of the API.
pub struct Limits {
    per_user: KeyedLimiter<UserName>,
    failed_auth: KeyedLimiter<IpAddr>,
    clock: DefaultClock,
}

impl Limits {
    pub fn new(per_second: u32, burst: u32) -> Arc<Self> {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        // Ten failed tokens a second per address, twenty at once: enough for a typo,
        // hopeless for guessing 256 bits.
        let failed = Quota::per_second(NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN));
        Arc::new(Self {
            per_user: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            failed_auth: RateLimiter::keyed(failed),
            clock: DefaultClock::default(),
        })
    }

    fn retry_after<K: Clone + std::hash::Hash + Eq>(
        &self,
        limiter: &KeyedLimiter<K>,
        key: &K,
    ) -> Option<u64> {
        match limiter.check_key(key) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Some(wait.as_secs().max(1))
            }
        }
    }

    /// Forgets idle keys so the limiter's memory stays bounded.
    pub fn shrink(&self) {
        self.per_user.retain_recent();
        self.failed_auth.retain_recent();
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
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let token = bearer_token(parts);
        let found = match token {
            Some(token) if token.starts_with(tokens::USER_PREFIX) => {
                let token = token.to_owned();
                state
                    .reader
                    .read(move |conn| users::user_by_token(conn, &token))
                    .await?
            }
            _ => None,
        };
        let Some(user) = found else {
            if let Some(after) = state.limits.retry_after(&state.limits.failed_auth, &peer) {
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
        if let Some(after) = state.limits.retry_after(&state.limits.per_user, &user.name) {
            state.metrics.rate_limited.inc();
            return Err(ApiError::rate_limited(after));
        }
        Ok(AuthUser {
            name: user.name,
            is_admin: user.is_admin,
        })
    }
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
