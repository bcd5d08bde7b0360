//! Every endpoint's success and error codes, over real HTTP.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use gridx_proto::JobId;
use serde_json::json;
use support::TestServer;

fn code(body: &serde_json::Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test]
async fn submit_get_list_balance_and_ledger() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 100);
    server.set_max_priority("alice", 3);
    let response = server
        .submit(&alice, json!({"language": "javascript", "code": "console.log(1)", "timeout_s": 5, "priority": 3}))
        .await;
    assert_eq!(response.status(), 201);
    let view: serde_json::Value = response.json().await.unwrap();
    assert_eq!(view["status"], "queued");
    assert_eq!(view["language"], "node");
    assert_eq!(view["timeout_s"], 5);
    assert_eq!(view["memory_mb"], 256);
    assert_eq!(view["cost"], 1);
    let id = JobId(view["job_id"].as_u64().unwrap());

    let job = server.job(&alice, id).await;
    assert_eq!(job["priority"], 3);
    let (status, list) = server
        .get_json(&alice, "/v1/jobs?status=queued&limit=10")
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["jobs"][0]["job_id"], id.0);
    assert_eq!(list["next"], serde_json::Value::Null);

    assert_eq!(server.balance(&alice).await.millis(), 99_000);
    let (status, ledger) = server.get_json(&alice, "/v1/ledger?limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(ledger["entries"][0]["kind"], "hold");
    assert_eq!(ledger["entries"][0]["amount"], -1);
    assert_eq!(ledger["entries"][0]["balance_after"], 99);
    assert_eq!(ledger["entries"][1]["kind"], "grant");
    server.assert_ledger_ok();
}

#[tokio::test]
async fn pagination_walks_every_job_newest_first() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 100);
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(server.submit_ok(&alice, &format!("print({i})")).await);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/jobs?limit=3".to_owned();
    loop {
        let (status, page) = server.get_json(&alice, &path).await;
        assert_eq!(status, 200);
        for job in page["jobs"].as_array().unwrap() {
            seen.push(JobId(job["job_id"].as_u64().unwrap()));
        }
        match page["next"].as_u64() {
            Some(next) => path = format!("/v1/jobs?limit=3&before={next}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn authentication_errors() {
    let server = TestServer::start().await;
    server.add_user("alice", 10);
    let (_, worker_token) = server.add_worker("alice");
    let response = server
        .http
        .get(server.url("/v1/balance"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(code(&body), "unauthorized");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization")
    );

    let (status, body) = server.get_json("gxu_0000", "/v1/balance").await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    let (status, body) = server.get_json(&worker_token, "/v1/balance").await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("worker token"),
        "{body}"
    );
    let response = server
        .http
        .get(server.url("/v1/balance"))
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn invalid_submissions_are_refused_and_cost_nothing() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let cases = [
        (
            json!({"language": "python", "code": "x", "colour": "red"}),
            400,
            "unknown field",
        ),
        (
            json!({"language": "cobol", "code": "x"}),
            400,
            "unknown variant",
        ),
        (json!({"language": "python"}), 400, "missing field"),
        (
            json!({"language": "python", "code": "x", "timeout_s": 0}),
            400,
            "timeout_s",
        ),
        (
            json!({"language": "python", "code": "x", "timeout_s": 301}),
            400,
            "timeout_s",
        ),
        (
            json!({"language": "python", "code": "x", "memory_mb": 5000}),
            400,
            "memory_mb",
        ),
        (json!({"language": "python", "code": "  "}), 400, "empty"),
        (
            json!({"language": "python", "code": "x".repeat(256 * 1024 + 1)}),
            413,
            "code",
        ),
        (
            json!({"language": "python", "code": "x", "stdin": "y".repeat(1024 * 1024 + 1)}),
            413,
            "stdin",
        ),
    ];
    for (body, want, needle) in cases {
        let response = server.submit(&alice, body.clone()).await;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, want, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{needle}: {body}"
        );
    }
    let response = server
        .http
        .post(server.url("/v1/jobs"))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = server
        .http
        .post(server.url("/v1/jobs"))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body(vec![b' '; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(server.balance(&alice).await.millis(), 10_000);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn insufficient_credits_is_402_and_changes_nothing() {
    let server =
        TestServer::start_with(|c| c.job_cost = gridx_proto::Credits::from_millis(1500)).await;
    let alice = server.add_user("alice", 2);
    server.submit_ok(&alice, "print(1)").await;
    let response = server
        .submit(&alice, json!({"language": "bash", "code": "echo"}))
        .await;
    assert_eq!(response.status(), 402);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(code(&body), "insufficient_credits");
    assert_eq!(server.balance(&alice).await.millis(), 500);
    let (_, list) = server.get_json(&alice, "/v1/jobs").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn concurrent_submits_never_overdraw() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let http = server.http.clone();
        let url = server.url("/v1/jobs");
        let token = alice.clone();
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({"language": "python", "code": format!("print({i})")}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    let mut accepted = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            201 => accepted += 1,
            402 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((accepted, refused), (10, 190));
    assert_eq!(server.balance(&alice).await, gridx_proto::Credits::ZERO);
    server.assert_ledger_ok();
}

/// POST /v1/jobs with an Idempotency-Key: the status and body.
async fn submit_keyed(
    server: &TestServer,
    token: &str,
    key: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = server
        .http
        .post(server.url("/v1/jobs"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn an_idempotency_key_makes_a_resent_submit_return_the_same_job() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 10);
    let job = json!({"language": "python", "code": "print(1)"});
    let (status, first) = submit_keyed(&server, &alice, "order-7", job.clone()).await;
    assert_eq!(status, 201, "{first}");
    // The same request again (its answer was lost): the same job, charged once.
    let (status, again) = submit_keyed(&server, &alice, "order-7", job.clone()).await;
    assert_eq!(
        (status, &again["job_id"]),
        (200, &first["job_id"]),
        "{again}"
    );
    // Spelling a default out is still the same request.
    let spelled = json!({"language": "python", "code": "print(1)", "timeout_s": 30});
    let (status, _) = submit_keyed(&server, &alice, "order-7", spelled).await;
    assert_eq!(status, 200);
    assert_eq!(server.balance(&alice).await.millis(), 9_000);
    // The key with a different job is a client bug: refused, nothing changes.
    let other = json!({"language": "python", "code": "print(2)"});
    let (status, body) = submit_keyed(&server, &alice, "order-7", other).await;
    assert_eq!((status, code(&body)), (409, "conflict"), "{body}");
    // Keys belong to their user.
    let (status, bobs) = submit_keyed(&server, &bob, "order-7", job.clone()).await;
    assert_eq!(status, 201);
    assert_ne!(bobs["job_id"], first["job_id"]);
    for bad in ["", "has space", &"k".repeat(256), "caf\u{e9}"] {
        let response = server
            .http
            .post(server.url("/v1/jobs"))
            .bearer_auth(&alice)
            .header("Idempotency-Key", bad.as_bytes())
            .json(&job)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 400, "key {bad:?}");
    }
    // A replay still answers after a restart, and even with no credit left.
    let server = server.restart().await;
    for i in 0..9 {
        server.submit_ok(&alice, &format!("print({i})")).await;
    }
    let (status, replay) = submit_keyed(&server, &alice, "order-7", job).await;
    assert_eq!((status, &replay["job_id"]), (200, &first["job_id"]));
    assert_eq!(server.balance(&alice).await.millis(), 0);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn concurrent_submits_with_one_key_make_one_job() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (http, url, token) = (server.http.clone(), server.url("/v1/jobs"), alice.clone());
        tasks.spawn(async move {
            let response = http
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "once")
                .json(&json!({"language": "bash", "code": "echo once"}))
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, body["job_id"].as_u64())
        });
    }
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    while let Some(result) = tasks.join_next().await {
        let (status, id) = result.expect("task");
        assert!(status == 201 || status == 200, "{status}");
        created += usize::from(status == 201);
        ids.insert(id);
    }
    assert_eq!((created, ids.len()), (1, 1));
    assert_eq!(server.balance(&alice).await.millis(), 9_000);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn other_users_jobs_are_invisible() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 10);
    let admin = server.add_admin("root");
    let id = server.submit_ok(&alice, "print(1)").await;
    let (status, body) = server.get_json(&bob, &format!("/v1/jobs/{id}")).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, _) = server
        .post_json(&bob, &format!("/v1/jobs/{id}/cancel"))
        .await;
    assert_eq!(status, 404);
    let (_, list) = server.get_json(&bob, "/v1/jobs").await;
    assert!(list["jobs"].as_array().unwrap().is_empty());
    let (status, _) = server.get_json(&bob, "/v1/jobs?all=true").await;
    assert_eq!(status, 400);
    // Admins see everything.
    let (status, _) = server.get_json(&admin, &format!("/v1/jobs/{id}")).await;
    assert_eq!(status, 200);
    let (_, list) = server.get_json(&admin, "/v1/jobs?all=true").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    // The job is still alice's and still queued.
    assert_eq!(server.job(&alice, id).await["status"], "queued");
    for path in ["/v1/jobs/999999", "/v1/jobs/abc", "/v1/jobs/-1"] {
        let (status, _) = server.get_json(&alice, path).await;
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn cancel_queued_refunds_and_second_cancel_conflicts() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let id = server.submit_ok(&alice, "print(1)").await;
    let (status, body) = server
        .post_json(&alice, &format!("/v1/jobs/{id}/cancel"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["reason"], "cancelled_by_user");
    assert_eq!(server.balance(&alice).await.millis(), 10_000);
    let (status, body) = server
        .post_json(&alice, &format!("/v1/jobs/{id}/cancel"))
        .await;
    assert_eq!((status, code(&body)), (409, "conflict"));
    let (_, ledger) = server.get_json(&alice, "/v1/ledger").await;
    assert_eq!(ledger["entries"][0]["kind"], "refund");
    assert_eq!(ledger["entries"][0]["amount"], 1);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn bad_queries_are_400() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    for path in [
        "/v1/jobs?limit=0",
        "/v1/jobs?limit=501",
        "/v1/jobs?status=done",
        "/v1/jobs?colour=red",
        "/v1/jobs?before=x",
        "/v1/ledger?limit=0",
        "/v1/ledger?limit=abc",
    ] {
        let (status, body) = server.get_json(&alice, path).await;
        assert_eq!((status, code(&body)), (400, "invalid_request"), "{path}");
    }
    let (status, body) = server.get_json(&alice, "/v2/nothing").await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    // Errors made by the framework carry the same body.
    let response = server
        .http
        .delete(server.url("/v1/jobs"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(code(&body), "method_not_allowed");
    let response = server
        .http
        .get(server.url("/v1/worker/connect"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let server = TestServer::start_with(|c| {
        c.rate_limit_per_s = 1;
        c.rate_limit_burst = 3;
    })
    .await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 10);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let response = server
            .http
            .get(server.url("/v1/balance"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").cloned();
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    assert!(retry_after.is_some());
    // Another user is not slowed down by alice.
    let (status, _) = server.get_json(&bob, "/v1/balance").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn guessing_tokens_is_rate_limited() {
    let server = TestServer::start().await;
    let mut saw_429 = false;
    for i in 0..40 {
        let (status, _) = server
            .get_json(&format!("gxu_{i:064x}"), "/v1/balance")
            .await;
        assert!(status == 401 || status == 429);
        saw_429 |= status == 429;
    }
    assert!(saw_429, "40 wrong tokens in a row were never rate limited");
}

#[tokio::test]
async fn queue_bounds_answer_503() {
    let server = TestServer::start_with(|c| {
        c.max_queued_per_user = 2;
        c.queue_capacity = 3;
    })
    .await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 10);
    server.submit_ok(&alice, "1").await;
    server.submit_ok(&alice, "2").await;
    let response = server
        .submit(&alice, json!({"language": "python", "code": "3"}))
        .await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(code(&body), "queue_full");
    server.submit_ok(&bob, "1").await;
    let response = server
        .submit(&bob, json!({"language": "python", "code": "2"}))
        .await;
    assert_eq!(response.status(), 503);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let server = TestServer::start().await;
    let response = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let health: serde_json::Value = response.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["protocol"], 1);

    let alice = server.add_user("alice", 10);
    server.submit_ok(&alice, "print(1)").await;
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "gridx_jobs_submitted_total 1",
        "gridx_queue_depth 1",
        "gridx_jobs{status=\"queued\"} 1",
        "gridx_dispatch_latency_seconds_bucket",
        "gridx_workers{status=\"online\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }

    let doc: serde_json::Value = server
        .http
        .get(server.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/stdout",
        "/v1/jobs/{id}/stderr",
        "/v1/jobs/{id}/cancel",
        "/v1/balance",
        "/v1/ledger",
        "/v1/workers",
        "/healthz",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["paths"]["/v1/jobs"]["post"]["responses"]["402"].is_object());
    assert!(doc["paths"]["/v1/jobs"]["post"]["responses"]["403"].is_object());
    // Lists hold summaries; the raw outputs are text.
    let list = &doc["paths"]["/v1/jobs"]["get"]["responses"]["200"]["content"]["application/json"];
    assert_eq!(
        list["schema"]["$ref"],
        "#/components/schemas/JobListResponse"
    );
    let items = &doc["components"]["schemas"]["JobListResponse"]["properties"]["jobs"]["items"];
    assert_eq!(items["$ref"], "#/components/schemas/JobSummary");
    let summary = &doc["components"]["schemas"]["JobSummary"]["properties"];
    assert!(summary["stdout_bytes"].is_object() && summary["stdout"].is_null());
    for stream in ["stdout", "stderr"] {
        let get = &doc["paths"][format!("/v1/jobs/{{id}}/{stream}")]["get"];
        assert!(
            get["responses"]["200"]["content"]["text/plain; charset=utf-8"].is_object(),
            "{stream}: {get}"
        );
        let id = get["parameters"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "id"))
            .expect("an id parameter");
        assert_eq!(id["schema"]["minimum"], 1, "{stream}");
    }
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_configured() {
    let server = TestServer::start().await;
    let response = server
        .http
        .get(server.url("/healthz"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let server =
        TestServer::start_with(|c| c.cors_allowed_origins = vec!["https://ops.example".into()])
            .await;
    let response = server
        .http
        .get(server.url("/healthz"))
        .header("Origin", "https://ops.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://ops.example")
    );
    let response = server
        .http
        .get(server.url("/healthz"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
