//! The one error type of the HTTP API. Every failure becomes
//! `{"error": {"code": ..., "message": ...}}` with the status its code maps to.

use crate::queue::QueueError;
use crate::store::StoreError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridx_proto::api::{ErrorBody, ErrorCode};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no such {what}"))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn rate_limited(retry_after_s: u64) -> Self {
        Self {
            code: ErrorCode::RateLimited,
            message: format!("too many requests; retry after {retry_after_s} s"),
            retry_after_s: Some(retry_after_s),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(ErrorBody::new(self.code, self.message))).into_response();
        if let Some(after) = self.retry_after_s
            && let Ok(value) = HeaderValue::from_str(&after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        let code = match &e {
            QueueError::InsufficientCredits { .. } => ErrorCode::InsufficientCredits,
            QueueError::QueueFull(_) => ErrorCode::QueueFull,
            QueueError::NotFound => ErrorCode::NotFound,
            QueueError::AlreadyFinished(..) => ErrorCode::Conflict,
            QueueError::Rejected(..) => ErrorCode::InvalidRequest,
            QueueError::ShuttingDown => ErrorCode::Unavailable,
            QueueError::KeyReused(_) => ErrorCode::Conflict,
            QueueError::PriorityNotAllowed { .. } => ErrorCode::Forbidden,
            QueueError::NoSuchUser(_) => ErrorCode::NotFound,
            QueueError::Invalid(_) => ErrorCode::Conflict,
            QueueError::AccountDisabled(..) => ErrorCode::Forbidden,
            QueueError::Store(_) => {
                tracing::error!(error = %e, "request failed in the store");
                ErrorCode::Internal
            }
        };
        let message = match &e {
            QueueError::NotFound => "no such job".to_owned(),
            QueueError::Store(_) => {
                "the coordinator could not store this change; nothing was changed".to_owned()
            }
            other => other.to_string(),
        };
        ApiError::new(code, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::new(ErrorCode::NotFound, m),
            StoreError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            StoreError::Unavailable => {
                ApiError::new(ErrorCode::Unavailable, "the store is unavailable")
            }
            other => {
                tracing::error!(error = %other, "store read failed");
                ApiError::new(
                    ErrorCode::Internal,
                    "the coordinator could not read its store",
                )
            }
        }
    }
}
