//! `/v1/admin/…`: the operator's actions on users over the API, for admin tokens only
//! (docs/api.md#admin). Changes go through the queue, the store's only writer, and
//! are audited under the admin's name; `gridx-server user …` does the same on the
//! host (`crate::admin`).

use super::{ApiJson, ApiQuery};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::queue::{AdminAction, AdminOutcome};
use crate::store::{audit, users};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use gridx_proto::UserName;
use gridx_proto::admin::{
    AuditQuery, AuditResponse, CreditRequest, CreditResponse, DisableRequest, TokenResponse,
    UserStateResponse, UsersResponse,
};
use gridx_proto::api::{ErrorBody, ErrorCode};

/// A user whose token is an admin's. Anyone else gets 403 (after the usual 401 for
/// no token): the routes exist, but not for them.
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if !user.is_admin {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "this needs an admin token (`gridx-server user add NAME --admin`)",
            ));
        }
        Ok(AdminUser(user))
    }
}

fn user_name(name: Result<Path<String>, PathRejection>) -> Result<UserName, ApiError> {
    let Path(name) = name.map_err(|_| ApiError::invalid("expected a user name in the path"))?;
    UserName::new(&name).map_err(|e| ApiError::invalid(e.to_string()))
}

/// Every user with balance, jobs, maximum priority and whether they are disabled.
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin",
    responses((status = 200, body = UsersResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<Json<UsersResponse>, ApiError> {
    let users = state.reader.read(users::list_users).await?;
    Ok(Json(UsersResponse { users }))
}

/// Grant (a positive amount) or debit (a negative one) a user's credits, with a
/// reason that the user sees on the ledger entry. A debit past the balance is 409.
#[utoipa::path(post, path = "/v1/admin/users/{name}/credit", tag = "admin",
    params(("name" = String, Path, description = "User name")),
    request_body = CreditRequest,
    responses((status = 200, body = CreditResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn credit(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    name: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<CreditRequest>,
) -> Result<Json<CreditResponse>, ApiError> {
    let user = user_name(name)?;
    let action = AdminAction::Credit {
        user: user.clone(),
        amount: request.amount,
        reason: request.reason,
    };
    let AdminOutcome::Credited(posted) = state.queue.admin(admin.name, action).await? else {
        return Err(ApiError::new(ErrorCode::Internal, "unexpected outcome"));
    };
    let account = crate::store::ledger::user_account(user.as_str());
    let entry = posted
        .view_for(&account)
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the entry missed the account"))?;
    Ok(Json(CreditResponse {
        user,
        balance: entry.balance_after,
        entry,
    }))
}

/// Disable an account: its token is refused (403) from its next request, its queued
/// jobs are cancelled with a refund, and its running jobs finish and settle.
#[utoipa::path(post, path = "/v1/admin/users/{name}/disable", tag = "admin",
    params(("name" = String, Path, description = "User name")),
    request_body = DisableRequest,
    responses((status = 200, body = UserStateResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn disable(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    name: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<DisableRequest>,
) -> Result<Json<UserStateResponse>, ApiError> {
    let user = user_name(name)?;
    let action = AdminAction::Disable {
        user: user.clone(),
        reason: request.reason,
    };
    state_change(state, admin, user, action).await
}

/// Enable a disabled account again (its token works again; cancelled jobs stay
/// cancelled).
#[utoipa::path(post, path = "/v1/admin/users/{name}/enable", tag = "admin",
    params(("name" = String, Path, description = "User name")),
    responses((status = 200, body = UserStateResponse), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<UserStateResponse>, ApiError> {
    let user = user_name(name)?;
    let action = AdminAction::Enable { user: user.clone() };
    state_change(state, admin, user, action).await
}

async fn state_change(
    state: AppState,
    admin: AuthUser,
    user: UserName,
    action: AdminAction,
) -> Result<Json<UserStateResponse>, ApiError> {
    let AdminOutcome::State { cancelled } = state.queue.admin(admin.name, action).await? else {
        return Err(ApiError::new(ErrorCode::Internal, "unexpected outcome"));
    };
    let view = state
        .reader
        .read(move |conn| users::user_account_view(conn, &user))
        .await?;
    Ok(Json(UserStateResponse {
        user: view,
        cancelled_jobs: cancelled,
    }))
}

/// Issue a new token for a user; the old one stops working at its next request. The
/// new token is in this answer only.
#[utoipa::path(post, path = "/v1/admin/users/{name}/token", tag = "admin",
    params(("name" = String, Path, description = "User name")),
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rotate_token(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<TokenResponse>, ApiError> {
    let user = user_name(name)?;
    let action = AdminAction::RotateToken { user: user.clone() };
    let AdminOutcome::Token(token) = state.queue.admin(admin.name, action).await? else {
        return Err(ApiError::new(ErrorCode::Internal, "unexpected outcome"));
    };
    Ok(Json(TokenResponse { user, token }))
}

/// The audit log, newest first: every change an operator made, by whom and when.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin",
    // The bounds of `limit` are written in by `openapi::with_bounds`.
    params(("limit" = Option<u32>, Query), ("before" = Option<u64>, Query, description = "Only entries older than this id")),
    responses((status = 200, body = AuditResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn audit_log(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditResponse>, ApiError> {
    let limit = query.limit.unwrap_or(AuditQuery::DEFAULT_LIMIT);
    if !(1..=AuditQuery::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {}",
            AuditQuery::MAX_LIMIT
        )));
    }
    let entries = state
        .reader
        .read(move |conn| audit::list(conn, limit, query.before))
        .await?;
    Ok(Json(AuditResponse { entries }))
}
