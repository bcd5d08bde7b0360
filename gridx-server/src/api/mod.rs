//! The HTTP API, grouped by resource. Routes and their OpenAPI document come from the
//! same `routes!` calls, so `/v1/openapi.json` cannot drift from the handlers.

mod account;
mod admin;
mod extract;
mod follow;
mod jobs;
pub mod live;
mod openapi;
mod system;
mod workers;

use crate::app::AppState;
use crate::error::ApiError;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method};
use axum::routing::get;
use gridx_proto::JobLimits;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::CorsLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use extract::{ApiJson, ApiQuery, Bounded};
pub use openapi::code_pattern;

/// The OpenAPI document of a coordinator with these job limits, as served at
/// `/v1/openapi.json`.
pub fn openapi(limits: &JobLimits) -> utoipa::openapi::OpenApi {
    openapi::with_bounds(api_routes().split_for_parts().1, limits)
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(jobs::submit, jobs::list))
        .routes(routes!(jobs::submit_batch))
        .routes(routes!(jobs::get_one))
        .routes(routes!(jobs::stdout))
        .routes(routes!(jobs::stderr))
        .routes(routes!(jobs::cancel))
        .routes(routes!(account::balance))
        .routes(routes!(account::ledger))
        .routes(routes!(workers::list))
        .routes(routes!(admin::list_users))
        .routes(routes!(admin::credit))
        .routes(routes!(admin::disable))
        .routes(routes!(admin::enable))
        .routes(routes!(admin::rotate_token))
        .routes(routes!(admin::audit_log))
        .routes(routes!(system::health))
}

/// A declared body past the limit is refused from its header alone (the body limit
/// otherwise waits for bytes that may never come). An error answered to a request with
/// a body says `Connection: close`: the handler may not have read the body, and hyper
/// then closes the connection, so a keep-alive client must not send its next request
/// into it.
async fn bounded_bodies(
    axum::extract::State(max): axum::extract::State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
    use axum::response::IntoResponse;
    let close = || axum::http::HeaderValue::from_static("close");
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        // Read and drop what the client is already sending, bounded in bytes and in
        // time, so that it gets the 413 rather than a reset from closing on unread data.
        let mut body = request.into_body().into_data_stream();
        let drain_limit = max.saturating_mul(4);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            use futures_util::StreamExt;
            let mut drained = 0usize;
            while let Some(Ok(chunk)) = body.next().await {
                drained += chunk.len();
                if drained > drain_limit {
                    break;
                }
            }
        })
        .await;
        let mut response = ApiError::new(
            gridx_proto::api::ErrorCode::PayloadTooLarge,
            format!("the request body is larger than the {max} bytes allowed"),
        )
        .into_response();
        response.headers_mut().insert(CONNECTION, close());
        return response;
    }
    let has_body =
        declared.is_some_and(|n| n > 0) || request.headers().contains_key(TRANSFER_ENCODING);
    let mut response = next.run(request).await;
    let status = response.status();
    if has_body && (status.is_client_error() || status.is_server_error()) {
        response.headers_mut().insert(CONNECTION, close());
    }
    response
}

/// Errors made outside our handlers (405, 408, a bad WebSocket upgrade) arrive with
/// an empty or plain-text body; give them the API's error body like every other.
async fn errors_as_json(response: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text.trim().to_owned()
    };
    let mut error = ApiError::new(
        gridx_proto::api::ErrorCode::for_status(status.as_u16()),
        message,
    )
    .into_response();
    *error.status_mut() = status;
    for (name, value) in parts.headers.iter() {
        if name == axum::http::header::RETRY_AFTER || name == axum::http::header::ALLOW {
            error.headers_mut().insert(name.clone(), value.clone());
        }
    }
    error
}

pub fn router(state: AppState) -> Router {
    let (api, doc) = api_routes().split_for_parts();
    let doc = Arc::new(openapi::with_bounds(doc, &state.config.limits));
    let timeout = Duration::from_secs(u64::from(state.config.request_timeout_s));
    let api = api
        .route("/metrics", get(system::metrics))
        // Judge0's API, for its clients (docs/judge0.md); not in the OpenAPI document.
        .nest("/judge0", crate::judge0::router())
        .route(
            "/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ));
    let mut app = Router::new()
        .merge(api)
        // WebSockets live outside the request timeout.
        .route("/v1/events", get(live::events))
        // A stream of a job's output: outside the request timeout too.
        .route("/v1/jobs/{id}/output", get(follow::follow))
        .route("/v1/worker/connect", get(crate::worker_session::connect))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(state.config.max_request_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.config.max_request_bytes,
            bounded_bodies,
        ))
        .layer(axum::middleware::map_response(errors_as_json));
    let origins: Vec<HeaderValue> = state
        .config
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if !origins.is_empty() {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_headers([
                    axum::http::header::AUTHORIZATION,
                    axum::http::header::CONTENT_TYPE,
                    // Judge0's clients (docs/judge0.md) authenticate and batch with these.
                    axum::http::HeaderName::from_static("x-auth-token"),
                    axum::http::HeaderName::from_static("tokens"),
                ])
                .allow_methods([Method::GET, Method::POST, Method::DELETE]),
        );
    }
    app.with_state(state)
}
