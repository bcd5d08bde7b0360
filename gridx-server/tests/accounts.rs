//! Operating users (docs/operations.md#users-and-credits): credits granted and debited
//! with a reason, accounts disabled and enabled, tokens rotated, over `/v1/admin/…`
//! and with `gridx-server user …` beside a running coordinator; every change audited.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use gridx_proto::{Credits, JobId};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use support::{FakeWorker, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_gridx-server");

async fn post(
    server: &TestServer,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    server.post_body(token, path, &body).await
}

fn credits(text: &str) -> Credits {
    text.parse().unwrap()
}

fn admin_cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("GRIDX_DATA_DIR")
        .env("USER", "opsbot")
        .output()
        .expect("run gridx-server");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn an_admin_grants_and_debits_with_a_reason_the_user_sees_and_mistakes_change_nothing() {
    let server = TestServer::start().await;
    let root = server.add_admin("root");
    let alice = server.add_user("alice", 10);

    let (status, body) = post(
        &server,
        &root,
        "/v1/admin/users/alice/credit",
        json!({"amount": 12.5, "reason": "prize for the November contest"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entry"]["kind"], "grant");
    assert_eq!(body["balance"], 22.5);
    let (status, body) = post(
        &server,
        &root,
        "/v1/admin/users/alice/credit",
        json!({"amount": -2.5, "reason": "granted twice by mistake"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["entry"]["kind"].as_str(),
            body["entry"]["amount"].as_f64()
        ),
        (Some("debit"), Some(-2.5))
    );
    assert_eq!(server.balance(&alice).await, credits("20"));

    // The user sees both entries, with the reasons, on their own ledger.
    let (_, ledger) = server.get_json(&alice, "/v1/ledger").await;
    let entries = ledger["entries"].as_array().unwrap();
    assert_eq!(entries[0]["kind"], "debit");
    assert_eq!(entries[0]["reason"], "granted twice by mistake");
    assert_eq!(entries[1]["reason"], "prize for the November contest");
    assert!(
        entries[2].get("reason").is_none(),
        "the starting grant has none: {}",
        entries[2]
    );

    // Mistakes: each is refused with a clear error and moves nothing.
    let cases = [
        (
            root.as_str(),
            "/v1/admin/users/alice/credit",
            json!({"amount": -21, "reason": "too much"}),
            409,
            "below zero",
        ),
        (
            root.as_str(),
            "/v1/admin/users/alice/credit",
            json!({"amount": 0, "reason": "nothing"}),
            409,
            "must not be 0",
        ),
        (
            root.as_str(),
            "/v1/admin/users/alice/credit",
            json!({"amount": 1, "reason": " "}),
            409,
            "a reason is required",
        ),
        (
            root.as_str(),
            "/v1/admin/users/alice/credit",
            json!({"amount": 1, "reason": "a\u{1b}[2J"}),
            409,
            "control character",
        ),
        (
            root.as_str(),
            "/v1/admin/users/alice/credit",
            json!({"amount": 1.0001, "reason": "x"}),
            400,
            "3 decimals",
        ),
        (
            root.as_str(),
            "/v1/admin/users/alice/credit",
            json!({"amount": 1, "reason": "x", "extra": 1}),
            400,
            "unknown field",
        ),
        (
            root.as_str(),
            "/v1/admin/users/nobody/credit",
            json!({"amount": 1, "reason": "x"}),
            404,
            "no user nobody",
        ),
        (
            root.as_str(),
            "/v1/admin/users/bad%20name/credit",
            json!({"amount": 1, "reason": "x"}),
            400,
            "not a valid name",
        ),
        (
            alice.as_str(),
            "/v1/admin/users/alice/credit",
            json!({"amount": 1000, "reason": "mine"}),
            403,
            "admin token",
        ),
        (
            "gxu_not_a_token",
            "/v1/admin/users/alice/credit",
            json!({"amount": 1, "reason": "x"}),
            401,
            "unknown",
        ),
    ];
    for (token, path, body, want, says) in cases {
        let (status, answer) = post(&server, token, path, body.clone()).await;
        assert_eq!(status, want, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert_eq!(server.balance(&alice).await, credits("20"));
    let (status, _) = server.get_json(&alice, "/v1/admin/users").await;
    assert_eq!(status, 403);
    let (status, users) = server.get_json(&root, "/v1/admin/users").await;
    assert_eq!(status, 200);
    let row = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(
        (row["balance"].as_f64(), row.get("disabled")),
        (Some(20.0), None)
    );

    // Exactly the two credits are audited, under the admin's name, newest first.
    let (status, audit) = server.get_json(&root, "/v1/admin/audit?limit=10").await;
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{audit}");
    assert_eq!(entries[0]["actor"], "admin:root");
    assert_eq!(entries[0]["action"], "user.credit");
    assert_eq!(entries[0]["subject"], "user:alice");
    assert!(
        entries[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("-2.5 credits"),
        "{audit}"
    );
    let (status, _) = server.get_json(&root, "/v1/admin/audit?limit=0").await;
    assert_eq!(status, 400);
    server.assert_ledger_ok();
}

#[tokio::test]
async fn disabling_refuses_the_token_cancels_queued_jobs_with_refunds_and_lets_running_ones_finish()
{
    let server = TestServer::start().await;
    let root = server.add_admin("root");
    let alice = server.add_user("alice", 10);
    server.add_user("owner", 0);
    let (_, worker_token) = server.add_worker("owner");
    let mut worker = FakeWorker::connect(&server, &worker_token, 1).await;

    let running = server.submit_ok(&alice, "print(1)").await;
    let (assigned, attempt, _) = worker.expect_assign().await;
    assert_eq!(assigned, running);
    worker
        .send(gridx_proto::protocol::WorkerMessage::Started {
            job_id: running,
            attempt,
        })
        .await;
    let queued: Vec<JobId> = vec![
        server.submit_ok(&alice, "print(2)").await,
        server.submit_ok(&alice, "print(3)").await,
    ];
    assert_eq!(server.balance(&alice).await, credits("7"));

    let (status, body) = post(
        &server,
        &root,
        "/v1/admin/users/alice/disable",
        json!({"reason": "abuse report 17"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cancelled_jobs"], 2);
    assert_eq!(body["user"]["disabled"], "abuse report 17");

    // The token is refused with the reason, and is not counted as a guess.
    for _ in 0..3 {
        let (status, body) = server.get_json(&alice, "/v1/balance").await;
        assert_eq!(status, 403, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("disabled") && message.contains("abuse report 17"),
            "{message}"
        );
    }
    // The admin may not lock themselves out.
    let (status, body) = post(
        &server,
        &root,
        "/v1/admin/users/root/disable",
        json!({"reason": "oops"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );

    // Queued jobs ended cancelled / user_disabled, refunded; the running one finishes
    // and its worker is paid.
    for id in &queued {
        let job = server.job(&root, *id).await;
        assert_eq!(
            (job["status"].as_str(), job["reason"].as_str()),
            (Some("cancelled"), Some("user_disabled")),
            "{job}"
        );
    }
    worker
        .finish(
            running,
            attempt,
            gridx_proto::job::RunEnd::Exited,
            Some(0),
            "1\n",
        )
        .await;
    let job = server.wait_status(&root, running, "succeeded", 10).await;
    assert_eq!(job["stdout"], "1\n");

    let (status, body) = post(&server, &root, "/v1/admin/users/alice/enable", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["user"].get("disabled").is_none(), "{body}");
    // 10 − 3 holds + 2 refunds; the running job was paid.
    assert_eq!(server.balance(&alice).await, credits("9"));

    // A rotated token: the old one is refused at once, the new one works.
    let (status, body) = post(&server, &root, "/v1/admin/users/alice/token", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let new_token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(server.get_json(&alice, "/v1/balance").await.0, 401);
    assert_eq!(server.get_json(&new_token, "/v1/balance").await.0, 200);

    let (_, audit) = server.get_json(&root, "/v1/admin/audit").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.token", "user.enable", "user.disable"]);
    server.assert_ledger_ok();
}

/// The same from the command line, beside a running coordinator: it notices a
/// disable within a second and cancels the queued jobs itself.
#[tokio::test]
async fn the_command_line_credits_disables_and_audits_beside_a_running_coordinator() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 5);
    let dir = server.data_dir.clone();

    let (code, out, err) = admin_cli(
        &dir,
        &[
            "user",
            "credit",
            "alice",
            "-1.5",
            "--reason",
            "chargeback 42",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("debited 1.5 credits from alice") && err.contains("balance now 3.5"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
    let (code, out, err) = admin_cli(
        &dir,
        &[
            "user", "credit", "alice", "10", "--reason", "top-up", "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["balance"].as_f64()),
        (Some("grant"), Some(13.5))
    );
    let (code, _, err) = admin_cli(&dir, &["user", "credit", "alice", "-100", "--reason", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("below zero"), "{err}");
    let (code, _, err) = admin_cli(&dir, &["user", "credit", "alice", "5"]);
    assert_eq!(code, 2, "clap refuses a missing --reason: {err}");
    assert_eq!(server.balance(&alice).await, credits("13.5"));

    let jobs = [
        server.submit_ok(&alice, "print(1)").await,
        server.submit_ok(&alice, "print(2)").await,
    ];
    let (code, _, err) = admin_cli(
        &dir,
        &["user", "disable", "alice", "--reason", "left the project"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("disabled alice"), "{err}");
    let (status, _) = server.get_json(&alice, "/v1/balance").await;
    assert_eq!(status, 403, "refused from the next request");
    let admin_token = server.add_admin("root");
    for id in jobs {
        let job = server.wait_status(&admin_token, id, "cancelled", 5).await;
        assert_eq!(job["reason"], "user_disabled");
    }
    let (code, out, _) = admin_cli(&dir, &["user", "list"]);
    assert_eq!(code, 0);
    let line = out.lines().find(|l| l.starts_with("alice")).unwrap();
    assert!(
        line.contains("13.5") && line.contains("disabled: left the project"),
        "{out}"
    );
    let (code, _, err) = admin_cli(&dir, &["user", "disable", "alice", "--reason", "again"]);
    assert_eq!(code, 0);
    assert!(err.contains("already disabled"), "{err}");
    let (code, _, err) = admin_cli(&dir, &["user", "enable", "alice"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.get_json(&alice, "/v1/balance").await.0, 200);
    let (code, out, err) = admin_cli(&dir, &["user", "token", "alice", "--rotate"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().starts_with("gxu_"));
    assert_eq!(server.get_json(&alice, "/v1/balance").await.0, 401);

    let (code, out, _) = admin_cli(&dir, &["audit", "--json"]);
    assert_eq!(code, 0);
    let audit: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        "user.token",
        "user.enable",
        "user.disable",
        "user.credit",
        "user.credit",
    ]
    .into_iter()
    .map(|a| ("cli:opsbot".to_owned(), a.to_owned()))
    .collect();
    assert_eq!(rows, expected);
    let (code, out, err) = admin_cli(&dir, &["audit", "--limit", "2"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "a header and two entries: {out}");
    assert!(err.contains("gridx-server audit --before"), "{err}");
    let (code, out, _) = admin_cli(&dir, &["ledger", "verify"]);
    assert_eq!(code, 0, "{out}");
    server.assert_ledger_ok();
}

/// A user disabled from the command line while the coordinator is down: at its next
/// start their queued jobs are cancelled before anything is dispatched, even to a
/// worker that connects at once.
#[tokio::test]
async fn a_disable_made_while_the_coordinator_is_down_applies_before_any_dispatch() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice", 5);
    server.add_user("owner", 0);
    let (_, worker_token) = server.add_worker("owner");
    let jobs = [
        server.submit_ok(&alice, "print(1)").await,
        server.submit_ok(&alice, "print(2)").await,
    ];
    let mut server = server;
    server.stop().await;
    let (code, _, err) = admin_cli(
        &server.data_dir,
        &["user", "disable", "alice", "--reason", "while down"],
    );
    assert_eq!(code, 0, "{err}");
    let server = server.restart().await;
    let mut worker = FakeWorker::connect(&server, &worker_token, 4).await;
    let root = server.add_admin("root");
    for id in jobs {
        let job = server.wait_status(&root, id, "cancelled", 5).await;
        assert_eq!(job["reason"], "user_disabled");
        assert_eq!(job["attempts"], 0, "never dispatched: {job}");
    }
    // Nothing is assigned: the socket stays quiet (or sends no `assign`).
    use futures_util::StreamExt;
    let next = tokio::time::timeout(std::time::Duration::from_secs(1), worker.socket.next()).await;
    if let Ok(Some(Ok(frame))) = next {
        assert!(!frame.to_string().contains("\"assign\""), "{frame}");
    }
    server.assert_ledger_ok();
}
