//! Job output through the command line, end to end: a real coordinator and a real
//! worker (unsandboxed, so this runs wherever bash does), `gridx-tui jobs` listing
//! summaries, `gridx-tui job` showing the output, and `gridx-tui output` printing the
//! stored bytes exactly (docs/cli.md, docs/api.md "Job output"). Escape sequences a
//! job printed go into a pipe as they are and onto a terminal (tmux) inert, unless
//! `--raw` (docs/cli.md "What a job printed is shown, never obeyed").

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_e2e::skip::Tool;
use gridx_e2e::tmux::Tmux;
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

/// A title change, a clear screen and an OSC 52 clipboard write, as a job prints them.
const HOSTILE: &[u8] = b"\x1b]0;pwned\x07\x1b[2J hello\n\x1b]52;c;Y3VybA==\x07\n";
/// The same, as a terminal must show it.
const SHOWN: &str = "^[]0;pwned^G^[[2J hello\n^[]52;c;Y3VybA==^G\n";
const HOSTILE_CODE: &str =
    r"printf '\033]0;pwned\007\033[2J hello\n\033]52;c;Y3VybA==\007\n'; printf '\033[31m' >&2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_sequences_reach_a_pipe_raw_and_a_terminal_inert() {
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
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
    let id = tokio::task::block_in_place(|| run(&grid, &alice, HOSTILE_CODE));
    let done = grid.wait_terminal(&alice, id.parse().unwrap(), 30).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    let grid_ref = &grid;
    let (piped, raw, shown, json, waited) = tokio::task::block_in_place(|| {
        (
            gridx(grid_ref, &alice, &["output", &id]),
            gridx(grid_ref, &alice, &["output", &id, "--raw"]),
            gridx(grid_ref, &alice, &["job", &id]),
            gridx(grid_ref, &alice, &["--json", "job", &id]),
            gridx(
                grid_ref,
                &alice,
                &["submit", "--lang", "bash", "--code", HOSTILE_CODE, "--wait"],
            ),
        )
    });
    // Into a pipe: the bytes the job wrote, for whatever reads them next.
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    assert_eq!(piped.stdout, HOSTILE);
    assert_eq!(raw.stdout, HOSTILE, "--raw is the same bytes");
    assert_eq!(waited.status.code(), Some(0), "{}", text(&waited.stderr));
    assert_eq!(waited.stdout, HOSTILE, "submit --wait into a pipe");
    assert_eq!(waited.stderr, b"\x1b[31m");
    // `job ID` is for a person, pipe or not: inert.
    let shown = text(&shown.stdout);
    assert!(
        shown.contains(&format!("--- stdout\n{SHOWN}--- stderr\n^[[31m")),
        "{shown}"
    );
    assert!(!shown.contains('\x1b'), "{shown:?}");
    // JSON escapes them, and parses back to the bytes the job wrote.
    assert!(!json.stdout.contains(&0x1b));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["stdout"].as_str().unwrap().as_bytes(), HOSTILE);

    // On a terminal: shown inert, the pane's title untouched; `--raw` obeyed there
    // as asked.
    if gridx_e2e::skip::require(Tool::Tmux) {
        let prefix = format!(
            "{} --server {} --token {alice}",
            binary("gridx-tui").display(),
            grid.url
        );
        let submit = "submit --lang bash --code \"$CODE\" --wait".to_owned();
        for (what, args, inert) in [
            ("output", format!("output {id}"), true),
            ("submit --wait", submit, true),
            ("output --raw", format!("output {id} --raw"), false),
        ] {
            let (screen, title) = on_a_terminal(&prefix, &args).await;
            if inert {
                assert!(screen.contains(SHOWN.trim_end()), "{what}:\n{screen}");
                assert_ne!(title, "pwned", "{what}:\n{screen}");
            } else {
                assert!(
                    !screen.contains("^[") && screen.contains(" hello"),
                    "{what}:\n{screen}"
                );
                assert_eq!(title, "pwned", "{what}:\n{screen}");
            }
            if what == "submit --wait" {
                assert!(screen.contains("^[[31m"), "its stderr, inert:\n{screen}");
            }
        }
    }
    let _ = terminate(&mut worker, 20);
}

/// Runs `gridx-tui` with `args` in a fresh tmux pane (`$CODE` holds the hostile
/// job's code); what the pane shows once it is done, and the pane's title.
async fn on_a_terminal(prefix: &str, args: &str) -> (String, String) {
    let command = format!("{prefix} {args}; echo; echo END-OF-OUTPUT; sleep 60");
    let tmux = Tmux::start("output", 100, 20, &[("CODE", HOSTILE_CODE)], &command);
    let screen = tmux
        .wait_for(&format!("`gridx-tui {args}` finishing"), 30, |s| {
            s.contains("END-OF-OUTPUT")
        })
        .await;
    let title = tmux.display("#{pane_title}");
    (screen, title.trim().to_owned())
}
