//! Lists and live events carry job summaries, never output; the output comes from
//! `GET /v1/jobs/{id}` and, raw, from `GET /v1/jobs/{id}/stdout` and `/stderr`
//! (docs/api.md, "Job output").

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use futures_util::StreamExt;
use gridx_proto::JobId;
use gridx_proto::job::{RunEnd, RunOutcome};
use gridx_proto::protocol::WorkerMessage;
use std::time::Duration;
use support::{FakeWorker, TestServer};
use tokio_tungstenite::tungstenite::Message;

/// Runs `id` on `worker` to a successful end with this output.
async fn finish_with(worker: &mut FakeWorker, id: JobId, stdout: &str, stderr: &str) {
    let (job_id, attempt, _) = worker.expect_assign().await;
    assert_eq!(job_id, id);
    worker
        .send(WorkerMessage::Finished {
            job_id,
            attempt,
            outcome: RunOutcome {
                end: RunEnd::Exited,
                exit_code: Some(0),
                stdout: stdout.into(),
                stderr: stderr.into(),
                stdout_truncated: false,
                stderr_truncated: false,
                duration_ms: 5,
                message: None,
                compile_output: None,
            },
        })
        .await;
}

async fn raw(server: &TestServer, token: &str, path: &str) -> reqwest::Response {
    server
        .http
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_list_of_jobs_with_a_mebibyte_of_output_each_carries_none_of_it() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 100);
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let cap = server.config.limits.max_output_bytes;
    let big = "o".repeat(cap);
    let jobs = 5;
    for _ in 0..jobs {
        let id = server.submit_ok(&alice, "print('o' * 2**20)").await;
        finish_with(&mut worker, id, &big, &big).await;
        server.wait_status(&alice, id, "succeeded", 5).await;
    }
    let response = raw(&server, &alice, "/v1/jobs?limit=500").await;
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    // About 400 bytes a job, whatever the jobs printed (5 MiB of stdout, 5 of stderr).
    assert!(
        bytes.len() < 1024 * jobs,
        "{} bytes for {jobs} summaries",
        bytes.len()
    );
    let list: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let items = list["jobs"].as_array().unwrap();
    assert_eq!(items.len(), jobs);
    for job in items {
        assert!(
            job.get("stdout").is_none() && job.get("stderr").is_none(),
            "{job}"
        );
        assert_eq!(job["stdout_bytes"], cap);
        assert_eq!(job["stderr_bytes"], cap);
        assert_eq!(job["stdout_truncated"], false);
    }
    // The one-job view still has the output.
    let id = JobId(items[0]["job_id"].as_u64().unwrap());
    let view = server.job(&alice, id).await;
    assert_eq!(view["stdout"].as_str().map(str::len), Some(cap));
    server.assert_ledger_ok();
}

#[tokio::test]
async fn the_raw_endpoints_return_the_stored_bytes_to_the_owner_only() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 10);
    let admin = server.add_admin("root");
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    // What JSON would escape, bytes outside ASCII, a NUL, CR LF, the replacement
    // character a worker puts where a job printed bytes that are not UTF-8, and no
    // newline at the end.
    let stdout = "naïve \u{1F600} \"q\" \\ \u{0} tab\t\r\nnot utf-8: \u{FFFD}\u{FFFD} end";
    let stderr = "warning: \u{7F}\u{1B}[31mred\u{1B}[0m\n";
    let id = server.submit_ok(&alice, "print(1)").await;
    finish_with(&mut worker, id, stdout, stderr).await;
    let view = server.wait_status(&alice, id, "succeeded", 5).await;
    assert_eq!(view["stdout"], stdout);

    for (stream, want) in [("stdout", stdout), ("stderr", stderr)] {
        let response = raw(&server, &alice, &format!("/v1/jobs/{id}/{stream}")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            response.headers()["content-length"],
            want.len().to_string().as_str()
        );
        let body = response.bytes().await.unwrap();
        assert_eq!(&body[..], want.as_bytes(), "{stream}, byte for byte");
        // An admin may read it too, like the job itself.
        let response = raw(&server, &admin, &format!("/v1/jobs/{id}/{stream}")).await;
        assert_eq!(response.status(), 200);
        // Another user may not: 404, as for the job.
        let response = raw(&server, &bob, &format!("/v1/jobs/{id}/{stream}")).await;
        assert_eq!(response.status(), 404);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
        assert_eq!(body["error"]["message"], "no such job");
    }
    // The summary's lengths are the raw bodies' lengths.
    let (_, list) = server.get_json(&alice, "/v1/jobs").await;
    assert_eq!(list["jobs"][0]["stdout_bytes"], stdout.len());
    assert_eq!(list["jobs"][0]["stderr_bytes"], stderr.len());

    // A job that has not ended has no output yet.
    let queued = server.submit_ok(&alice, "print(2)").await;
    let response = raw(&server, &alice, &format!("/v1/jobs/{queued}/stdout")).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());

    for path in [
        "/v1/jobs/999/stdout",
        "/v1/jobs/0/stdout",
        "/v1/jobs/abc/stderr",
        "/v1/jobs/-1/stderr",
    ] {
        assert_eq!(raw(&server, &alice, path).await.status(), 404, "{path}");
    }
    let anonymous = server
        .http
        .get(server.url(&format!("/v1/jobs/{id}/stdout")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let post = server
        .http
        .post(server.url(&format!("/v1/jobs/{id}/stdout")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
}

#[tokio::test]
async fn job_events_carry_a_summary_not_the_output() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    server.add_user("bob", 0);
    let (_, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "{}/v1/events",
            server.ws_base
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {alice}").parse().unwrap());
    let (mut events, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let big = "e".repeat(server.config.limits.max_output_bytes);
    let id = server.submit_ok(&alice, "print(1)").await;
    finish_with(&mut worker, id, &big, "").await;
    let mut ended = None;
    for _ in 0..20 {
        let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_secs(3), events.next()).await
        else {
            break;
        };
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        if event["type"] == "job" {
            assert!(text.len() < 2048, "a job event of {} bytes", text.len());
            assert!(event["job"].get("stdout").is_none(), "{event}");
            if event["job"]["status"] == "succeeded" {
                ended = Some(event);
                break;
            }
        }
    }
    let ended = ended.expect("the job's end as an event");
    assert_eq!(ended["job"]["job_id"], id.0);
    assert_eq!(ended["job"]["stdout_bytes"], big.len());
    assert_eq!(ended["job"]["stderr_bytes"], 0);
}
