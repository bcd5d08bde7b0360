//! Key bindings: defaults, overridable from a TOML file, and the help overlay is
//! generated from whatever is bound.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Everything a key can do in normal mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyAction {
    Quit,
    Help,
    NextPane,
    PrevPane,
    FocusWorkers,
    FocusJobs,
    FocusGauges,
    FocusLedger,
    FocusConsole,
    Up,
    Down,
    Top,
    Bottom,
    Open,
    Cancel,
    Filter,
    Sort,
    Console,
    Repl,
    Suspend,
    Refresh,
    OpenAnnounced,
    PageUp,
    PageDown,
    ReverseSort,
}

impl KeyAction {
    pub const ALL: [KeyAction; 25] = [
        KeyAction::Quit,
        KeyAction::Help,
        KeyAction::NextPane,
        KeyAction::PrevPane,
        KeyAction::FocusWorkers,
        KeyAction::FocusJobs,
        KeyAction::FocusGauges,
        KeyAction::FocusLedger,
        KeyAction::FocusConsole,
        KeyAction::Up,
        KeyAction::Down,
        KeyAction::Top,
        KeyAction::Bottom,
        KeyAction::Open,
        KeyAction::Cancel,
        KeyAction::Filter,
        KeyAction::Sort,
        KeyAction::Console,
        KeyAction::Repl,
        KeyAction::Suspend,
        KeyAction::Refresh,
        KeyAction::OpenAnnounced,
        KeyAction::PageUp,
        KeyAction::PageDown,
        KeyAction::ReverseSort,
    ];

    /// The name used in keymap files.
    pub fn name(self) -> &'static str {
        match self {
            KeyAction::Quit => "quit",
            KeyAction::Help => "help",
            KeyAction::NextPane => "next_pane",
            KeyAction::PrevPane => "prev_pane",
            KeyAction::FocusWorkers => "focus_workers",
            KeyAction::FocusJobs => "focus_jobs",
            KeyAction::FocusGauges => "focus_gauges",
            KeyAction::FocusLedger => "focus_ledger",
            KeyAction::FocusConsole => "focus_console",
            KeyAction::Up => "up",
            KeyAction::Down => "down",
            KeyAction::Top => "top",
            KeyAction::Bottom => "bottom",
            KeyAction::Open => "open",
            KeyAction::Cancel => "cancel",
            KeyAction::Filter => "filter",
            KeyAction::Sort => "sort",
            KeyAction::Console => "console",
            KeyAction::Repl => "repl",
            KeyAction::Suspend => "suspend",
            KeyAction::Refresh => "refresh",
            KeyAction::OpenAnnounced => "open-finished",
            KeyAction::PageUp => "page-up",
            KeyAction::PageDown => "page-down",
            KeyAction::ReverseSort => "reverse-sort",
        }
    }

    /// What the help overlay says about it.
    pub fn describe(self) -> &'static str {
        match self {
            KeyAction::Quit => "quit",
            KeyAction::Help => "this help",
            KeyAction::NextPane => "next pane",
            KeyAction::PrevPane => "previous pane",
            KeyAction::FocusWorkers => "workers pane",
            KeyAction::FocusJobs => "jobs pane",
            KeyAction::FocusGauges => "gauges pane",
            KeyAction::FocusLedger => "ledger pane",
            KeyAction::FocusConsole => "console pane",
            KeyAction::Up => "move up",
            KeyAction::Down => "move down",
            KeyAction::Top => "first row",
            KeyAction::Bottom => "last row",
            KeyAction::Open => "job details",
            KeyAction::Cancel => "cancel the selected job",
            KeyAction::Filter => "filter rows",
            KeyAction::Sort => "cycle the sort order",
            KeyAction::Console => "type a command",
            KeyAction::Repl => "full REPL (returns here on exit)",
            KeyAction::Suspend => "suspend to the shell",
            KeyAction::Refresh => "reload everything",
            KeyAction::OpenAnnounced => "open the job the console just announced",
            KeyAction::PageUp => "up a page",
            KeyAction::PageDown => "down a page",
            KeyAction::ReverseSort => "reverse the sort order",
        }
    }

    fn from_name(name: &str) -> Option<KeyAction> {
        KeyAction::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// A key with modifiers, as written in keymap files: `q`, `ctrl-z`, `tab`, `shift-tab`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub code: KeyCodeOrd,
    pub ctrl: bool,
}

/// `KeyCode` with an order, for stable help listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyCodeOrd {
    Char(char),
    Tab,
    BackTab,
    Enter,
    Esc,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    F(u8),
}

impl Key {
    pub fn from_event(event: &KeyEvent) -> Option<Key> {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        let code = match event.code {
            KeyCode::Char(c) => KeyCodeOrd::Char(c),
            KeyCode::Tab => KeyCodeOrd::Tab,
            KeyCode::BackTab => KeyCodeOrd::BackTab,
            KeyCode::Enter => KeyCodeOrd::Enter,
            KeyCode::Esc => KeyCodeOrd::Esc,
            KeyCode::Up => KeyCodeOrd::Up,
            KeyCode::Down => KeyCodeOrd::Down,
            KeyCode::Left => KeyCodeOrd::Left,
            KeyCode::Right => KeyCodeOrd::Right,
            KeyCode::Home => KeyCodeOrd::Home,
            KeyCode::End => KeyCodeOrd::End,
            KeyCode::PageUp => KeyCodeOrd::PageUp,
            KeyCode::PageDown => KeyCodeOrd::PageDown,
            KeyCode::F(n) => KeyCodeOrd::F(n),
            _ => return None,
        };
        Some(Key { code, ctrl })
    }

    pub fn parse(text: &str) -> Option<Key> {
        let lower = text.trim().to_ascii_lowercase();
        let (ctrl, rest) = match lower.strip_prefix("ctrl-") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, lower.clone()),
        };
        let code = match rest.as_str() {
            "tab" => KeyCodeOrd::Tab,
            "shift-tab" | "backtab" => KeyCodeOrd::BackTab,
            "enter" => KeyCodeOrd::Enter,
            "esc" => KeyCodeOrd::Esc,
            "up" => KeyCodeOrd::Up,
            "down" => KeyCodeOrd::Down,
            "left" => KeyCodeOrd::Left,
            "right" => KeyCodeOrd::Right,
            "home" => KeyCodeOrd::Home,
            "end" => KeyCodeOrd::End,
            "pageup" => KeyCodeOrd::PageUp,
            "pagedown" => KeyCodeOrd::PageDown,
            "space" => KeyCodeOrd::Char(' '),
            f if f.starts_with('f') && f.len() > 1 => KeyCodeOrd::F(f[1..].parse().ok()?),
            _ => {
                // Keep the original case of a single character (`G` is not `g`).
                let original = text.trim();
                let ch = original.strip_prefix("ctrl-").unwrap_or(original);
                let mut chars = ch.chars();
                let c = chars.next()?;
                if chars.next().is_some() {
                    return None;
                }
                KeyCodeOrd::Char(c)
            }
        };
        Some(Key { code, ctrl })
    }

    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCodeOrd::Char(' ') => "space".to_owned(),
            KeyCodeOrd::Char(c) => c.to_string(),
            KeyCodeOrd::Tab => "Tab".into(),
            KeyCodeOrd::BackTab => "Shift-Tab".into(),
            KeyCodeOrd::Enter => "Enter".into(),
            KeyCodeOrd::Esc => "Esc".into(),
            KeyCodeOrd::Up => "↑".into(),
            KeyCodeOrd::Down => "↓".into(),
            KeyCodeOrd::Left => "←".into(),
            KeyCodeOrd::Right => "→".into(),
            KeyCodeOrd::Home => "Home".into(),
            KeyCodeOrd::End => "End".into(),
            KeyCodeOrd::PageUp => "PgUp".into(),
            KeyCodeOrd::PageDown => "PgDn".into(),
            KeyCodeOrd::F(n) => format!("F{n}"),
        };
        if self.ctrl {
            format!("Ctrl-{base}")
        } else {
            base
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: BTreeMap<Key, KeyAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeymapError {
    #[error("keymap: {0}")]
    Toml(String),
    #[error("keymap: unknown action {0:?}")]
    UnknownAction(String),
    #[error("keymap: cannot read key {key:?} for {action}")]
    BadKey { action: String, key: String },
}

impl Default for Keymap {
    fn default() -> Self {
        use KeyAction::*;
        let pairs: &[(&str, KeyAction)] = &[
            ("q", Quit),
            ("ctrl-c", Quit),
            ("?", Help),
            ("tab", NextPane),
            ("shift-tab", PrevPane),
            ("1", FocusWorkers),
            ("2", FocusJobs),
            ("3", FocusGauges),
            ("4", FocusLedger),
            ("5", FocusConsole),
            ("up", Up),
            ("k", Up),
            ("down", Down),
            ("j", Down),
            ("g", Top),
            ("home", Top),
            ("G", Bottom),
            ("end", Bottom),
            ("enter", Open),
            ("c", Cancel),
            ("/", Filter),
            ("s", Sort),
            ("S", ReverseSort),
            (":", Console),
            ("r", Repl),
            ("ctrl-z", Suspend),
            ("ctrl-r", Refresh),
            ("o", OpenAnnounced),
            ("pageup", PageUp),
            ("ctrl-u", PageUp),
            ("pagedown", PageDown),
            ("ctrl-d", PageDown),
        ];
        let bindings = pairs
            .iter()
            .filter_map(|(k, a)| Key::parse(k).map(|key| (key, *a)))
            .collect();
        Keymap { bindings }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeymapFile {
    #[serde(default)]
    keys: BTreeMap<String, KeysValue>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum KeysValue {
    One(String),
    Many(Vec<String>),
}

impl Keymap {
    pub fn action(&self, event: &KeyEvent) -> Option<KeyAction> {
        let key = Key::from_event(event)?;
        self.bindings.get(&key).copied().or_else(|| {
            // Terminals report Shift-letter as the capital with or without SHIFT.
            if let KeyCodeOrd::Char(c) = key.code
                && event.modifiers.contains(KeyModifiers::SHIFT)
            {
                return self
                    .bindings
                    .get(&Key {
                        code: KeyCodeOrd::Char(c.to_ascii_uppercase()),
                        ctrl: key.ctrl,
                    })
                    .copied();
            }
            None
        })
    }

    /// Applies a keymap file: `[keys] action = "key"` or `action = ["k1", "k2"]`; an
    /// action listed there loses its default keys.
    pub fn with_overrides(mut self, text: &str) -> Result<Keymap, KeymapError> {
        let file: KeymapFile =
            toml::from_str(text).map_err(|e| KeymapError::Toml(e.message().to_owned()))?;
        for (name, value) in file.keys {
            let action = KeyAction::from_name(&name)
                .ok_or_else(|| KeymapError::UnknownAction(name.clone()))?;
            let keys = match value {
                KeysValue::One(k) => vec![k],
                KeysValue::Many(ks) => ks,
            };
            self.bindings.retain(|_, a| *a != action);
            for key_text in keys {
                let key = Key::parse(&key_text).ok_or_else(|| KeymapError::BadKey {
                    action: name.clone(),
                    key: key_text.clone(),
                })?;
                self.bindings.insert(key, action);
            }
        }
        Ok(self)
    }

    /// `(keys, description)` for every bound action, in a stable order.
    pub fn help_rows(&self) -> Vec<(String, &'static str)> {
        KeyAction::ALL
            .into_iter()
            .filter_map(|action| {
                let keys: Vec<String> = self
                    .bindings
                    .iter()
                    .filter(|(_, a)| **a == action)
                    .map(|(k, _)| k.label())
                    .collect();
                (!keys.is_empty()).then(|| (keys.join(" "), action.describe()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{KeyAction, Keymap, KeymapError};
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn defaults_cover_the_documented_keys() {
        let map = Keymap::default();
        assert_eq!(
            map.action(&key(KeyCode::Char('q'), KeyModifiers::NONE)),
            Some(KeyAction::Quit)
        );
        assert_eq!(
            map.action(&key(KeyCode::Char('z'), KeyModifiers::CONTROL)),
            Some(KeyAction::Suspend)
        );
        assert_eq!(
            map.action(&key(KeyCode::BackTab, KeyModifiers::SHIFT)),
            Some(KeyAction::PrevPane)
        );
        assert_eq!(
            map.action(&key(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(KeyAction::Bottom)
        );
        assert_eq!(
            map.action(&key(KeyCode::Char('x'), KeyModifiers::NONE)),
            None
        );
    }

    #[test]
    fn a_keymap_file_overrides_keys() {
        let map = Keymap::default()
            .with_overrides("[keys]\nquit = \"x\"\ndown = [\"n\", \"down\"]\n")
            .unwrap();
        assert_eq!(
            map.action(&key(KeyCode::Char('x'), KeyModifiers::NONE)),
            Some(KeyAction::Quit)
        );
        assert_eq!(
            map.action(&key(KeyCode::Char('q'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            map.action(&key(KeyCode::Char('n'), KeyModifiers::NONE)),
            Some(KeyAction::Down)
        );
        assert!(
            map.help_rows()
                .iter()
                .any(|(k, d)| k == "x" && *d == "quit")
        );
    }

    #[test]
    fn bad_keymaps_are_refused_clearly() {
        let err = Keymap::default()
            .with_overrides("[keys]\nteleport = \"t\"")
            .unwrap_err();
        assert_eq!(err, KeymapError::UnknownAction("teleport".into()));
        let err = Keymap::default()
            .with_overrides("[keys]\nquit = \"ctrl-\"")
            .unwrap_err();
        assert!(err.to_string().contains("quit"), "{err}");
        assert!(Keymap::default().with_overrides("[kees]").is_err());
    }
}
