//! The Console pane: the log of commands and results, and the command line.

use super::pane_block;
use crate::ui::state::{AppState, LogLevel, Pane};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use unicode_width::UnicodeWidthChar;

pub fn draw(frame: &mut Frame, area: Rect, state: &AppState) {
    let t = &state.theme;
    let scroll = state.console.scroll;
    let title = if scroll == 0 {
        "Console".to_owned()
    } else {
        format!("Console · {scroll} newer below (G)")
    };
    let mut block = pane_block(state, Pane::Console, title);
    // Tab's candidates show under the line, the one on it marked; the log keeps only
    // what was run.
    if let Some(menu) = &state.console.completion {
        let mut spans = vec![Span::styled(" Tab ", t.dim())];
        for (i, line) in menu.candidates.iter().enumerate() {
            let word = line.rsplit(' ').next().unwrap_or(line);
            let style = if menu.at == Some(i) {
                t.accent()
            } else {
                t.text()
            };
            spans.push(Span::styled(format!("{word} "), style));
        }
        block = block.title_bottom(Line::from(spans));
    }
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
            // Pushed inert already; tabs still need columns.
            Line::from(Span::styled(super::shown_line(text), style))
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), log_area);
    let prompt = if state.console.editing {
        t.accent()
    } else {
        t.dim()
    };
    let editing = state.console.editing;
    let width = usize::from(input_area.width.saturating_sub(2));
    let (shown, cursor_x, scrolled) = if editing || !state.console.input.is_empty() {
        input_window(&state.console.input, state.console.cursor, width)
    } else {
        (
            "press : to type a command (help lists them)".to_owned(),
            0,
            false,
        )
    };
    let text_style = if editing { t.text() } else { t.dim() };
    // `«` says the line goes on to the left of what fits.
    let prompt_text = if scrolled { "« " } else { "> " };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(prompt_text, prompt),
            Span::styled(shown, text_style),
        ])),
        input_area,
    );
    if editing {
        let x = input_area
            .x
            .saturating_add(2)
            .saturating_add(u16::try_from(cursor_x).unwrap_or(u16::MAX));
        frame.set_cursor_position(Position::new(
            x.min(input_area.right().saturating_sub(1)),
            input_area.y,
        ));
    }
}

/// The part of `input` that fits in `width` columns with the cursor (a character
/// index) in view, the cursor's column in it, and whether text was cut on the left.
/// Long lines scroll sideways as a shell's do: the cursor stays at the right edge
/// while typing past it; a line that goes on to the right ends in `…`.
fn input_window(input: &str, cursor: usize, width: usize) -> (String, usize, bool) {
    let width = width.max(2);
    let chars: Vec<(char, usize)> = input.chars().map(|c| (c, c.width().unwrap_or(0))).collect();
    let cursor = cursor.min(chars.len());
    let before: usize = chars[..cursor].iter().map(|(_, w)| w).sum();
    // The first character shown: as few cut as keeps the cursor's cell on screen.
    let mut first = 0;
    let mut cut = 0;
    while before - cut >= width && first < cursor {
        cut += chars[first].1;
        first += 1;
    }
    let mut shown = String::new();
    let mut used = 0;
    for (i, (c, w)) in chars.iter().enumerate().skip(first) {
        let last_cell = used + w >= width;
        if used + w > width || (last_cell && i + 1 < chars.len() && i >= cursor) {
            shown.push('…');
            break;
        }
        shown.push(*c);
        used += w;
    }
    (shown, before - cut, first > 0)
}

#[cfg(test)]
mod tests {
    use super::input_window;

    #[test]
    fn a_short_line_shows_whole_with_the_cursor_where_it_is() {
        assert_eq!(input_window("jobs", 2, 20), ("jobs".into(), 2, false));
        assert_eq!(input_window("", 0, 20), ("".into(), 0, false));
    }

    #[test]
    fn a_long_line_scrolls_to_keep_the_cursor_in_view() {
        let line = "submit --lang python --code 'print(1)'";
        // Typing at the end: the tail shows, the cursor on the last column.
        let (shown, x, cut) = input_window(line, line.len(), 10);
        assert_eq!((shown.as_str(), x, cut), ("print(1)'", 9, true));
        // Home: the head shows and the rest is marked as going on.
        let (shown, x, cut) = input_window(line, 0, 10);
        assert_eq!((shown.as_str(), x, cut), ("submit --…", 0, false));
        // The cursor stays visible wherever it is.
        for at in 0..=line.len() {
            let (shown, x, _) = input_window(line, at, 10);
            assert!(x < 10, "cursor {at} at column {x}");
            assert!(shown.chars().count() <= 10, "{shown:?}");
        }
    }

    #[test]
    fn wide_characters_count_two_columns() {
        let (shown, x, cut) = input_window("日本語のテキスト", 8, 6);
        assert!(cut);
        assert_eq!(x, 4, "two wide characters before the cursor: {shown:?}");
    }
}
