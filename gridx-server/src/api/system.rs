//! `/healthz` and `/metrics`.

use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use gridx_proto::PROTOCOL_VERSION;
use gridx_proto::api::HealthResponse;

/// Liveness and readiness: 200 when the store answers, 503 when it does not.
#[utoipa::path(get, path = "/healthz", tag = "system", security(),
    responses((status = 200, body = HealthResponse), (status = 503, body = HealthResponse)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let store_ok = state
        .reader
        .read(|conn| conn.query_row("SELECT 1", (), |r| r.get::<i64>(0)))
        .await
        .is_ok();
    let stats = state.queue.stats();
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(HealthResponse {
            status: if store_ok { "ok" } else { "unavailable" }.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: PROTOCOL_VERSION,
            uptime_s: state.started.elapsed().as_secs(),
            workers_online: stats.workers_online,
            jobs_queued: stats.queued,
            role: Some("leader".into()),
            leader: None,
            epoch: state.epoch,
        }),
    )
}

/// Prometheus metrics in the OpenMetrics text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
