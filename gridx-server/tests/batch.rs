//! `POST /v1/jobs/batch` (docs/api.md#post-v1jobsbatch-several-submits): up to 100
//! jobs in one request and one transaction, each accepted or refused in its place.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use gridx_proto::Credits;
use serde_json::{Value, json};
use support::{FakeWorker, TestServer};

async fn batch(server: &TestServer, token: &str, body: Value) -> (u16, Value) {
    server.post_body(token, "/v1/jobs/batch", &body).await
}

fn job(code: &str) -> Value {
    json!({"language": "python", "code": code})
}

#[tokio::test]
async fn a_batch_of_100_is_queued_in_order_held_once_each_and_runs() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 200);
    server.add_user("owner", 0);
    let jobs: Vec<Value> = (0..100).map(|i| job(&format!("print({i})"))).collect();
    let (status, body) = batch(&server, &alice, json!({ "jobs": jobs })).await;
    assert_eq!(status, 200, "{body}");
    let items = body["jobs"].as_array().unwrap();
    assert_eq!(items.len(), 100);
    let ids: Vec<u64> = items
        .iter()
        .map(|i| i["job"]["job_id"].as_u64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    assert!(
        items
            .iter()
            .all(|i| i["job"]["status"] == "queued" && i.get("error").is_none())
    );
    assert_eq!(server.balance(&alice).await, Credits::from_whole(100));

    // They run like single submits.
    let (_, worker_token) = server.add_worker("owner");
    let mut worker = FakeWorker::connect(&server, &worker_token, 100).await;
    for _ in 0..100 {
        let (id, attempt, spec) = worker.expect_assign().await;
        worker.run_ok(id, attempt, &spec.code).await;
    }
    let last = gridx_proto::JobId(ids[99]);
    let done = server.wait_status(&alice, last, "succeeded", 10).await;
    assert_eq!(done["stdout"], "print(99)");
    server.assert_ledger_ok();
}

#[tokio::test]
async fn each_item_is_accepted_or_refused_in_its_place() {
    let server = TestServer::start().await;
    // 2 credits: room for two jobs of 1.
    let alice = server.add_user("alice", 2);
    let body = json!({"jobs": [
        job("print(1)"),
        {"language": "cobol", "code": "x"},
        job(""),
        {"language": "python", "code": "print(2)", "tmeout_s": 3},
        job("print(3)"),
        job("print(4)"),
        {"language": "python", "code": "x", "priority": 5},
    ]});
    let (status, body) = batch(&server, &alice, body).await;
    assert_eq!(status, 200, "{body}");
    let items = body["jobs"].as_array().unwrap();
    let codes: Vec<&str> = items
        .iter()
        .map(|i| match i.get("job") {
            Some(_) => "ok",
            None => i["error"]["code"].as_str().unwrap(),
        })
        .collect();
    assert_eq!(
        codes,
        [
            "ok",
            "invalid_request",
            "invalid_request",
            "invalid_request",
            "ok",
            "insufficient_credits",
            "forbidden"
        ],
        "{body}"
    );
    assert!(
        items[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cobol")
    );
    assert!(
        items[3]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tmeout_s")
    );
    assert_eq!(server.balance(&alice).await, Credits::ZERO);
    let (_, list) = server.get_json(&alice, "/v1/jobs").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 2);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn what_is_not_a_batch_is_refused_whole_and_changes_nothing() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 500);
    let too_many: Vec<Value> = (0..101).map(|_| job("print(1)")).collect();
    let cases = [
        (json!({"jobs": []}), 400, "1 to 100 jobs, not 0"),
        (json!({ "jobs": too_many }), 400, "more than 100 items"),
        (json!({"jobz": []}), 400, "unknown field"),
        (json!([job("print(1)")]), 400, "invalid type"),
    ];
    for (body, want, says) in cases {
        let (status, answer) = batch(&server, &alice, body).await;
        assert_eq!(status, want, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{message}");
    }
    let response = server
        .http
        .post(server.url("/v1/jobs/batch"))
        .bearer_auth(&alice)
        .header("Idempotency-Key", "k1")
        .json(&json!({"jobs": [job("print(1)")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let (status, _) = batch(&server, "gxu_nope", json!({"jobs": [job("print(1)")]})).await;
    assert_eq!(status, 401);
    assert_eq!(server.balance(&alice).await, Credits::from_whole(500));
    let (_, list) = server.get_json(&alice, "/v1/jobs").await;
    assert!(list["jobs"].as_array().unwrap().is_empty());
}
