//! Drawing: the whole screen from the state, nothing else. Pure functions of
//! `AppState` into a ratatui `Frame`, so snapshot tests render them headless.

mod console;
mod gauges;
mod job_check;
mod jobs;
mod ledger;
mod overlays;
mod workers;

use super::state::{AppState, Connection, Mode, Pane};
use gridx_proto::protocol::ExecutorKind;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::symbols::border;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph, Row, Table};

/// ASCII borders for terminals without box-drawing glyphs.
const ASCII_BORDER: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

/// Text with the few non-ASCII glyphs the dashboard uses replaced in ASCII mode.
pub(crate) fn ascii_safe(state: &AppState, text: String) -> String {
    if !state.ascii {
        return text;
    }
    text.replace('·', "-")
        .replace('●', "*")
        .replace('○', "o")
        .replace('…', "...")
        .replace('↑', "up")
        .replace('↓', "down")
        .replace('▏', "|")
        .replace('←', "left")
        .replace('→', "right")
        .replace('─', "-")
}

/// One line of text a stranger wrote (job output, the console's log) as a pane draws
/// it: inert (`crate::inert`), and each tab as spaces to the next multiple of 8
/// columns, as a terminal would: ratatui drops a tab, which joined the words it
/// parted.
pub(crate) fn shown_line(text: &str) -> std::borrow::Cow<'_, str> {
    use unicode_width::UnicodeWidthChar;
    let text = crate::inert::inert(text);
    if !text.contains('\t') {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut column = 0;
    for c in text.chars() {
        if c == '\t' {
            let to = (column / 8 + 1) * 8;
            out.extend(std::iter::repeat_n(' ', to - column));
            column = to;
        } else {
            out.push(c);
            column += c.width().unwrap_or(0);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A pane's frame, focused or not, in the state's theme and glyph set.
pub(crate) fn pane_block<'a>(state: &AppState, pane: Pane, title: String) -> Block<'a> {
    let title = ascii_safe(state, title);
    let focused = state.focus == pane;
    let number = Pane::ALL
        .iter()
        .position(|p| *p == pane)
        .map_or(0, |i| i + 1);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(state.theme.border(focused))
        .title(Span::styled(
            format!(" {number} {title} "),
            state.theme.title(focused),
        ));
    if state.ascii {
        block.border_set(ASCII_BORDER)
    } else if focused {
        block.border_type(BorderType::Thick)
    } else {
        block.border_type(BorderType::Rounded)
    }
}

/// A pane's table: its header and rows in its block, with the spacing all tables use.
pub(crate) fn table<'a>(
    rows: impl IntoIterator<Item = Row<'a>>,
    widths: impl IntoIterator<Item = Constraint>,
    header: Row<'a>,
    block: Block<'a>,
) -> Table<'a> {
    Table::new(rows, widths)
        .header(header)
        .block(block)
        .column_spacing(1)
}

/// The columns of a table that fit in `width` cells, by their place in the full row:
/// `priority` lists them from the most important, `min_width` is what each needs; the
/// first two always stay, and a column too wide to fit leaves room for narrower ones.
pub(crate) fn columns_that_fit(width: u16, min_width: &[u16], priority: &[usize]) -> Vec<usize> {
    let mut used = 0u16;
    let mut kept = Vec::new();
    for &c in priority {
        let need = min_width.get(c).copied().unwrap_or(1) + u16::from(!kept.is_empty());
        if kept.len() >= 2 && used + need > width {
            continue;
        }
        used += need;
        kept.push(c);
    }
    kept.sort_unstable();
    kept
}

/// The items of a full row (cells, titles, widths) whose columns are in `keep`.
pub(crate) fn kept<T>(columns: impl IntoIterator<Item = T>, keep: &[usize]) -> Vec<T> {
    columns
        .into_iter()
        .enumerate()
        .filter(|(c, _)| keep.contains(c))
        .map(|(_, column)| column)
        .collect()
}

/// Rows `[start, end)` of `total` to show in `height` lines so that `selected` is
/// visible (kept near the middle when scrolling).
pub(crate) fn window(total: usize, selected: usize, height: usize) -> (usize, usize) {
    if total <= height || height == 0 {
        return (0, total.min(height.max(total)));
    }
    let half = height / 2;
    let start = selected.saturating_sub(half).min(total - height);
    (start, start + height)
}

/// Where the selection is in a list: `7/43`, or the count alone when it is empty.
pub(crate) fn position(selected: usize, total: usize) -> String {
    if total == 0 {
        "0".into()
    } else {
        format!("{}/{total}", selected.min(total - 1) + 1)
    }
}

/// 850ms, 12s, 3m04s, 2h05m, 3d04h.
pub(crate) fn human_ms(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

pub(crate) fn since_ms(state: &AppState, at: gridx_proto::time_fmt::Timestamp) -> u64 {
    let diff = state.now - at;
    u64::try_from(diff.whole_milliseconds()).unwrap_or(0)
}

/// Draws the whole dashboard.
pub fn draw(frame: &mut Frame, state: &AppState) {
    let area = frame.area();
    if area.width < 30 || area.height < 8 {
        let text = Paragraph::new("terminal too small for the dashboard; enlarge it or press q");
        frame.render_widget(text, area);
        return;
    }
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, state);
    let console_height = if body.height >= 30 {
        10
    } else {
        (body.height / 4).max(4)
    };
    let [top, middle, bottom] = Layout::vertical([
        Constraint::Percentage(35),
        Constraint::Min(4),
        Constraint::Length(console_height),
    ])
    .areas(body);
    let [workers, gauges] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
    let [jobs, ledger] =
        Layout::horizontal([Constraint::Percentage(64), Constraint::Percentage(36)]).areas(middle);
    workers::draw(frame, workers, state);
    gauges::draw(frame, gauges, state);
    jobs::draw(frame, jobs, state);
    ledger::draw(frame, ledger, state);
    console::draw(frame, bottom, state);
    draw_footer(frame, footer, state);
    overlays::draw(frame, area, state);
}

fn draw_header(frame: &mut Frame, area: Rect, state: &AppState) {
    let t = &state.theme;
    // Segments by importance: what the grid is and whether it is reachable (with the
    // reason) come first; the address, user and balance go first when space runs out.
    let mut keep: Vec<(u8, Vec<Span>)> = vec![(
        0,
        vec![
            Span::styled(" Grid-X ", t.accent().add_modifier(Modifier::REVERSED)),
            Span::raw(" "),
        ],
    )];
    match &state.mode {
        Mode::Client => {
            keep.push((3, vec![Span::styled(state.server.clone(), t.dim())]));
            if let Some(user) = &state.user {
                keep.push((
                    4,
                    vec![Span::raw("  user "), Span::styled(user.clone(), t.text())],
                ));
            }
            if let Some(balance) = state.balance {
                keep.push((
                    2,
                    vec![
                        Span::raw("  balance "),
                        Span::styled(balance.to_string(), t.accent()),
                    ],
                ));
            }
        }
        Mode::WorkerHost {
            executor,
            name,
            weaknesses,
            ..
        } => {
            keep.push((
                3,
                vec![Span::raw("worker "), Span::styled(name.clone(), t.text())],
            ));
            let style = if !executor.is_sandboxed() {
                t.error().add_modifier(Modifier::REVERSED)
            } else if weaknesses.is_empty() {
                t.ok()
            } else {
                t.warn().add_modifier(Modifier::REVERSED)
            };
            let label = match executor {
                ExecutorKind::Unsandboxed => "UNSANDBOXED (trusted jobs only)".to_owned(),
                other if !weaknesses.is_empty() => format!("{other} WEAK"),
                other => other.to_string(),
            };
            keep.push((1, vec![Span::raw("  sandbox "), Span::styled(label, style)]));
        }
    }
    let connection = match &state.connection {
        Connection::Connecting => Span::styled("connecting…", t.warn()),
        Connection::Online => Span::styled("● live", t.ok()),
        Connection::Offline { reason, retry_in_s } => {
            let retry = retry_in_s
                .map(|s| format!(", retrying in {s}s"))
                .unwrap_or_default();
            // The reason may quote the coordinator or a proxy: shown inert.
            let reason = crate::inert::inert(reason);
            Span::styled(format!("○ offline{retry}: {reason}"), t.error())
        }
    };
    keep.push((0, vec![Span::raw("  "), connection]));
    if state.insecure {
        keep.push((0, vec![Span::styled("  insecure", t.error())]));
    }
    if state.read_only {
        keep.push((1, vec![Span::styled("  read-only", t.warn())]));
    }
    let spans = fit(keep, area.width);
    let spans: Vec<Span> = if state.ascii {
        spans
            .into_iter()
            .map(|s| Span::styled(ascii_safe(state, s.content.into_owned()), s.style))
            .collect()
    } else {
        spans
    };
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Drops the least important segments (highest number first, the later of equals)
/// until the rest fits in `width`, keeping their order.
fn fit(mut segments: Vec<(u8, Vec<Span<'static>>)>, width: u16) -> Vec<Span<'static>> {
    let len = |segments: &[(u8, Vec<Span>)]| -> usize {
        segments
            .iter()
            .flat_map(|(_, s)| s.iter())
            .map(|s| s.width())
            .sum()
    };
    while len(&segments) > usize::from(width) {
        let Some(drop) = segments
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| *p > 0)
            .max_by_key(|(i, (p, _))| (*p, *i))
            .map(|(i, _)| i)
        else {
            break;
        };
        segments.remove(drop);
    }
    segments.into_iter().flat_map(|(_, s)| s).collect()
}

fn draw_footer(frame: &mut Frame, area: Rect, state: &AppState) {
    let t = &state.theme;
    let hint = if state.console.editing {
        "Enter run · Tab complete · ↑↓ history · Alt-b/f word · Ctrl-W delete word · Esc leave"
            .to_owned()
    } else if state.filter_editing {
        format!("filter: {}▏ Enter keep · Esc clear", state.filter)
    } else {
        footer_keys(state, usize::from(area.width))
    };
    frame.render_widget(
        Paragraph::new(Span::styled(ascii_safe(state, hint), t.dim())),
        area,
    );
}

/// The keys of the focused pane, most useful first, as many as fit: an active filter
/// first of all (it hides rows), then help and quit, then what the pane does.
fn footer_keys(state: &AppState, width: usize) -> String {
    let mut items: Vec<String> = Vec::new();
    if !state.filter.is_empty() {
        items.push(format!("filter \"{}\" (Esc clears)", state.filter));
    }
    items.extend(["? help".to_owned(), "q quit".to_owned()]);
    match state.focus {
        Pane::Jobs => {
            items.push("Enter details".into());
            items.push("c cancel".into());
            items.push(format!("s sort ({})", state.sort.label()));
        }
        Pane::Workers => items.push("Enter card".into()),
        Pane::Ledger => items.push("Enter its job".into()),
        Pane::Console => items.push("j/k scroll".into()),
        Pane::Gauges => {}
    }
    items.push(": console".into());
    if state.focus == Pane::Jobs {
        items.push("S reverse".into());
    }
    if state.announced.is_some() {
        items.push("o open finished".into());
    }
    items.extend(["j/k move".into(), "Tab pane".into(), "/ filter".into()]);
    let mut line = String::new();
    for item in items {
        let extra = if line.is_empty() { 0 } else { 3 };
        if line.chars().count() + extra + item.chars().count() > width {
            continue;
        }
        if !line.is_empty() {
            line.push_str(" · ");
        }
        line.push_str(&item);
    }
    line
}

/// The style of a selected row, or none.
pub(crate) fn row_style(state: &AppState, pane: Pane, index: usize) -> Style {
    let selected = state.selected[Pane::ALL.iter().position(|p| *p == pane).unwrap_or(0)];
    if index == selected && (state.focus == pane || pane == Pane::Jobs) {
        state.theme.selected()
    } else {
        Style::default()
    }
}

#[cfg(test)]
mod tests {
    use super::{human_ms, window};

    #[test]
    fn durations_read_like_a_person_would_write_them() {
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(12_400), "12s");
        assert_eq!(human_ms(184_000), "3m04s");
        assert_eq!(human_ms(7_500_000), "2h05m");
        assert_eq!(human_ms(100 * 3600 * 1000), "4d04h");
    }

    #[test]
    fn plain_http_outside_loopback_says_insecure_in_the_header() {
        let header = |insecure: bool| {
            let mut state = crate::ui::fixtures::client_state();
            state.insecure = insecure;
            let backend = ratatui::backend::TestBackend::new(120, 24);
            let mut terminal = ratatui::Terminal::new(backend).unwrap();
            terminal.draw(|f| super::draw(f, &state)).unwrap();
            let buffer = terminal.backend().buffer().clone();
            let cells: Vec<String> = (0..120)
                .map(|x| buffer[(x, 0)].symbol().to_owned())
                .collect();
            let red = cells
                .windows(8)
                .position(|w| w.concat() == "insecure")
                .map(|at| buffer[(u16::try_from(at).unwrap(), 0)].fg);
            (cells.concat(), red)
        };
        let (line, red) = header(true);
        let theme = crate::ui::fixtures::client_state().theme;
        assert_eq!(red, theme.error().fg, "{line}");
        assert!(!header(false).0.contains("insecure"));
    }

    #[test]
    fn a_shown_line_is_inert_with_tabs_as_spaces() {
        use super::shown_line;
        assert_eq!(shown_line("a\tb"), "a       b");
        assert_eq!(shown_line("12345678\tx"), "12345678        x");
        assert_eq!(
            shown_line("日本\tx"),
            "日本    x",
            "wide characters count two"
        );
        assert_eq!(shown_line("\x1b[2J\tx"), "^[[2J   x");
        assert!(matches!(
            shown_line("plain"),
            std::borrow::Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn the_window_keeps_the_selection_visible() {
        assert_eq!(window(5, 4, 10), (0, 5));
        assert_eq!(window(100, 0, 10), (0, 10));
        assert_eq!(window(100, 50, 10), (45, 55));
        assert_eq!(window(100, 99, 10), (90, 100));
    }
}
