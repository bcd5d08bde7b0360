//! The Workers pane.

use super::{human_ms, pane_block, row_style, since_ms, window};
use crate::ui::state::{AppState, Pane, worker_is_down};
use gridx_proto::api::WorkerStatus;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Table};

pub fn draw(frame: &mut Frame, area: Rect, state: &AppState) {
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
        let text = Paragraph::new(Span::styled(
            "no workers yet: `gridx-server worker add`, then `gridx-tui worker`",
            t.dim(),
        ))
        .block(block);
        frame.render_widget(text, area);
        return;
    }
    let height = area.height.saturating_sub(3) as usize;
    let (start, end) = window(workers.len(), state.selected[0], height);
    let rows = workers[start..end].iter().enumerate().map(|(i, w)| {
        let status_style = match w.status {
            WorkerStatus::Online => t.ok(),
            WorkerStatus::Draining => t.warn(),
            _ => t.error(),
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
        let seen = w
            .last_seen
            .map(|at| human_ms(since_ms(state, at)))
            .unwrap_or_else(|| "never".into());
        let langs: Vec<&str> = w
            .languages
            .iter()
            .map(|l| match l {
                gridx_proto::Language::Python => "py",
                gridx_proto::Language::Node => "js",
                gridx_proto::Language::Bash => "sh",
            })
            .collect();
        let name_style = if worker_is_down(w) { t.dim() } else { t.text() };
        Row::new(vec![
            Cell::from(Span::styled(w.name.clone(), name_style)),
            Cell::from(w.owner.to_string()),
            Cell::from(Span::styled(w.status.to_string(), status_style)),
            Cell::from(langs.join(",")),
            Cell::from(format!("{}/{}", w.running, w.slots)),
            Cell::from(cpu),
            Cell::from(mem),
            Cell::from(seen),
        ])
        .style(row_style(state, Pane::Workers, start + i))
    });
    let header = Row::new([
        "NAME", "OWNER", "STATUS", "LANGS", "SLOTS", "CPU", "MEM", "SEEN",
    ])
    .style(t.dim());
    let widths = [
        Constraint::Min(8),
        Constraint::Min(6),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Length(6),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block)
            .column_spacing(1),
        area,
    );
}
