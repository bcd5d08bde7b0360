//! The dashboard as a person sees it: the real `gridx-tui` binary inside tmux against
//! a real coordinator and worker. Types a `submit` into the console and watches the
//! job reach `succeeded` in the job pane.

use gridx_e2e::skip::Tool;
use gridx_e2e::tmux::Tmux;
use gridx_e2e::{Grid, binary, require, terminate};
use std::time::Duration;

#[tokio::test]
async fn a_submit_typed_in_the_console_reaches_succeeded() {
    require!(Tool::Tmux);
    require!(Tool::Bubblewrap);
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let token = grid.worker_token("alice", "tmux-worker");
    let work_dir = tempfile::tempdir().unwrap();
    let mut worker = grid.spawn_worker(&token, "tmux-worker", "bubblewrap", work_dir.path(), &[]);
    grid.wait_online(&alice, "tmux-worker").await;

    let session = format!("gridx-e2e-{}", std::process::id());
    let command = format!(
        "NO_COLOR=1 {} --server {} --token {} --theme ansi",
        binary("gridx-tui").display(),
        grid.url,
        alice
    );
    let tmux = Tmux::start(&session, 120, 36, &[], &command);
    tmux.wait_for("the live connection", 20, |s| {
        s.contains("● live") && s.contains("tmux-worker")
    })
    .await;
    tmux.keys(&[":"]);
    tmux.literal("submit --lang python --code 'print(6*7)'");
    tmux.keys(&["Enter"]);
    let screen = tmux
        .wait_for("the job succeeding", 60, |s| {
            s.lines()
                .any(|l| l.contains("python") && l.contains("succeeded") && l.contains("alice"))
        })
        .await;
    assert!(screen.contains("submitted job 1"), "{screen}");
    // The details show the job's output, fetched when they open (lists and events
    // carry none); "42" alone on a line, not the port in the header.
    // Separate keys with a pause: Esc followed at once by a key reads as Alt-key.
    for k in ["Escape", "2", "Enter"] {
        tmux.keys(&[k]);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tmux.wait_for("the job's stdout in its details", 10, |s| {
        s.contains("── stdout") && s.contains("│42 ") && !s.contains("loading…")
    })
    .await;
    tmux.keys(&["Escape"]);
    // The same pause: Esc then q at once would read as Alt-q.
    tokio::time::sleep(Duration::from_millis(300)).await;
    tmux.keys(&["q"]);
    tmux.wait_for("the dashboard to exit", 10, |s| !s.contains("Grid-X"))
        .await;
    let _ = terminate(&mut worker, 20);
}

#[tokio::test]
async fn the_repl_runs_commands_and_announces_finished_jobs() {
    require!(Tool::Tmux);
    require!(Tool::Bubblewrap);
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let token = grid.worker_token("alice", "repl-worker");
    let work_dir = tempfile::tempdir().unwrap();
    let mut worker = grid.spawn_worker(&token, "repl-worker", "bubblewrap", work_dir.path(), &[]);
    grid.wait_online(&alice, "repl-worker").await;
    let home = tempfile::tempdir().unwrap();
    let session = format!("gridx-repl-{}", std::process::id());
    let command = format!(
        "HOME={} {} --server {} --token {} repl",
        home.path().display(),
        binary("gridx-tui").display(),
        grid.url,
        alice
    );
    let tmux = Tmux::start(&session, 120, 30, &[], &command);
    tmux.wait_for("the prompt", 20, |s| s.contains("Grid-X console"))
        .await;
    tmux.literal("balance");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the balance", 10, |s| s.contains("alice: 10 credits"))
        .await;
    tmux.literal("submit --lang bash --code 'sleep 1; echo hi'");
    tmux.keys(&["Enter"]);
    // Announced by the external printer while the prompt waits.
    tmux.wait_for("the finished job's announcement", 30, |s| {
        s.contains("⟫ job 1 succeeded")
    })
    .await;
    tmux.literal("quit");
    tmux.keys(&["Enter"]);
    // The history is written to the platform data directory after every line; poll
    // the file itself (the prompt's glyph depends on the terminal, so the screen is
    // no reliable sign that the REPL has written and exited).
    let history = home.path().join(".local/share/gridx/repl_history");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&history).unwrap_or_default();
        if text.contains("balance") || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        text.contains("balance"),
        "history at {}: {text:?}",
        history.display()
    );
    let _ = terminate(&mut worker, 20);
}

/// Ctrl-Z then `fg` gives the dashboard back (it used to exit 1 with "the cursor
/// position could not be read" and type `1R` into the shell), and `r` hands the
/// terminal to the REPL with every command's output printed (it used to print
/// nothing: a stale wake of the dropped event reader broke reedline's cursor queries).
#[tokio::test]
async fn suspend_and_the_repl_hand_over_keep_the_terminal_whole() {
    require!(Tool::Tmux);
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    let session = format!("gridx-e2e-suspend-{}", std::process::id());
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(
        &session,
        80,
        24,
        &[],
        &format!("env HOME={} bash --norc --noprofile", home.path().display()),
    );
    tmux.literal(&format!(
        "NO_COLOR=1 {} --server {} --token {} --theme ansi",
        binary("gridx-tui").display(),
        grid.url,
        alice
    ));
    tmux.keys(&["Enter"]);
    tmux.wait_for("the dashboard", 20, |s| s.contains("● live"))
        .await;
    for round in 0..2 {
        tmux.keys(&["C-z"]);
        tmux.wait_for("the shell after Ctrl-Z", 10, |s| s.contains("Stopped"))
            .await;
        tmux.literal("clear; fg");
        tmux.keys(&["Enter"]);
        tmux.wait_for(&format!("the dashboard back (round {round})"), 10, |s| {
            s.contains("● live") && s.contains("Workers")
        })
        .await;
    }
    // Keys still reach it: `r` opens the REPL, whose commands print in full.
    tmux.keys(&["r"]);
    tmux.wait_for("the REPL", 10, |s| s.contains("Grid-X console"))
        .await;
    tmux.literal("balance");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the balance printed", 10, |s| {
        s.contains("alice: 10 credits")
    })
    .await;
    tmux.literal("help");
    tmux.keys(&["Enter"]);
    tmux.wait_for("help printed to its last line", 10, |s| {
        s.contains("commands:") && s.contains("explains one")
    })
    .await;
    tmux.literal("quit");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the dashboard after the REPL", 10, |s| s.contains("● live"))
        .await;
    tmux.keys(&["q"]);
    tmux.wait_for("the shell after quitting", 10, |s| !s.contains("● live"))
        .await;
    // After `fg`, `$?` is the resumed dashboard's own exit status.
    tmux.literal("echo \"EXIT=$?\"");
    tmux.keys(&["Enter"]);
    let screen = tmux
        .wait_for("the dashboard's exit status", 10, |s| {
            s.lines().any(|l| l.starts_with("EXIT="))
        })
        .await;
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(!screen.contains("1R"), "a cursor report leaked: {screen}");
}

/// Quitting from each state (the panes, the help, details, a search in them, the
/// cancel prompt, the filter, the console line) gives the shell back whole: the
/// alternate screen left, the cursor shown, the exit status 0, and the shell's own
/// input working.
#[tokio::test]
async fn quitting_from_every_state_restores_the_terminal() {
    require!(Tool::Tmux);
    let grid = Grid::start().await;
    let alice = grid.user("alice", "10");
    // A job (queued: no worker), so that details and the cancel prompt have
    // something to show.
    grid.submit(
        &alice,
        serde_json::json!({"language": "python", "code": "print('hi')"}),
    )
    .await;
    let session = format!("gridx-e2e-quit-{}", std::process::id());
    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(
        &session,
        80,
        24,
        &[],
        &format!("env HOME={} bash --norc --noprofile", home.path().display()),
    );
    let dashboard = format!(
        "NO_COLOR=1 {} --server {} --token {} --theme ansi",
        binary("gridx-tui").display(),
        grid.url,
        alice
    );
    // (state, keys that reach it, keys that quit from it)
    let states: [(&str, &[&str], &[&str]); 8] = [
        ("the panes", &[], &["q"]),
        ("the help", &["?"], &["C-c"]),
        ("job details", &["Enter"], &["C-c"]),
        ("a search in details", &["Enter", "/", "h"], &["C-c"]),
        ("the cancel prompt", &["c"], &["C-c"]),
        ("the filter", &["/", "p"], &["C-c"]),
        ("the console line", &[":", "j", "o"], &["C-c", "C-c"]),
        ("a closed pager", &["?", "Escape"], &["q"]),
    ];
    for (state, reach, quit) in states {
        tmux.literal(&format!("clear; {dashboard}"));
        tmux.keys(&["Enter"]);
        tmux.wait_for(&format!("the dashboard ({state})"), 20, |s| {
            s.contains("● live") && s.contains("queued")
        })
        .await;
        for k in reach {
            tmux.keys(&[k]);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        tmux.keys(quit);
        tmux.wait_for(&format!("the shell after quitting {state}"), 10, |s| {
            !s.contains("● live")
        })
        .await;
        tmux.literal("echo \"EXIT=$?\"");
        tmux.keys(&["Enter"]);
        // The printed line, not the typed command (which the terminal may echo
        // before the shell's prompt is back).
        let screen = tmux
            .wait_for(&format!("the exit status after {state}"), 10, |s| {
                s.lines().any(|l| l.starts_with("EXIT="))
            })
            .await;
        assert!(screen.contains("EXIT=0"), "{state}: {screen}");
        let flags = tmux.display("#{alternate_on} #{cursor_flag}");
        assert_eq!(
            flags.trim(),
            "0 1",
            "{state}: alternate screen and cursor visibility after quitting"
        );
    }
}
