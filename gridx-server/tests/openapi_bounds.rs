//! `/v1/openapi.json` states every bound the server enforces: each one equals the
//! constant or configured limit behind it, a value on the bound is accepted by the
//! running server, and one past it is refused.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use gridx_proto::JobLimits;
use gridx_proto::api::{JobListQuery, LedgerQuery, MAX_IDEMPOTENCY_KEY_LEN};
use serde_json::{Value, json};
use support::TestServer;

async fn document(server: &TestServer) -> Value {
    let response = server
        .http
        .get(server.url("/v1/openapi.json"))
        .send()
        .await
        .expect("openapi request");
    assert_eq!(response.status(), 200);
    response.json().await.expect("openapi JSON")
}

fn submit_property<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let prop = &doc["components"]["schemas"]["SubmitJobRequest"]["properties"][name];
    assert!(prop.is_object(), "SubmitJobRequest.{name} missing");
    prop
}

fn param_schema<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|params| params.iter().find(|p| p["name"] == name))
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

fn range(schema: &Value) -> (i64, i64) {
    let min = schema["minimum"].as_i64().expect("minimum");
    let max = schema["maximum"].as_i64().expect("maximum");
    (min, max)
}

/// Asserts the document's bounds on a submit field are `want`, then that the server
/// takes both ends and refuses one past each with 400.
async fn check_submit_range(
    server: &TestServer,
    token: &str,
    doc: &Value,
    field: &str,
    want: (i64, i64),
) {
    let (min, max) = range(submit_property(doc, field));
    assert_eq!((min, max), want, "{field}");
    for (value, accepted) in [(min, true), (max, true), (min - 1, false), (max + 1, false)] {
        let response = server
            .submit(
                token,
                json!({"language": "python", "code": "print(1)", field: value}),
            )
            .await;
        let status = response.status().as_u16();
        if accepted {
            assert_eq!(
                status, 201,
                "{field} = {value} is inside the documented bounds"
            );
        } else {
            assert_eq!(
                status, 400,
                "{field} = {value} is past the documented bounds"
            );
        }
    }
}

async fn submit_status(server: &TestServer, token: &str, body: Value) -> u16 {
    server.submit(token, body).await.status().as_u16()
}

async fn get_status(server: &TestServer, token: &str, path: &str) -> u16 {
    server.get_json(token, path).await.0
}

/// Sizes: `code` and `stdin` accept exactly their maximum and refuse one byte more
/// (413, not 400); `code` must have its minimum length and match its pattern.
async fn check_sizes(server: &TestServer, token: &str, doc: &Value, limits: &JobLimits) {
    let code = submit_property(doc, "code");
    assert_eq!(code["minLength"], 1);
    assert_eq!(
        code["maxLength"].as_u64(),
        Some(limits.max_code_bytes as u64)
    );
    assert_eq!(
        code["pattern"].as_str(),
        Some(gridx_server::api::code_pattern().as_str())
    );
    let stdin = submit_property(doc, "stdin");
    assert_eq!(
        stdin["maxLength"].as_u64(),
        Some(limits.max_stdin_bytes as u64)
    );

    let max_code = code["maxLength"].as_u64().expect("code maxLength") as usize;
    let at = |code: String| json!({"language": "bash", "code": code});
    assert_eq!(
        submit_status(server, token, at("x".repeat(max_code))).await,
        201
    );
    assert_eq!(
        submit_status(server, token, at("x".repeat(max_code + 1))).await,
        413
    );
    assert_eq!(submit_status(server, token, at("x".into())).await, 201);
    // Shorter than minLength, blank, or with a NUL: all outside the pattern, all 400.
    for bad in ["", " \n\t", "\u{3000}", "a\0b"] {
        assert_eq!(
            submit_status(server, token, at(bad.into())).await,
            400,
            "{bad:?}"
        );
    }

    let max_stdin = stdin["maxLength"].as_u64().expect("stdin maxLength") as usize;
    let with_stdin = |stdin: String| json!({"language": "bash", "code": "cat", "stdin": stdin});
    assert_eq!(
        submit_status(server, token, with_stdin("y".repeat(max_stdin))).await,
        201
    );
    assert_eq!(
        submit_status(server, token, with_stdin("y".repeat(max_stdin + 1))).await,
        413
    );
}

async fn check_pages(server: &TestServer, token: &str, doc: &Value) {
    for (path, max) in [
        ("/v1/jobs", JobListQuery::MAX_LIMIT),
        ("/v1/ledger", LedgerQuery::MAX_LIMIT),
    ] {
        let (min, doc_max) = range(param_schema(doc, path, "get", "limit"));
        assert_eq!((min, doc_max), (1, i64::from(max)), "{path} limit");
        for (limit, want) in [
            (min, 200),
            (doc_max, 200),
            (min - 1, 400),
            (doc_max + 1, 400),
        ] {
            let status = get_status(server, token, &format!("{path}?limit={limit}")).await;
            assert_eq!(status, want, "{path}?limit={limit}");
        }
    }
    let before = param_schema(doc, "/v1/jobs", "get", "before");
    assert_eq!(before["minimum"].as_u64(), Some(1));
    assert_eq!(before["maximum"].as_u64(), Some(u64::MAX));
    for (before, want) in [
        ("1".to_owned(), 200),
        (u64::MAX.to_string(), 200),
        ("0".to_owned(), 400),
        ("18446744073709551616".to_owned(), 400),
    ] {
        let status = get_status(server, token, &format!("/v1/jobs?before={before}")).await;
        assert_eq!(status, want, "before={before}");
    }
    let status = param_schema(doc, "/v1/jobs", "get", "status");
    assert!(
        status.get("$ref").is_some(),
        "status names the JobStatus enum: {status}"
    );
}

async fn check_idempotency_key(server: &TestServer, token: &str, doc: &Value) {
    let key = param_schema(doc, "/v1/jobs", "post", "Idempotency-Key");
    assert_eq!(key["minLength"], 1);
    assert_eq!(
        key["maxLength"].as_u64(),
        Some(MAX_IDEMPOTENCY_KEY_LEN as u64)
    );
    assert_eq!(key["pattern"], "^[!-~]+$");
    for (key, want) in [
        ("k".repeat(MAX_IDEMPOTENCY_KEY_LEN), 201),
        ("k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1), 400),
    ] {
        let response = server
            .http
            .post(server.url("/v1/jobs"))
            .bearer_auth(token)
            .header("Idempotency-Key", key.as_str())
            .json(&json!({"language": "python", "code": "print(2)"}))
            .send()
            .await
            .expect("submit");
        assert_eq!(
            response.status().as_u16(),
            want,
            "key of {} bytes",
            key.len()
        );
    }
}

#[tokio::test]
async fn default_bounds_are_stated_and_enforced() {
    let server = TestServer::start().await;
    let token = server.add_user("alice", 1000);
    let doc = document(&server).await;
    let limits = JobLimits::default();
    // The document states the coordinator's bounds; a user's own maximum is below
    // them by default (refused with 403, not 400), so this one may use them all.
    server.set_max_priority("alice", limits.max_priority);
    check_submit_range(
        &server,
        &token,
        &doc,
        "timeout_s",
        (
            i64::from(limits.min_timeout_s),
            i64::from(limits.max_timeout_s),
        ),
    )
    .await;
    check_submit_range(
        &server,
        &token,
        &doc,
        "memory_mb",
        (
            i64::from(limits.min_memory_mb),
            i64::from(limits.max_memory_mb),
        ),
    )
    .await;
    let p = i64::from(limits.max_priority);
    check_submit_range(&server, &token, &doc, "priority", (-p, p)).await;
    check_submit_range(&server, &token, &doc, "gpus", (0, 8)).await;
    check_sizes(&server, &token, &doc, &limits).await;
    check_pages(&server, &token, &doc).await;
    check_idempotency_key(&server, &token, &doc).await;
    // A job id in a path is at least 1; anything else is a job that does not exist.
    for (path, method) in [("/v1/jobs/{id}", "get"), ("/v1/jobs/{id}/cancel", "post")] {
        assert_eq!(
            param_schema(&doc, path, method, "id")["minimum"],
            1,
            "{path}"
        );
    }
    assert_eq!(get_status(&server, &token, "/v1/jobs/0").await, 404);
    let name = &doc["components"]["schemas"]["UserName"];
    assert_eq!(name["maxLength"], 64);
    assert_eq!(name["pattern"], "^[A-Za-z0-9_-]{1,64}$");
    server.assert_ledger_ok();
}

#[tokio::test]
async fn the_document_follows_the_operators_limits() {
    let limits = JobLimits {
        min_timeout_s: 2,
        default_timeout_s: 5,
        max_timeout_s: 60,
        min_memory_mb: 64,
        max_memory_mb: 512,
        max_code_bytes: 1000,
        max_stdin_bytes: 2000,
        max_priority: 7,
        max_gpus: 2,
        ..JobLimits::default()
    };
    let configured = limits.clone();
    let server = TestServer::start_with(move |c| c.limits = configured).await;
    let token = server.add_user("alice", 1000);
    server.set_max_priority("alice", 7);
    let doc = document(&server).await;
    check_submit_range(&server, &token, &doc, "timeout_s", (2, 60)).await;
    check_submit_range(&server, &token, &doc, "memory_mb", (64, 512)).await;
    check_submit_range(&server, &token, &doc, "priority", (-7, 7)).await;
    check_submit_range(&server, &token, &doc, "gpus", (0, 2)).await;
    check_sizes(&server, &token, &doc, &limits).await;
    let described = submit_property(&doc, "timeout_s")["description"]
        .as_str()
        .unwrap_or_default();
    assert!(described.contains("default 5"), "{described}");
    server.assert_ledger_ok();
}
