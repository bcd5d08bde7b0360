//! What draws over the panes: the help (generated from the keymap), a job's details,
//! and the cancel confirmation.

use super::human_ms;
use crate::commands::result_checks::{TrustLevel, record_sentence, trust_level, trust_sentence};
use crate::inert::inert;
use crate::ui::state::{AppState, OutputShown, Overlay};
use gridx_proto::time_fmt::to_rfc3339_millis;
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

fn centered(area: Rect, width_pct: u16, height_pct: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Percentage(height_pct)])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Percentage(width_pct)])
        .flex(Flex::Center)
        .areas(row);
    cell
}

fn popup<'a>(state: &AppState, title: &str) -> Block<'a> {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(state.theme.border(true))
        .title(Span::styled(format!(" {title} "), state.theme.title(true)));
    if state.ascii {
        block.border_set(super::ASCII_BORDER)
    } else {
        block
    }
}

pub fn draw(frame: &mut Frame, area: Rect, state: &AppState) {
    match &state.overlay {
        Overlay::None => {}
        Overlay::Help => help(frame, area, state),
        Overlay::Detail(id) => detail(frame, area, state, *id),
        Overlay::Worker(id) => worker_card(frame, area, state, *id),
        Overlay::ConfirmCancel(id) => {
            let t = &state.theme;
            let about = state.jobs.get(id).map_or_else(
                || "no longer listed".to_owned(),
                |j| format!("{} · {} · {}", j.user, j.language, j.status),
            );
            let text = vec![
                Line::from(Span::styled(format!("Cancel job {id}?"), t.text())),
                Line::from(Span::styled(about, t.dim())),
                Line::from(""),
                Line::from(vec![
                    Span::styled("y", t.accent()),
                    Span::styled(" cancel it · ", t.dim()),
                    Span::styled("any other key", t.accent()),
                    Span::styled(" keep it", t.dim()),
                ]),
            ];
            // Sized by its text, not by a share of the screen: a percentage of 24
            // rows left room for one line, and the keys were never seen.
            let rect = sized(area, 44, text.len() as u16 + 2);
            frame.render_widget(Clear, rect);
            let body = Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: true });
            frame.render_widget(body.block(popup(state, "Confirm")), rect);
        }
    }
}

/// A rectangle of `width` × `height` cells centred in `area` (smaller if it must be).
fn sized(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

fn help(frame: &mut Frame, area: Rect, state: &AppState) {
    let rect = centered(area, 70, 80);
    frame.render_widget(Clear, rect);
    let t = &state.theme;
    let mut lines: Vec<Line> = state
        .keymap
        .help_rows()
        .into_iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!("{keys:>18}  "), t.accent()),
                Span::styled(what, t.text()),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "Console: submit, cancel, job, jobs, workers, balance, ledger, theme, help, quit",
        t.dim(),
    )));
    lines.push(Line::from(Span::styled(
        "Help, details, worker cards: j/k PgUp/PgDn g/G scroll, / searches, n/N next/previous match, w wraps details",
        t.dim(),
    )));
    lines.push(Line::from(Span::styled(
        "Esc, Enter or ? closes this help",
        t.dim(),
    )));
    pager(frame, rect, state, lines, "Keys", true);
}

/// Draws `lines` in `rect` from the overlay's scroll position, with the position and
/// the pager's keys in the title, matches of a search marked, and records how far it
/// can scroll and where each line starts (for `n`/`N`).
fn pager(
    frame: &mut Frame,
    rect: Rect,
    state: &AppState,
    lines: Vec<Line>,
    title: &str,
    wrap: bool,
) {
    let inner_width = rect.width.saturating_sub(2).max(1) as usize;
    let visible = rect.height.saturating_sub(2) as usize;
    // Rows each line takes once wrapped (character count: close enough for a pager).
    let mut rows = 0usize;
    let mut recorded = Vec::with_capacity(lines.len());
    for line in &lines {
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        recorded.push((u16::try_from(rows).unwrap_or(u16::MAX), text));
        rows += if wrap {
            line.width().div_ceil(inner_width).max(1)
        } else {
            1
        };
    }
    let matches = recorded
        .iter()
        .filter(|(_, text)| state.search.matches(text))
        .count();
    state.pager_lines.replace(recorded);
    let max = u16::try_from(rows.saturating_sub(visible)).unwrap_or(u16::MAX);
    state.overlay_max_scroll.set(max);
    let scroll = state.overlay_scroll.min(max);
    // The search, when there is one, takes the place of the key hints.
    let search = &state.search;
    let hints = if search.editing {
        format!("/{}▏ Enter find · Esc drop", search.query)
    } else if !search.query.is_empty() {
        let found = match matches {
            0 => "no match".to_owned(),
            1 => "1 line".to_owned(),
            n => format!("{n} lines"),
        };
        format!("/{} {found} · n/N · Esc closes", search.query)
    } else if max == 0 {
        "/ search · Esc closes".to_owned()
    } else {
        "j/k g/G / search · Esc closes".to_owned()
    };
    let title = if max == 0 {
        format!("{title} · {hints}")
    } else {
        let first = usize::from(scroll) + 1;
        let last = (usize::from(scroll) + visible).min(rows);
        format!("{title} · {first}-{last}/{rows} · {hints}")
    };
    let lines = if search.query.is_empty() {
        lines
    } else {
        let mark = state.theme.accent().add_modifier(Modifier::REVERSED);
        lines
            .into_iter()
            .map(|l| highlight(l, &search.query, mark))
            .collect()
    };
    let mut body = Paragraph::new(lines).scroll((scroll, 0));
    if wrap {
        body = body.wrap(Wrap { trim: false });
    }
    let title = super::ascii_safe(state, title);
    frame.render_widget(body.block(popup(state, &title)), rect);
}

/// `line` with every occurrence of `query` (ignoring ASCII case) in `mark`'s style.
fn highlight<'a>(line: Line<'a>, query: &str, mark: Style) -> Line<'a> {
    let needle = query.to_ascii_lowercase();
    let mut spans = Vec::with_capacity(line.spans.len());
    for span in line.spans {
        // ASCII lowercasing keeps byte offsets, so they index the original text.
        let hay = span.content.to_ascii_lowercase();
        if needle.is_empty() || !hay.contains(&needle) {
            spans.push(span);
            continue;
        }
        let text = span.content.as_ref();
        let mut at = 0;
        for (start, _) in hay.match_indices(&needle) {
            if start < at {
                continue;
            }
            let end = start + needle.len();
            if start > at {
                spans.push(Span::styled(text[at..start].to_owned(), span.style));
            }
            spans.push(Span::styled(text[start..end].to_owned(), mark));
            at = end;
        }
        if at < text.len() {
            spans.push(Span::styled(text[at..].to_owned(), span.style));
        }
    }
    Line::from(spans).style(line.style)
}

/// The area of a card (job details, a worker), cleared; or, when what it shows is
/// gone, a box saying so and `None`.
fn card_area(
    frame: &mut Frame,
    area: Rect,
    state: &AppState,
    present: bool,
    gone: &str,
) -> Option<Rect> {
    let rect = centered(area, 90, 90);
    frame.render_widget(Clear, rect);
    if present {
        Some(rect)
    } else {
        frame.render_widget(
            Paragraph::new(gone.to_owned()).block(popup(state, "Gone")),
            rect,
        );
        None
    }
}

/// One `name value` line of a card, names right-aligned.
fn card_field(state: &AppState, name: &str, value: String) -> Line<'static> {
    styled_field(state, name, value, state.theme.text())
}

/// A card's line with its value in `style`.
pub(super) fn styled_field(
    state: &AppState,
    name: &str,
    value: String,
    style: Style,
) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{name:>10} "), state.theme.dim()),
        Span::styled(value, style),
    ])
}

fn detail(frame: &mut Frame, area: Rect, state: &AppState, id: gridx_proto::JobId) {
    let job = state.jobs.get(&id);
    let Some(rect) = card_area(
        frame,
        area,
        state,
        job.is_some(),
        "this job is no longer loaded",
    ) else {
        return;
    };
    let Some(job) = job else { return };
    let t = &state.theme;
    let field = |name: &str, value: String| card_field(state, name, value);
    // A worker host is told the job's spec, not its owner, submit time or cost: it
    // shows what it knows and says so, instead of zeros.
    let here = matches!(state.mode, crate::ui::state::Mode::WorkerHost { .. });
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("job {} ", job.job_id), t.accent()),
            Span::styled(job.status.to_string(), t.status(job.status)),
        ]),
        if here {
            field("user", "(not told to workers)".into())
        } else {
            field("user", job.user.to_string())
        },
        field(
            "spec",
            format!(
                "{} · timeout {}s · memory {} MB · priority {}{}",
                job.language,
                job.timeout_s,
                job.memory_mb,
                job.priority,
                match job.gpus {
                    0 => String::new(),
                    1 => " · 1 GPU".to_owned(),
                    n => format!(" · {n} GPUs"),
                }
            ),
        ),
        if here {
            field("submitted", "-".into())
        } else {
            field("submitted", to_rfc3339_millis(job.submitted_at))
        },
        field(
            "started",
            job.started_at
                .map(to_rfc3339_millis)
                .unwrap_or_else(|| "-".into()),
        ),
        field(
            "finished",
            job.finished_at
                .map(to_rfc3339_millis)
                .unwrap_or_else(|| "-".into()),
        ),
        field(
            "ran",
            job.duration_ms.map(human_ms).unwrap_or_else(|| "-".into()),
        ),
        field(
            "worker",
            job.worker_id
                .map(|w| format!("{} (id {w})", state.worker_label(w)))
                .unwrap_or_else(|| "-".into()),
        ),
        field("attempts", job.attempts.to_string()),
        field(
            "exit",
            job.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        field(
            "reason",
            job.reason
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
    ];
    if !here {
        lines.push(field("cost", job.cost.to_string()));
    }
    if let Some(message) = &job.message {
        lines.push(field("message", inert(message).into_owned()));
    }
    // A worker host is not told how the coordinator checks what it ran.
    if !here {
        lines.extend(super::job_check::check_lines(state, id));
    }
    let ledger: Vec<String> = state
        .ledger
        .iter()
        .filter(|e| e.job_id == Some(id))
        .map(|e| format!("{} {} (balance {})", e.kind, e.amount, e.balance_after))
        .collect();
    lines.push(field(
        "ledger",
        if here {
            "(kept by the coordinator)".into()
        } else if ledger.is_empty() {
            "-".into()
        } else {
            ledger.join(" · ")
        },
    ));
    // Lists carry no output: a client fetches it when these details open.
    let (stdout, stderr, compile) = match state.output_shown(job) {
        OutputShown::Text {
            stdout,
            stderr,
            compile,
        } => (stdout, stderr, compile.filter(|c| !c.is_empty())),
        OutputShown::Note(note) => (note, note, None),
    };
    // The compiler's words first, as a build prints them (compiled languages).
    let sections = compile
        .map(|c| ("compile output", c, false))
        .into_iter()
        .chain([
            ("stdout", stdout, job.stdout_truncated),
            ("stderr", stderr, job.stderr_truncated),
        ]);
    for (name, text, cut) in sections {
        lines.push(Line::from(Span::styled(
            format!("── {name}{}", if cut { " (truncated)" } else { "" }),
            t.dim(),
        )));
        // What the job printed is shown, never obeyed (`crate::inert`).
        for l in text.lines().take(MAX_DETAIL_LINES) {
            lines.push(Line::from(Span::styled(
                super::shown_line(l).into_owned(),
                t.text(),
            )));
        }
        let more = text.lines().count().saturating_sub(MAX_DETAIL_LINES);
        if more > 0 {
            lines.push(Line::from(Span::styled(
                format!("… {more} more lines: `gridx-tui job {id}` prints them all"),
                t.dim(),
            )));
        }
    }
    let title = if state.detail_wrap {
        "Job details · w no wrap"
    } else {
        "Job details · w wrap"
    };
    pager(frame, rect, state, lines, title, state.detail_wrap);
}

fn worker_card(frame: &mut Frame, area: Rect, state: &AppState, id: gridx_proto::WorkerId) {
    let worker = state.workers.get(&id);
    let gone = "this worker is no longer listed";
    let Some(rect) = card_area(frame, area, state, worker.is_some(), gone) else {
        return;
    };
    let Some(w) = worker else { return };
    let t = &state.theme;
    let field = |name: &str, value: String| card_field(state, name, value);
    let languages: Vec<String> = w.languages.iter().map(|l| l.to_string()).collect();
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("{} ", inert(&w.name)), t.accent()),
            Span::styled(w.status.as_str(), t.text()),
        ]),
        field("id", w.worker_id.to_string()),
        field("owner", w.owner.to_string()),
        field(
            "sandbox",
            w.executor.map_or_else(|| "-".into(), |e| e.to_string()),
        ),
        field("languages", languages.join(", ")),
        field("slots", format!("{} of {} in use", w.running, w.slots)),
        field(
            "last seen",
            w.last_seen.map_or_else(|| "-".into(), to_rfc3339_millis),
        ),
    ];
    // Right under the name, so that a short card still shows why it gets no jobs.
    let trust_style = match trust_level(&w.reliability) {
        TrustLevel::Trusted => t.ok(),
        TrustLevel::Checked => t.text(),
        TrustLevel::Quarantined => t.error(),
    };
    lines.insert(
        1,
        styled_field(
            state,
            "trust",
            trust_sentence(&w.reliability, w.worker_id),
            trust_style,
        ),
    );
    lines.insert(2, field("record", record_sentence(&w.reliability)));
    match &w.metrics {
        Some(m) => {
            lines.push(field(
                "cpu",
                format!("{:.0}% over {} cores", m.cpu_percent, m.cpu_per_core.len()),
            ));
            lines.push(field(
                "memory",
                format!("{} of {} MB", m.memory_used_mb, m.memory_total_mb),
            ));
            for g in &m.gpus {
                let util = g
                    .utilization_percent
                    .map_or_else(|| "-".into(), |u| format!("{u}%"));
                lines.push(field(
                    &format!("gpu {}", g.index),
                    // The worker reports its GPUs' names: a stranger's text.
                    format!("{} · {util}", inert(&g.name)),
                ));
            }
        }
        None => lines.push(field("metrics", "none reported yet".into())),
    }
    let jobs: Vec<&gridx_proto::api::JobSummary> = state
        .visible_jobs()
        .into_iter()
        .filter(|j| j.worker_id == Some(id))
        .collect();
    lines.push(Line::from(Span::styled(
        format!("── its jobs loaded here ({})", jobs.len()),
        t.dim(),
    )));
    for j in jobs {
        lines.push(Line::from(vec![
            Span::styled(format!("{:>8} ", j.job_id.to_string()), t.text()),
            Span::styled(format!("{:<10}", j.status.as_str()), t.status(j.status)),
            Span::styled(format!("{} · {}", j.language, j.user), t.text()),
        ]));
    }
    pager(frame, rect, state, lines, "Worker", true);
}

/// Output lines the details pager holds per stream; the rest is a command away.
const MAX_DETAIL_LINES: usize = 5_000;
