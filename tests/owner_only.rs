//! Owner-only executors with the real binaries: an unsandboxed worker runs its
//! owner's jobs and never another user's, which wait for a sandboxed worker; the
//! worker list and the real worker's `hello` say which executor each has
//! (docs/worker.md, "Owner-only executors").

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_e2e::{Grid, require_executor, terminate};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsandboxed_worker_runs_its_owners_jobs_only() {
    if !require_executor("bubblewrap") {
        return;
    }
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let bob = grid.user("bob", "10");
    let carol = grid.user("carol", "0");
    let bare_token = grid.worker_token("alice", "bare");
    let bare_dir = tempfile::tempdir().unwrap();
    let mut bare = grid.spawn_worker(
        &bare_token,
        "bare",
        "unsandboxed",
        bare_dir.path(),
        &["--allow-unsandboxed"],
    );
    grid.wait_online(&alice, "bare").await;

    let bobs = grid
        .submit(&bob, json!({"language": "bash", "code": "echo bob"}))
        .await;
    let bobs_id = bobs["job_id"].as_u64().unwrap();
    let alices = grid
        .submit(&alice, json!({"language": "bash", "code": "echo alice"}))
        .await;
    let alices = grid
        .wait_terminal(&alice, alices["job_id"].as_u64().unwrap(), 30)
        .await;
    assert_eq!(alices["status"], "succeeded", "{alices}");
    assert_eq!(alices["stdout"], "alice\n");
    // bob's came first and a slot is free, but it waits for a sandbox.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let waiting = grid.get(&bob, &format!("/v1/jobs/{bobs_id}")).await;
    assert_eq!(waiting["status"], "queued", "{waiting}");

    let boxed_token = grid.worker_token("carol", "boxed");
    let boxed_dir = tempfile::tempdir().unwrap();
    let mut boxed = grid.spawn_worker(&boxed_token, "boxed", "bubblewrap", boxed_dir.path(), &[]);
    let done = grid.wait_terminal(&bob, bobs_id, 30).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["stdout"], "bob\n");

    let workers = grid.workers(&carol).await;
    let by_name = |name: &str| {
        workers
            .iter()
            .find(|w| w["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no worker {name} in {workers:?}"))
    };
    assert_eq!(by_name("bare")["executor"], "unsandboxed");
    assert_eq!(by_name("boxed")["executor"], "bubblewrap");
    assert_eq!(done["worker_id"], by_name("boxed")["worker_id"]);
    terminate(&mut bare, 10);
    terminate(&mut boxed, 10);
    grid.assert_ledger_verifies();
}
