//! The console pane's text: its scrollback log and the line editor under it (input,
//! cursor, history). Editing works in characters, not bytes, so any UTF-8 is safe.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Output,
    Error,
}

pub struct Console {
    pub log: VecDeque<(LogLevel, String)>,
    pub input: String,
    /// Cursor position in characters.
    pub cursor: usize,
    pub history: Vec<String>,
    /// Which history line Up/Down is showing; `None` while typing a new one.
    history_pos: Option<usize>,
    pub editing: bool,
    /// How many of the newest log lines are scrolled out of view below (0: follow the
    /// newest). j/k, g/G in the focused console pane change it.
    pub scroll: usize,
    /// Tab's candidates while the person cycles through them in place; any other key
    /// ends it. Shown under the line, never written into the log.
    pub completion: Option<Completion>,
}

/// Several completions of one line: Tab and Shift-Tab step through them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub candidates: Vec<String>,
    /// The candidate on the line now; `None` while the line holds their common prefix.
    pub at: Option<usize>,
}

impl Console {
    const LOG_LEN: usize = 500;

    pub fn new() -> Self {
        Console {
            log: VecDeque::new(),
            input: String::new(),
            scroll: 0,
            completion: None,
            cursor: 0,
            history: Vec::new(),
            history_pos: None,
            editing: false,
        }
    }

    /// Appends a line, inert (`crate::inert`): the log holds job output and messages
    /// strangers wrote, shown and never obeyed. The same line again only counts up on
    /// the last one ("(x3)"), so a worker retrying an unreachable coordinator does not
    /// flood the console.
    pub fn push(&mut self, level: LogLevel, line: impl Into<String>) {
        let line = crate::inert::inert_string(line.into());
        if let Some((last_level, last)) = self.log.back_mut()
            && *last_level == level
        {
            let (base, count) = split_repeat(last);
            if base == line {
                *last = format!("{line} (x{})", count + 1);
                return;
            }
        }
        if self.log.len() == Self::LOG_LEN {
            self.log.pop_front();
        }
        self.log.push_back((level, line));
        // Scrolled back, the view stays on the lines being read.
        if self.scroll > 0 {
            self.scroll = (self.scroll + 1).min(self.log.len().saturating_sub(1));
        }
    }

    /// Remembers a line for Up/Down, unless it repeats the last one.
    pub fn remember(&mut self, line: &str) {
        if self.history.last().is_none_or(|last| last != line) {
            self.history.push(line.to_owned());
        }
    }

    /// Takes the typed line away (Enter), leaving an empty input.
    pub fn take_line(&mut self) -> String {
        self.cursor = 0;
        self.history_pos = None;
        std::mem::take(&mut self.input)
    }

    /// Replaces the input and puts the cursor at its end.
    pub fn set_input(&mut self, line: String) {
        self.input = line;
        self.cursor = self.len();
    }

    pub fn clear_input(&mut self) {
        self.input.clear();
        self.cursor = 0;
    }

    pub fn insert(&mut self, ch: char) {
        let at = self.byte_at(self.cursor);
        self.input.insert(at, ch);
        self.cursor += 1;
    }

    /// Deletes the character before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            let at = self.byte_at(self.cursor - 1);
            self.input.remove(at);
            self.cursor -= 1;
        }
    }

    /// Deletes the character under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.len() {
            let at = self.byte_at(self.cursor);
            self.input.remove(at);
        }
    }

    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.len());
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.len();
    }

    /// Alt-b: to the start of this word, or of the previous one (as readline does:
    /// a word is a run of letters and digits).
    pub fn word_left(&mut self) {
        let chars: Vec<char> = self.input.chars().collect();
        let mut at = self.cursor.min(chars.len());
        while at > 0 && !chars[at - 1].is_alphanumeric() {
            at -= 1;
        }
        while at > 0 && chars[at - 1].is_alphanumeric() {
            at -= 1;
        }
        self.cursor = at;
    }

    /// Alt-f: to the end of this word, or of the next one.
    pub fn word_right(&mut self) {
        let chars: Vec<char> = self.input.chars().collect();
        let mut at = self.cursor.min(chars.len());
        while at < chars.len() && !chars[at].is_alphanumeric() {
            at += 1;
        }
        while at < chars.len() && chars[at].is_alphanumeric() {
            at += 1;
        }
        self.cursor = at;
    }

    /// Ctrl-W: deletes back to the previous whitespace, as a shell does.
    pub fn delete_word_back(&mut self) {
        let chars: Vec<char> = self.input.chars().collect();
        let end = self.cursor.min(chars.len());
        let mut start = end;
        while start > 0 && chars[start - 1].is_whitespace() {
            start -= 1;
        }
        while start > 0 && !chars[start - 1].is_whitespace() {
            start -= 1;
        }
        let (from, to) = (self.byte_at(start), self.byte_at(end));
        self.input.replace_range(from..to, "");
        self.cursor = start;
    }

    /// Up: the previous history line (the last one first).
    pub fn history_back(&mut self) {
        if self.history.is_empty() {
            return;
        }
        let pos = self
            .history_pos
            .map_or(self.history.len() - 1, |p| p.saturating_sub(1));
        self.history_pos = Some(pos);
        self.set_input(self.history[pos].clone());
    }

    /// Down: the next history line, and past the newest an empty input.
    pub fn history_forward(&mut self) {
        match self.history_pos {
            Some(p) if p + 1 < self.history.len() => {
                self.history_pos = Some(p + 1);
                self.set_input(self.history[p + 1].clone());
            }
            _ => {
                self.history_pos = None;
                self.clear_input();
            }
        }
    }

    /// Tab (`forward`) or Shift-Tab with `candidates` for the current line: one
    /// replaces the line; several first extend it to their common prefix, then each
    /// Tab puts the next one on the line, as zsh's menu completion does.
    pub fn complete(&mut self, candidates: impl FnOnce(&str) -> Vec<String>, forward: bool) {
        if self.completion.is_some() {
            return self.step_menu(forward);
        }
        let found = candidates(&self.input);
        match found.as_slice() {
            [] => {}
            [line] => self.set_input(line.clone()),
            many => {
                let prefix = common_prefix(many);
                let extends = prefix.chars().count() > self.input.chars().count();
                self.completion = Some(Completion {
                    candidates: found.clone(),
                    at: None,
                });
                if extends {
                    self.set_input(prefix);
                } else {
                    // Nothing to add: the first Tab already steps into the menu.
                    self.step_menu(forward);
                }
            }
        }
    }

    /// The next (or previous) candidate of the open menu onto the line.
    fn step_menu(&mut self, forward: bool) {
        if let Some(menu) = &mut self.completion
            && !menu.candidates.is_empty()
        {
            let n = menu.candidates.len();
            let at = match (menu.at, forward) {
                (None, true) => 0,
                (None, false) => n - 1,
                (Some(i), true) => (i + 1) % n,
                (Some(i), false) => (i + n - 1) % n,
            };
            menu.at = Some(at);
            let line = menu.candidates[at].clone();
            self.set_input(line);
        }
    }

    /// Leaves the completion menu, keeping whatever is on the line.
    pub fn end_completion(&mut self) {
        self.completion = None;
    }

    fn len(&self) -> usize {
        self.input.chars().count()
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.input
            .char_indices()
            .nth(chars)
            .map_or(self.input.len(), |(i, _)| i)
    }
}

impl Default for Console {
    fn default() -> Self {
        Console::new()
    }
}

/// The longest prefix all `lines` share, cut at a character boundary.
fn common_prefix(lines: &[String]) -> String {
    let Some(first) = lines.first() else {
        return String::new();
    };
    let mut end = first.len();
    for line in &lines[1..] {
        let same = first
            .char_indices()
            .zip(line.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8());
        end = end.min(same);
    }
    first[..end].to_owned()
}

/// A console line without its repeat count, and the count (1 when it has none).
fn split_repeat(text: &str) -> (&str, u32) {
    text.strip_suffix(')')
        .and_then(|rest| rest.rsplit_once(" (x"))
        .and_then(|(base, n)| Some((base, n.parse().ok()?)))
        .unwrap_or((text, 1))
}

#[cfg(test)]
mod tests {
    use super::{Console, LogLevel, common_prefix, split_repeat};

    fn typed(text: &str) -> Console {
        let mut c = Console::new();
        text.chars().for_each(|ch| c.insert(ch));
        c
    }

    #[test]
    fn edits_by_character_not_byte() {
        let mut c = typed("héllo");
        c.left();
        c.left();
        c.left();
        c.backspace();
        assert_eq!(c.input, "hllo");
        assert_eq!(c.cursor, 1);
        c.insert('ü');
        c.delete();
        assert_eq!(c.input, "hülo");
        c.home();
        c.backspace();
        assert_eq!(c.input, "hülo", "nothing before the start");
        c.end();
        c.delete();
        c.right();
        assert_eq!(
            (c.input.as_str(), c.cursor),
            ("hülo", 4),
            "nothing past the end"
        );
    }

    #[test]
    fn history_walks_back_and_forward_to_an_empty_line() {
        let mut c = Console::new();
        c.history_back();
        assert_eq!(c.input, "", "no history yet");
        for line in ["jobs", "jobs", "balance"] {
            c.remember(line);
        }
        assert_eq!(
            c.history,
            ["jobs", "balance"],
            "a repeat is remembered once"
        );
        c.history_back();
        c.history_back();
        c.history_back();
        assert_eq!(
            (c.input.as_str(), c.cursor),
            ("jobs", 4),
            "stops at the oldest"
        );
        c.history_forward();
        assert_eq!(c.input, "balance");
        c.history_forward();
        assert_eq!(c.input, "");
        c.set_input("draft".into());
        assert_eq!(c.take_line(), "draft");
        assert_eq!((c.input.as_str(), c.cursor), ("", 0));
    }

    #[test]
    fn word_moves_and_ctrl_w_work_on_words() {
        let mut c = typed("submit --lang python");
        c.word_left();
        assert_eq!(c.cursor, 14, "to the start of `python`");
        c.word_left();
        assert_eq!(c.cursor, 9, "to the start of `lang`, over `--`");
        c.word_right();
        assert_eq!(c.cursor, 13, "to the end of `lang`");
        c.end();
        c.delete_word_back();
        assert_eq!((c.input.as_str(), c.cursor), ("submit --lang ", 14));
        c.delete_word_back();
        assert_eq!(c.input, "submit ");
        let mut c = typed("héllo wörld");
        c.word_left();
        c.delete_word_back();
        assert_eq!((c.input.as_str(), c.cursor), ("wörld", 0));
    }

    #[test]
    fn tab_extends_to_the_common_prefix_then_cycles_in_place() {
        let offer = |_: &str| vec!["job".to_owned(), "jobs".to_owned()];
        let mut c = typed("j");
        c.complete(offer, true);
        assert_eq!(c.input, "job", "first the common prefix");
        c.complete(offer, true);
        assert_eq!(c.input, "job");
        assert_eq!(c.completion.as_ref().and_then(|m| m.at), Some(0));
        c.complete(offer, true);
        assert_eq!((c.input.as_str(), c.cursor), ("jobs", 4));
        c.complete(offer, true);
        assert_eq!(c.input, "job", "round again");
        c.complete(offer, false);
        assert_eq!(c.input, "jobs", "Shift-Tab goes back");
        c.end_completion();
        assert!(c.log.is_empty(), "nothing is written into the log");
        let mut c = typed("jobs --");
        let flags = |_: &str| vec!["jobs --status".to_owned(), "jobs --limit".to_owned()];
        c.complete(flags, true);
        assert_eq!(
            c.input, "jobs --status",
            "no longer prefix: the first candidate"
        );
        let mut c = typed("bal");
        c.complete(|_| vec!["balance".to_owned()], true);
        assert_eq!(
            (c.input.as_str(), c.completion.is_none()),
            ("balance", true)
        );
        assert_eq!(common_prefix(&["héllo".into(), "hélas".into()]), "hél");
        assert_eq!(common_prefix(&["ab".into(), "abc".into()]), "ab");
    }

    #[test]
    fn a_repeated_line_counts_up_instead_of_scrolling() {
        let mut c = Console::new();
        c.push(LogLevel::Error, "refused");
        c.push(LogLevel::Error, "refused");
        c.push(LogLevel::Error, "refused");
        c.push(LogLevel::Info, "refused");
        let lines: Vec<&str> = c.log.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(lines, ["refused (x3)", "refused"]);
        assert_eq!(split_repeat("job 7 (x12)"), ("job 7", 12));
        assert_eq!(split_repeat("echo (xyz)"), ("echo (xyz)", 1));
    }

    #[test]
    fn a_pushed_line_is_inert() {
        let mut c = Console::new();
        c.push(LogLevel::Error, "\x1b]0;pwned\x07\x1b[2J hello");
        c.push(LogLevel::Error, "\x1b]0;pwned\x07\x1b[2J hello");
        let lines: Vec<&str> = c.log.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(lines, ["^[]0;pwned^G^[[2J hello (x2)"]);
    }

    #[test]
    fn the_log_keeps_its_newest_lines() {
        let mut c = Console::new();
        for i in 0..Console::LOG_LEN + 3 {
            c.push(LogLevel::Output, i.to_string());
        }
        assert_eq!(c.log.len(), Console::LOG_LEN);
        assert_eq!(c.log.front().map(|(_, l)| l.as_str()), Some("3"));
    }
}
