//! `gridx-server migrate --to postgres://…`: a store with users, a worker, a job
//! paid for, a queued job and an audit entry, copied into PostgreSQL, served from
//! there as it was, and new rows continuing its ids.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use gridx_e2e::skip::Tool;
use gridx_e2e::skip_unless;
use gridx_server::store::Location;
use std::process::Command;
use support::{FakeWorker, TestServer};

fn migrate(data_dir: &std::path::Path, url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gridx-server"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["migrate", "--to", url])
        .output()
        .unwrap()
}

#[tokio::test]
async fn an_sqlite_store_moves_to_postgres_whole_and_keeps_serving() {
    let cluster = skip_unless!(Tool::Postgres, gridx_e2e::postgres::shared());
    let url = cluster.create_database().unwrap();

    let mut server = TestServer::start().await;
    let alice = server.add_user("alice", 10);
    let bob = server.add_user("bob", 0);
    let (worker_id, token) = server.add_worker("bob");
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let ran = server.submit_ok(&alice, "print('hi')").await;
    worker.expect_assign().await;
    worker.run_ok(ran, 1, "hi\n").await;
    server.wait_status(&alice, ran, "succeeded", 5).await;
    drop(worker);
    let queued = server.submit_ok(&alice, "print('later')").await;
    let before = server.job(&alice, ran).await;
    // While a coordinator serves the store, migrate refuses (the serve lock).
    let served = migrate(&server.data_dir, &url);
    assert!(!served.status.success());
    assert!(
        String::from_utf8_lossy(&served.stderr).contains("stop its coordinator first"),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    server.stop().await;

    let out = migrate(&server.data_dir, &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("migrated to"), "{printed}");
    let on = |engine: &str| {
        printed
            .lines()
            .find(|l| l.starts_with(&format!("ledger on {engine}:")))
            .map(|l| l.split_once(':').map(|(_, rest)| rest.trim().to_owned()))
            .unwrap_or_default()
    };
    assert_eq!(on("SQLite"), on("PostgreSQL"), "{printed}");
    assert!(
        on("PostgreSQL").is_some_and(|l| l.starts_with("5 entries")),
        "{printed}"
    );

    // A second run finds the target taken and copies nothing.
    let again = migrate(&server.data_dir, &url);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds 2 users"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let server = TestServer::start_on(Location::Postgres(url)).await;
    let after = server.job(&alice, ran).await;
    for field in [
        "status",
        "stdout",
        "cost",
        "worker_id",
        "finished_at",
        "attempts",
    ] {
        assert_eq!(after[field], before[field], "{field}");
    }
    assert_eq!(server.job(&alice, queued).await["status"], "queued");
    assert_eq!(server.balance(&alice).await.millis(), 8_000);
    assert_eq!(server.balance(&bob).await.millis(), 800);
    // Ids continue after the copied ones.
    let next = server.submit_ok(&alice, "print(3)").await;
    assert_eq!(next.0, queued.0 + 1);
    let (_, workers) = server.get_json(&alice, "/v1/workers").await;
    assert_eq!(workers["workers"][0]["worker_id"], worker_id.0);
    // The worker's token still works against the new store.
    let mut worker = FakeWorker::connect(&server, &token, 1).await;
    let (job, attempt, _) = worker.expect_assign().await;
    worker.run_ok(job, attempt, "later\n").await;
    server.assert_ledger_ok();
}
