//! The worker host end to end: the real `gridx-server` and `gridx-tui worker`
//! processes, real sandboxes, jobs in every language, authentication failures,
//! graceful shutdown and the coordinator's drain.

use gridx_e2e::skip::Tool;
use gridx_e2e::{Grid, require, require_executor, terminate};
use serde_json::json;
use std::io::Read;

async fn jobs_run_end_to_end(executor: &str) {
    if !require_executor(executor) {
        return;
    }
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let bob = grid.user("bob", "0");
    let token = grid.worker_token("bob", "box-1");
    let work_dir = tempfile::tempdir().unwrap();
    let mut worker = grid.spawn_worker(
        &token,
        "box-1",
        executor,
        work_dir.path(),
        &["--slots", "2"],
    );
    grid.wait_online(&alice, "box-1").await;
    let listed = grid.workers(&alice).await;
    assert_eq!(listed[0]["executor"], executor);
    assert_eq!(listed[0]["slots"], 2);
    // The interpreters always; the compilers and Ruby wherever the toolchains are,
    // which `.ci/install-deps` (host) and `images build` (Docker) guarantee in CI.
    let offered = listed[0]["languages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        offered[..3],
        [json!("python"), json!("node"), json!("bash")]
    );
    if gridx_e2e::skip::in_ci() {
        assert_eq!(
            listed[0]["languages"],
            json!([
                "python", "node", "bash", "c", "cpp", "java", "go", "rust", "ruby"
            ])
        );
    }

    let py = grid
        .submit(
            &alice,
            json!({"language": "python", "code": "print(input()[::-1])", "stdin": "dlrow\n"}),
        )
        .await;
    let js = grid
        .submit(
            &alice,
            json!({"language": "javascript", "code": "console.log(6*7)"}),
        )
        .await;
    let sh = grid
        .submit(
            &alice,
            json!({"language": "bash", "code": "echo out; echo err >&2; exit 4"}),
        )
        .await;
    let slow = grid
        .submit(
            &alice,
            json!({"language": "bash", "code": "sleep 30", "timeout_s": 1}),
        )
        .await;
    let py = grid
        .wait_terminal(&alice, py["job_id"].as_u64().unwrap(), 60)
        .await;
    assert_eq!(
        (py["status"].as_str(), py["stdout"].as_str()),
        (Some("succeeded"), Some("world\n")),
        "{py}"
    );
    let js = grid
        .wait_terminal(&alice, js["job_id"].as_u64().unwrap(), 60)
        .await;
    assert_eq!(js["stdout"], "42\n", "{js}");
    let sh = grid
        .wait_terminal(&alice, sh["job_id"].as_u64().unwrap(), 60)
        .await;
    assert_eq!(
        (sh["status"].as_str(), sh["exit_code"].as_i64()),
        (Some("failed"), Some(4)),
        "{sh}"
    );
    assert_eq!(sh["stderr"], "err\n");
    let slow = grid
        .wait_terminal(&alice, slow["job_id"].as_u64().unwrap(), 60)
        .await;
    assert_eq!(slow["status"], "timed_out", "{slow}");

    // Four runs paid to the worker's owner: 4 x 0.8.
    let balance = grid.get(&bob, "/v1/balance").await;
    assert_eq!(balance["balance"], json!(3.2));
    let metrics = &grid.workers(&alice).await[0]["metrics"];
    assert!(
        !metrics["cpu_per_core"].as_array().unwrap().is_empty(),
        "{metrics}"
    );

    let status = terminate(&mut worker, 20).expect("the worker exits on SIGTERM");
    assert!(status.success(), "worker exit status {status:?}");
    assert_eq!(
        std::fs::read_dir(work_dir.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "workspaces left behind"
    );
    let (ok, report) = grid.verify_ledger();
    assert!(ok, "{report}");
}

#[tokio::test]
async fn jobs_run_end_to_end_on_bubblewrap() {
    jobs_run_end_to_end("bubblewrap").await;
}

#[tokio::test]
async fn jobs_run_end_to_end_on_docker() {
    jobs_run_end_to_end("docker").await;
}

fn stderr_of(child: &mut std::process::Child) -> String {
    let mut text = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut text);
    }
    text
}

#[tokio::test]
async fn a_rejected_token_exits_non_zero_with_the_reason() {
    require!(Tool::Bubblewrap);
    let grid = Grid::start().await;
    let alice = grid.user("alice", "1");
    let work_dir = tempfile::tempdir().unwrap();
    for (token, needle) in [
        ("gxw_wrong", "unknown worker token"),
        (alice.as_str(), "user API token"),
    ] {
        let mut worker = grid.spawn_worker(token, "w", "bubblewrap", work_dir.path(), &[]);
        let status = tokio::task::spawn_blocking(move || {
            let status = worker.wait();
            (status, stderr_of(&mut worker))
        })
        .await
        .unwrap();
        let (status, stderr) = status;
        assert!(!status.unwrap().success());
        assert!(
            stderr.contains(needle) && stderr.contains("bad_token"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_coordinator_is_a_clear_error() {
    // The worker checks its sandbox before it dials the coordinator.
    require!(Tool::Bubblewrap);
    let grid = Grid::start().await;
    let token = {
        grid.user("alice", "1");
        grid.worker_token("alice", "w")
    };
    let mut grid = grid;
    grid.kill_server();
    let work_dir = tempfile::tempdir().unwrap();
    let mut worker = grid.spawn_worker(&token, "w", "bubblewrap", work_dir.path(), &[]);
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let status = worker.wait();
        (status, stderr_of(&mut worker))
    })
    .await
    .unwrap();
    assert!(!status.unwrap().success());
    assert!(stderr.contains("cannot reach the coordinator"), "{stderr}");
}

#[tokio::test]
async fn a_docker_runtime_the_engine_lacks_refuses_to_start() {
    // `--docker-runtime` names a runtime no engine has: the worker refuses before it
    // takes a job, naming it; a name that is not one is refused as a flag error.
    require!(Tool::Docker);
    let grid = Grid::start().await;
    let token = {
        grid.user("alice", "1");
        grid.worker_token("alice", "w")
    };
    let work_dir = tempfile::tempdir().unwrap();
    for (runtime, needle) in [
        (
            "gridx-no-such-runtime",
            "the Docker engine has no runtime \"gridx-no-such-runtime\"",
        ),
        (
            "run sc",
            "--docker-runtime: \"run sc\" is not a runtime name",
        ),
    ] {
        let mut worker = grid.spawn_worker(
            &token,
            "w",
            "docker",
            work_dir.path(),
            &["--docker-runtime", runtime],
        );
        let (status, stderr) = tokio::task::spawn_blocking(move || {
            let status = worker.wait();
            (status, stderr_of(&mut worker))
        })
        .await
        .unwrap();
        assert!(!status.unwrap().success(), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
}

#[tokio::test]
async fn the_worker_rides_out_a_coordinator_restart() {
    require!(Tool::Bubblewrap);
    let mut grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let token = grid.worker_token("alice", "drainee");
    let work_dir = tempfile::tempdir().unwrap();
    let mut worker = grid.spawn_worker(&token, "drainee", "bubblewrap", work_dir.path(), &[]);
    grid.wait_online(&alice, "drainee").await;
    let job = grid
        .submit(
            &alice,
            json!({"language": "bash", "code": "sleep 2; echo finished"}),
        )
        .await;
    // Once it runs, stop the coordinator: it drains the worker, which finishes the
    // job and reports it, but keeps running and reconnects to the next coordinator.
    grid.wait_started(&alice, job["job_id"].as_u64().unwrap(), 30)
        .await;
    let server = grid.stop_server(30).expect("coordinator exits");
    assert!(server.success(), "coordinator exit {server:?}");
    assert!(
        matches!(worker.try_wait(), Ok(None)),
        "the worker exited with its coordinator"
    );
    grid.start_server().await;
    let job = grid
        .get(&alice, &format!("/v1/jobs/{}", job["job_id"]))
        .await;
    assert_eq!(
        (job["status"].as_str(), job["stdout"].as_str()),
        (Some("succeeded"), Some("finished\n")),
        "{job}"
    );
    grid.wait_online(&alice, "drainee").await;
    let next = grid
        .submit(&alice, json!({"language": "bash", "code": "echo again"}))
        .await;
    let next = grid
        .wait_terminal(&alice, next["job_id"].as_u64().unwrap(), 60)
        .await;
    assert_eq!(next["stdout"], "again\n", "{next}");
    let status = tokio::task::spawn_blocking(move || terminate(&mut worker, 20))
        .await
        .unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "worker exit {status:?}"
    );
    let (ok, report) = grid.verify_ledger();
    assert!(ok, "{report}");
}

#[tokio::test]
async fn a_running_job_survives_a_coordinator_crash() {
    require!(Tool::Bubblewrap);
    let mut grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let token = grid.worker_token("alice", "survivor");
    let work_dir = tempfile::tempdir().unwrap();
    let mut worker = grid.spawn_worker(&token, "survivor", "bubblewrap", work_dir.path(), &[]);
    grid.wait_online(&alice, "survivor").await;
    let job = grid
        .submit(
            &alice,
            json!({"language": "bash", "code": "sleep 3; echo done"}),
        )
        .await;
    let id = job["job_id"].as_u64().unwrap();
    grid.wait_started(&alice, id, 30).await;
    grid.kill_server(); // SIGKILL: no drain, no goodbye
    grid.start_server().await;
    // The worker reconnects, reports the job it still runs, keeps it, and finishes it.
    let job = grid.wait_terminal(&alice, id, 30).await;
    assert_eq!(
        (job["status"].as_str(), job["stdout"].as_str()),
        (Some("succeeded"), Some("done\n")),
        "{job}"
    );
    assert_eq!(job["attempts"], 1, "the job ran twice: {job}");
    let status = terminate(&mut worker, 20).expect("worker exits");
    assert!(status.success());
    let (ok, report) = grid.verify_ledger();
    assert!(ok, "{report}");
}

/// Two hosts started with one worker token (issue 19): they no longer replace each
/// other thousands of times a second. Each replaced host backs off harder each time,
/// the coordinator keeps a session younger than a second in a run of replacements
/// and logs the run with a count (not a line per reconnect), and the host replaced
/// three times within two minutes stops, saying another process uses its token and
/// naming it. The other keeps the connection.
#[tokio::test]
async fn two_hosts_sharing_a_token_settle_and_one_stops_naming_the_other() {
    require!(Tool::Bubblewrap);
    let grid = Grid::start().await;
    let alice = grid.user("alice", "1");
    let token = grid.worker_token("alice", "shared");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut hosts = [
        grid.spawn_worker(&token, "host-a", "bubblewrap", dir_a.path(), &[]),
        grid.spawn_worker(&token, "host-b", "bubblewrap", dir_b.path(), &[]),
    ];
    let names = ["host-a", "host-b"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    let stopped = loop {
        if let Some(i) = (0..2).find(|&i| hosts[i].try_wait().unwrap().is_some()) {
            break i;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "neither host stopped within 150 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let other = 1 - stopped;
    let stderr = stderr_of(&mut hosts[stopped]);
    assert!(
        stderr.contains("another process is using this worker token")
            && stderr.contains(&format!("name={}", names[other]))
            && stderr.contains("gridx-server worker add"),
        "{stderr}"
    );
    // The other keeps the connection: it is the one online.
    grid.wait_online(&alice, names[other]).await;
    let log = grid.server_log();
    let storm_lines = log.matches("keep replacing each other").count();
    assert!(
        (1..=15).contains(&storm_lines),
        "replacements logged {storm_lines} times:\n{log}"
    );
    terminate(&mut hosts[other], 20);
}
