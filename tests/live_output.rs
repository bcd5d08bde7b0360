//! Live output end to end with the real binaries: a real `gridx-tui worker` sends a
//! running job's output as it comes, and `gridx-tui logs -f` and `submit --wait` print
//! it before the job ends, also across a cut in the worker's link (it reconnects and
//! sends again from the start). What was printed live is the stored output.

use gridx_e2e::proxy::Proxy;
use gridx_e2e::{Grid, binary, require_executor, terminate};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A job that prints a line every `every` seconds, `n` times.
fn ticker(n: u32, every: f32) -> String {
    format!("for i in $(seq 1 {n}); do echo tick $i; sleep {every}; done; echo done >&2")
}

/// Runs `gridx-tui ARGS` as a user of `grid`; returns each stdout line with when it
/// came, the exit code, and stderr.
fn lines_as_they_come(
    grid: &Grid,
    token: &str,
    args: &[&str],
) -> (Vec<(Duration, String)>, Option<i32>, String) {
    let gridx_tui = binary("gridx-tui").display().to_string();
    lines_as_they_come_from(grid, token, &gridx_tui, args)
}

/// [`lines_as_they_come`] of any program.
fn lines_as_they_come_from(
    grid: &Grid,
    token: &str,
    program: &str,
    args: &[&str],
) -> (Vec<(Duration, String)>, Option<i32>, String) {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .env("GRIDX_SERVER", &grid.url)
        .env("GRIDX_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gridx-tui");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        lines.push((started.elapsed(), line.expect("a line")));
    }
    let output = child.wait_with_output().expect("gridx-tui ends");
    (
        lines,
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn logs_follow_a_running_job(executor: &str) {
    if !require_executor(executor) {
        return;
    }
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    grid.user("owner", "0");
    let token = grid.worker_token("owner", "live-1");
    let work_dir = tempfile::tempdir().expect("work dir");
    let mut worker = grid.spawn_worker(&token, "live-1", executor, work_dir.path(), &[]);
    grid.wait_online(&alice, "live-1").await;

    // `submit --wait` on a terminal (a pty through `script`): the first tick is
    // printed seconds before the job ends.
    let line = format!(
        "{} submit --wait --lang bash --code '{}'",
        binary("gridx-tui").display(),
        ticker(4, 1.0)
    );
    let (lines, code, stderr) = tokio::task::block_in_place(|| {
        lines_as_they_come_from(&grid, &alice, "script", &["-qfec", &line, "/dev/null"])
    });
    assert_eq!(code, Some(0), "{stderr}");
    let ticks: Vec<(Duration, String)> = lines
        .into_iter()
        .map(|(at, l)| (at, l.trim_end_matches('\r').to_owned()))
        .filter(|(_, l)| l.starts_with("tick"))
        .collect();
    let texts: Vec<&str> = ticks.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(texts, ["tick 1", "tick 2", "tick 3", "tick 4"], "{stderr}");
    let (first, last) = (ticks[0].0, ticks[3].0);
    assert!(
        last - first >= Duration::from_millis(2000),
        "tick 1 came at {first:?}, tick 4 at {last:?}: not as they were printed"
    );
    // Into a pipe: the accepted output once the job ended, stderr to ours.
    let (lines, code, stderr) = tokio::task::block_in_place(|| {
        lines_as_they_come(
            &grid,
            &alice,
            &[
                "submit",
                "--wait",
                "--lang",
                "bash",
                "--code",
                &ticker(2, 0.2),
            ],
        )
    });
    assert_eq!(code, Some(0), "{stderr}");
    let texts: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(texts, ["tick 1", "tick 2"], "{stderr}");
    assert!(
        stderr.contains("done"),
        "the job's stderr goes to ours: {stderr:?}"
    );

    // `logs -f` on a job already running, then its stored output.
    let job = grid
        .submit(&alice, json!({"language": "bash", "code": ticker(3, 1.0)}))
        .await;
    let id = job["job_id"].as_u64().expect("an id").to_string();
    let (lines, code, stderr) =
        tokio::task::block_in_place(|| lines_as_they_come(&grid, &alice, &["logs", &id, "-f"]));
    assert_eq!(code, Some(0), "{stderr}");
    let texts: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(texts, ["tick 1", "tick 2", "tick 3"], "{stderr}");
    let view = grid
        .wait_terminal(&alice, id.parse().expect("id"), 30)
        .await;
    assert_eq!(view["stdout"], "tick 1\ntick 2\ntick 3\n");
    // Without -f: what is there, and the job's end.
    let (lines, code, _) =
        tokio::task::block_in_place(|| lines_as_they_come(&grid, &alice, &["logs", &id]));
    assert_eq!(code, Some(0));
    let texts: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        texts,
        [
            "--- stdout",
            "tick 1",
            "tick 2",
            "tick 3",
            "--- stderr",
            "done",
            &format!("[job {id} succeeded]")
        ]
    );
    terminate(&mut worker, 10);
    grid.assert_ledger_verifies();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_a_running_job_on_bubblewrap() {
    logs_follow_a_running_job("bubblewrap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_a_running_job_on_docker() {
    logs_follow_a_running_job("docker").await;
}

/// The worker's link is cut while its job prints: it notices the silence, reconnects
/// and sends the job's output again from the start; the coordinator keeps only what
/// is new, so the follower sees every line once and the stored output is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_output_survives_a_worker_reconnect() {
    if !require_executor("bubblewrap") {
        return;
    }
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    grid.user("owner", "0");
    let token = grid.worker_token("owner", "cut-1");
    let proxy = Proxy::start(([127, 0, 0, 1], grid.port).into());
    let work_dir = tempfile::tempdir().expect("work dir");
    let log = work_dir.path().join("worker.log");
    let mut worker = Command::new(binary("gridx-tui"))
        .args(["worker", "--headless", "--server"])
        .arg(format!("http://127.0.0.1:{}", proxy.port))
        .args([
            "--token",
            &token,
            "--name",
            "cut-1",
            "--executor",
            "bubblewrap",
        ])
        .arg("--work-dir")
        .arg(work_dir.path())
        .env_remove("GRIDX_WORKER_TOKEN")
        .env("GRIDX_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("a log file"))
        .spawn()
        .expect("spawn the worker");
    grid.wait_online(&alice, "cut-1").await;
    let job = grid
        .submit(
            &alice,
            json!({"language": "bash", "code": ticker(12, 1.0), "timeout_s": 60}),
        )
        .await;
    let id = job["job_id"].as_u64().expect("an id");
    let follower = {
        let (url, alice) = (grid.url.clone(), alice.clone());
        std::thread::spawn(move || {
            let output = Command::new(binary("gridx-tui"))
                .args(["logs", &id.to_string(), "-f"])
                .env("GRIDX_SERVER", url)
                .env("GRIDX_TOKEN", alice)
                .stdin(Stdio::null())
                .output()
                .expect("logs -f");
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            )
        })
    };
    // Break the link after a few ticks: healing the cut drops the connection, the
    // worker sees it go and reconnects at once, within its lease (3 heartbeats of
    // 1 s), so the job keeps its attempt and the worker sends its output again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.heal();
    let (code, printed) = tokio::task::block_in_place(|| follower.join().expect("the follower"));
    assert_eq!(code, Some(0), "{printed}");
    let expected: String = (1..=12).map(|i| format!("tick {i}\n")).collect();
    assert_eq!(printed, expected, "every line once, in order");
    let view = grid.wait_terminal(&alice, id, 60).await;
    assert_eq!(view["stdout"], expected.as_str());
    assert_eq!(view["attempts"], 1, "the job kept its attempt: {view}");
    terminate(&mut worker, 10);
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log.matches("connected to the coordinator").count() >= 2,
        "the worker reconnected: {log}"
    );
    grid.assert_ledger_verifies();
}
