//! The Workers pane: the grid's workers (client), or this worker (worker host).

use super::{
    ascii_safe, columns_that_fit, human_ms, kept, pane_block, row_style, since_ms, table, window,
};
use crate::commands::result_checks::{TrustLevel, trust_cell, trust_level};
use crate::inert::inert;
use crate::ui::state::{AppState, Connection, Mode, Pane, worker_is_down};
use gridx_proto::api::{WorkerStatus, WorkerView};
use gridx_proto::protocol::ExecutorKind;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};

/// Columns from the most important: a narrow pane gives up the last ones first, so
/// the name, status and trust stay longest, then what an operator scans for.
const PRIORITY: [usize; 12] = [0, 2, 3, 8, 6, 9, 10, 11, 1, 4, 5, 7];
/// What each column needs at least; the name takes what is left beyond its own. The
/// trust column's is as wide as its widest cell (`trust_width`).
const MIN_WIDTH: [u16; 12] = [8, 6, 8, 0, 6, 4, 7, 8, 5, 4, 4, 6];
const TRUST: usize = 3;
const TITLES: [&str; 12] = [
    "NAME", "OWNER", "STATUS", "TRUST", "STREAK", "PEND", "SANDBOX", "LANGS", "SLOTS", "CPU",
    "MEM", "SEEN",
];

pub fn draw(frame: &mut Frame, area: Rect, state: &AppState) {
    if let Mode::WorkerHost {
        executor,
        name,
        weaknesses,
        ..
    } = &state.mode
    {
        return this_worker(frame, area, state, *executor, name, weaknesses);
    }
    let t = &state.theme;
    let workers = state.visible_workers();
    let online = workers
        .iter()
        .filter(|w| w.status == WorkerStatus::Online)
        .count();
    let block = pane_block(
        state,
        Pane::Workers,
        format!("Workers {online}/{}", workers.len()),
    );
    if workers.is_empty() {
        let hint = if state.filter.is_empty() {
            "no workers yet: `gridx-server worker add`, then `gridx-tui worker`"
        } else {
            "no worker matches the filter"
        };
        let text = Paragraph::new(Span::styled(hint, t.dim()))
            .wrap(Wrap { trim: true })
            .block(block);
        frame.render_widget(text, area);
        return;
    }
    // Narrow panes keep what an operator scans for first, and always the name.
    let trust_width = trust_width(&workers);
    let mut min_width = MIN_WIDTH;
    min_width[TRUST] = trust_width;
    let keep = columns_that_fit(area.width.saturating_sub(2), &min_width, &PRIORITY);
    let height = area.height.saturating_sub(3) as usize;
    state.set_page_rows(Pane::Workers, height);
    let (start, end) = window(workers.len(), state.selected[0], height);
    let rows = workers[start..end].iter().enumerate().map(|(i, w)| {
        let status_style = match w.status {
            WorkerStatus::Online => t.ok(),
            WorkerStatus::Draining => t.warn(),
            _ => t.error(),
        };
        let (sandbox, sandbox_style) = match w.executor {
            Some(ExecutorKind::Docker) => ("docker", t.text()),
            Some(ExecutorKind::Bubblewrap) => ("bwrap", t.text()),
            Some(ExecutorKind::Unsandboxed) => ("UNSAFE", t.error()),
            Some(ExecutorKind::Noop) => ("noop", t.dim()),
            None => ("-", t.dim()),
        };
        let cpu = w
            .metrics
            .as_ref()
            .map(|m| format!("{:.0}%", m.cpu_percent))
            .unwrap_or_else(|| "-".into());
        let mem = w
            .metrics
            .as_ref()
            .map(|m| format!("{:.0}%", m.memory_percent()))
            .unwrap_or_else(|| "-".into());
        let seen = match w.last_seen.map(|at| since_ms(state, at)) {
            Some(ms) if ms < 1000 => "now".to_owned(),
            Some(ms) => human_ms(ms),
            None => "never".into(),
        };
        let langs: Vec<&str> = w
            .languages
            .iter()
            .map(|l| match l {
                gridx_proto::Language::Python => "py",
                gridx_proto::Language::Node => "js",
                gridx_proto::Language::Bash => "sh",
                gridx_proto::Language::C => "c",
                gridx_proto::Language::Cpp => "c++",
                gridx_proto::Language::Java => "java",
                gridx_proto::Language::Go => "go",
                gridx_proto::Language::Rust => "rs",
                gridx_proto::Language::Ruby => "rb",
            })
            .collect();
        let name_style = if worker_is_down(w) { t.dim() } else { t.text() };
        let r = &w.reliability;
        let trust_style = match trust_level(r) {
            TrustLevel::Trusted => t.ok(),
            TrustLevel::Checked => t.text(),
            TrustLevel::Quarantined => t.error(),
        };
        // A trusted worker's results are not checked: it has no streak or pending.
        let (streak, pending) = if r.trusted {
            ("-".to_owned(), "-".to_owned())
        } else {
            (r.streak.to_string(), r.pending.to_string())
        };
        let cells = [
            Cell::from(Span::styled(inert(&w.name), name_style)),
            Cell::from(w.owner.to_string()),
            Cell::from(Span::styled(w.status.to_string(), status_style)),
            Cell::from(Span::styled(trust_cell(r), trust_style)),
            Cell::from(streak),
            Cell::from(pending),
            Cell::from(Span::styled(sandbox, sandbox_style)),
            Cell::from(langs.join(",")),
            Cell::from(format!("{}/{}", w.running, w.slots)),
            Cell::from(cpu),
            Cell::from(mem),
            Cell::from(seen),
        ];
        Row::new(kept(cells, &keep)).style(row_style(state, Pane::Workers, start + i))
    });
    let widths = [
        Constraint::Fill(2),
        Constraint::Fill(1),
        Constraint::Length(8),
        Constraint::Length(trust_width),
        Constraint::Length(6),
        Constraint::Length(4),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Length(6),
    ];
    let header = Row::new(kept(TITLES, &keep)).style(t.dim());
    frame.render_widget(table(rows, kept(widths, &keep), header, block), area);
}

/// The trust column's width: its widest cell, so that `QUARANTINED` costs the room
/// only while some worker is.
fn trust_width(workers: &[&WorkerView]) -> u16 {
    let widest = workers
        .iter()
        .map(|w| trust_cell(&w.reliability).len())
        .max()
        .unwrap_or(0);
    u16::try_from(widest.max(TITLES[TRUST].len())).unwrap_or(u16::MAX)
}

/// The worker host's own card: who it is, how it sandboxes, how busy it is.
fn this_worker(
    frame: &mut Frame,
    area: Rect,
    state: &AppState,
    executor: ExecutorKind,
    name: &str,
    weaknesses: &[String],
) {
    let t = &state.theme;
    let block = pane_block(state, Pane::Workers, "This worker".into());
    let running = state
        .jobs
        .values()
        .filter(|j| j.status == gridx_proto::JobStatus::Running)
        .count();
    let finished = state
        .jobs
        .values()
        .filter(|j| j.status.is_terminal())
        .count();
    let sandbox_style = if !executor.is_sandboxed() {
        t.error()
    } else if weaknesses.is_empty() {
        t.ok()
    } else {
        t.warn()
    };
    let (link, link_style) = match &state.connection {
        Connection::Online => ("connected".to_owned(), t.ok()),
        Connection::Connecting => ("connecting".to_owned(), t.warn()),
        Connection::Offline { reason, .. } => (format!("offline: {}", inert(reason)), t.error()),
    };
    let field = |label: &str, value: String, style| {
        Line::from(vec![
            Span::styled(format!("{label:>12} "), t.dim()),
            Span::styled(ascii_safe(state, value), style),
        ])
    };
    let mut lines = vec![
        field("name", name.to_owned(), t.text()),
        field("coordinator", state.server.clone(), t.text()),
        field("link", link, link_style),
        field(
            "sandbox",
            crate::worker::host::describe(executor).to_owned(),
            sandbox_style,
        ),
        field(
            "jobs",
            format!("{running} running, {finished} finished here"),
            t.text(),
        ),
    ];
    // What --allow-weak-sandbox let through, right under the sandbox line so that a
    // short card still shows it (`host-info` prints it whole).
    for (at, weakness) in weaknesses.iter().enumerate() {
        lines.insert(4 + at, field("WEAK", weakness.clone(), t.warn()));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
