//! The Judge0-compatible API (docs/judge0.md) end to end: a Judge0 batch of each
//! language's hello world, wrong answer, runtime error and time limit, run by a real
//! `gridx-tui worker` on each sandbox (bubblewrap and Docker), read back as a Judge0
//! client reads it.

use gridx_e2e::{Grid, require_executor, terminate};
use serde_json::{Value, json};
use std::time::Duration;

/// (Judge0 language id, hello, runtime error (exit 3), endless loop)
const PROGRAMS: [(u64, &str, &str, &str); 3] = [
    (46, "echo hello", "exit 3", "while :; do :; done"),
    (63, "console.log('hello')", "process.exit(3)", "for (;;) {}"),
    (
        71,
        "print('hello')",
        "import sys; sys.exit(3)",
        "while True: pass",
    ),
];

async fn judge0_clients_get_each_status_from_real_sandboxes(executor: &str) {
    if !require_executor(executor) {
        return;
    }
    let grid = Grid::start().await;
    let alice = grid.user("alice", "100");
    grid.user("owner", "0");
    let name = format!("judge0-{executor}");
    let token = grid.worker_token("owner", &name);
    let work_dir = tempfile::tempdir().expect("work dir");
    let mut worker = grid.spawn_worker(&token, &name, executor, work_dir.path(), &["--slots", "4"]);
    grid.wait_online(&alice, &name).await;

    // Each case: its request and the status a Judge0 client must see.
    let mut cases: Vec<(Value, u64)> = Vec::new();
    for (id, hello, crash, spin) in PROGRAMS {
        let base = |code: &str| json!({"source_code": code, "language_id": id});
        let mut accepted = base(hello);
        accepted["expected_output"] = json!("hello\n\n");
        cases.push((accepted, 3));
        let mut wrong = base(hello);
        wrong["expected_output"] = json!("goodbye");
        cases.push((wrong, 4));
        cases.push((base(crash), 11));
        let mut endless = base(spin);
        endless["wall_time_limit"] = json!(1);
        endless["cpu_time_limit"] = json!(1);
        endless["cpu_extra_time"] = json!(0);
        cases.push((endless, 5));
    }
    let http = reqwest::Client::new();
    let body = json!({"submissions": cases.iter().map(|c| c.0.clone()).collect::<Vec<_>>()});
    let response = http
        .post(format!("{}/judge0/submissions/batch", grid.url))
        .header("X-Auth-Token", &alice)
        .json(&body)
        .send()
        .await
        .expect("batch");
    assert_eq!(response.status().as_u16(), 201);
    let created: Vec<Value> = response.json().await.expect("JSON");
    let tokens: Vec<String> = created
        .iter()
        .map(|c| c["token"].as_str().expect("a token per item").to_owned())
        .collect();

    let url = format!(
        "{}/judge0/submissions/batch?tokens={}&base64_encoded=true&fields=status,stdout,exit_code,language_id",
        grid.url,
        tokens.join(",")
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let shown = loop {
        let shown: Value = http
            .get(&url)
            .header("X-Auth-Token", &alice)
            .send()
            .await
            .expect("batch show")
            .json()
            .await
            .expect("JSON");
        let done = shown["submissions"].as_array().is_some_and(|s| {
            s.iter()
                .all(|x| x["status"]["id"].as_u64().unwrap_or(0) > 2)
        });
        if done || std::time::Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for (i, ((request, want), got)) in cases
        .iter()
        .zip(shown["submissions"].as_array().expect("submissions"))
        .enumerate()
    {
        assert_eq!(got["status"]["id"], *want, "case {i} {request}: {got}");
        if *want == 3 {
            // base64 as Ruby writes it: "hello\n".
            assert_eq!(got["stdout"], "aGVsbG8K\n", "case {i}: {got}");
        }
        if *want == 11 {
            assert_eq!(got["exit_code"], 3, "case {i}: {got}");
        }
    }
    terminate(&mut worker, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge0_clients_get_each_status_from_bubblewrap() {
    judge0_clients_get_each_status_from_real_sandboxes("bubblewrap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge0_clients_get_each_status_from_docker() {
    judge0_clients_get_each_status_from_real_sandboxes("docker").await;
}
