//! The Judge0 CE 1.13.1-compatible API at `/judge0` (docs/judge0.md), as a Judge0
//! client uses it: every route, the request fields and their refusals, `fields`,
//! base64, `wait`, batches, and each status a run can end in. A fake worker plays
//! the runs, so each outcome is exact.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use gridx_proto::job::RunEnd;
use gridx_proto::protocol::WorkerMessage;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use support::{FakeWorker, TestServer};

fn judge0(server: &TestServer, method: Method, path: &str, token: &str) -> RequestBuilder {
    server
        .http
        .request(method, server.url(&format!("/judge0{path}")))
        .header("X-Auth-Token", token)
}

async fn call(builder: RequestBuilder) -> (u16, Value) {
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn submit(server: &TestServer, token: &str, query: &str, body: Value) -> (u16, Value) {
    call(judge0(server, Method::POST, &format!("/submissions{query}"), token).json(&body)).await
}

async fn get(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    call(judge0(server, Method::GET, path, token)).await
}

#[tokio::test]
async fn descriptive_routes_answer_as_judge0s_do() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let (status, about) = get(&server, &alice, "/about").await;
    assert_eq!((status, about["version"].as_str()), (200, Some("1.13.1")));
    let response = judge0(&server, Method::GET, "/version", &alice)
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(response.text().await.unwrap(), "1.13.1");
    let (_, languages) = get(&server, &alice, "/languages").await;
    let ids: Vec<u64> = languages
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_u64().unwrap())
        .collect();
    // By name: Bash, C (48-50), C++ (52-54), Go, Java, JavaScript, Python, Ruby, Rust.
    assert_eq!(ids, [46, 48, 49, 50, 52, 53, 54, 60, 62, 63, 71, 72, 73]);
    let (_, all) = get(&server, &alice, "/languages/all").await;
    assert_eq!(all[0]["is_archived"], false);
    let (status, python) = get(&server, &alice, "/languages/71").await;
    assert_eq!(status, 200);
    assert!(
        python["name"].as_str().unwrap().starts_with("Python (3."),
        "{python}"
    );
    assert_eq!(python["compile_cmd"], Value::Null);
    let (_, java) = get(&server, &alice, "/languages/62").await;
    assert_eq!(java["source_file"], "Main.java");
    assert!(java["compile_cmd"].as_str().unwrap().starts_with("javac"));
    assert_eq!(get(&server, &alice, "/languages/51").await.0, 404);
    let (_, statuses) = get(&server, &alice, "/statuses").await;
    assert_eq!(statuses.as_array().unwrap().len(), 14);
    assert_eq!(statuses[3], json!({"id": 4, "description": "Wrong Answer"}));
    let (_, config) = get(&server, &alice, "/config_info").await;
    assert_eq!(config.as_object().unwrap().len(), 39, "{config}");
    assert_eq!(config["cpu_time_limit"], 5.0);
    assert_eq!(config["max_submission_batch_size"], 20);
    let (_, workers) = get(&server, &alice, "/workers").await;
    assert_eq!(workers[0]["queue"], "1.13.1");
    assert_eq!(get(&server, &alice, "/no_such_route").await.0, 404);

    // Authentication: X-Auth-Token, the same as a query parameter, or Bearer.
    let (status, _) = call(server.http.get(server.url("/judge0/statuses"))).await;
    assert_eq!(status, 401);
    let (status, _) = get(&server, "gxu_wrong", "/statuses").await;
    assert_eq!(status, 401);
    let url = server.url(&format!("/judge0/statuses?X-Auth-Token={alice}"));
    assert_eq!(call(server.http.get(url)).await.0, 200);
    let bearer = server
        .http
        .get(server.url("/judge0/statuses"))
        .bearer_auth(&alice);
    assert_eq!(call(bearer).await.0, 200);
    let authn = judge0(&server, Method::POST, "/authenticate", &alice);
    assert_eq!(call(authn).await.0, 200);
    let authz = judge0(&server, Method::POST, "/authorize", &alice);
    assert_eq!(call(authz).await.0, 403);
}

#[tokio::test]
async fn a_submission_runs_and_reads_back_with_fields_and_base64() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    server.add_user("owner", 0);
    let (_, worker_token) = server.add_worker("owner");

    let (status, body) = submit(
        &server,
        &alice,
        "",
        json!({"source_code": "print(input())", "language_id": 71, "stdin": "hi",
               "expected_output": "hi  \n\n", "compiler_options": "", "wall_time_limit": 3}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(body.as_object().unwrap().len(), 1, "only the token: {body}");
    let (status, queued) = get(&server, &alice, &format!("/submissions/{token}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        queued["status"],
        json!({"id": 1, "description": "In Queue"})
    );
    let mut worker = FakeWorker::connect(&server, &worker_token, 4).await;

    let (job_id, attempt, spec) = worker.expect_assign().await;
    assert_eq!(
        (spec.code.as_str(), spec.stdin.as_str(), spec.timeout_s),
        ("print(input())", "hi", 3)
    );
    worker.run_ok(job_id, attempt, "hi\n").await;
    server.wait_status(&alice, job_id, "succeeded", 10).await;

    let (_, done) = get(&server, &alice, &format!("/submissions/{token}")).await;
    assert_eq!(
        done["status"],
        json!({"id": 3, "description": "Accepted"}),
        "{done}"
    );
    assert_eq!(done["stdout"], "hi\n");
    assert_eq!(done["stderr"], Value::Null);
    assert_eq!(done["token"], token.as_str());
    let time = done["time"].as_str().unwrap();
    assert!(time.parse::<f64>().is_ok() && time.contains('.'), "{time}");
    assert_eq!(
        done.as_object().unwrap().len(),
        8,
        "the default fields: {done}"
    );

    let path = format!(
        "/submissions/{token}?base64_encoded=true&fields=stdout,source_code,stdin,created_at,finished_at,exit_code,language,cpu_time_limit"
    );
    let (_, encoded) = get(&server, &alice, &path).await;
    assert_eq!(encoded["stdout"], "aGkK\n");
    assert_eq!(encoded["source_code"], "cHJpbnQoaW5wdXQoKSk=\n");
    assert_eq!(encoded["stdin"], "aGk=\n");
    assert_eq!(encoded["exit_code"], 0);
    assert_eq!(encoded["cpu_time_limit"], "5.0");
    assert_eq!(encoded["language"]["id"], 71);
    let created = encoded["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    assert_eq!(encoded.as_object().unwrap().len(), 8);
    let (_, all) = get(&server, &alice, &format!("/submissions/{token}?fields=*")).await;
    assert_eq!(all.as_object().unwrap().len(), 35);
    let (status, bad) = get(
        &server,
        &alice,
        &format!("/submissions/{token}?fields=stdout,nope"),
    )
    .await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid fields: [nope]"))
    );

    // Another user's token is as unknown as a made-up one.
    let bob = server.add_user("bob", 10);
    assert_eq!(
        get(&server, &bob, &format!("/submissions/{token}")).await.0,
        404
    );
    assert_eq!(
        get(
            &server,
            &alice,
            "/submissions/6f1c1b4e-0000-4000-8000-000000000000"
        )
        .await
        .0,
        404
    );
    let delete = judge0(
        &server,
        Method::DELETE,
        &format!("/submissions/{token}"),
        &alice,
    );
    assert_eq!(
        call(delete).await,
        (400, json!({"error": "delete not allowed"}))
    );

    // The caller's own page, with Judge0's meta.
    let (status, page) = get(&server, &alice, "/submissions?per_page=1").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["meta"]["total_count"], 1);
    assert_eq!(page["meta"]["next_page"], Value::Null);
    assert_eq!(page["submissions"][0]["token"], token.as_str());
    assert_eq!(get(&server, &alice, "/submissions?page=0").await.0, 400);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn each_ending_has_judge0s_status() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 50);
    server.add_user("owner", 0);
    let (_, worker_token) = server.add_worker("owner");
    let mut worker = FakeWorker::connect(&server, &worker_token, 16).await;
    // (expected_output, how the run ends, exit code, stdout, Judge0 status id)
    type Case<'a> = (Option<&'a str>, RunEnd, Option<i32>, &'a str, u64);
    let cases: Vec<Case> = vec![
        (Some("42"), RunEnd::Exited, Some(0), "42\n", 3),
        (Some("42"), RunEnd::Exited, Some(0), "41\n", 4),
        (Some(""), RunEnd::Exited, Some(0), "", 4),
        (None, RunEnd::TimedOut, None, "", 5),
        (None, RunEnd::Exited, Some(139), "", 7),
        (None, RunEnd::Exited, Some(136), "", 9),
        (None, RunEnd::Exited, Some(134), "", 10),
        (None, RunEnd::Exited, Some(1), "", 11),
        (None, RunEnd::Oom, Some(137), "", 12),
        (None, RunEnd::SandboxError, None, "", 13),
    ];
    let mut tokens = Vec::new();
    for (expected, ..) in &cases {
        let mut body = json!({"source_code": "x", "language_id": 46});
        if let Some(e) = expected {
            body["expected_output"] = json!(e);
        }
        let (status, answer) = submit(&server, &alice, "", body).await;
        assert_eq!(status, 201, "{answer}");
        tokens.push(answer["token"].as_str().unwrap().to_owned());
    }
    for (_, end, code, stdout, _) in &cases {
        let (job_id, attempt, _) = worker.expect_assign().await;
        worker
            .send(WorkerMessage::Started { job_id, attempt })
            .await;
        worker.finish(job_id, attempt, *end, *code, stdout).await;
    }
    let query = format!(
        "/submissions/batch?tokens={}&fields=status_id,exit_code,exit_signal,message",
        tokens.join(",")
    );
    // Settled within a moment: poll until every one has ended.
    let mut answer = Value::Null;
    for _ in 0..100 {
        answer = get(&server, &alice, &query).await.1;
        let all_done = answer["submissions"]
            .as_array()
            .is_some_and(|s| s.iter().all(|x| x["status_id"].as_u64().unwrap_or(0) > 2));
        if all_done {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got: Vec<u64> = answer["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status_id"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = cases.iter().map(|c| c.4).collect();
    assert_eq!(got, want, "{answer}");
    let sigsegv = &answer["submissions"][4];
    assert_eq!(
        (
            sigsegv["exit_signal"].as_i64(),
            sigsegv["exit_code"].as_i64()
        ),
        (Some(11), Some(0))
    );
    let nzec = &answer["submissions"][7];
    assert_eq!(
        (nzec["exit_code"].as_i64(), nzec["exit_signal"].as_i64()),
        (Some(1), None)
    );
    assert_eq!(answer["submissions"][3]["message"], "Time limit exceeded");
    server.assert_ledger_ok();
}

#[tokio::test]
async fn refusals_have_judge0s_shape_and_cost_nothing() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let (status, errors) = submit(&server, &alice, "", json!({})).await;
    assert_eq!(status, 422);
    assert_eq!(errors["source_code"], json!(["can't be blank"]));
    assert_eq!(errors["language_id"], json!(["can't be blank"]));
    let refused = [
        (
            json!({"language_id": 51}),
            "language_id",
            "language with id 51 doesn't exist",
        ),
        (
            json!({"enable_network": true}),
            "enable_network",
            "enabling network is not allowed",
        ),
        (
            json!({"callback_url": "http://127.0.0.1/"}),
            "callback_url",
            "setting callback is not allowed",
        ),
        (
            json!({"compiler_options": "-O2"}),
            "compiler_options",
            "setting compiler options is not allowed",
        ),
        (
            json!({"command_line_arguments": "x"}),
            "command_line_arguments",
            "not allowed",
        ),
        (
            json!({"additional_files": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}),
            "additional_files",
            "not allowed",
        ),
        (
            json!({"number_of_runs": 2}),
            "number_of_runs",
            "cannot be set on this server",
        ),
        (
            json!({"memory_limit": 600000}),
            "memory_limit",
            "less than or equal to 512000",
        ),
        (
            json!({"wall_time_limit": 0.5}),
            "wall_time_limit",
            "greater than or equal to 1.0",
        ),
    ];
    for (extra, field, says) in refused {
        let mut body = json!({"source_code": "echo hi", "language_id": 46});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, errors) = submit(&server, &alice, "", body.clone()).await;
        assert_eq!(status, 422, "{body}: {errors}");
        let messages = errors[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field}: {errors}"));
        assert!(
            messages.iter().any(|m| m.as_str().unwrap().contains(says)),
            "{errors}"
        );
    }
    let bad_json = judge0(&server, Method::POST, "/submissions", &alice)
        .header("content-type", "application/json")
        .body("{not json");
    assert_eq!(call(bad_json).await.0, 400);
    let (status, _) = submit(
        &server,
        &alice,
        "?fields=bogus",
        json!({"source_code": "x", "language_id": 46}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        server.balance(&alice).await,
        gridx_proto::Credits::from_whole(10)
    );
    let (_, page) = get(&server, &alice, "/submissions").await;
    assert_eq!(page["meta"]["total_count"], 0);
}

#[tokio::test]
async fn wait_true_answers_with_the_finished_submission() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    server.add_user("owner", 0);
    let (_, worker_token) = server.add_worker("owner");
    let mut worker = FakeWorker::connect(&server, &worker_token, 1).await;
    let runner = tokio::spawn(async move {
        let (job_id, attempt, _) = worker.expect_assign().await;
        worker
            .send(WorkerMessage::Started { job_id, attempt })
            .await;
        worker
            .finish(job_id, attempt, RunEnd::Exited, Some(0), "3\n")
            .await;
        worker
    });
    let (status, done) = submit(
        &server,
        &alice,
        "?wait=true&base64_encoded=true",
        json!({"source_code": "cHJpbnQoMSsyKQ==", "language_id": 71, "expected_output": "Mw=="}),
    )
    .await;
    runner.await.unwrap();
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["status"]["id"], 3, "{done}");
    assert_eq!(done["stdout"], "Mwo=\n");
}

#[tokio::test]
async fn a_batch_queues_each_item_or_refuses_it_in_place() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 2);
    let body = json!({"submissions": [
        {"source_code": "echo 1", "language_id": 46},
        {"source_code": "echo 2", "language_id": 999},
        {"source_code": "echo 3", "language_id": 46},
        {"source_code": "echo 4", "language_id": 46},
    ]});
    let (status, items) =
        call(judge0(&server, Method::POST, "/submissions/batch", &alice).json(&body)).await;
    assert_eq!(status, 201, "{items}");
    let items = items.as_array().unwrap();
    assert!(items[0]["token"].is_string());
    assert_eq!(
        items[1]["language_id"],
        json!(["language with id 999 doesn't exist"])
    );
    assert!(items[2]["token"].is_string());
    assert!(
        items[3]["error"].as_str().unwrap().contains("balance"),
        "{items:?}"
    );
    let (status, _) = call(
        judge0(&server, Method::POST, "/submissions/batch", &alice)
            .json(&json!({"submissions": [{"language_id": 46}]})),
    )
    .await;
    assert_eq!(status, 422, "nothing saved");
    let (status, empty) = call(
        judge0(&server, Method::POST, "/submissions/batch", &alice)
            .json(&json!({"submissions": []})),
    )
    .await;
    assert_eq!(
        (status, empty["error"].as_str()),
        (
            400,
            Some("there should be at least one submission in a batch")
        )
    );
    let tokens = format!(
        "{},{},0a0a0a0a-0000-4000-8000-000000000000",
        items[0]["token"].as_str().unwrap(),
        items[2]["token"].as_str().unwrap()
    );
    let (status, shown) = get(
        &server,
        &alice,
        &format!("/submissions/batch?tokens={tokens}"),
    )
    .await;
    assert_eq!(status, 200);
    let shown = shown["submissions"].as_array().unwrap();
    assert_eq!(shown.len(), 3);
    assert_eq!(shown[0]["status"]["id"], 1);
    assert_eq!(shown[2], Value::Null);
    server.assert_ledger_ok();
}

/// With `[server.judge0] callbacks = true`, an ended submission is PUT to its
/// `callback_url` as Judge0 does (the default fields, base64); without
/// `callbacks_to_private_addresses`, a loopback or private URL is refused.
#[tokio::test]
async fn callbacks_are_put_when_enabled_and_never_to_private_addresses_by_default() {
    // A receiver on loopback, so this server must allow private addresses.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Value)>(4);
    let receiver = axum::Router::new().route(
        "/cb",
        axum::routing::put(move |headers: axum::http::HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let kind = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx
                    .send((kind, serde_json::from_str(&body).unwrap_or_default()))
                    .await;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let server = TestServer::start_with(|c| {
        c.judge0.callbacks = true;
        c.judge0.callbacks_to_private_addresses = true;
    })
    .await;
    let alice = server.add_user("alice", 10);
    server.add_user("owner", 0);
    let (_, worker_token) = server.add_worker("owner");
    let mut worker = FakeWorker::connect(&server, &worker_token, 1).await;
    let (status, body) = submit(
        &server,
        &alice,
        "",
        json!({"source_code": "print(7)", "language_id": 71,
               "callback_url": format!("http://127.0.0.1:{port}/cb")}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (job_id, attempt, _) = worker.expect_assign().await;
    worker.run_ok(job_id, attempt, "7\n").await;
    let (kind, called) = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("a callback in time")
        .expect("a callback");
    assert!(kind.starts_with("application/json"), "{kind}");
    assert_eq!(called["token"], token.as_str());
    assert_eq!(called["status"]["id"], 3);
    assert_eq!(called["stdout"], "Nwo=\n");
    let (_, config) = get(&server, &alice, "/config_info").await;
    assert_eq!(config["enable_callbacks"], true);

    // The same switch without private addresses: refused when submitted.
    let strict = TestServer::start_with(|c| c.judge0.callbacks = true).await;
    let bob = strict.add_user("bob", 10);
    for url in [
        "http://127.0.0.1:9/cb",
        "http://169.254.169.254/",
        "http://[::1]/",
        "http://localhost/",
    ] {
        let (status, errors) = submit(
            &strict,
            &bob,
            "",
            json!({"source_code": "print(1)", "language_id": 71, "callback_url": url}),
        )
        .await;
        assert_eq!(status, 422, "{url}: {errors}");
        let message = errors["callback_url"][0].as_str().unwrap();
        assert!(message.contains("non-public"), "{url}: {message}");
    }
}
