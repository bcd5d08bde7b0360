//! Job output through the command line, end to end: a real coordinator and a real
//! worker (unsandboxed, so this runs wherever bash does), `gridx-tui jobs` listing
//! summaries, `gridx-tui job` showing the output, and `gridx-tui output` printing the
//! stored bytes exactly (docs/cli.md, docs/api.md "Job output").

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_e2e::{Grid, binary, terminate};
use std::process::{Command, Output, Stdio};

fn gridx(grid: &Grid, token: &str, args: &[&str]) -> Output {
    Command::new(binary("gridx-tui"))
        .args(["--server", &grid.url, "--token", token])
        .args(args)
        .env_remove("GRIDX_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("gridx-tui runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Submits `code` as bash; the job id.
fn run(grid: &Grid, token: &str, code: &str) -> String {
    let out = gridx(grid, token, &["submit", "--lang", "bash", "--code", code]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_prints_the_stored_bytes_and_lists_carry_none() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let bob = grid.user("bob", "10");
    let token = grid.worker_token("alice", "w1");
    let work_dir = tempfile::tempdir().unwrap();
    let mut worker = grid.spawn_worker(
        &token,
        "w1",
        "unsandboxed",
        work_dir.path(),
        &["--allow-unsandboxed"],
    );
    grid.wait_online(&alice, "w1").await;

    // A byte that is not UTF-8 (0xFF), no newline at the end of stderr.
    let code = r"printf 'a\377b\n'; printf 'no newline' >&2";
    let id = tokio::task::block_in_place(|| run(&grid, &alice, code));
    let id_num: u64 = id.parse().unwrap();
    let done = grid.wait_terminal(&alice, id_num, 30).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let grid_ref = &grid;
    let (stdout, stderr, json, list, listed, shown, other) = tokio::task::block_in_place(|| {
        (
            gridx(grid_ref, &alice, &["output", &id]),
            gridx(grid_ref, &alice, &["output", &id, "--stderr"]),
            gridx(grid_ref, &alice, &["--json", "output", &id]),
            gridx(grid_ref, &alice, &["--json", "jobs"]),
            gridx(grid_ref, &alice, &["jobs"]),
            gridx(grid_ref, &alice, &["job", &id]),
            gridx(grid_ref, &bob, &["output", &id]),
        )
    });
    // The worker replaced the byte that is not UTF-8 with U+FFFD; `output` prints
    // what the coordinator stores, to the byte, and adds nothing.
    assert!(stdout.status.success(), "{}", text(&stdout.stderr));
    assert_eq!(stdout.stdout, "a\u{FFFD}b\n".as_bytes());
    assert!(stderr.status.success());
    assert_eq!(stderr.stdout, b"no newline");
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["job_id"], id_num);
    assert_eq!(json["stream"], "stdout");
    assert_eq!(json["output"], "a\u{FFFD}b\n");

    // Lists: summaries with the lengths, no output.
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let job = &list["jobs"][0];
    assert_eq!(job["job_id"], id_num);
    assert_eq!(job["stdout_bytes"], 6);
    assert_eq!(job["stderr_bytes"], 10);
    assert!(job.get("stdout").is_none(), "{job}");
    let listed = text(&listed.stdout);
    let mut lines = listed.lines();
    assert!(lines.next().unwrap().contains("OUTPUT"), "{listed}");
    assert!(lines.next().unwrap().ends_with("16 B"), "{listed}");

    // `job ID` still shows the output.
    let shown = text(&shown.stdout);
    assert!(
        shown.contains("--- stdout\na\u{FFFD}b\n--- stderr\nno newline"),
        "{shown}"
    );

    // Someone else's job's output: as if it did not exist.
    assert_eq!(other.status.code(), Some(1));
    assert!(other.stdout.is_empty());
    assert!(
        text(&other.stderr).contains("no such job"),
        "{}",
        text(&other.stderr)
    );

    let _ = terminate(&mut worker, 20);
}
