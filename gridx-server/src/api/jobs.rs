//! `/v1/jobs`: submit, list, inspect, read output, cancel.

use super::{ApiJson, ApiQuery};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::queue::{NewJob, SubmitKey};
use crate::store::jobs as store_jobs;
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use gridx_proto::api::{
    BatchItem, ErrorBody, ErrorCode, ErrorDetail, JobListQuery, JobListResponse, JobView,
    MAX_BATCH_JOBS, MAX_IDEMPOTENCY_KEY_LEN, OUTPUT_CONTENT_TYPE, OutputStream, SubmitBatchRequest,
    SubmitBatchResponse, SubmitJobRequest,
};
use gridx_proto::{JobId, JobSpec, JobStatus};
use sha2::{Digest, Sha256};

/// Submit a job. Its cost is held from your balance in the same transaction that
/// stores it. With an `Idempotency-Key`, sending the same request again (after a
/// lost answer) returns the job the first one made, with 200, instead of a new job.
#[utoipa::path(
    post, path = "/v1/jobs", tag = "jobs",
    request_body = SubmitJobRequest,
    params(
        // Its bounds and description are written in by `openapi::with_bounds`.
        ("Idempotency-Key" = Option<String>, Header),
    ),
    responses(
        (status = 201, description = "Queued", body = JobView),
        (status = 200, description = "Replayed: the job an earlier submit with this key made", body = JobView),
        (status = 409, description = "The key was used for a different request", body = ErrorBody),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 402, description = "Insufficient credits", body = ErrorBody),
        (status = 403, description = "A priority above the caller's maximum (`user set --max-priority`)", body = ErrorBody),
        (status = 413, description = "Code, stdin or body too large", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody),
        (status = 503, description = "Queue full", body = ErrorBody),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SubmitJobRequest>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let spec = state
        .config
        .limits
        .validate(&request)
        .map_err(|e| ApiError::new(spec_error_code(&e), e.to_string()))?;
    let validate = request.validate.unwrap_or(true);
    let key = submit_key(&headers, &spec, validate)?;
    let job = NewJob {
        key,
        ..NewJob::new(spec, validate)
    };
    let submitted = state.queue.submit(user.name, job).await?;
    let status = if submitted.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(submitted.view)))
}

/// The body of a batch as it arrives: each item is decoded on its own, so that one
/// malformed item is refused in its place instead of failing the whole request.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBatch {
    jobs: super::Bounded<serde_json::Value, MAX_BATCH_JOBS>,
}

/// Submit up to 100 jobs in one request. They are stored in one transaction, in
/// order, each held from your balance like a single submit; each item is accepted or
/// refused on its own (`{"job": …}` or `{"error": …}` in its place), so a balance that
/// covers only the first items queues only those. No `Idempotency-Key`.
#[utoipa::path(
    post, path = "/v1/jobs/batch", tag = "jobs",
    request_body = SubmitBatchRequest,
    responses(
        (status = 200, description = "One result per item, in order", body = SubmitBatchResponse),
        (status = 400, description = "Not a batch: no `jobs` array, none, or more than 100", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody),
        (status = 503, description = "The coordinator is shutting down", body = ErrorBody),
    )
)]
pub async fn submit_batch(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(batch): ApiJson<RawBatch>,
) -> Result<Json<SubmitBatchResponse>, ApiError> {
    if headers.contains_key("idempotency-key") {
        return Err(ApiError::invalid(
            "a batch takes no Idempotency-Key; submit one job at a time to use one",
        ));
    }
    // More than the maximum was refused while decoding ("more than 100 items").
    let batch_jobs = batch.jobs.0;
    if batch_jobs.is_empty() {
        return Err(ApiError::invalid(format!(
            "a batch holds 1 to {MAX_BATCH_JOBS} jobs, not 0"
        )));
    }
    // Check every item first; only the valid ones go to the queue, in order.
    let mut items: Vec<Result<NewJob, ErrorDetail>> = Vec::with_capacity(batch_jobs.len());
    for raw in batch_jobs {
        items.push(
            serde_json::from_value::<SubmitJobRequest>(raw)
                .map_err(|e| ErrorDetail {
                    code: ErrorCode::InvalidRequest,
                    message: e.to_string(),
                })
                .and_then(|request| {
                    let validate = request.validate.unwrap_or(true);
                    state
                        .config
                        .limits
                        .validate(&request)
                        .map(|spec| NewJob::new(spec, validate))
                        .map_err(|e| ErrorDetail {
                            code: spec_error_code(&e),
                            message: e.to_string(),
                        })
                }),
        );
    }
    let valid: Vec<NewJob> = items
        .iter()
        .filter_map(|i| i.as_ref().ok().cloned())
        .collect();
    let mut submitted = if valid.is_empty() {
        Vec::new()
    } else {
        state.queue.submit_batch(user.name, valid).await?
    }
    .into_iter();
    let jobs = items
        .into_iter()
        .map(|item| match item {
            Err(error) => BatchItem {
                job: None,
                error: Some(error),
            },
            Ok(_) => match submitted.next() {
                Some(Ok(s)) => BatchItem {
                    job: Some(Box::new(s.view)),
                    error: None,
                },
                Some(Err(e)) => {
                    let e = ApiError::from(e);
                    BatchItem {
                        job: None,
                        error: Some(ErrorDetail {
                            code: e.code,
                            message: e.message,
                        }),
                    }
                }
                None => BatchItem {
                    job: None,
                    error: Some(ErrorDetail {
                        code: ErrorCode::Internal,
                        message: "the queue answered fewer items than it was sent".into(),
                    }),
                },
            },
        })
        .collect();
    Ok(Json(SubmitBatchResponse { jobs }))
}

/// A job the limits refuse: 413 for what is too large, 400 for the rest.
fn spec_error_code(e: &gridx_proto::limits::SpecError) -> ErrorCode {
    if e.is_too_large() {
        ErrorCode::PayloadTooLarge
    } else {
        ErrorCode::InvalidRequest
    }
}

/// The `Idempotency-Key` header, checked, with a hash of the job it asks for (after
/// defaults are applied, so two spellings of the same job are the same request).
fn submit_key(
    headers: &HeaderMap,
    spec: &JobSpec,
    validate: bool,
) -> Result<Option<SubmitKey>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| {
            (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
            ))
        })?;
    let mut canonical = serde_json::to_vec(spec)
        .map_err(|e| ApiError::invalid(format!("cannot hash the request: {e}")))?;
    // A checked job hashes as it did before checks existed, so keys stored then
    // still match their replays.
    if !validate {
        canonical.extend_from_slice(b"\nvalidate=false");
    }
    let digest = Sha256::digest(&canonical);
    Ok(Some(SubmitKey {
        key: key.to_owned(),
        request_sha256: hex::encode(digest),
    }))
}

/// Your jobs, newest first, as summaries: no output, only its byte lengths and
/// truncation flags (the output is in `GET /v1/jobs/{id}` and its `/stdout` and
/// `/stderr`). Pass `next` as `before` for the following page.
#[utoipa::path(
    get, path = "/v1/jobs", tag = "jobs",
    // The bounds of `limit` and `before` are written in by `openapi::with_bounds`.
    params(
        ("status" = Option<JobStatus>, Query, description = "Only jobs in this state"),
        ("limit" = Option<u32>, Query),
        ("before" = Option<u64>, Query),
        ("all" = Option<bool>, Query,
            description = "`true`: everyone's jobs. Admins only: from anyone else it is refused with 400."),
    ),
    responses(
        (status = 200, body = JobListResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<JobListQuery>,
) -> Result<Json<JobListResponse>, ApiError> {
    let limit = query.limit.unwrap_or(JobListQuery::DEFAULT_LIMIT);
    if !(1..=JobListQuery::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {}",
            JobListQuery::MAX_LIMIT
        )));
    }
    // A cursor is a job id, and job ids start at 1.
    if query.before.is_some_and(|id| id.0 == 0) {
        return Err(ApiError::invalid("before must be a job id (1 or more)"));
    }
    if query.all == Some(true) && !user.is_admin {
        return Err(ApiError::invalid("only admins may list everyone's jobs"));
    }
    let owner = (query.all != Some(true)).then_some(user.name);
    let (jobs, next) = state
        .reader
        .read(move |conn| {
            store_jobs::list_jobs(conn, owner.as_ref(), query.status, limit, query.before)
        })
        .await?;
    Ok(Json(JobListResponse { jobs, next }))
}

/// Any id that is not a job number (including one that is not even UTF-8) is a job
/// that does not exist: 404, like another user's.
pub(super) fn parse_id(raw: Result<Path<String>, PathRejection>) -> Result<JobId, ApiError> {
    raw.ok()
        .and_then(|Path(id)| id.parse().ok())
        .ok_or_else(|| ApiError::not_found("job"))
}

/// One job with its output. Another user's job is 404, as if it did not exist.
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = u64, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id(id)?;
    let mut view = state
        .reader
        .read(move |conn| store_jobs::job_view(conn, id))
        .await?
        .filter(|v| user.is_admin || v.user == user.name)
        .ok_or_else(|| ApiError::not_found("job"))?;
    if view.status == JobStatus::Queued {
        let policy = crate::trust::Policy::from(&state.config.validation);
        let workers = state.board.snapshot();
        view.validation.waiting = crate::trust::waiting_reason(&view, &workers, &policy);
        view.waiting = crate::gpu_wait::waiting_reason(&view, &workers);
    }
    Ok(Json(view))
}

/// One of a job's outputs as the raw text it is stored as (UTF-8), to the byte: what
/// the summary's `stdout_bytes` / `stderr_bytes` count. Empty until the job ends, and
/// again once retention has pruned it.
async fn output(
    state: AppState,
    user: AuthUser,
    id: Result<Path<String>, PathRejection>,
    stream: OutputStream,
) -> Result<axum::response::Response, ApiError> {
    let id = parse_id(id)?;
    let (_, text) = state
        .reader
        .read(move |conn| store_jobs::job_output(conn, id, stream))
        .await?
        .filter(|(owner, _)| user.is_admin || *owner == user.name)
        .ok_or_else(|| ApiError::not_found("job"))?;
    Ok(([(header::CONTENT_TYPE, OUTPUT_CONTENT_TYPE)], text).into_response())
}

/// A job's standard output, raw (not JSON). Another user's job is 404, as in
/// `GET /v1/jobs/{id}`.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/stdout", tag = "jobs",
    params(("id" = u64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The stdout as stored, byte for byte (UTF-8; empty until the job ends)", content_type = "text/plain; charset=utf-8", body = String),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn stdout(
    State(state): State<AppState>,
    user: AuthUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<axum::response::Response, ApiError> {
    output(state, user, id, OutputStream::Stdout).await
}

/// A job's standard error, raw (not JSON). Another user's job is 404.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/stderr", tag = "jobs",
    params(("id" = u64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The stderr as stored, byte for byte (UTF-8; empty until the job ends)", content_type = "text/plain; charset=utf-8", body = String),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn stderr(
    State(state): State<AppState>,
    user: AuthUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<axum::response::Response, ApiError> {
    output(state, user, id, OutputStream::Stderr).await
}

/// Cancel a job. A queued job ends `cancelled` at once and is refunded; a running one
/// is stopped on its worker and ends `cancelled` when the worker confirms.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = u64, Path, description = "Job id")),
    responses(
        (status = 200, body = JobView),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already finished", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id(id)?;
    let view = state.queue.cancel(user.name, user.is_admin, id).await?;
    Ok(Json(view))
}
