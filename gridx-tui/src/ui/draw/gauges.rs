//! The Gauges pane: CPU total and per core, memory, and each GPU, with short
//! histories. Many GPUs collapse to one line each, or to one aggregate line when the
//! pane is too short.

use super::pane_block;
use crate::inert::inert;
use crate::ui::state::{AppState, History, Mode, Pane};
use gridx_proto::metrics::HostMetrics;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};

/// Bar glyphs for the ASCII mode's sparklines.
const ASCII_BARS: symbols::bar::Set = symbols::bar::Set {
    full: "#",
    seven_eighths: "#",
    three_quarters: "=",
    five_eighths: "=",
    half: "-",
    three_eighths: "-",
    one_quarter: ".",
    one_eighth: ".",
    empty: " ",
};

/// A text gauge `[#####.....] 42%` that works in any terminal, sized to `width`.
fn bar(percent: f64, width: usize, ascii: bool) -> String {
    let width = width.max(4);
    let filled = ((percent.clamp(0.0, 100.0) / 100.0) * width as f64).round() as usize;
    let (full, empty) = if ascii { ('#', '.') } else { ('█', '░') };
    let mut s = String::with_capacity(width * 3);
    s.extend(std::iter::repeat_n(full, filled));
    s.extend(std::iter::repeat_n(empty, width - filled));
    s
}

fn gauge_line<'a>(
    state: &AppState,
    label: &str,
    percent: f64,
    detail: String,
    width: u16,
) -> Line<'a> {
    let t = &state.theme;
    let bar_width = (width as usize)
        .saturating_sub(label.len() + detail.len() + 8)
        .clamp(4, 40);
    Line::from(vec![
        Span::styled(format!("{label:<5}"), t.text()),
        Span::styled(bar(percent, bar_width, state.ascii), t.gauge(percent)),
        Span::styled(format!(" {percent:>3.0}% "), t.text()),
        Span::styled(detail, t.dim()),
    ])
}

fn sparkline<'a>(state: &AppState, history: &'a History, width: u16) -> Sparkline<'a> {
    let data: Vec<u64> = history
        .values
        .iter()
        .rev()
        .take(width as usize)
        .rev()
        .copied()
        .collect();
    let line = Sparkline::default()
        .data(data)
        .max(100)
        .style(state.theme.dim());
    if state.ascii {
        line.bar_set(ASCII_BARS)
    } else {
        line
    }
}

pub fn draw(frame: &mut Frame, area: Rect, state: &AppState) {
    let t = &state.theme;
    let source = state.gauge_metrics();
    let title = match (&state.mode, &source) {
        (Mode::WorkerHost { .. }, _) => "Gauges · this machine".to_owned(),
        (Mode::Client, Some((name, _))) => match state.gauges_stale() {
            Some(why) => format!("Gauges · {name} ({why})"),
            None => format!("Gauges · {name}"),
        },
        (Mode::Client, None) => "Gauges".to_owned(),
    };
    let block = pane_block(state, Pane::Gauges, title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some((_, metrics)) = source else {
        frame.render_widget(
            Paragraph::new(Span::styled("no metrics yet (select a worker)", t.dim())),
            inner,
        );
        return;
    };
    draw_metrics(frame, inner, state, metrics);
}

fn draw_metrics(frame: &mut Frame, area: Rect, state: &AppState, m: &HostMetrics) {
    let t = &state.theme;
    let mut lines: Vec<Line> = Vec::new();
    let cores = m.cpu_per_core.len();
    lines.push(gauge_line(
        state,
        "CPU",
        f64::from(m.cpu_percent),
        format!("{cores} cores"),
        area.width,
    ));
    // Per-core: one compact row of small bars, as many cores as fit.
    if cores > 0 {
        let glyphs: &[char] = if state.ascii {
            &['.', '.', '-', '-', '=', '=', '#', '#']
        } else {
            &['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█']
        };
        let fit = (area.width as usize).saturating_sub(6);
        let row: String = m
            .cpu_per_core
            .iter()
            .take(fit)
            .map(|p| glyphs[((f64::from(*p) / 100.0) * 7.0).round().clamp(0.0, 7.0) as usize])
            .collect();
        let more = if cores > fit { "…" } else { "" };
        lines.push(Line::from(vec![
            Span::styled("core ", t.dim()),
            Span::styled(row, t.text()),
            Span::raw(more),
        ]));
    }
    lines.push(gauge_line(
        state,
        "MEM",
        f64::from(m.memory_percent()),
        format!("{}/{} MB", m.memory_used_mb, m.memory_total_mb),
        area.width,
    ));
    let gpu_rows_left = (area.height as usize).saturating_sub(lines.len() + 1);
    if m.gpus.is_empty() {
        lines.push(Line::from(Span::styled(
            // The worker wrote the note: shown inert.
            m.gpu_note
                .as_deref()
                .map_or_else(|| "no GPU".into(), |n| inert(n).into_owned()),
            t.dim(),
        )));
    } else if m.gpus.len() <= gpu_rows_left {
        let holders = state.gpu_holders();
        for g in &m.gpus {
            let util = g.utilization_percent.map_or(0.0, f64::from);
            let mem = match (g.memory_used_mb, g.memory_total_mb) {
                (Some(u), Some(t)) => format!("{:.0}/{:.0}G", u as f64 / 1024.0, t as f64 / 1024.0),
                _ => "mem n/a".into(),
            };
            let temp = g
                .temperature_c
                .map(|c| format!(" {c}C"))
                .unwrap_or_default();
            let power = g.power_w.map(|w| format!(" {w:.0}W")).unwrap_or_default();
            // Lent GPUs say which job holds them, first, where a narrow pane keeps
            // it; GPUs not lent say nothing more.
            let holder = match holders.get(&g.index) {
                Some(Some(job)) => format!("job {job} "),
                Some(None) => "free ".to_owned(),
                None => String::new(),
            };
            lines.push(gauge_line(
                state,
                &format!("GPU{}", g.index),
                util,
                format!("{holder}{mem}{temp}{power}"),
                area.width,
            ));
        }
    } else {
        // Too many GPUs for the pane: one aggregate line.
        let n = m.gpus.len() as f64;
        let util = m
            .gpus
            .iter()
            .map(|g| g.utilization_percent.map_or(0.0, f64::from))
            .sum::<f64>()
            / n;
        let hottest = m
            .gpus
            .iter()
            .filter_map(|g| g.temperature_c)
            .max()
            .map(|c| format!(" max {c}C"))
            .unwrap_or_default();
        let power: f32 = m.gpus.iter().filter_map(|g| g.power_w).sum();
        lines.push(gauge_line(
            state,
            "GPUs",
            util,
            format!("{} GPUs avg{hottest} {power:.0}W", m.gpus.len()),
            area.width,
        ));
    }
    let used = lines.len() as u16;
    let [text_area, spark_area] = Layout::vertical([
        Constraint::Length(used.min(area.height)),
        Constraint::Min(0),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(lines), text_area);
    if spark_area.height >= 1 && !state.cpu_history.values.is_empty() {
        let [label, spark] =
            Layout::horizontal([Constraint::Length(5), Constraint::Min(0)]).areas(spark_area);
        frame.render_widget(Paragraph::new(Span::styled("cpu", t.dim())), label);
        frame.render_widget(sparkline(state, &state.cpu_history, spark.width), spark);
    }
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_fill_in_proportion() {
        assert_eq!(bar(50.0, 10, true), "#####.....");
        assert_eq!(bar(0.0, 4, true), "....");
        assert_eq!(bar(150.0, 4, true), "####");
    }
}
