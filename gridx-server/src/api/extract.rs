//! JSON body and query extractors whose rejections are the API's own error body.

use crate::error::ApiError;
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use gridx_proto::api::ErrorCode;
use serde::de::DeserializeOwned;

/// `Json<T>` with the API's error body (docs/api.md#errors): 413 for oversized bodies, 400 otherwise.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(
                ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large"),
            ),
            Err(rejection) => Err(ApiError::invalid(rejection.body_text())),
        }
    }
}

/// `Query<T>` with the API's error body (docs/api.md#errors).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}
