//! `/judge0`'s descriptive routes: languages, statuses, `/about`, `/version`,
//! `/config_info`, `/workers`, and Judge0's session checks.

use super::error::Judge0Error;
use super::request::{
    CPU_EXTRA_TIME, CPU_TIME_LIMIT, MAX_CPU_EXTRA_TIME, MAX_CPU_TIME_LIMIT, MAX_FILE_SIZE,
    MAX_MEMORY_LIMIT, MAX_PROCESSES_AND_OR_THREADS, MAX_WALL_TIME_LIMIT, MEMORY_LIMIT, STACK_LIMIT,
    WALL_TIME_LIMIT,
};
use super::{Judge0User, VERSION, languages, status};
use crate::app::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use gridx_proto::api::WorkerStatus;
use serde_json::{Value, json};

pub async fn languages(_user: Judge0User) -> Json<Vec<languages::Brief>> {
    Json(languages::briefs())
}

pub async fn all_languages(_user: Judge0User) -> Json<Vec<languages::Listed>> {
    Json(languages::listed())
}

pub async fn language(
    _user: Judge0User,
    Path(id): Path<String>,
) -> Result<Json<languages::Detail>, Judge0Error> {
    let id = id.strip_suffix(".json").unwrap_or(&id);
    id.parse::<u64>()
        .ok()
        .and_then(languages::by_id)
        .map(|l| Json(languages::detail(l)))
        .ok_or_else(Judge0Error::not_found)
}

pub async fn statuses(_user: Judge0User) -> Json<[status::Status; 14]> {
    Json(status::ALL)
}

pub async fn about(_user: Judge0User) -> Json<Value> {
    Json(json!({
        "version": VERSION,
        "homepage": "https://judge0.com",
        "source_code": "https://github.com/judge0/judge0",
        "maintainer": "Grid-X coordinator, serving the Judge0 CE 1.13.1 API (docs/judge0.md)",
    }))
}

pub async fn version(_user: Judge0User) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        VERSION,
    )
}

/// Judge0's 39 configuration keys, with what this server does.
pub async fn config_info(State(state): State<AppState>, _user: Judge0User) -> Json<Value> {
    let max_memory_kb = u64::from(state.config.limits.max_memory_mb) * 1024;
    Json(json!({
        "maintenance_mode": state.queue.stats().draining,
        "enable_wait_result": true,
        "enable_compiler_options": false,
        "allowed_languages_for_compile_options": [],
        "enable_command_line_arguments": false,
        "enable_submission_delete": false,
        "enable_callbacks": state.config.judge0.callbacks,
        "callbacks_max_tries": 3,
        "callbacks_timeout": 5.0,
        "enable_additional_files": false,
        "max_queue_size": state.config.queue_capacity,
        "cpu_time_limit": CPU_TIME_LIMIT,
        "max_cpu_time_limit": MAX_CPU_TIME_LIMIT,
        "cpu_extra_time": CPU_EXTRA_TIME,
        "max_cpu_extra_time": MAX_CPU_EXTRA_TIME,
        "wall_time_limit": WALL_TIME_LIMIT,
        "max_wall_time_limit": MAX_WALL_TIME_LIMIT,
        "memory_limit": MEMORY_LIMIT,
        "max_memory_limit": MAX_MEMORY_LIMIT.min(max_memory_kb),
        "stack_limit": STACK_LIMIT,
        "max_stack_limit": STACK_LIMIT,
        "max_processes_and_or_threads": MAX_PROCESSES_AND_OR_THREADS,
        "max_max_processes_and_or_threads": MAX_PROCESSES_AND_OR_THREADS,
        "enable_per_process_and_thread_time_limit": false,
        "allow_enable_per_process_and_thread_time_limit": false,
        "enable_per_process_and_thread_memory_limit": false,
        "allow_enable_per_process_and_thread_memory_limit": false,
        "max_file_size": MAX_FILE_SIZE,
        "max_max_file_size": MAX_FILE_SIZE,
        "number_of_runs": 1,
        "max_number_of_runs": 1,
        "redirect_stderr_to_stdout": false,
        "max_extract_size": 0,
        "enable_batched_submissions": true,
        "max_submission_batch_size": super::submissions::MAX_BATCH,
        "submission_cache_duration": 0.0,
        "use_docs_as_homepage": false,
        "allow_enable_network": false,
        "enable_network": false,
    }))
}

/// Judge0 reports its job queue; here there is one, the grid's.
pub async fn workers(State(state): State<AppState>, _user: Judge0User) -> Json<Value> {
    let stats = state.queue.stats();
    let workers = state.board.snapshot();
    let online: Vec<_> = workers
        .iter()
        .filter(|w| matches!(w.status, WorkerStatus::Online | WorkerStatus::Draining))
        .collect();
    let working = online.iter().filter(|w| w.running > 0).count();
    let paused = online
        .iter()
        .filter(|w| w.status == WorkerStatus::Draining)
        .count();
    Json(json!([{
        "queue": VERSION,
        "size": stats.queued,
        "available": online.len(),
        "idle": online.len() - working,
        "working": working,
        "paused": paused,
        "failed": 0,
    }]))
}

/// `POST /authenticate`: 200 for a valid token (the extractor answered 401 if not).
pub async fn authenticate(_user: Judge0User) -> StatusCode {
    StatusCode::OK
}

/// `POST /authorize`: Judge0's operator check; here, whether the token is an
/// admin's.
pub async fn authorize(Judge0User(user): Judge0User) -> StatusCode {
    if user.is_admin {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    }
}
