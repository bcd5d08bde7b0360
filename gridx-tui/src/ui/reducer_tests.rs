//! The reducer without a terminal: keys and events in, state and effects out.

use super::fixtures::{NOW_MS, client_state, job};
use super::state::{AppState, Connection, Effect, JobSort, LogLevel, Msg, Overlay, Pane};
use crate::client::live::LiveEvent;
use crate::commands::{ConsoleCommand, Outcome};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use gridx_proto::api::{LedgerEntryView, LedgerKind};
use gridx_proto::events::ServerEvent;
use gridx_proto::time_fmt::from_unix_millis;
use gridx_proto::{Credits, JobId, JobStatus, Language};
use std::time::Duration;

fn key(state: &mut AppState, code: KeyCode) -> Vec<Effect> {
    state
        .update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
        .0
}

fn ctrl(state: &mut AppState, c: char) -> Vec<Effect> {
    state
        .update(Msg::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::CONTROL,
        )))
        .0
}

fn type_text(state: &mut AppState, text: &str) {
    for c in text.chars() {
        key(state, KeyCode::Char(c));
    }
}

#[test]
fn tab_number_keys_and_shift_tab_move_between_panes() {
    let mut s = client_state();
    assert_eq!(s.focus, Pane::Jobs);
    key(&mut s, KeyCode::Tab);
    assert_eq!(s.focus, Pane::Gauges);
    key(&mut s, KeyCode::BackTab);
    key(&mut s, KeyCode::BackTab);
    assert_eq!(s.focus, Pane::Workers);
    key(&mut s, KeyCode::Char('4'));
    assert_eq!(s.focus, Pane::Ledger);
    key(&mut s, KeyCode::Char('5'));
    assert_eq!(s.focus, Pane::Console);
}

#[test]
fn j_k_and_arrows_move_within_bounds() {
    let mut s = client_state();
    key(&mut s, KeyCode::Char('k'));
    assert_eq!(s.selected[1], 0);
    key(&mut s, KeyCode::Char('j'));
    key(&mut s, KeyCode::Down);
    assert_eq!(s.selected[1], 2);
    key(&mut s, KeyCode::Char('G'));
    assert_eq!(s.selected[1], s.jobs.len() - 1, "clamped to the last row");
    key(&mut s, KeyCode::Up);
    assert_eq!(s.selected[1], s.jobs.len() - 2);
    key(&mut s, KeyCode::Char('g'));
    assert_eq!(s.selected[1], 0);
}

#[test]
fn enter_opens_the_selected_jobs_details_and_esc_closes() {
    let mut s = client_state();
    key(&mut s, KeyCode::Enter);
    assert_eq!(s.overlay, Overlay::Detail(JobId(12)), "newest first");
    key(&mut s, KeyCode::Esc);
    assert_eq!(s.overlay, Overlay::None);
}

#[test]
fn cancel_asks_first_and_only_yes_cancels() {
    let mut s = client_state();
    // Select job 11 (queued) and cancel it.
    key(&mut s, KeyCode::Char('j'));
    assert!(key(&mut s, KeyCode::Char('c')).is_empty());
    assert_eq!(s.overlay, Overlay::ConfirmCancel(JobId(11)));
    assert!(key(&mut s, KeyCode::Char('n')).is_empty());
    assert_eq!(s.overlay, Overlay::None);
    key(&mut s, KeyCode::Char('c'));
    let effects = key(&mut s, KeyCode::Char('y'));
    assert_eq!(
        effects,
        vec![Effect::RunCommand(ConsoleCommand::Cancel { id: JobId(11) })]
    );
    // A finished job cannot be cancelled: no confirmation, an error line.
    key(&mut s, KeyCode::Char('g'));
    key(&mut s, KeyCode::Char('c'));
    assert_eq!(s.overlay, Overlay::None);
    assert_eq!(s.console.log.back().map(|l| l.0), Some(LogLevel::Error));
}

#[test]
fn read_only_refuses_cancel_and_submit() {
    let mut s = client_state();
    s.read_only = true;
    key(&mut s, KeyCode::Char('j'));
    key(&mut s, KeyCode::Char('c'));
    assert_eq!(s.overlay, Overlay::None);
    key(&mut s, KeyCode::Char(':'));
    type_text(&mut s, "submit --lang bash --code 'echo hi'");
    assert!(key(&mut s, KeyCode::Enter).is_empty());
    assert!(
        s.console
            .log
            .back()
            .is_some_and(|(l, t)| *l == LogLevel::Error && t.contains("read-only"))
    );
    // Reading is fine.
    key(&mut s, KeyCode::Char(':'));
    type_text(&mut s, "jobs");
    assert_eq!(
        key(&mut s, KeyCode::Enter),
        vec![Effect::RunCommand(ConsoleCommand::Jobs {
            status: None,
            limit: 20,
            before: None,
            all: false
        })]
    );
}

#[test]
fn filter_and_sort_change_what_the_jobs_pane_shows() {
    let mut s = client_state();
    key(&mut s, KeyCode::Char('/'));
    type_text(&mut s, "bob");
    key(&mut s, KeyCode::Enter);
    assert!(s.visible_jobs().iter().all(|j| j.user.as_str() == "bob"));
    assert_eq!(s.visible_jobs().len(), 3);
    key(&mut s, KeyCode::Esc);
    assert_eq!(s.visible_jobs().len(), 12);
    key(&mut s, KeyCode::Char('s'));
    assert_eq!(s.sort, JobSort::Status);
    assert_eq!(s.visible_jobs()[0].status, JobStatus::Running);
}

#[test]
fn the_console_edits_completes_runs_and_remembers() {
    let mut s = client_state();
    key(&mut s, KeyCode::Char(':'));
    assert!(s.console.editing);
    type_text(&mut s, "bal");
    key(&mut s, KeyCode::Tab);
    assert_eq!(s.console.input, "balance");
    let effects = key(&mut s, KeyCode::Enter);
    assert_eq!(effects, vec![Effect::RunCommand(ConsoleCommand::Balance)]);
    assert_eq!(s.console.input, "");
    assert!(
        !s.console.editing,
        "Enter leaves typing mode, so j moves again"
    );
    key(&mut s, KeyCode::Char(':'));
    type_text(&mut s, "jobs --sta");
    key(&mut s, KeyCode::Tab);
    assert_eq!(s.console.input, "jobs --status");
    ctrl(&mut s, 'u');
    key(&mut s, KeyCode::Up);
    assert_eq!(s.console.input, "balance", "history");
    // Editing in the middle of the line.
    key(&mut s, KeyCode::Home);
    key(&mut s, KeyCode::Delete);
    assert_eq!(s.console.input, "alance");
    // Typing `q` in the console types; it does not quit.
    type_text(&mut s, "q");
    assert!(!s.should_quit);
    key(&mut s, KeyCode::Esc);
    assert!(!s.console.editing);
}

#[test]
fn parse_errors_are_printed_not_run() {
    let mut s = client_state();
    key(&mut s, KeyCode::Char(':'));
    type_text(&mut s, "cancel banana");
    assert!(key(&mut s, KeyCode::Enter).is_empty());
    assert!(
        s.console
            .log
            .iter()
            .any(|(l, t)| *l == LogLevel::Error && t.contains("not a job id"))
    );
}

#[test]
fn q_and_ctrl_c_quit_and_ctrl_z_suspends() {
    let mut s = client_state();
    assert_eq!(ctrl(&mut s, 'z'), vec![Effect::Suspend]);
    assert_eq!(key(&mut s, KeyCode::Char('r')), vec![Effect::OpenRepl]);
    assert_eq!(key(&mut s, KeyCode::Char('q')), vec![Effect::Quit]);
    assert!(s.should_quit);
    let mut s = client_state();
    assert_eq!(ctrl(&mut s, 'c'), vec![Effect::Quit]);
}

#[test]
fn live_events_update_jobs_ledger_and_the_connection() {
    let mut s = client_state();
    let server = s.server.clone();
    let (effects, _) = s.update(Msg::Live(LiveEvent::Connected { coordinator: None }));
    assert_eq!(
        effects,
        vec![Effect::Refresh],
        "reload after (re)connecting"
    );
    assert_eq!(s.server, server, "one coordinator: the address as given");
    // Of several, the header shows the one that leads now.
    let (effects, _) = s.update(Msg::Live(LiveEvent::Connected {
        coordinator: Some("http://b:8420".into()),
    }));
    assert_eq!(effects, vec![Effect::Refresh]);
    assert_eq!(s.server, "http://b:8420");
    let mut updated = job(11, "alice", Language::Node, JobStatus::Running);
    updated.attempts = 1;
    s.update(Msg::Live(LiveEvent::Event(Box::new(ServerEvent::Job {
        job: updated,
    }))));
    assert_eq!(s.jobs[&JobId(11)].status, JobStatus::Running);
    let entry = LedgerEntryView {
        id: 100,
        at: from_unix_millis(NOW_MS),
        kind: LedgerKind::Hold,
        amount: Credits::from_millis(-1000),
        job_id: Some(JobId(13)),
        balance_after: Credits::from_millis(86_400),
        reason: None,
    };
    s.update(Msg::Live(LiveEvent::Event(Box::new(ServerEvent::Ledger {
        entry,
    }))));
    assert_eq!(s.balance, Some(Credits::from_millis(86_400)));
    assert_eq!(s.ledger.front().map(|e| e.id), Some(100));
    s.update(Msg::Live(LiveEvent::Disconnected {
        reason: "refused".into(),
        retry_in: Duration::from_secs(3),
    }));
    assert_eq!(
        s.connection,
        Connection::Offline {
            reason: "refused".into(),
            retry_in_s: Some(3)
        }
    );
    let (effects, _) = s.update(Msg::Live(LiveEvent::Event(Box::new(ServerEvent::Lagged {
        missed: 5,
    }))));
    assert_eq!(effects, vec![Effect::Refresh]);
}

#[test]
fn a_repeated_console_line_counts_up_instead_of_flooding() {
    let mut s = client_state();
    let before = s.console.log.len();
    for _ in 0..4 {
        s.log(LogLevel::Error, "disconnected: connection refused");
    }
    s.log(LogLevel::Info, "disconnected: connection refused");
    s.log(LogLevel::Error, "connected");
    let lines: Vec<&str> = s
        .console
        .log
        .iter()
        .skip(before)
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(
        lines,
        [
            "disconnected: connection refused (x4)",
            "disconnected: connection refused",
            "connected"
        ]
    );
}

#[test]
fn command_results_land_in_the_console_and_the_panes() {
    let mut s = client_state();
    let submitted = view_with_output(13, JobStatus::Queued, "");
    s.update(Msg::CommandDone(Ok(Outcome::Submitted(Box::new(
        submitted,
    )))));
    assert!(s.jobs.contains_key(&JobId(13)));
    assert!(
        s.console
            .log
            .back()
            .is_some_and(|(_, t)| t.contains("submitted job 13"))
    );
    s.update(Msg::CommandDone(Err("cannot reach the coordinator".into())));
    assert!(
        s.console
            .log
            .back()
            .is_some_and(|(l, _)| *l == LogLevel::Error)
    );
    let (effects, _) = s.update(Msg::CommandDone(Ok(Outcome::Theme(Some("light".into())))));
    assert_eq!(effects, vec![Effect::SetTheme("light".into())]);
}

#[test]
fn the_job_list_is_bounded() {
    let mut s = client_state();
    s.max_jobs = 5;
    for i in 100..110 {
        s.update(Msg::Live(LiveEvent::Event(Box::new(ServerEvent::Job {
            job: job(i, "alice", Language::Bash, JobStatus::Queued),
        }))));
    }
    assert_eq!(s.jobs.len(), 5);
}

#[test]
fn help_lists_every_bound_key() {
    let mut s = client_state();
    key(&mut s, KeyCode::Char('?'));
    assert_eq!(s.overlay, Overlay::Help);
    let rows = s.keymap.help_rows();
    for what in [
        "quit",
        "job details",
        "cancel the selected job",
        "filter rows",
        "type a command",
    ] {
        assert!(
            rows.iter().any(|(_, d)| *d == what),
            "{what} missing from help"
        );
    }
    key(&mut s, KeyCode::Char('?'));
    assert_eq!(s.overlay, Overlay::None);
}

fn live_job(s: &mut AppState, id: u64) {
    s.update(Msg::Live(LiveEvent::Event(Box::new(ServerEvent::Job {
        job: job(id, "alice", Language::Bash, JobStatus::Queued),
    }))));
}

#[test]
fn the_selection_stays_on_its_job_when_jobs_arrive_or_the_sort_changes() {
    let mut s = client_state();
    key(&mut s, KeyCode::Char('j'));
    key(&mut s, KeyCode::Char('j'));
    let chosen = s.selected_job().expect("a selected job");
    // Newer jobs arrive above it: the highlight moves down with it.
    live_job(&mut s, 200);
    live_job(&mut s, 201);
    assert_eq!(s.selected_job(), Some(chosen), "the selection drifted");
    // At the top too: a new job does not take the selection.
    key(&mut s, KeyCode::Char('g'));
    let top = s.selected_job().expect("a selected job");
    live_job(&mut s, 202);
    assert_eq!(s.selected_job(), Some(top));
    // Sorting keeps the same job selected; moving still moves.
    key(&mut s, KeyCode::Char('s'));
    assert_ne!(s.sort, JobSort::Newest);
    assert_eq!(s.selected_job(), Some(top));
    key(&mut s, KeyCode::Char('j'));
    assert_ne!(s.selected_job(), Some(top), "j moves off the anchored job");
}

#[test]
fn the_ledger_selection_stays_on_its_entry_when_entries_arrive() {
    let mut s = client_state();
    key(&mut s, KeyCode::Char('4'));
    key(&mut s, KeyCode::Char('j'));
    let chosen = s.ledger.get(s.selected[3]).map(|e| e.id);
    assert!(chosen.is_some());
    for id in [900, 901] {
        let entry = LedgerEntryView {
            id,
            at: from_unix_millis(NOW_MS),
            kind: LedgerKind::Hold,
            amount: Credits::from_millis(-1000),
            job_id: Some(JobId(id)),
            balance_after: Credits::from_millis(1_000),
            reason: None,
        };
        s.update(Msg::Live(LiveEvent::Event(Box::new(ServerEvent::Ledger {
            entry,
        }))));
    }
    assert_eq!(s.ledger.front().map(|e| e.id), Some(901));
    assert_eq!(s.ledger.get(s.selected[3]).map(|e| e.id), chosen);
}

#[test]
fn alt_b_moves_by_word_and_types_nothing() {
    let mut s = client_state();
    key(&mut s, KeyCode::Char(':'));
    type_text(&mut s, "jobs --status failed");
    let alt = |c| Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT));
    s.update(alt('b'));
    assert_eq!(
        s.console.input, "jobs --status failed",
        "Alt-b typed a letter"
    );
    assert_eq!(s.console.cursor, 14);
    s.update(alt('f'));
    assert_eq!(s.console.cursor, 20);
    ctrl(&mut s, 'w');
    assert_eq!(s.console.input, "jobs --status ");
}

#[test]
fn c_cancels_only_from_the_focused_jobs_pane() {
    let mut s = client_state();
    key(&mut s, KeyCode::Char('1'));
    key(&mut s, KeyCode::Char('c'));
    assert_eq!(
        s.overlay,
        Overlay::None,
        "c in the Workers pane asked to cancel a job"
    );
    assert!(
        s.console
            .log
            .back()
            .is_some_and(|(_, l)| l.contains("Jobs pane"))
    );
    key(&mut s, KeyCode::Char('2'));
    key(&mut s, KeyCode::Char('j'));
    key(&mut s, KeyCode::Char('c'));
    assert_eq!(s.overlay, Overlay::ConfirmCancel(JobId(11)));
}

#[test]
fn the_help_and_details_page_with_j_k_pgdn_g_and_close_at_the_top() {
    let mut s = client_state();
    key(&mut s, KeyCode::Char('?'));
    assert_eq!(s.overlay, Overlay::Help);
    // Drawing records how far the text can scroll; here, 30 lines.
    s.overlay_max_scroll.set(30);
    key(&mut s, KeyCode::Char('j'));
    key(&mut s, KeyCode::Down);
    assert_eq!(s.overlay_scroll, 2);
    key(&mut s, KeyCode::PageDown);
    assert_eq!(s.overlay_scroll, 12);
    key(&mut s, KeyCode::Char('G'));
    assert_eq!(s.overlay_scroll, 30, "G stops at the last page");
    key(&mut s, KeyCode::Char('k'));
    assert_eq!(s.overlay_scroll, 29, "k moves at once after G");
    ctrl(&mut s, 'u');
    assert_eq!(s.overlay_scroll, 19);
    key(&mut s, KeyCode::Char('g'));
    assert_eq!(s.overlay_scroll, 0);
    key(&mut s, KeyCode::Char('j'));
    key(&mut s, KeyCode::Esc);
    assert_eq!((s.overlay.clone(), s.overlay_scroll), (Overlay::None, 0));
    // Details open at the top, and w toggles wrapping.
    key(&mut s, KeyCode::Enter);
    assert!(matches!(s.overlay, Overlay::Detail(_)));
    assert_eq!(s.overlay_scroll, 0);
    assert!(s.detail_wrap);
    key(&mut s, KeyCode::Char('w'));
    assert!(!s.detail_wrap);
}

#[test]
fn the_focused_console_scrolls_its_log_and_errors_are_one_line() {
    let mut s = client_state();
    key(&mut s, KeyCode::Char(':'));
    type_text(&mut s, "jbos");
    key(&mut s, KeyCode::Enter);
    let (level, last) = s.console.log.back().cloned().expect("a line");
    assert_eq!(level, LogLevel::Error);
    assert!(last.starts_with("unrecognized subcommand 'jbos'"), "{last}");
    for i in 0..5 {
        s.log(LogLevel::Output, format!("line {i}"));
    }
    key(&mut s, KeyCode::Char('5'));
    key(&mut s, KeyCode::Char('k'));
    key(&mut s, KeyCode::Char('k'));
    assert_eq!(s.console.scroll, 2);
    // A new line keeps the view where it is.
    s.log(LogLevel::Output, "newer");
    assert_eq!(s.console.scroll, 3);
    key(&mut s, KeyCode::Char('j'));
    assert_eq!(s.console.scroll, 2);
    key(&mut s, KeyCode::Char('G'));
    assert_eq!(s.console.scroll, 0, "G follows the newest again");
    key(&mut s, KeyCode::Char('g'));
    assert_eq!(s.console.scroll, s.console.log.len() - 1);
}

#[test]
fn a_job_submitted_in_the_console_is_announced_when_it_ends_and_o_opens_it() {
    let mut s = client_state();
    let submitted = view_with_output(300, JobStatus::Queued, "");
    s.update(Msg::CommandDone(Ok(Outcome::Submitted(Box::new(
        submitted,
    )))));
    key(&mut s, KeyCode::Char('o'));
    assert_eq!(s.overlay, Overlay::None, "nothing announced yet");
    let done = job(300, "alice", Language::Python, JobStatus::Succeeded);
    s.update(Msg::Live(LiveEvent::Event(Box::new(ServerEvent::Job {
        job: done.clone(),
    }))));
    let (_, line) = s.console.log.back().cloned().expect("an announcement");
    assert!(
        line.contains("job 300") && line.contains("succeeded") && line.contains("o opens"),
        "{line}"
    );
    // Announced once: a repeated event says nothing more.
    let lines = s.console.log.len();
    s.update(Msg::Live(LiveEvent::Event(Box::new(ServerEvent::Job {
        job: done,
    }))));
    assert_eq!(s.console.log.len(), lines);
    key(&mut s, KeyCode::Char('o'));
    assert_eq!(s.overlay, Overlay::Detail(JobId(300)));
}

#[test]
fn enter_opens_what_the_focused_pane_selects() {
    let mut s = client_state();
    key(&mut s, KeyCode::Char('1'));
    key(&mut s, KeyCode::Enter);
    let first = s.visible_workers()[0].worker_id;
    assert_eq!(s.overlay, Overlay::Worker(first));
    key(&mut s, KeyCode::Esc);
    key(&mut s, KeyCode::Char('4'));
    key(&mut s, KeyCode::Enter);
    let entry_job = s.ledger[0].job_id.expect("the fixture's entry has a job");
    assert_eq!(s.overlay, Overlay::Detail(entry_job));
    key(&mut s, KeyCode::Esc);
    key(&mut s, KeyCode::Char('3'));
    key(&mut s, KeyCode::Enter);
    assert_eq!(s.overlay, Overlay::None, "the gauges have nothing to open");
}

#[test]
fn page_keys_move_a_screenful_as_last_drawn() {
    let mut s = client_state();
    s.set_page_rows(Pane::Jobs, 5);
    key(&mut s, KeyCode::PageDown);
    assert_eq!(s.selected[1], 4, "a page less one row");
    ctrl(&mut s, 'd');
    assert_eq!(s.selected[1], 8);
    ctrl(&mut s, 'u');
    key(&mut s, KeyCode::PageUp);
    assert_eq!(s.selected[1], 0);
}

#[test]
fn a_worker_hosts_job_shows_its_spec_limits_and_millisecond_times() {
    use crate::worker::host::WorkerEvent;
    let mut s = super::fixtures::worker_state(gridx_proto::protocol::ExecutorKind::Docker);
    s.now = from_unix_millis(NOW_MS) + Duration::from_nanos(123_456);
    s.update(Msg::Worker(WorkerEvent::JobStarted {
        gpus: Vec::new(),
        job_id: JobId(77),
        attempt: 2,
        language: Language::Python,
        timeout_s: 30,
        memory_mb: 256,
        priority: 5,
    }));
    let job = &s.jobs[&JobId(77)];
    assert_eq!((job.timeout_s, job.memory_mb, job.priority), (30, 256, 5));
    assert_eq!(job.gpus, 0);
    let started = job.started_at.expect("started");
    assert!(s.local_gpus.is_empty());
    s.update(Msg::Worker(WorkerEvent::JobStarted {
        gpus: vec![1, 3],
        job_id: JobId(78),
        attempt: 1,
        language: Language::Python,
        timeout_s: 30,
        memory_mb: 256,
        priority: 0,
    }));
    assert_eq!(s.jobs[&JobId(78)].gpus, 2);
    assert_eq!(s.local_gpus.get(&(JobId(78), 1)), Some(&vec![1, 3]));
    assert_eq!(
        started.nanosecond() % 1_000_000,
        0,
        "no nanoseconds: {started}"
    );
}

#[test]
fn tab_completes_in_place_and_cycles_without_writing_to_the_log() {
    let mut s = client_state();
    let logged = s.console.log.len();
    key(&mut s, KeyCode::Char(':'));
    type_text(&mut s, "jo");
    key(&mut s, KeyCode::Tab);
    assert_eq!(s.console.input, "job", "the common prefix of job and jobs");
    key(&mut s, KeyCode::Tab);
    key(&mut s, KeyCode::Tab);
    assert_eq!(s.console.input, "jobs", "the second candidate, in place");
    key(&mut s, KeyCode::BackTab);
    assert_eq!(s.console.input, "job", "Shift-Tab steps back");
    assert!(
        s.console.completion.is_some(),
        "the menu shows under the line"
    );
    type_text(&mut s, " ");
    assert!(s.console.completion.is_none(), "typing ends the menu");
    assert_eq!(s.console.input, "job ");
    assert_eq!(s.console.log.len(), logged, "no candidates printed");
}

#[test]
fn capital_s_reverses_the_sort_and_keeps_the_selected_job() {
    let mut s = client_state();
    key(&mut s, KeyCode::Char('j'));
    let chosen = s.selected_job().expect("a selected job");
    let first = s.visible_jobs().first().map(|j| j.job_id);
    key(&mut s, KeyCode::Char('S'));
    assert!(s.sort_reversed);
    assert_eq!(
        s.selected_job(),
        Some(chosen),
        "the selection stays on its job"
    );
    let jobs = s.visible_jobs();
    assert_eq!(jobs.last().map(|j| j.job_id), first, "newest is now last");
    key(&mut s, KeyCode::Char('S'));
    assert!(!s.sort_reversed);
}

#[test]
fn slash_searches_the_pager_and_n_walks_the_matches() {
    let mut s = client_state();
    s.overlay = Overlay::Detail(JobId(4));
    s.overlay_max_scroll.set(500);
    // As drawing records them: each line with the row it starts on.
    s.pager_lines.replace(
        (0..300u16)
            .map(|i| (i, format!("line {i}")))
            .chain([(300, "Error: Boom".to_owned())])
            .collect(),
    );
    key(&mut s, KeyCode::Char('/'));
    assert!(s.search.editing);
    type_text(&mut s, "error");
    assert_eq!(s.overlay_scroll, 0, "nothing moves while typing");
    key(&mut s, KeyCode::Enter);
    assert!(!s.search.editing);
    assert_eq!(s.overlay_scroll, 300, "the match, ignoring case");
    key(&mut s, KeyCode::Char('/'));
    type_text(&mut s, "line 2");
    key(&mut s, KeyCode::Enter);
    assert_eq!(s.overlay_scroll, 2, "round the end to the first match");
    key(&mut s, KeyCode::Char('n'));
    assert_eq!(s.overlay_scroll, 20);
    key(&mut s, KeyCode::Char('N'));
    key(&mut s, KeyCode::Char('N'));
    assert_eq!(s.overlay_scroll, 299, "N goes back round the start");
    assert_eq!(
        s.overlay,
        Overlay::Detail(JobId(4)),
        "n/N/q typed into the search do not close"
    );
    key(&mut s, KeyCode::Char('/'));
    type_text(&mut s, "zzz");
    key(&mut s, KeyCode::Enter);
    assert_eq!(s.overlay_scroll, 299, "no match: the view stays");
    key(&mut s, KeyCode::Char('/'));
    key(&mut s, KeyCode::Esc);
    assert_eq!(s.search.query, "", "Esc drops the search");
    assert_eq!(
        s.overlay,
        Overlay::Detail(JobId(4)),
        "and keeps the pager open"
    );
    key(&mut s, KeyCode::Esc);
    assert_eq!(s.overlay, Overlay::None);
}

#[test]
fn the_gauges_show_only_a_listed_worker_and_say_when_they_are_stale() {
    let mut s = client_state();
    assert!(s.gauge_metrics().is_some());
    assert_eq!(s.gauges_stale(), None);
    s.filter = "no-such-worker".into();
    s.update(Msg::Resize);
    assert!(
        s.gauge_metrics().is_none(),
        "no worker listed, no gauges: they once showed a hidden worker"
    );
    s.filter.clear();
    s.update(Msg::Live(LiveEvent::Disconnected {
        reason: "connection refused".into(),
        retry_in: Duration::from_secs(2),
    }));
    assert_eq!(s.gauges_stale(), Some("stale"));
}

#[test]
fn workers_are_named_wherever_a_job_names_one() {
    let mut s = client_state();
    let (id, name) = s
        .workers
        .values()
        .next()
        .map(|w| (w.worker_id, w.name.clone()))
        .expect("a worker");
    assert_eq!(s.worker_label(id), name);
    assert_eq!(s.worker_label(gridx_proto::WorkerId(999)), "#999");
    // The filter finds jobs by their worker's name.
    s.filter = name.clone();
    let shown = s.visible_jobs();
    assert!(!shown.is_empty());
    assert!(shown.iter().all(|j| j.worker_id == Some(id)));
}

#[test]
fn ctrl_c_quits_from_every_state_but_first_clears_a_console_line() {
    type Enter = fn(&mut AppState);
    let states: [(&str, Enter); 6] = [
        ("help", |s| {
            key(s, KeyCode::Char('?'));
        }),
        ("details", |s| {
            key(s, KeyCode::Enter);
        }),
        ("details search", |s| {
            key(s, KeyCode::Enter);
            key(s, KeyCode::Char('/'));
        }),
        ("cancel prompt", |s| {
            key(s, KeyCode::Char('c'));
        }),
        ("filter", |s| {
            key(s, KeyCode::Char('/'));
        }),
        ("worker card", |s| {
            key(s, KeyCode::Char('1'));
            key(s, KeyCode::Enter);
        }),
    ];
    for (name, enter) in states {
        let mut s = client_state();
        enter(&mut s);
        let effects = ctrl(&mut s, 'c');
        assert_eq!(effects, vec![Effect::Quit], "{name}");
        assert!(s.should_quit, "{name}");
    }
    let mut s = client_state();
    key(&mut s, KeyCode::Char(':'));
    type_text(&mut s, "jobs");
    assert!(
        ctrl(&mut s, 'c').is_empty(),
        "the line is cleared, not quit"
    );
    assert_eq!((s.console.input.as_str(), s.console.editing), ("", false));
    assert_eq!(ctrl(&mut s, 'c'), vec![Effect::Quit]);
}

/// The job view `GET /v1/jobs/{id}` would answer for a fixture job, with this output.
pub(super) fn view_with_output(
    id: u64,
    status: JobStatus,
    stdout: &str,
) -> gridx_proto::api::JobView {
    let mut value = serde_json::to_value(job(id, "alice", Language::Python, status)).unwrap();
    let fields = value.as_object_mut().unwrap();
    fields.remove("stdout_bytes");
    fields.remove("stderr_bytes");
    fields.insert("stdout".into(), stdout.into());
    fields.insert("stderr".into(), "".into());
    fields.insert("validation".into(), serde_json::json!({ "required": true }));
    serde_json::from_value(value).unwrap()
}

#[test]
fn opening_an_ended_jobs_details_fetches_its_output_on_demand() {
    use super::state::{JobOutput, OutputShown};
    let mut s = client_state();
    // Lists and events carry no output, so the model has none to begin with.
    assert!(s.outputs.is_empty());
    let effects = key(&mut s, KeyCode::Enter);
    assert_eq!(s.overlay, Overlay::Detail(JobId(12)));
    assert_eq!(effects, vec![Effect::FetchOutput(JobId(12))]);
    assert_eq!(s.outputs.get(&JobId(12)), Some(&JobOutput::Loading));
    assert_eq!(
        s.output_shown(&s.jobs[&JobId(12)]),
        OutputShown::Note("loading…")
    );
    // One fetch: other messages while it runs ask for nothing more.
    assert!(s.update(Msg::Resize).0.is_empty());
    assert!(
        key(&mut s, KeyCode::Char('j')).is_empty(),
        "scrolling the details"
    );
    let (effects, redraw) = s.update(Msg::Output {
        job_id: JobId(12),
        result: Ok(Box::new(view_with_output(12, JobStatus::Succeeded, "42\n"))),
    });
    assert!(effects.is_empty() && redraw);
    assert_eq!(
        s.output_shown(&s.jobs[&JobId(12)]),
        OutputShown::Text {
            stdout: "42\n",
            stderr: "",
            compile: None,
        }
    );
    // Closed: the output is dropped (a client keeps only the open job's); reopened:
    // fetched again.
    key(&mut s, KeyCode::Esc);
    assert!(s.outputs.is_empty());
    assert_eq!(
        key(&mut s, KeyCode::Enter),
        vec![Effect::FetchOutput(JobId(12))]
    );
}

#[test]
fn a_running_jobs_details_fetch_its_output_when_it_ends() {
    use super::state::OutputShown;
    let mut s = client_state();
    s.overlay = Overlay::Detail(JobId(2));
    // Its output is followed as it comes, and its view asked for its result check.
    let (effects, _) = s.update(Msg::Resize);
    assert_eq!(
        effects,
        vec![
            Effect::Follow(Some(JobId(2)), 1),
            Effect::FetchOutput(JobId(2))
        ]
    );
    s.update(Msg::Output {
        job_id: JobId(2),
        result: Ok(Box::new(view_with_output(2, JobStatus::Running, ""))),
    });
    assert!(
        s.update(Msg::Resize).0.is_empty(),
        "nothing more to fetch yet"
    );
    let piece = |offset, text: &str| Msg::Followed {
        job_id: JobId(2),
        generation: 1,
        event: crate::client::follow::Followed::Output(gridx_proto::api::OutputChunk {
            stream: gridx_proto::api::OutputStream::Stdout,
            offset,
            text: text.into(),
        }),
    };
    assert!(s.update(piece(0, "tick 1\n")).1);
    s.update(piece(7, "tick 2\n"));
    assert!(
        !s.update(piece(3, "out of place")).1,
        "only what continues it"
    );
    assert_eq!(
        s.output_shown(&s.jobs[&JobId(2)]),
        OutputShown::Text {
            stdout: "tick 1\ntick 2\n",
            stderr: "",
            compile: None,
        }
    );
    // Its worker was lost and it runs again: the output starts over.
    // A late event of an earlier follow is dropped.
    let stale = Msg::Followed {
        job_id: JobId(2),
        generation: 0,
        event: crate::client::follow::Followed::Reset,
    };
    assert!(!s.update(stale).1);
    s.update(Msg::Followed {
        job_id: JobId(2),
        generation: 1,
        event: crate::client::follow::Followed::Reset,
    });
    assert_eq!(
        s.output_shown(&s.jobs[&JobId(2)]),
        OutputShown::Text {
            stdout: "",
            stderr: "",
            compile: None,
        }
    );
    // Another job's end changes nothing here.
    let other = job(9, "alice", Language::Python, JobStatus::Failed);
    let (effects, _) = s.update(Msg::Live(LiveEvent::Event(Box::new(ServerEvent::Job {
        job: other,
    }))));
    assert!(effects.is_empty());
    let ended = job(2, "alice", Language::Node, JobStatus::Succeeded);
    let (effects, _) = s.update(Msg::Live(LiveEvent::Event(Box::new(ServerEvent::Job {
        job: ended,
    }))));
    assert_eq!(
        effects,
        vec![Effect::Follow(None, 2), Effect::FetchOutput(JobId(2))],
        "the stored output replaces what came live"
    );
}

#[test]
fn a_failed_fetch_says_why_and_a_late_answer_is_dropped() {
    use super::state::OutputShown;
    let mut s = client_state();
    key(&mut s, KeyCode::Enter);
    s.update(Msg::Output {
        job_id: JobId(12),
        result: Err("cannot reach the coordinator".into()),
    });
    assert_eq!(
        s.output_shown(&s.jobs[&JobId(12)]),
        OutputShown::Note("could not load the output: cannot reach the coordinator")
    );
    assert!(s.update(Msg::Resize).0.is_empty(), "no retry loop");
    key(&mut s, KeyCode::Esc);
    // An answer for details that closed meanwhile is not kept.
    let (_, redraw) = s.update(Msg::Output {
        job_id: JobId(12),
        result: Ok(Box::new(view_with_output(12, JobStatus::Succeeded, "late"))),
    });
    assert!(!redraw && s.outputs.is_empty());
}

#[test]
fn a_worker_host_shows_its_own_jobs_output_without_fetching() {
    use super::state::OutputShown;
    use crate::worker::host::WorkerEvent;
    use gridx_proto::job::{RunEnd, RunOutcome};
    let mut s = super::fixtures::worker_state(gridx_proto::protocol::ExecutorKind::Docker);
    s.update(Msg::Worker(WorkerEvent::JobStarted {
        gpus: Vec::new(),
        job_id: JobId(77),
        attempt: 1,
        language: Language::Bash,
        timeout_s: 30,
        memory_mb: 256,
        priority: 0,
    }));
    // While it runs, its output shows as it comes.
    for text in ["he", "re\n"] {
        s.update(Msg::Worker(WorkerEvent::JobOutput {
            job_id: JobId(77),
            stream: gridx_proto::api::OutputStream::Stdout,
            text: text.into(),
        }));
    }
    assert_eq!(
        s.output_shown(&s.jobs[&JobId(77)]),
        OutputShown::Text {
            stdout: "here\n",
            stderr: "",
            compile: None,
        }
    );
    s.update(Msg::Worker(WorkerEvent::JobFinished {
        job_id: JobId(77),
        attempt: 1,
        outcome: Box::new(RunOutcome {
            end: RunEnd::Exited,
            exit_code: Some(0),
            stdout: "here\n".into(),
            stderr: "warn\n".into(),
            stdout_truncated: true,
            stderr_truncated: false,
            duration_ms: 10,
            message: None,
            compile_output: Some("main.c:1: warning: unused\n".into()),
        }),
    }));
    let job = &s.jobs[&JobId(77)];
    assert_eq!((job.stdout_bytes, job.stderr_bytes), (5, 5));
    assert!(job.stdout_truncated);
    s.overlay = Overlay::Detail(JobId(77));
    assert!(s.update(Msg::Resize).0.is_empty(), "nothing to fetch");
    assert_eq!(
        s.output_shown(&s.jobs[&JobId(77)]),
        OutputShown::Text {
            stdout: "here\n",
            stderr: "warn\n",
            compile: Some("main.c:1: warning: unused\n"),
        }
    );
}

#[test]
fn a_jobs_escape_sequences_reach_the_console_inert() {
    // `job 12` in the console: the job printed a title change, a clear screen and
    // an OSC 52 clipboard write; a worker's message carries a bidi override; the
    // coordinator's error quotes a CSI. All of it lands in the log shown, not obeyed.
    let mut s = client_state();
    let mut view = view_with_output(
        12,
        JobStatus::Failed,
        "\x1b]0;pwned\x07\x1b[2J hello\r\n\x1b]52;c;Y3VybA==\x07\n",
    );
    view.stderr = "\u{9b}31mred".into();
    view.message = Some("sandbox: \u{202e}exe.live".into());
    view.validation = super::fixtures::validated_by_quorum();
    s.update(Msg::CommandDone(Ok(Outcome::Job(Box::new(view)))));
    s.update(Msg::CommandDone(Err("no such job \x1b[8mhidden".into())));
    let log: Vec<&str> = s.console.log.iter().map(|(_, l)| l.as_str()).collect();
    // The job's line, then what strangers wrote, then the error.
    let tail = &log[log.len() - 9..];
    assert!(tail[0].starts_with("job 12 failed"), "{log:#?}");
    assert_eq!(
        tail[1..],
        [
            "  sandbox: <U+202E>exe.live",
            "  checked: quorum of 2 agreed (bob #1 valid, carol #2 valid, mallory #9 INVALID)",
            "--- stdout",
            "^[]0;pwned^G^[[2J hello",
            "^[]52;c;Y3VybA==^G",
            "--- stderr",
            "<U+009B>31mred",
            "no such job ^[[8mhidden",
        ],
        "{log:#?}"
    );
    for line in &log {
        assert!(
            !line.contains(|c: char| c.is_control()),
            "a control character reached the console: {line:?}"
        );
    }
}
