//! `/v1/balance` and `/v1/ledger`: the caller's own account.

use super::ApiQuery;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::store::ledger;
use axum::Json;
use axum::extract::State;
use gridx_proto::api::{BalanceResponse, ErrorBody, LedgerQuery, LedgerResponse};

/// Your balance.
#[utoipa::path(get, path = "/v1/balance", tag = "account",
    responses((status = 200, body = BalanceResponse), (status = 401, body = ErrorBody)))]
pub async fn balance(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<BalanceResponse>, ApiError> {
    let account = ledger::user_account(user.name.as_str());
    let balance = state
        .reader
        .read(move |conn| ledger::balance(conn, &account))
        .await?;
    Ok(Json(BalanceResponse {
        user: user.name,
        balance,
    }))
}

/// The newest entries of your ledger account, each signed from your side.
#[utoipa::path(get, path = "/v1/ledger", tag = "account",
    // The bounds of `limit` are written in by `openapi::with_bounds`.
    params(("limit" = Option<u32>, Query)),
    responses((status = 200, body = LedgerResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn ledger(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<LedgerQuery>,
) -> Result<Json<LedgerResponse>, ApiError> {
    let limit = query.limit.unwrap_or(LedgerQuery::DEFAULT_LIMIT);
    if !(1..=LedgerQuery::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {}",
            LedgerQuery::MAX_LIMIT
        )));
    }
    let entries = state
        .reader
        .read(move |conn| ledger::entries_for_user(conn, &user.name, limit))
        .await?;
    Ok(Json(LedgerResponse { entries }))
}
