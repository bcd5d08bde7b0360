//! One-shot commands: the console's grammar as `gridx-tui <command>`, against a real
//! coordinator and worker, with `--json` output and `submit --wait` exit codes.

use gridx_e2e::skip::Tool;
use gridx_e2e::{Grid, binary, require, terminate};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn gridx(grid: &Grid, token: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(binary("gridx-tui"))
        .args(["--server", &grid.url, "--token", token])
        .args(args)
        .env_remove("GRIDX_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gridx-tui runs");
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin.unwrap_or_default().as_bytes());
    }
    child.wait_with_output().expect("gridx-tui exits")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_commands_work_end_to_end() {
    require!(Tool::Bubblewrap);
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let token = grid.worker_token("alice", "w1");
    let work_dir = tempfile::tempdir().unwrap();
    let mut worker = grid.spawn_worker(&token, "w1", "bubblewrap", work_dir.path(), &[]);
    grid.wait_online(&alice, "w1").await;

    let grid_ref = &grid;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hello.py");
    std::fs::write(
        &script,
        "import sys\nprint('hi', sys.stdin.read().strip())\n",
    )
    .unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "there\n").unwrap();

    let out = tokio::task::block_in_place(|| {
        gridx(
            grid_ref,
            &alice,
            &[
                "submit",
                script.to_str().unwrap(),
                "--stdin",
                input.to_str().unwrap(),
                "--wait",
            ],
            None,
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi there\n");

    // The job's own exit code becomes ours; code from stdin with `-`.
    let out = tokio::task::block_in_place(|| {
        gridx(
            grid_ref,
            &alice,
            &["submit", "-", "--lang", "bash", "--wait"],
            Some("echo oops >&2; exit 3"),
        )
    });
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stderr), "oops\n");

    // A timeout's 124 says so on stderr, so it is not taken for the program's own 124.
    let out = tokio::task::block_in_place(|| {
        gridx(
            grid_ref,
            &alice,
            &["submit", "-", "--lang", "bash", "--timeout", "1", "--wait"],
            Some("sleep 5"),
        )
    });
    assert_eq!(out.status.code(), Some(124), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(" timed out after 1 s (exit 124)"),
        "{}",
        text(&out.stderr)
    );

    // Without --wait: the id alone on stdout.
    let out = tokio::task::block_in_place(|| {
        gridx(
            grid_ref,
            &alice,
            &["submit", "--lang", "node", "--code", "console.log(1)"],
            None,
        )
    });
    let id: u64 = text(&out.stdout)
        .trim()
        .parse()
        .expect("a job id alone on stdout");
    let out = tokio::task::block_in_place(|| {
        gridx(grid_ref, &alice, &["--json", "job", &id.to_string()], None)
    });
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(job["job_id"], id);

    // Several files: one batch, one id per accepted file on stdout in order, each
    // refused file named on stderr, exit 1.
    for (name, code) in [
        ("a.py", "print('a')"),
        ("b.sh", "echo b"),
        ("blank.py", "  \n"),
    ] {
        std::fs::write(dir.path().join(name), code).unwrap();
    }
    let files: Vec<String> = ["a.py", "blank.py", "b.sh"]
        .iter()
        .map(|f| dir.path().join(f).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["submit"];
    args.extend(files.iter().map(String::as_str));
    let out = tokio::task::block_in_place(|| gridx(grid_ref, &alice, &args, None));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let batch_ids: Vec<u64> = text(&out.stdout)
        .lines()
        .map(|l| l.parse().expect("an id per line"))
        .collect();
    assert_eq!(batch_ids.len(), 2, "{}", text(&out.stdout));
    assert!(batch_ids[0] < batch_ids[1]);
    assert!(
        text(&out.stderr).contains("blank.py: not submitted: code is empty (invalid_request)"),
        "{}",
        text(&out.stderr)
    );
    for (id, want) in batch_ids.iter().zip(["a\n", "b\n"]) {
        let out = tokio::task::block_in_place(|| {
            gridx(grid_ref, &alice, &["--json", "job", &id.to_string()], None)
        });
        let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut job = job;
        while job["status"] != "succeeded" && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let out = tokio::task::block_in_place(|| {
                gridx(grid_ref, &alice, &["--json", "job", &id.to_string()], None)
            });
            job = serde_json::from_slice(&out.stdout).expect("JSON");
        }
        assert_eq!(job["stdout"], want, "{job}");
    }

    let out = tokio::task::block_in_place(|| {
        gridx(grid_ref, &alice, &["--json", "jobs", "--limit", "2"], None)
    });
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(list["jobs"].as_array().map(Vec::len), Some(2));
    // The next page, as the table's last line tells: `jobs --before ID`.
    let next = list["next"].as_u64().expect("more jobs than a page of 2");
    let out =
        tokio::task::block_in_place(|| gridx(grid_ref, &alice, &["jobs", "--limit", "2"], None));
    assert!(
        text(&out.stdout).contains(&format!("more before job {next}: jobs --before {next}")),
        "{}",
        text(&out.stdout)
    );
    let out = tokio::task::block_in_place(|| {
        gridx(
            grid_ref,
            &alice,
            &[
                "--json",
                "jobs",
                "--limit",
                "2",
                "--before",
                &next.to_string(),
            ],
            None,
        )
    });
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let ids: Vec<u64> = page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["job_id"].as_u64())
        .collect();
    assert!(
        !ids.is_empty() && ids.iter().all(|id| *id < next),
        "{ids:?} before {next}"
    );
    let out = tokio::task::block_in_place(|| gridx(grid_ref, &alice, &["balance"], None));
    assert!(
        text(&out.stdout).starts_with("alice: "),
        "{}",
        text(&out.stdout)
    );
    let out = tokio::task::block_in_place(|| gridx(grid_ref, &alice, &["--json", "workers"], None));
    let workers: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(workers["workers"][0]["name"], "w1");
    let out = tokio::task::block_in_place(|| {
        gridx(
            grid_ref,
            &alice,
            &["--json", "ledger", "--limit", "3"],
            None,
        )
    });
    let ledger: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(ledger["entries"].as_array().map(Vec::len), Some(3));

    // Clear errors: bad token, no such job, unreadable file, read-only.
    let out = tokio::task::block_in_place(|| gridx(grid_ref, "gxu_nope", &["balance"], None));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown or rotated API token"),
        "{}",
        text(&out.stderr)
    );
    let out = tokio::task::block_in_place(|| gridx(grid_ref, &alice, &["job", "999"], None));
    assert!(
        text(&out.stderr).contains("no such job"),
        "{}",
        text(&out.stderr)
    );
    let out = tokio::task::block_in_place(|| {
        gridx(grid_ref, &alice, &["submit", "/nonexistent.py"], None)
    });
    assert!(
        text(&out.stderr).contains("cannot read /nonexistent.py"),
        "{}",
        text(&out.stderr)
    );
    let out = tokio::task::block_in_place(|| {
        gridx(grid_ref, &alice, &["--read-only", "cancel", "1"], None)
    });
    assert!(
        text(&out.stderr).contains("read-only"),
        "{}",
        text(&out.stderr)
    );
    let _ = terminate(&mut worker, 20);
}

/// GPU jobs on a grid that lends none (docs/jobs.md, "GPU jobs"): the job is taken,
/// waits, and says why; a worker asked to lend GPUs this machine does not have
/// refuses to start, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_job_on_a_grid_without_gpus_waits_and_says_why() {
    require!(Tool::Bubblewrap);
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let token = grid.worker_token("alice", "cpu-only");
    let work_dir = tempfile::tempdir().unwrap();
    let mut worker = grid.spawn_worker(&token, "cpu-only", "bubblewrap", work_dir.path(), &[]);
    grid.wait_online(&alice, "cpu-only").await;
    let grid_ref = &grid;
    let out = tokio::task::block_in_place(|| {
        gridx(
            grid_ref,
            &alice,
            &[
                "submit",
                "--lang",
                "python",
                "--code",
                "print(1)",
                "--gpus",
                "1",
                "--gpu-memory",
                "8000",
            ],
            None,
        )
    });
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    let id = said
        .split_whitespace()
        .find_map(|w| w.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no job id in {said:?}"));
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let out =
        tokio::task::block_in_place(|| gridx(grid_ref, &alice, &["job", &id.to_string()], None));
    let shown = text(&out.stdout);
    assert!(
        shown.contains(" queued ") && shown.contains("gpus=1"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "queued: it asks for 1 GPU with at least 8000 MB each, and no online worker that runs python lends that many"
        ),
        "{shown}"
    );
    // Its price: job_cost 1 + gpu_cost 4, held.
    let out = tokio::task::block_in_place(|| gridx(grid_ref, &alice, &["balance"], None));
    assert_eq!(text(&out.stdout).trim(), "alice: 5 credits");
    let _ = terminate(&mut worker, 20);

    // Lending GPUs that are not there is an error at start, not a silent nothing.
    // (GPU 200 exists nowhere, also on a machine with GPUs.)
    let token = grid.worker_token("alice", "no-gpus");
    let lender = grid.spawn_worker(
        &token,
        "no-gpus",
        "bubblewrap",
        work_dir.path(),
        &["--gpus", "200"],
    );
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::task::spawn_blocking(move || lender.wait_with_output()),
    )
    .await
    .expect("the worker refuses at once")
    .unwrap()
    .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("--gpus 200: no GPU") || err.contains("--gpus 200: there is no GPU 200"),
        "{err}"
    );
}
