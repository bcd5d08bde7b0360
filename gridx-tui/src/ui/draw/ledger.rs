//! The Credit ledger pane.

use super::{columns_that_fit, kept, pane_block, position, row_style, table, window};
use crate::ui::state::{AppState, Pane};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row};

/// Columns from the most important: a narrow pane gives up the last ones first.
const PRIORITY: [usize; 6] = [2, 3, 1, 4, 5, 0];
const MIN_WIDTH: [u16; 6] = [8, 6, 8, 7, 6, 8];

pub fn draw(frame: &mut Frame, area: Rect, state: &AppState) {
    let t = &state.theme;
    let at = position(state.selected[Pane::Ledger.index()], state.ledger.len());
    let title = match state.balance {
        Some(b) => format!("Ledger {at} · bal {b}"),
        None => format!("Ledger {at}"),
    };
    let block = pane_block(state, Pane::Ledger, title);
    if state.ledger.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled("no ledger entries", t.dim())).block(block),
            area,
        );
        return;
    }
    // The amount and the job stay longest; an operator's reason (NOTE) goes before
    // the time (UTC, fixed width), which shows only when the pane has room.
    let keep = columns_that_fit(area.width.saturating_sub(2), &MIN_WIDTH, &PRIORITY);
    let note_shown = keep.contains(&5);
    let height = area.height.saturating_sub(3) as usize;
    state.set_page_rows(Pane::Ledger, height);
    let (start, end) = window(state.ledger.len(), state.selected[3], height);
    let rows = state
        .ledger
        .iter()
        .skip(start)
        .take(end - start)
        .enumerate()
        .map(|(i, e)| {
            let amount_style = if e.amount.is_negative() {
                t.warn()
            } else {
                t.ok()
            };
            let amount = if e.amount.is_negative() {
                e.amount.to_string()
            } else {
                format!("+{}", e.amount)
            };
            let cells = [
                // `14:03:07`: fixed width, in the coordinator's UTC.
                Cell::from(format!(
                    "{:02}:{:02}:{:02}",
                    e.at.hour(),
                    e.at.minute(),
                    e.at.second()
                )),
                Cell::from(e.kind.to_string()),
                Cell::from(Span::styled(amount, amount_style)),
                // A hand-made grant or debit has no job; in a pane too narrow for
                // NOTE its reason takes the job's place.
                Cell::from(match (e.job_id, &e.reason) {
                    (Some(j), _) => j.to_string(),
                    (None, Some(r)) if !note_shown => crate::inert::inert(r).into_owned(),
                    (None, _) => "-".into(),
                }),
                Cell::from(e.balance_after.to_string()),
                // The operator's reason for a grant or debit by hand (a stranger's
                // text: inert).
                Cell::from(
                    e.reason
                        .as_deref()
                        .map(|r| crate::inert::inert(r).into_owned())
                        .unwrap_or_default(),
                ),
            ];
            Row::new(kept(cells, &keep)).style(row_style(state, Pane::Ledger, start + i))
        });
    let header = Row::new(kept(
        ["TIME", "KIND", "AMOUNT", "JOB", "AFTER", "NOTE"],
        &keep,
    ))
    .style(t.dim());
    let widths = [
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(8),
        // Holding a reason when NOTE is not shown: then it takes what is left.
        if note_shown {
            Constraint::Length(7)
        } else {
            Constraint::Min(7)
        },
        Constraint::Length(9),
        Constraint::Min(8),
    ];
    frame.render_widget(table(rows, kept(widths, &keep), header, block), area);
}
