//! `/v1/workers`: the grid's capacity, visible to every user.

use crate::app::AppState;
use crate::auth::AuthUser;
use axum::Json;
use axum::extract::State;
use gridx_proto::api::{ErrorBody, WorkersResponse};

/// Every registered worker with its state, capacity and latest metrics.
#[utoipa::path(get, path = "/v1/workers", tag = "workers",
    responses((status = 200, body = WorkersResponse), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, _user: AuthUser) -> Json<WorkersResponse> {
    Json(WorkersResponse {
        workers: state.board.snapshot(),
    })
}
