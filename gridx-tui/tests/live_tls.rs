//! The dashboard's live event stream (`client/live.rs`) over wss: against a real
//! `gridx-server` that terminates TLS with a CA made here, trusted through the same
//! `Endpoint` the dashboard builds from `--ca-cert`; and refused, with the reason in
//! its disconnect report, when the CA is not trusted.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_e2e::Grid;
use gridx_e2e::tls::{GridTls, TestCa, Validity};
use gridx_tui::client::Endpoint;
use gridx_tui::client::live::{LiveEvent, follow};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_follows_the_coordinator_over_wss() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("gridx test CA");
    let ca_path = ca.write(dir.path());
    let (cert, key) = ca
        .issue(&["localhost"], 7, Validity::Current)
        .write(dir.path());
    let grid = Grid::start_tls(GridTls {
        host: "localhost".into(),
        cert,
        key,
        ca_pem: ca.pem.clone(),
        unverified: false,
    })
    .await;
    let alice = grid.user("alice", "10");

    let endpoint = Endpoint::new(&grid.url, Some(&ca_path), false).unwrap();
    assert!(
        endpoint
            .ws_url("/v1/events")
            .starts_with("wss://localhost:")
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let following = tokio::spawn(follow(endpoint, alice.clone(), tx, stop_rx));
    match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
        Ok(Some(LiveEvent::Connected { coordinator: None })) => {}
        other => panic!("expected Connected over wss, got {other:?}"),
    }
    let job = grid
        .submit(
            &alice,
            serde_json::json!({"language": "bash", "code": "echo queued"}),
        )
        .await;
    let id = job["job_id"].as_u64().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(LiveEvent::Event(event))) => {
                if serde_json::to_value(&event).unwrap()["job"]["job_id"] == id {
                    break;
                }
            }
            Ok(Some(LiveEvent::Disconnected { reason, .. })) => panic!("dropped: {reason}"),
            Ok(Some(LiveEvent::Connected { coordinator: None })) => {}
            other => panic!("no event for job {id}: {other:?}"),
        }
    }
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), following)
        .await
        .unwrap()
        .unwrap();

    // Without the CA the stream never connects, and says why.
    let untrusted = Endpoint::new(&grid.url, None, false).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let following = tokio::spawn(follow(untrusted, alice, tx, stop_rx));
    match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
        Ok(Some(LiveEvent::Disconnected { reason, .. })) => assert!(
            reason.contains("the coordinator's certificate is signed by an unknown authority"),
            "{reason}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), following)
        .await
        .unwrap()
        .unwrap();
}
