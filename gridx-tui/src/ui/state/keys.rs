//! The reducer's key handling: typing modes (console line, filter) first, then
//! overlays, then the key map's actions on the panes.

use super::console::LogLevel;
use super::model::{AppState, Mode, Overlay, PagerSearch, Pane};
use super::reducer::Effect;
use crate::commands::completion::complete;
use crate::commands::{ConsoleCommand, parse_line};
use crate::ui::keymap::KeyAction;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

impl AppState {
    pub(super) fn on_key(&mut self, key: KeyEvent, effects: &mut Vec<Effect>) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        // Ctrl-C quits from every state (an overlay, a search, the filter, a
        // confirmation), as k9s's does; only on the console line it first clears the
        // line, as a shell does.
        let ctrl_c =
            key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl_c && !self.console.editing {
            self.should_quit = true;
            effects.push(Effect::Quit);
            return;
        }
        // Typing modes take every key first.
        if self.console.editing {
            self.console_key(key, effects);
            return;
        }
        if self.filter_editing {
            match key.code {
                KeyCode::Esc => {
                    self.filter.clear();
                    self.filter_editing = false;
                }
                KeyCode::Enter => self.filter_editing = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                    self.filter.push(c)
                }
                _ => {}
            }
            return;
        }
        match self.overlay.clone() {
            Overlay::Help | Overlay::Detail(_) | Overlay::Worker(_) => {
                self.overlay_key(key);
                return;
            }
            Overlay::ConfirmCancel(id) => {
                match key.code {
                    KeyCode::Char('y') | KeyCode::Char('Y') => {
                        effects.push(Effect::RunCommand(ConsoleCommand::Cancel { id }));
                        self.log(LogLevel::Info, format!("> cancel {id}"));
                    }
                    _ => self.log(LogLevel::Info, format!("kept job {id}")),
                }
                self.overlay = Overlay::None;
                return;
            }
            Overlay::None => {}
        }
        if key.code == KeyCode::Esc {
            self.filter.clear();
            return;
        }
        let Some(action) = self.keymap.action(&key) else {
            return;
        };
        let focus = self.focus.index();
        // The focused console pane scrolls its log: k/g older, j/G newer.
        if self.focus == Pane::Console {
            let c = &mut self.console;
            let oldest = c.log.len().saturating_sub(1);
            match action {
                KeyAction::Up => c.scroll = (c.scroll + 1).min(oldest),
                KeyAction::Down => c.scroll = c.scroll.saturating_sub(1),
                KeyAction::PageUp => c.scroll = (c.scroll + 10).min(oldest),
                KeyAction::PageDown => c.scroll = c.scroll.saturating_sub(10),
                KeyAction::Top => c.scroll = oldest,
                KeyAction::Bottom => c.scroll = 0,
                _ => {}
            }
        }
        match action {
            KeyAction::Up
            | KeyAction::Down
            | KeyAction::Top
            | KeyAction::Bottom
            | KeyAction::PageUp
            | KeyAction::PageDown
                if self.focus == Pane::Console => {}
            KeyAction::Quit => {
                self.should_quit = true;
                effects.push(Effect::Quit);
            }
            KeyAction::Help => self.open(Overlay::Help),
            KeyAction::NextPane => self.focus = Pane::ALL[(focus + 1) % 5],
            KeyAction::PrevPane => self.focus = Pane::ALL[(focus + 4) % 5],
            KeyAction::FocusWorkers => self.focus = Pane::Workers,
            KeyAction::FocusJobs => self.focus = Pane::Jobs,
            KeyAction::FocusGauges => self.focus = Pane::Gauges,
            KeyAction::FocusLedger => self.focus = Pane::Ledger,
            KeyAction::FocusConsole => self.focus = Pane::Console,
            KeyAction::Up => self.selected[focus] = self.selected[focus].saturating_sub(1),
            KeyAction::Down => self.selected[focus] = self.selected[focus].saturating_add(1),
            KeyAction::PageUp | KeyAction::PageDown => {
                // A screenful, less one row to keep some context.
                let page = usize::from(self.page_rows.get()[focus])
                    .saturating_sub(1)
                    .max(1);
                self.selected[focus] = if action == KeyAction::PageUp {
                    self.selected[focus].saturating_sub(page)
                } else {
                    self.selected[focus].saturating_add(page)
                };
            }
            KeyAction::Top => self.selected[focus] = 0,
            KeyAction::Bottom => self.selected[focus] = usize::MAX,
            // Enter opens what the focused pane selects: a job's details, a worker's
            // card, or the job of a ledger entry.
            KeyAction::Open => self.open_selected(),
            KeyAction::Cancel if self.focus == Pane::Jobs => self.ask_to_cancel(),
            KeyAction::Cancel => self.log(
                LogLevel::Info,
                "c cancels a job: focus the Jobs pane (2) and select it",
            ),
            KeyAction::Filter => self.filter_editing = true,
            KeyAction::Sort => self.sort = self.sort.next(),
            KeyAction::ReverseSort => self.sort_reversed = !self.sort_reversed,
            KeyAction::Console => {
                self.focus = Pane::Console;
                self.console.editing = true;
            }
            KeyAction::Repl => effects.push(Effect::OpenRepl),
            KeyAction::Suspend => effects.push(Effect::Suspend),
            KeyAction::Refresh => effects.push(Effect::Refresh),
            KeyAction::OpenAnnounced => match self.announced {
                Some(id) if self.jobs.contains_key(&id) => self.open(Overlay::Detail(id)),
                _ => self.log(LogLevel::Info, "no finished job announced yet"),
            },
        }
    }

    /// `c` on a job: a confirmation overlay, or why cancelling is not possible here.
    fn ask_to_cancel(&mut self) {
        if self.read_only {
            self.log(LogLevel::Error, "read-only: cancelling is disabled");
        } else if let Mode::WorkerHost { .. } = self.mode {
            self.log(
                LogLevel::Error,
                "the worker host cannot cancel jobs; their owners can",
            );
        } else if let Some(id) = self.selected_job() {
            let live = self.jobs.get(&id).is_some_and(|j| !j.status.is_terminal());
            if live {
                self.overlay = Overlay::ConfirmCancel(id);
            } else {
                self.log(LogLevel::Error, format!("job {id} already finished"));
            }
        }
    }

    fn open_selected(&mut self) {
        let overlay = match self.focus {
            Pane::Jobs => self.selected_job().map(Overlay::Detail),
            Pane::Workers => self.selected_worker().map(|w| Overlay::Worker(w.worker_id)),
            Pane::Ledger => match self.ledger.get(self.selected[Pane::Ledger.index()]) {
                Some(entry) => match entry.job_id {
                    Some(id) if self.jobs.contains_key(&id) => Some(Overlay::Detail(id)),
                    Some(id) => {
                        self.log(
                            LogLevel::Info,
                            format!("job {id} is not loaded here: type `job {id}` after :"),
                        );
                        None
                    }
                    None => None,
                },
                None => None,
            },
            Pane::Gauges | Pane::Console => None,
        };
        if let Some(overlay) = overlay {
            self.open(overlay);
        }
    }

    /// Puts a pager (or the confirmation) on top, at its first line, with no search.
    fn open(&mut self, overlay: Overlay) {
        self.overlay = overlay;
        self.overlay_scroll = 0;
        self.search = PagerSearch::default();
    }

    /// A key in the help, job details or a worker card: a pager (j/k, PgUp/PgDn,
    /// Ctrl-U/Ctrl-D, g/G, Home/End; `/` searches, `n`/`N` go to the next/previous
    /// match; `w` toggles wrapping of details); Esc, Enter, q or ? closes.
    fn overlay_key(&mut self, key: KeyEvent) {
        if self.search.editing {
            return self.search_key(key);
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        const PAGE: u16 = 10;
        let scroll = self.overlay_scroll;
        self.overlay_scroll = match key.code {
            KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') | KeyCode::Char('?') => {
                self.open(Overlay::None);
                0
            }
            KeyCode::Char('j') | KeyCode::Down => scroll.saturating_add(1),
            KeyCode::Char('k') | KeyCode::Up => scroll.saturating_sub(1),
            KeyCode::Char('d') if ctrl => scroll.saturating_add(PAGE),
            KeyCode::Char('u') if ctrl => scroll.saturating_sub(PAGE),
            KeyCode::PageDown | KeyCode::Char(' ') => scroll.saturating_add(PAGE),
            KeyCode::PageUp => scroll.saturating_sub(PAGE),
            KeyCode::Char('g') | KeyCode::Home => 0,
            KeyCode::Char('G') | KeyCode::End => u16::MAX,
            KeyCode::Char('w') if matches!(self.overlay, Overlay::Detail(_)) => {
                self.detail_wrap = !self.detail_wrap;
                scroll
            }
            KeyCode::Char('/') => {
                self.search = PagerSearch {
                    query: String::new(),
                    editing: true,
                };
                scroll
            }
            KeyCode::Char('n') => self.find_match(scroll, true).unwrap_or(scroll),
            KeyCode::Char('N') => self.find_match(scroll, false).unwrap_or(scroll),
            _ => scroll,
        }
        .min(self.overlay_max_scroll.get());
    }

    /// A key while a pager's search is typed: Enter goes to the first match from the
    /// top line shown, Esc drops the search.
    fn search_key(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => self.search = PagerSearch::default(),
            KeyCode::Enter => {
                self.search.editing = false;
                // From the line shown at the top, that line included: after the row
                // above it, or, at the top, round from the end to the first match.
                let after = self.overlay_scroll.checked_sub(1).unwrap_or(u16::MAX);
                let found = self.find_match(after, true);
                if let Some(row) = found {
                    self.overlay_scroll = row.min(self.overlay_max_scroll.get());
                }
            }
            KeyCode::Backspace => {
                self.search.query.pop();
            }
            KeyCode::Char(c) if !ctrl && self.search.query.chars().count() < 200 => {
                self.search.query.push(c)
            }
            _ => {}
        }
    }

    /// The row of the next match after `row` (or the previous one before it), going
    /// round the end as `less` does; `None` when nothing matches.
    fn find_match(&self, row: u16, forward: bool) -> Option<u16> {
        let lines = self.pager_lines.borrow();
        let mut rows = lines
            .iter()
            .filter(|(_, text)| self.search.matches(text))
            .map(|(at, _)| *at);
        if forward {
            rows.clone().find(|at| *at > row).or_else(|| rows.next())
        } else {
            rows.clone()
                .filter(|at| *at < row)
                .last()
                .or_else(|| rows.last())
        }
    }

    /// A key while the console line is being edited.
    fn console_key(&mut self, key: KeyEvent, effects: &mut Vec<Effect>) {
        let c = &mut self.console;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if !matches!(key.code, KeyCode::Tab | KeyCode::BackTab) {
            c.end_completion();
        }
        match key.code {
            KeyCode::Esc => c.editing = false,
            KeyCode::Char('b') if alt => c.word_left(),
            KeyCode::Char('f') if alt => c.word_right(),
            KeyCode::Left if ctrl || alt => c.word_left(),
            KeyCode::Right if ctrl || alt => c.word_right(),
            KeyCode::Char('w') if ctrl => c.delete_word_back(),
            KeyCode::Backspace if alt => c.delete_word_back(),
            KeyCode::Char('c') if ctrl => {
                c.clear_input();
                c.editing = false;
            }
            KeyCode::Enter => {
                // Enter runs the line and leaves typing mode, so j/k move again; `:`
                // (with ↑ for history) types the next one.
                let line = c.take_line();
                c.editing = false;
                self.run_line(line, effects);
            }
            KeyCode::Backspace => c.backspace(),
            KeyCode::Delete => c.delete(),
            KeyCode::Left => c.left(),
            KeyCode::Right => c.right(),
            KeyCode::Home => c.home(),
            KeyCode::End => c.end(),
            KeyCode::Char('a') if ctrl => c.home(),
            KeyCode::Char('e') if ctrl => c.end(),
            KeyCode::Char('u') if ctrl => c.clear_input(),
            KeyCode::Up => c.history_back(),
            KeyCode::Down => c.history_forward(),
            KeyCode::Tab => c.complete(complete, true),
            KeyCode::BackTab => c.complete(complete, false),
            // A chord (Ctrl or Alt with a letter) is never text.
            KeyCode::Char(ch) if !ctrl && !alt => c.insert(ch),
            _ => {}
        }
    }

    /// Runs a console line: parse, echo, and hand the command to the runtime.
    fn run_line(&mut self, line: String, effects: &mut Vec<Effect>) {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return;
        }
        self.console.remember(trimmed);
        self.log(LogLevel::Info, format!("> {trimmed}"));
        match parse_line(trimmed) {
            Ok(None) => {}
            Ok(Some(command)) => {
                if self.read_only
                    && matches!(
                        command,
                        ConsoleCommand::Submit(_) | ConsoleCommand::Cancel { .. }
                    )
                {
                    self.log(
                        LogLevel::Error,
                        "read-only: this command would change something",
                    );
                    return;
                }
                effects.push(Effect::RunCommand(command));
            }
            // One line, the reason first: the console is two lines high at 80x24.
            Err(e) => self.log(LogLevel::Error, e.summary()),
        }
    }
}
