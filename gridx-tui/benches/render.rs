//! Rendering the whole dashboard at 160x48 with 10,000 jobs and 1,000 workers.
//! `cargo bench -p gridx-tui --bench render`; `cargo test` runs it once as a check.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use criterion::{Criterion, criterion_group, criterion_main};
use gridx_tui::ui::draw;
use gridx_tui::ui::fixtures::large_state;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::hint::black_box;

fn render(c: &mut Criterion) {
    let state = large_state(10_000, 1_000);
    for (width, height) in [(160, 48), (80, 24)] {
        let mut terminal =
            Terminal::new(TestBackend::new(width, height)).unwrap_or_else(|e| panic!("{e}"));
        let name = format!("full screen {width}x{height}, 10k jobs, 1k workers");
        c.bench_function(&name, |b| {
            b.iter(|| {
                terminal
                    .draw(|f| draw::draw(f, black_box(&state)))
                    .unwrap_or_else(|e| panic!("{e}"));
            })
        });
    }
}

criterion_group!(benches, render);
criterion_main!(benches);
