//! What a service manager does to the real `gridx-server` binary
//! (contrib/systemd/gridx-server.service, docs/operations.md "Running as a service"):
//! `systemctl reload` sends SIGHUP, and an older binary after a rollback meets a store
//! that a newer one upgraded.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gridx-server");

#[tokio::test]
async fn sighup_without_tls_neither_stops_nor_breaks_the_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = gridx_e2e::spawn_server(
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("GRIDX_LOG", "warn")
            .env_remove("GRIDX_TLS_CERT")
            .env_remove("GRIDX_TLS_KEY")
            .stderr(Stdio::null()),
    )
    .await
    .unwrap_or_else(|why| panic!("{why}"));
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    gridx_e2e::wait_healthy(&http, &base, 10, &|| String::new()).await;
    for _ in 0..2 {
        let status = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "SIGHUP stopped the coordinator"
        );
        let health = http.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
    // SIGTERM still stops it gracefully.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_store_from_a_newer_version_is_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let admin = |args: &[&str]| {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("GRIDX_DATA_DIR")
            .output()
            .unwrap()
    };
    assert!(
        admin(&["user", "add", "alice", "--credits", "1"])
            .status
            .success()
    );
    // What a later release's migration leaves: a higher schema level.
    let db = dir.path().join("gridx.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let level: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    conn.pragma_update(None, "user_version", level + 1).unwrap();
    drop(conn);
    for args in [
        &["serve", "--listen", "127.0.0.1:0"][..],
        &["user", "add", "bob"][..],
        &["worker", "add", "--owner", "alice"][..],
    ] {
        let out = admin(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("schema level {}", level + 1))
                && stderr.contains("restore the backup taken before the upgrade"),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
    }
}
