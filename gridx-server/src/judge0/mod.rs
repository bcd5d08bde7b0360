//! A Judge0 CE 1.13.1-compatible API at `/judge0` (docs/judge0.md): a Judge0 client
//! whose endpoint becomes `http://HOST:8420/judge0` runs its submissions on the grid,
//! with Grid-X user tokens, credits, fair share, result checks and the ledger applying
//! as for `/v1`. Submissions are Grid-X jobs: they go through the same queue and the
//! same validation of limits; this module only translates.
//!
//! - `request`: a submission request, read and checked as Judge0 does
//! - `response`: a job as a Judge0 submission, `fields` and base64
//! - `status`, `languages`: Judge0's tables
//! - `encoding`: Ruby's base64 and Judge0's timestamps
//! - `submissions`, `info`: the routes

pub mod callback;
mod encoding;
mod error;
mod info;
pub mod languages;
mod request;
mod response;
pub mod status;
mod submissions;

use crate::app::AppState;
use crate::auth::{AuthUser, authenticate, bearer_token};
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};
pub use error::Judge0Error;

/// The version `/about` and `/version` report: clients key their language-id tables
/// by it.
pub const VERSION: &str = "1.13.1";

/// The routes, to be nested under `/judge0`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/submissions",
            post(submissions::create).get(submissions::index),
        )
        .route(
            "/submissions/batch",
            post(submissions::batch_create).get(submissions::batch_show),
        )
        .route(
            "/submissions/{token}",
            get(submissions::show).delete(submissions::destroy),
        )
        .route("/languages", get(info::languages))
        .route("/languages/all", get(info::all_languages))
        .route("/languages/{id}", get(info::language))
        .route("/statuses", get(info::statuses))
        .route("/about", get(info::about))
        .route("/version", get(info::version))
        .route("/config_info", get(info::config_info))
        .route("/workers", get(info::workers))
        .route("/authenticate", post(info::authenticate))
        .route("/authorize", post(info::authorize))
        .fallback(|| async { Judge0Error::not_found() })
}

/// A Grid-X user, from Judge0's `X-Auth-Token` header (or the `X-Auth-Token` query
/// parameter, as Judge0 also reads it) or from `Authorization: Bearer`.
pub struct Judge0User(pub AuthUser);

fn auth_token(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get("x-auth-token") {
        return value
            .to_str()
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty() && t.len() <= 256);
    }
    if let Some(query) = parts.uri.query() {
        for pair in query.split('&') {
            if let Some(value) = pair.strip_prefix("X-Auth-Token=") {
                return Some(value.to_owned()).filter(|t| !t.is_empty() && t.len() <= 256);
            }
        }
    }
    bearer_token(parts).map(str::to_owned)
}

impl FromRequestParts<AppState> for Judge0User {
    type Rejection = Judge0Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Judge0Error> {
        let token = auth_token(parts);
        authenticate(parts, state, token.as_deref())
            .await
            .map(Judge0User)
            .map_err(Judge0Error::from)
    }
}
