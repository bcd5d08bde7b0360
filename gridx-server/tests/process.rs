//! The real `gridx-server` binary: admin commands' output (docs/cli.md), graceful shutdown
//! on SIGTERM, crash (kill -9) recovery, online backup and `ledger verify`.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

mod support;

use gridx_proto::JobId;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::FakeWorker;

const BIN: &str = env!("CARGO_BIN_EXE_gridx-server");

fn admin(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("GRIDX_DATA_DIR")
        .output()
        .expect("run gridx-server");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Served {
    child: Child,
    /// `127.0.0.1:PORT`, as the process reported binding it.
    base: String,
}

/// `serve` on a port the system picks; healthy when this returns. Each start gets a
/// new port: every caller reaches the server through the returned `base`.
async fn serve(dir: &Path) -> Served {
    let (child, addr) = gridx_e2e::spawn_server(
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("GRIDX_LOG", "warn")
            .stderr(Stdio::null()),
    )
    .await
    .unwrap_or_else(|why| panic!("{why}"));
    let base = addr.to_string();
    gridx_e2e::wait_healthy(
        &reqwest::Client::new(),
        &format!("http://{base}"),
        10,
        &|| String::new(),
    )
    .await;
    Served { child, base }
}

/// A `TestServer`-shaped handle for the fake worker, pointing at a real process.
fn remote(base: &str, dir: &Path) -> support::TestServer {
    support::TestServer::remote(base, dir)
}

#[test]
fn user_add_prints_the_token_alone_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = admin(dir.path(), &["user", "add", "alice", "--credits", "2.5"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 1);
    assert!(
        stdout.trim().starts_with("gxu_") && stdout.trim().len() == 68,
        "{stdout:?}"
    );
    assert!(stderr.contains("alice"));
    let (code, stdout, _) = admin(dir.path(), &["user", "add", "bob", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["user"], "bob");
    assert!(v["token"].as_str().unwrap().starts_with("gxu_"));
    let (code, _, stderr) = admin(dir.path(), &["user", "add", "alice"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists"), "{stderr}");
    let (code, _, stderr) = admin(dir.path(), &["user", "add", "bad name"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not a valid name"), "{stderr}");
    let (code, _, stderr) = admin(dir.path(), &["user", "add", "carol", "--credits", "1.0001"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("3 decimals"), "{stderr}");
    let (code, stdout, _) = admin(
        dir.path(),
        &["worker", "add", "--owner", "alice", "--name", "box-1"],
    );
    assert_eq!(code, 0);
    assert!(stdout.trim().starts_with("gxw_"));
    let (code, _, stderr) = admin(dir.path(), &["worker", "add", "--owner", "nobody"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no user nobody"), "{stderr}");
    let (code, stdout, _) = admin(dir.path(), &["user", "list"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("alice") && stdout.contains("2.5"),
        "{stdout}"
    );
    let (code, stdout, _) = admin(dir.path(), &["ledger", "verify"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("ledger ok"), "{stdout}");
}

#[test]
fn ledger_verify_fails_loudly_on_a_tampered_store() {
    let dir = tempfile::tempdir().unwrap();
    admin(dir.path(), &["user", "add", "alice"]);
    let conn = rusqlite::Connection::open(dir.path().join("gridx.db")).unwrap();
    conn.execute(
        "UPDATE accounts SET balance = balance + 1000 WHERE id = 'user:alice'",
        [],
    )
    .unwrap();
    // The ledger itself refuses to be rewritten.
    assert!(conn.execute("DELETE FROM ledger", []).is_err());
    drop(conn);
    let (code, stdout, _) = admin(dir.path(), &["ledger", "verify"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("user:alice"), "{stdout}");
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    admin(dir.path(), &["user", "add", "alice"]);
    let mut served = serve(dir.path()).await;
    let pid = served.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || served.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn kill_9_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, token, _) = admin(dir.path(), &["user", "add", "alice", "--credits", "1000"]);
    let token = token.trim().to_owned();
    admin(dir.path(), &["user", "add", "bob", "--credits", "0"]);
    let (_, worker_token, _) = admin(
        dir.path(),
        &["worker", "add", "--owner", "bob", "--trusted"],
    );
    let worker_token = worker_token.trim().to_owned();
    let mut accepted: Vec<JobId> = Vec::new();

    for round in 0..3 {
        let mut served = serve(dir.path()).await;
        let server = remote(&served.base, dir.path());
        // A worker that finishes everything it is given, so jobs settle under load.
        let mut worker = FakeWorker::connect(&server, &worker_token, 4).await;
        let worker_task = tokio::spawn(async move {
            while let Some(message) = worker.recv(30).await {
                if let gridx_proto::protocol::CoordinatorMessage::Assign { job, attempt } = message
                {
                    worker.run_ok(job.job_id, attempt, "ok").await;
                }
            }
        });
        let stored = Arc::new(AtomicUsize::new(0));
        let submitter = {
            let http = server.http.clone();
            let url = server.url("/v1/jobs");
            let token = token.clone();
            let stored = stored.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..400 {
                    let sent = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"language": "bash", "code": format!("echo {i}")}))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 201 => {
                            if let Ok(v) = r.json::<serde_json::Value>().await {
                                ids.push(JobId(v["job_id"].as_u64().unwrap_or(0)));
                                stored.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Ok(_) => {}
                        Err(_) => break, // the server died under us
                    }
                }
                ids
            })
        };
        // Kill it mid-load, after a different number of stored jobs in each round,
        // so each crash lands at another point of the work.
        let mid_load = 40 + 60 * round;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while stored.load(Ordering::SeqCst) < mid_load {
            assert!(
                !submitter.is_finished() && tokio::time::Instant::now() < deadline,
                "round {round}: {} of {mid_load} jobs stored before the kill",
                stored.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        served.child.kill().unwrap(); // SIGKILL
        let _ = served.child.wait();
        accepted.extend(submitter.await.unwrap());
        worker_task.abort();
        // Between crashes the store must already be consistent.
        let (code, stdout, _) = admin(dir.path(), &["ledger", "verify"]);
        assert_eq!(code, 0, "after kill {round}: {stdout}");
    }
    assert!(!accepted.is_empty());

    // Restart, let a worker drain everything, and account for every accepted job.
    let mut served = serve(dir.path()).await;
    let server = remote(&served.base, dir.path());
    let mut worker = FakeWorker::connect(&server, &worker_token, 8).await;
    let drain = tokio::spawn(async move {
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_secs(5), worker.recv(60)).await
        {
            if let gridx_proto::protocol::CoordinatorMessage::Assign { job, attempt } = message {
                worker.run_ok(job.job_id, attempt, "ok").await;
            }
        }
    });
    for id in &accepted {
        let job = server.wait_status(&token, *id, "succeeded", 30).await;
        assert_eq!(job["job_id"], id.0);
    }
    drain.abort();
    let (code, stdout, _) = admin(dir.path(), &["ledger", "verify"]);
    assert_eq!(code, 0, "{stdout}");
    served.child.kill().unwrap();
    let _ = served.child.wait();
}

#[tokio::test]
async fn backup_while_serving_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let (_, token, _) = admin(dir.path(), &["user", "add", "alice"]);
    let mut served = serve(dir.path()).await;
    let server = remote(&served.base, dir.path());
    for i in 0..20 {
        server.submit_ok(token.trim(), &format!("print({i})")).await;
    }
    let backup = dir.path().join("copy.db");
    let (code, _, stderr) = admin(dir.path(), &["backup", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = admin(dir.path(), &["backup", backup.to_str().unwrap()]);
    assert_eq!(code, 1, "overwrote an existing backup");
    assert!(stderr.contains("already exists"));
    served.child.kill().unwrap();
    let _ = served.child.wait();
    // The copy is a complete store: it verifies and holds the 20 jobs.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&backup, restored.path().join("gridx.db")).unwrap();
    let (code, stdout, _) = admin(restored.path(), &["ledger", "verify"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("20 jobs"), "{stdout}");
}
