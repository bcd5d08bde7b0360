//! Snapshots of the whole screen and of every pane, at 80x24 and 160x48, rendered
//! with ratatui's TestBackend from fixed fixtures (ids and times are constants). A
//! change in drawing shows up as a snapshot diff in review (`cargo insta review`).

use super::draw;
use super::fixtures::{
    client_state, validated_by_quorum, waiting_for_quorum, with_a_quarantined_worker, worker_state,
};
use super::state::{AppState, CheckState, JobCheck, JobOutput, Overlay, Pane};
use gridx_proto::protocol::ExecutorKind;
use gridx_proto::{JobId, JobStatus};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn render(state: &AppState, width: u16, height: u16) -> String {
    let mut terminal =
        Terminal::new(TestBackend::new(width, height)).unwrap_or_else(|e| panic!("{e}"));
    terminal
        .draw(|f| draw::draw(f, state))
        .unwrap_or_else(|e| panic!("{e}"));
    terminal.backend().to_string()
}

macro_rules! screen {
    ($name:ident, $state:expr) => {
        #[test]
        fn $name() {
            let state = $state;
            insta::assert_snapshot!(concat!(stringify!($name), "_80x24"), render(&state, 80, 24));
            insta::assert_snapshot!(
                concat!(stringify!($name), "_160x48"),
                render(&state, 160, 48)
            );
        }
    };
}

screen!(client_dashboard, client_state());
screen!(every_pane_focused, {
    // Each focus shows its pane's thick border and selection; one screen per pane.
    let mut s = client_state();
    s.focus = Pane::Workers;
    s.selected[0] = 1;
    s
});
screen!(help_overlay, {
    let mut s = client_state();
    s.overlay = Overlay::Help;
    s
});
screen!(job_detail, {
    let mut s = with_a_quarantined_worker();
    s.overlay = Overlay::Detail(JobId(4));
    // Accepted by a quorum of two, mallory's replica contradicted.
    s.checks.insert(
        JobId(4),
        JobCheck {
            as_of: JobStatus::Succeeded,
            state: CheckState::Loaded(validated_by_quorum()),
        },
    );
    // As fetched when the details opened.
    s.outputs.insert(
        JobId(4),
        JobOutput::Loaded {
            stdout: super::fixtures::job_stdout(4, gridx_proto::JobStatus::Succeeded),
            stderr: String::new(),
            compile: None,
        },
    );
    s
});
screen!(job_detail_of_output_with_escape_sequences, {
    // What the job printed is shown, never obeyed: a title change, a clear screen, an
    // OSC 52 clipboard write, a lone CR, a C1 CSI and a bidi override, each drawn as
    // caret notation or <U+XXXX>; CRLF is a line end. The message is a worker's.
    let mut s = client_state();
    s.overlay = Overlay::Detail(JobId(4));
    if let Some(job) = s.jobs.get_mut(&JobId(4)) {
        job.message = Some("sandbox said \u{202e}gnp.exe\u{202c}".into());
    }
    s.outputs.insert(
        JobId(4),
        JobOutput::Loaded {
            stdout: "\x1b]0;pwned\x07\x1b[2J hello\r\n\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07\n\
                     50%\r100%\n\u{9b}31mred\u{9b}0m\n"
                .into(),
            stderr: "tab\there\x7f\n".into(),
            compile: None,
        },
    );
    s
});
screen!(job_detail_of_a_compile_error, {
    // A C job that did not compile: the compiler's words come first, apart from the
    // program's (empty) stdout and stderr, and inert like them.
    let mut s = client_state();
    s.overlay = Overlay::Detail(JobId(4));
    if let Some(job) = s.jobs.get_mut(&JobId(4)) {
        job.language = gridx_proto::Language::C;
        job.status = JobStatus::Failed;
        job.reason = Some(gridx_proto::job::FailureReason::CompileError);
        job.exit_code = None;
        job.stdout_bytes = 0;
    }
    s.outputs.insert(
        JobId(4),
        JobOutput::Loaded {
            stdout: String::new(),
            stderr: String::new(),
            compile: Some(
                "/workspace/main.c: In function 'main':\n/workspace/main.c:1:25: error: 'x' \
                 undeclared (first use in this function)\n\x1b[31m"
                    .into(),
            ),
        },
    );
    s
});
screen!(job_detail_loading_its_output, {
    // Lists carry no output: until the fetch answers, the details say so.
    let mut s = client_state();
    s.overlay = Overlay::Detail(JobId(4));
    s.outputs.insert(JobId(4), JobOutput::Loading);
    s
});
screen!(help_overlay_scrolled_to_the_end, {
    // At 80x24 the help does not fit: G shows its last lines.
    let mut s = client_state();
    s.overlay = Overlay::Help;
    s.overlay_scroll = u16::MAX;
    s
});
screen!(job_detail_pager_of_a_long_output, {
    // A job printing 300 lines, paged down past its fields: stdout continues, and
    // stderr follows it.
    let mut s = client_state();
    s.outputs.insert(
        JobId(4),
        JobOutput::Loaded {
            stdout: (1..=300).map(|i| format!("line {i}\n")).collect(),
            stderr: "Error: at the end\n".into(),
            compile: None,
        },
    );
    s.overlay = Overlay::Detail(JobId(4));
    s.overlay_scroll = 40;
    s
});
screen!(console_error_in_one_line, {
    // A typo: the reason, not clap's usage block, is what the two lines show.
    let mut s = client_state();
    if let Err(e) = crate::commands::parse_line("jbos --limit 2") {
        s.log(super::state::LogLevel::Error, e.summary());
    }
    s
});
screen!(job_detail_of_a_job_waiting_for_a_quorum, {
    // Queued with too few owners online: the details say why it waits.
    let mut s = client_state();
    s.overlay = Overlay::Detail(JobId(1));
    s.checks.insert(
        JobId(1),
        JobCheck {
            as_of: JobStatus::Queued,
            state: CheckState::Loaded(waiting_for_quorum()),
        },
    );
    s
});
screen!(workers_of_every_standing, {
    // Trusted, proven, on probation and quarantined: the trust column widens for
    // `QUARANTINED` and the narrowest columns give way.
    let mut s = with_a_quarantined_worker();
    s.focus = Pane::Workers;
    s.selected[0] = 3;
    s
});
screen!(worker_card_of_a_quarantined_worker, {
    let mut s = with_a_quarantined_worker();
    s.focus = Pane::Workers;
    s.overlay = Overlay::Worker(gridx_proto::WorkerId(9));
    s
});
screen!(worker_card, {
    let mut s = client_state();
    s.focus = Pane::Workers;
    if let Some(id) = s.visible_workers().first().map(|w| w.worker_id) {
        s.overlay = Overlay::Worker(id);
    }
    s
});
screen!(cancel_confirmation, {
    let mut s = client_state();
    s.overlay = Overlay::ConfirmCancel(JobId(2));
    s
});
screen!(filtered_and_sorted, {
    let mut s = client_state();
    s.filter = "alice".into();
    s.sort = super::state::JobSort::Status;
    s
});
screen!(console_editing, {
    let mut s = client_state();
    s.focus = Pane::Console;
    s.console.editing = true;
    s.console.input = "jobs --status run".into();
    s.console.cursor = 17;
    s
});
screen!(offline_and_read_only, {
    let mut s = client_state();
    s.connection = super::state::Connection::Offline {
        reason: "connection refused".into(),
        retry_in_s: Some(4),
    };
    s.read_only = true;
    s
});
screen!(worker_host_docker, worker_state(ExecutorKind::Docker));
screen!(
    worker_host_unsandboxed,
    worker_state(ExecutorKind::Unsandboxed)
);
screen!(worker_host_with_a_weak_sandbox, {
    let mut s = worker_state(ExecutorKind::Bubblewrap);
    s.mode = super::state::Mode::WorkerHost {
        executor: ExecutorKind::Bubblewrap,
        name: "lab-7".into(),
        weaknesses: vec![
            "no cgroup limit on pids, cpu (cgroup v1 (memory under /sys/fs/cgroup/memory/user))"
                .into(),
        ],
        lent_gpus: Vec::new(),
    };
    s
});
screen!(ascii_mode, {
    let mut s = worker_state(ExecutorKind::Bubblewrap);
    s.ascii = true;
    s
});
screen!(empty_grid, {
    let mut s = client_state();
    s.jobs.clear();
    s.workers.clear();
    s.ledger.clear();
    s
});

screen!(job_detail_search, {
    // `/line 2` then Enter: the pager moves to the first match and marks every one.
    let mut s = client_state();
    s.outputs.insert(
        JobId(4),
        JobOutput::Loaded {
            stdout: (1..=300).map(|i| format!("line {i}\n")).collect(),
            stderr: String::new(),
            compile: None,
        },
    );
    s.overlay = Overlay::Detail(JobId(4));
    s.search.query = "line 2".into();
    s.overlay_scroll = 16;
    s
});
screen!(console_completion_menu, {
    // `jo` then Tab twice: the line holds the first candidate, the menu shows both.
    let mut s = client_state();
    s.focus = Pane::Console;
    s.console.editing = true;
    s.console.set_input("jo".into());
    let offer = |_: &str| vec!["job".to_owned(), "jobs".to_owned()];
    s.console.complete(offer, true);
    s.console.complete(offer, true);
    s
});
screen!(console_long_line_scrolls, {
    let mut s = client_state();
    s.focus = Pane::Console;
    s.console.editing = true;
    s.console.set_input(format!(
        "submit --lang python --code '{}'",
        "print(\"hello\"); ".repeat(12)
    ));
    s
});
screen!(gauges_of_a_coordinator_gone_offline, {
    let mut s = client_state();
    s.connection = super::state::Connection::Offline {
        reason: "connection refused".into(),
        retry_in_s: Some(8),
    };
    s
});
screen!(jobs_sorted_in_reverse, {
    let mut s = client_state();
    s.sort_reversed = true;
    s
});

#[test]
fn sixty_columns_keep_the_worker_names() {
    let mut s = client_state();
    s.focus = Pane::Workers;
    insta::assert_snapshot!("narrow_60x20", render(&s, 60, 20));
    s.jobs.clear();
    s.workers.clear();
    insta::assert_snapshot!("narrow_empty_60x20", render(&s, 60, 20));
}

#[test]
fn tiny_terminals_do_not_panic() {
    let state = client_state();
    for (w, h) in [(1, 1), (20, 5), (40, 10), (79, 23), (60, 20), (200, 3)] {
        let _ = render(&state, w, h);
    }
    insta::assert_snapshot!("too_small_20x5", render(&state, 20, 5));
}

/// An operator's grant or debit carries a reason: a NOTE column where the pane has
/// room, in the job's place where it has not (80 columns), escapes made inert.
#[test]
fn an_operators_reason_shows_at_every_width() {
    use gridx_proto::Credits;
    use gridx_proto::api::{LedgerEntryView, LedgerKind};
    let mut state = client_state();
    state.ledger.push_front(LedgerEntryView {
        id: 99,
        at: gridx_proto::time_fmt::from_unix_millis(0),
        kind: LedgerKind::Debit,
        amount: Credits::from_millis(-2_500),
        job_id: None,
        balance_after: Credits::from_whole(1),
        reason: Some("refund\u{1b}[2J twice".into()),
    });
    for (width, height) in [(80, 24), (160, 48)] {
        let screen = render(&state, width, height);
        assert!(screen.contains("debit"), "{width}x{height}:\n{screen}");
        assert!(screen.contains("refund"), "{width}x{height}:\n{screen}");
        assert!(
            !screen.contains('\u{1b}'),
            "{width}x{height}: an escape reached the screen"
        );
    }
    assert!(render(&state, 160, 48).contains("NOTE"));
}

// GPUs lent to jobs: each gauge says which job holds its GPU, or that it is free; a
// GPU its worker does not lend says neither.
screen!(gauges_show_which_job_holds_each_lent_gpu, {
    let mut s = client_state();
    s.focus = Pane::Gauges;
    if let Some(w) = s.workers.get_mut(&gridx_proto::WorkerId(1)) {
        w.gpus = vec![
            gridx_proto::api::WorkerGpu {
                index: 0,
                name: "NVIDIA H100 80GB HBM3".into(),
                memory_mb: 81_559,
                job_id: Some(JobId(3)),
            },
            gridx_proto::api::WorkerGpu {
                index: 1,
                name: "NVIDIA H100 80GB HBM3".into(),
                memory_mb: 81_559,
                job_id: None,
            },
        ];
    }
    s
});
screen!(worker_host_gauges_show_its_gpu_jobs, {
    let mut s = worker_state(ExecutorKind::Bubblewrap);
    if let super::state::Mode::WorkerHost { lent_gpus, .. } = &mut s.mode {
        *lent_gpus = vec![0];
    }
    s.local_metrics = Some(super::fixtures::metrics(63.0, 2));
    s.local_gpus.insert((JobId(5), 1), vec![0]);
    s
});
