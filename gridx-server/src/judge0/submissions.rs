//! `/judge0/submissions`: create (one, or a batch), read (one, a page, a batch), and
//! delete, which this server refuses as Judge0 does by default.

use super::Judge0User;
use super::error::Judge0Error;
use super::request::{self, Invalid};
use super::response::{self, Input};
use crate::app::AppState;
use crate::queue::NewJob;
use crate::store::jobs;
use crate::store::judge0::{self as store, Judge0Link};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use gridx_proto::api::JobView;
use gridx_proto::{JobId, UserName};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

type Params = Query<HashMap<String, String>>;

/// Judge0 turns an option on only for the exact string `true`.
fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params.get(name).is_some_and(|v| v == "true")
}

fn body_json(body: &Bytes) -> Result<Value, Judge0Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|_| Judge0Error::bad_request("Bad Request"))
}

/// One submission with everything its fields may need.
struct Found {
    job: JobView,
    link: Judge0Link,
    input: Option<Input>,
}

async fn find(
    state: &AppState,
    user: &UserName,
    token: String,
    with_input: bool,
) -> Result<Option<Found>, Judge0Error> {
    let user = user.clone();
    Ok(state
        .reader
        .read(move |conn| {
            let Some((id, link)) = store::find(conn, &token, &user)? else {
                return Ok(None);
            };
            found(conn, id, link, with_input)
        })
        .await?)
}

fn found(
    conn: &crate::store::Db,
    id: JobId,
    link: Judge0Link,
    with_input: bool,
) -> crate::store::StoreResult<Option<Found>> {
    let Some(job) = jobs::job_view(conn, id)? else {
        return Ok(None);
    };
    let input = if with_input {
        store::input(conn, id)?.map(|(code, stdin)| Input { code, stdin })
    } else {
        None
    };
    Ok(Some(Found { job, link, input }))
}

fn render(found: &Found, fields: &[&str], base64: bool) -> Value {
    response::render(
        &found.job,
        &found.link,
        found.input.as_ref(),
        fields,
        base64,
    )
}

/// `POST /submissions[?base64_encoded=true&wait=true&fields=…]`: `201 {"token"}`, or
/// with `wait=true` the finished submission (or as far as it got within the bound).
pub async fn create(
    State(state): State<AppState>,
    Judge0User(user): Judge0User,
    Query(params): Params,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Judge0Error> {
    let base64 = flag(&params, "base64_encoded");
    let wait = flag(&params, "wait");
    let fields = response::select(params.get("fields").map(String::as_str))
        .map_err(Judge0Error::bad_request)?;
    let body = body_json(&body)?;
    let accepted = request::parse(&body, base64, &state.config.limits, &state.config.judge0)
        .map_err(Judge0Error::Invalid)?;
    let token = accepted
        .job
        .judge0
        .as_ref()
        .map(|l| l.token.clone())
        .unwrap_or_default();
    state.queue.submit(user.name.clone(), accepted.job).await?;
    if !wait {
        return Ok((StatusCode::CREATED, Json(json!({ "token": token }))));
    }
    // Judge0 answers a wait when the job ends; a grid may queue it for longer, so the
    // wait is bounded by the request timeout, and the answer then says how far it got.
    let bound = Duration::from_secs(u64::from(
        state.config.request_timeout_s.saturating_sub(2).max(1),
    ));
    let deadline = tokio::time::Instant::now() + bound;
    let with_input = response::needs_input(&fields);
    let mut pause = Duration::from_millis(10);
    loop {
        let current = find(&state, &user.name, token.clone(), with_input).await?;
        let done = current.as_ref().is_none_or(|f| f.job.status.is_terminal());
        if done || tokio::time::Instant::now() + pause >= deadline {
            return match current {
                Some(f) => Ok((StatusCode::CREATED, Json(render(&f, &fields, base64)))),
                None => Err(Judge0Error::not_found()),
            };
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// `GET /submissions/{token}`.
pub async fn show(
    State(state): State<AppState>,
    Judge0User(user): Judge0User,
    Path(token): Path<String>,
    Query(params): Params,
) -> Result<Json<Value>, Judge0Error> {
    let fields = response::select(params.get("fields").map(String::as_str))
        .map_err(Judge0Error::bad_request)?;
    let found = find(&state, &user.name, token, response::needs_input(&fields))
        .await?
        .ok_or_else(Judge0Error::not_found)?;
    Ok(Json(render(
        &found,
        &fields,
        flag(&params, "base64_encoded"),
    )))
}

/// `GET /submissions?page=&per_page=`: the caller's own submissions, newest first,
/// with Judge0's `meta` (Judge0 serves this only to its authorized operator).
pub async fn index(
    State(state): State<AppState>,
    Judge0User(user): Judge0User,
    Query(params): Params,
) -> Result<Json<Value>, Judge0Error> {
    let number = |name: &str, default: i64| -> i64 {
        params
            .get(name)
            .map(|v| v.trim().parse::<i64>().unwrap_or(0))
            .unwrap_or(default)
    };
    let page = number("page", 1);
    let per_page = number("per_page", 20);
    if page <= 0 {
        return Err(Judge0Error::bad_request(format!("invalid page: {page}")));
    }
    if !(0..=MAX_PAGE).contains(&per_page) {
        return Err(Judge0Error::bad_request(format!(
            "invalid per_page: {per_page} (0 to {MAX_PAGE})"
        )));
    }
    let fields = response::select(params.get("fields").map(String::as_str))
        .map_err(Judge0Error::bad_request)?;
    let base64 = flag(&params, "base64_encoded");
    let with_input = response::needs_input(&fields);
    let owner = user.name.clone();
    let offset = (page as u64 - 1).saturating_mul(per_page as u64);
    let (rows, total) = state
        .reader
        .read(move |conn| {
            let (links, total) = store::page(conn, &owner, per_page as u32, offset)?;
            let mut rows = Vec::with_capacity(links.len());
            for (id, link) in links {
                if let Some(f) = found(conn, id, link, with_input)? {
                    rows.push(f);
                }
            }
            Ok((rows, total))
        })
        .await?;
    let submissions: Vec<Value> = rows.iter().map(|f| render(f, &fields, base64)).collect();
    let total_pages = if per_page == 0 {
        0
    } else {
        total.div_ceil(per_page as u64)
    };
    let page = page as u64;
    Ok(Json(json!({
        "submissions": submissions,
        "meta": {
            "current_page": page,
            "next_page": (page < total_pages).then_some(page + 1),
            "prev_page": (page > 1).then_some(page - 1),
            "total_pages": total_pages,
            "total_count": total,
        }
    })))
}

/// The largest page `GET /submissions` serves. Each submission read may carry 2 MiB
/// of output, so a page is bounded like a batch.
const MAX_PAGE: i64 = MAX_BATCH as i64;

/// The most submissions a batch creates or shows: Judge0's own default
/// (`MAX_SUBMISSION_BATCH_SIZE`), which bounds a batch read to 20 jobs' output.
pub const MAX_BATCH: usize = 20;

/// `DELETE /submissions/{token}`: refused, as by a Judge0 with its default
/// `ENABLE_SUBMISSION_DELETE=false`; a job's record is part of the ledger's history.
pub async fn destroy(Judge0User(_user): Judge0User, Path(_token): Path<String>) -> Judge0Error {
    Judge0Error::bad_request("delete not allowed")
}

/// A batch holds 1 to [`MAX_BATCH`] submissions, with Judge0's messages.
fn check_batch_size(n: usize) -> Result<(), Judge0Error> {
    if n == 0 {
        return Err(Judge0Error::bad_request(
            "there should be at least one submission in a batch",
        ));
    }
    if n > MAX_BATCH {
        return Err(Judge0Error::bad_request(format!(
            "number of submissions in a batch should be less than or equal to {MAX_BATCH}"
        )));
    }
    Ok(())
}

/// `POST /submissions/batch`: `{"submissions": [...]}`, each item queued or refused
/// in its place, in one transaction. `201` when at least one was queued, else `422`.
pub async fn batch_create(
    State(state): State<AppState>,
    Judge0User(user): Judge0User,
    Query(params): Params,
    body: Bytes,
) -> Result<(StatusCode, Json<Vec<Value>>), Judge0Error> {
    let base64 = flag(&params, "base64_encoded");
    // Decoded item by item and refused past the maximum, so a huge array is never
    // built; other keys are ignored, as Judge0 ignores them.
    #[derive(serde::Deserialize)]
    struct Batch {
        #[serde(default)]
        submissions: Option<crate::api::Bounded<Value, MAX_BATCH>>,
    }
    let parsed = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Batch { submissions: None })
    } else {
        serde_json::from_slice::<Batch>(&body)
    };
    let items = match parsed {
        Ok(batch) => batch.submissions.map(|s| s.0).unwrap_or_default(),
        Err(e) if e.to_string().contains("more than") => {
            return Err(Judge0Error::bad_request(format!(
                "number of submissions in a batch should be less than or equal to {MAX_BATCH}"
            )));
        }
        Err(_) => return Err(Judge0Error::bad_request("Bad Request")),
    };
    check_batch_size(items.len())?;
    let parsed: Vec<Result<NewJob, Invalid>> = items
        .iter()
        .map(|item| {
            request::parse(item, base64, &state.config.limits, &state.config.judge0).map(|a| a.job)
        })
        .collect();
    let valid: Vec<NewJob> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let mut results = if valid.is_empty() {
        Vec::new()
    } else {
        state.queue.submit_batch(user.name, valid).await?
    }
    .into_iter();
    let mut saved = 0;
    let answer: Vec<Value> = parsed
        .into_iter()
        .map(|p| match p {
            Err(errors) => json!(errors),
            Ok(job) => match results.next() {
                Some(Ok(_)) => {
                    saved += 1;
                    json!({ "token": job.judge0.map(|l| l.token) })
                }
                Some(Err(e)) => json!({ "error": e.to_string() }),
                None => json!({ "error": "not applied" }),
            },
        })
        .collect();
    let status = if saved > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(answer)))
}

/// `GET /submissions/batch?tokens=a,b`: `{"submissions": [...]}` in the order asked,
/// `null` for a token that is not one of the caller's.
pub async fn batch_show(
    State(state): State<AppState>,
    Judge0User(user): Judge0User,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Json<Value>, Judge0Error> {
    let raw = headers
        .get("tokens")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| params.get("tokens").cloned())
        .unwrap_or_default();
    let tokens: Vec<String> = raw
        .trim()
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    check_batch_size(tokens.len())?;
    let fields = response::select(params.get("fields").map(String::as_str))
        .map_err(Judge0Error::bad_request)?;
    let base64 = flag(&params, "base64_encoded");
    let with_input = response::needs_input(&fields);
    let owner = user.name.clone();
    let rows = state
        .reader
        .read(move |conn| {
            let mut rows = Vec::with_capacity(tokens.len());
            for token in tokens {
                rows.push(match store::find(conn, &token, &owner)? {
                    Some((id, link)) => found(conn, id, link, with_input)?,
                    None => None,
                });
            }
            Ok(rows)
        })
        .await?;
    let submissions: Vec<Value> = rows
        .iter()
        .map(|r| {
            r.as_ref()
                .map_or(Value::Null, |f| render(f, &fields, base64))
        })
        .collect();
    Ok(Json(json!({ "submissions": submissions })))
}
