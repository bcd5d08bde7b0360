//! The Console pane: the log of commands and results, and the command line.

use super::pane_block;
use crate::ui::state::{AppState, LogLevel, Pane};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn draw(frame: &mut Frame, area: Rect, state: &AppState) {
    let t = &state.theme;
    let scroll = state.console.scroll;
    let title = if scroll == 0 {
        "Console".to_owned()
    } else {
        format!("Console · {scroll} newer below (G)")
    };
    let block = pane_block(state, Pane::Console, title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    let [log_area, input_area] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner);
    let lines: Vec<Line> = state
        .console
        .log
        .iter()
        .rev()
        .skip(scroll)
        .take(log_area.height as usize)
        .rev()
        .map(|(level, text)| {
            let style = match level {
                LogLevel::Info => t.dim(),
                LogLevel::Output => t.text(),
                LogLevel::Error => t.error(),
            };
            Line::from(Span::styled(text.clone(), style))
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), log_area);
    let prompt = if state.console.editing {
        t.accent()
    } else {
        t.dim()
    };
    let input = if state.console.editing || !state.console.input.is_empty() {
        state.console.input.clone()
    } else {
        "press : to type a command (help lists them)".into()
    };
    let text_style = if state.console.editing {
        t.text()
    } else {
        t.dim()
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("> ", prompt),
            Span::styled(input, text_style),
        ])),
        input_area,
    );
    if state.console.editing {
        let x = input_area
            .x
            .saturating_add(2)
            .saturating_add(state.console.cursor as u16);
        frame.set_cursor_position(Position::new(
            x.min(input_area.right().saturating_sub(1)),
            input_area.y,
        ));
    }
}
