//! Judge0's error answers: `{"error": "…"}` with its status, or `422` with
//! `{"field": ["message"]}` for a submission that fails validation.

use super::request::Invalid;
use crate::error::ApiError;
use crate::queue::QueueError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridx_proto::api::ErrorCode;
use serde_json::json;

#[derive(Debug)]
pub enum Judge0Error {
    /// `{"error": message}` with this status.
    Message(StatusCode, String),
    /// `422 {"field": ["message", …]}`.
    Invalid(Invalid),
    /// `429 {"error": …}` with `Retry-After`.
    RateLimited(u64),
}

impl Judge0Error {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Judge0Error::Message(StatusCode::BAD_REQUEST, message.into())
    }

    pub fn not_found() -> Self {
        Judge0Error::Message(StatusCode::NOT_FOUND, "Not Found".into())
    }
}

impl From<ApiError> for Judge0Error {
    fn from(e: ApiError) -> Self {
        if e.code == ErrorCode::RateLimited {
            return Judge0Error::RateLimited(e.retry_after_s.unwrap_or(1));
        }
        let status =
            StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Judge0Error::Message(status, e.message)
    }
}

impl From<QueueError> for Judge0Error {
    fn from(e: QueueError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<crate::store::StoreError> for Judge0Error {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for Judge0Error {
    fn into_response(self) -> Response {
        match self {
            Judge0Error::Message(status, message) => {
                (status, Json(json!({ "error": message }))).into_response()
            }
            Judge0Error::Invalid(errors) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Json(errors)).into_response()
            }
            Judge0Error::RateLimited(after) => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({ "error": "too many requests; retry later" })),
                )
                    .into_response();
                if let Ok(value) = HeaderValue::from_str(&after.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
        }
    }
}
