//! The Job queue pane.

use super::{
    columns_that_fit, human_ms, kept, pane_block, position, row_style, since_ms, table, window,
};
use crate::ui::state::{AppState, Mode, Pane};
use gridx_proto::JobStatus;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};

const TITLES: [&str; 7] = [
    "ID",
    "USER",
    "LANG",
    "STATUS",
    "TRY",
    "      TIME",
    "WORKER",
];
/// Columns from the most important: a narrow pane gives up the last ones first.
const PRIORITY: [usize; 7] = [0, 3, 5, 1, 2, 6, 4];
const MIN_WIDTH: [u16; 7] = [7, 8, 6, 9, 3, 10, 6];

pub fn draw(frame: &mut Frame, area: Rect, state: &AppState) {
    let t = &state.theme;
    let jobs = state.visible_jobs();
    let running = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Running)
        .count();
    let queued = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Queued)
        .count();
    let title = match state.mode {
        Mode::Client => format!(
            "Jobs {} · {running} running · {queued} queued · sort {}{}",
            position(state.selected[Pane::Jobs.index()], jobs.len()),
            state.sort.label(),
            if state.sort_reversed { " ↑" } else { "" }
        ),
        Mode::WorkerHost { .. } => format!("This worker's jobs · {running} running"),
    };
    let block = pane_block(state, Pane::Jobs, title);
    if jobs.is_empty() {
        let hint = if state.filter.is_empty() {
            "no jobs yet: press : and type `submit --lang python --code 'print(1)'`"
        } else {
            "no job matches the filter"
        };
        // Wrapped: at 80 columns the hint is wider than the pane.
        frame.render_widget(
            Paragraph::new(Span::styled(hint, t.dim()))
                .wrap(Wrap { trim: true })
                .block(block),
            area,
        );
        return;
    }
    let keep = columns_that_fit(area.width.saturating_sub(2), &MIN_WIDTH, &PRIORITY);
    let height = area.height.saturating_sub(3) as usize;
    state.set_page_rows(Pane::Jobs, height);
    let (start, end) = window(jobs.len(), state.selected[1], height);
    let rows = jobs[start..end].iter().enumerate().map(|(i, j)| {
        let time = match (j.status, j.duration_ms, j.started_at) {
            (_, Some(ms), _) => human_ms(ms),
            (JobStatus::Running, None, Some(started)) => human_ms(since_ms(state, started)),
            _ => format!("{} ago", human_ms(since_ms(state, j.submitted_at))),
        };
        // Right-aligned, so the units line up down the column.
        let time = format!("{time:>10}");
        let cells = [
            Cell::from(j.job_id.to_string()),
            Cell::from(j.user.to_string()),
            Cell::from(j.language.to_string()),
            Cell::from(Span::styled(j.status.to_string(), t.status(j.status))),
            Cell::from(j.attempts.to_string()),
            Cell::from(time),
            Cell::from(
                j.worker_id
                    .map(|w| state.worker_label(w))
                    .unwrap_or_else(|| "-".into()),
            ),
        ];
        Row::new(kept(cells, &keep)).style(row_style(state, Pane::Jobs, start + i))
    });
    let header = Row::new(kept(TITLES, &keep)).style(t.dim());
    let widths = [
        Constraint::Length(7),
        Constraint::Max(12),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(3),
        Constraint::Length(10),
        Constraint::Fill(1),
    ];
    frame.render_widget(table(rows, kept(widths, &keep), header, block), area);
}
