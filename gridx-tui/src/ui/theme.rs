//! Dashboard themes: TOML files with named colours. The four in `themes/` are built
//! in; a themes directory can add more. `NO_COLOR` strips colour from any theme.

use crate::built_in_themes;
use gridx_proto::JobStatus;
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: String,
    text: String,
    dim: String,
    accent: String,
    border: String,
    border_focused: String,
    title: String,
    selection_bg: String,
    ok: String,
    warn: String,
    error: String,
    gauge_low: String,
    gauge_mid: String,
    gauge_high: String,
    #[serde(default)]
    bold: bool,
    status: StatusColours,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusColours {
    queued: String,
    running: String,
    succeeded: String,
    failed: String,
    timed_out: String,
    cancelled: String,
    error: String,
}

/// A resolved theme.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub text: Color,
    pub dim: Color,
    pub accent: Color,
    pub border: Color,
    pub border_focused: Color,
    pub title: Color,
    pub selection_bg: Color,
    pub ok: Color,
    pub warn: Color,
    pub error: Color,
    pub gauge: [Color; 3],
    pub bold: bool,
    status: [Color; 7],
    /// With NO_COLOR every colour is `Reset` and emphasis is by modifiers alone.
    pub monochrome: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThemeError {
    #[error("no theme {0:?}: built-in themes are dark, light, high-contrast and ansi")]
    Unknown(String),
    #[error("theme {name}: {message}")]
    Invalid { name: String, message: String },
}

pub fn parse_color(text: &str) -> Option<Color> {
    let t = text.trim().to_ascii_lowercase();
    if let Some(hex) = t.strip_prefix('#') {
        if hex.len() != 6 {
            return None;
        }
        let v = u32::from_str_radix(hex, 16).ok()?;
        return Some(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
    }
    if let Ok(index) = t.parse::<u8>() {
        return Some(Color::Indexed(index));
    }
    Some(match t.as_str() {
        "reset" | "default" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "darkgray" | "darkgrey" => Color::DarkGray,
        "lightred" => Color::LightRed,
        "lightgreen" => Color::LightGreen,
        "lightyellow" => Color::LightYellow,
        "lightblue" => Color::LightBlue,
        "lightmagenta" => Color::LightMagenta,
        "lightcyan" => Color::LightCyan,
        "white" => Color::White,
        _ => return None,
    })
}

impl Theme {
    /// Parses a theme file's text.
    pub fn from_toml(name: &str, text: &str) -> Result<Theme, ThemeError> {
        let invalid = |message: String| ThemeError::Invalid {
            name: name.to_owned(),
            message,
        };
        let file: ThemeFile = toml::from_str(text).map_err(|e| invalid(e.message().to_owned()))?;
        let color = |key: &str, value: &str| {
            parse_color(value).ok_or_else(|| invalid(format!("{key} = {value:?} is not a colour")))
        };
        let s = &file.status;
        Ok(Theme {
            name: file.name.clone(),
            text: color("text", &file.text)?,
            dim: color("dim", &file.dim)?,
            accent: color("accent", &file.accent)?,
            border: color("border", &file.border)?,
            border_focused: color("border_focused", &file.border_focused)?,
            title: color("title", &file.title)?,
            selection_bg: color("selection_bg", &file.selection_bg)?,
            ok: color("ok", &file.ok)?,
            warn: color("warn", &file.warn)?,
            error: color("error", &file.error)?,
            gauge: [
                color("gauge_low", &file.gauge_low)?,
                color("gauge_mid", &file.gauge_mid)?,
                color("gauge_high", &file.gauge_high)?,
            ],
            bold: file.bold,
            status: [
                color("status.queued", &s.queued)?,
                color("status.running", &s.running)?,
                color("status.succeeded", &s.succeeded)?,
                color("status.failed", &s.failed)?,
                color("status.timed_out", &s.timed_out)?,
                color("status.cancelled", &s.cancelled)?,
                color("status.error", &s.error)?,
            ],
            monochrome: false,
        })
    }

    /// Loads a theme by name: `<themes_dir>/<name>.toml` first, then the built-ins.
    pub fn load(name: &str, themes_dir: Option<&Path>) -> Result<Theme, ThemeError> {
        if let Some(dir) = themes_dir {
            let path = dir.join(format!("{name}.toml"));
            if let Ok(text) = std::fs::read_to_string(&path) {
                return Theme::from_toml(name, &text);
            }
        }
        let text =
            built_in_themes::text(name).ok_or_else(|| ThemeError::Unknown(name.to_owned()))?;
        Theme::from_toml(name, text)
    }

    pub fn default_dark() -> Theme {
        // The built-in file is part of the binary and covered by tests.
        Theme::load("dark", None).unwrap_or_else(|_| Theme::fallback())
    }

    fn fallback() -> Theme {
        Theme {
            name: "fallback".into(),
            text: Color::Reset,
            dim: Color::DarkGray,
            accent: Color::Cyan,
            border: Color::DarkGray,
            border_focused: Color::Cyan,
            title: Color::Reset,
            selection_bg: Color::DarkGray,
            ok: Color::Green,
            warn: Color::Yellow,
            error: Color::Red,
            gauge: [Color::Green, Color::Yellow, Color::Red],
            bold: false,
            status: [Color::Reset; 7],
            monochrome: false,
        }
    }

    /// The same theme with every colour removed (NO_COLOR).
    pub fn without_color(mut self) -> Theme {
        for c in [
            &mut self.text,
            &mut self.dim,
            &mut self.accent,
            &mut self.border,
            &mut self.border_focused,
            &mut self.title,
            &mut self.selection_bg,
            &mut self.ok,
            &mut self.warn,
            &mut self.error,
        ] {
            *c = Color::Reset;
        }
        self.gauge = [Color::Reset; 3];
        self.status = [Color::Reset; 7];
        self.monochrome = true;
        self
    }

    fn paint(&self, fg: Color) -> Style {
        let style = Style::default().fg(fg);
        if self.bold {
            style.add_modifier(Modifier::BOLD)
        } else {
            style
        }
    }

    pub fn text(&self) -> Style {
        self.paint(self.text)
    }

    pub fn dim(&self) -> Style {
        if self.monochrome {
            Style::default().add_modifier(Modifier::DIM)
        } else {
            self.paint(self.dim)
        }
    }

    pub fn accent(&self) -> Style {
        self.paint(self.accent).add_modifier(Modifier::BOLD)
    }

    pub fn error(&self) -> Style {
        self.paint(self.error).add_modifier(Modifier::BOLD)
    }

    pub fn ok(&self) -> Style {
        self.paint(self.ok)
    }

    pub fn warn(&self) -> Style {
        self.paint(self.warn)
    }

    pub fn border(&self, focused: bool) -> Style {
        if focused {
            self.paint(self.border_focused).add_modifier(Modifier::BOLD)
        } else {
            Style::default().fg(self.border)
        }
    }

    pub fn title(&self, focused: bool) -> Style {
        let style = Style::default().fg(self.title).add_modifier(Modifier::BOLD);
        if focused {
            style.fg(self.border_focused)
        } else {
            style
        }
    }

    pub fn selected(&self) -> Style {
        if self.monochrome {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default()
                .bg(self.selection_bg)
                .add_modifier(Modifier::BOLD)
        }
    }

    pub fn status(&self, status: JobStatus) -> Style {
        let i = match status {
            JobStatus::Queued => 0,
            JobStatus::Running => 1,
            JobStatus::Succeeded => 2,
            JobStatus::Failed => 3,
            JobStatus::TimedOut => 4,
            JobStatus::Cancelled => 5,
            JobStatus::Error => 6,
        };
        let style = self.paint(self.status[i]);
        match status {
            JobStatus::Running => style.add_modifier(Modifier::BOLD),
            JobStatus::Failed | JobStatus::Error if self.monochrome => {
                style.add_modifier(Modifier::UNDERLINED)
            }
            _ => style,
        }
    }

    /// Gauge colour for a percentage: low, mid (60+), high (85+).
    pub fn gauge(&self, percent: f64) -> Style {
        let i = if percent >= 85.0 {
            2
        } else if percent >= 60.0 {
            1
        } else {
            0
        };
        Style::default().fg(self.gauge[i])
    }
}

#[cfg(test)]
mod tests {
    use super::{Theme, ThemeError, parse_color};
    use crate::built_in_themes;
    use gridx_proto::JobStatus;
    use ratatui::style::Color;

    #[test]
    fn every_built_in_theme_loads() {
        for name in built_in_themes::NAMES {
            let theme = Theme::load(name, None).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(theme.name, name);
        }
    }

    #[test]
    fn the_ansi_theme_uses_only_named_colours() {
        let theme = Theme::load("ansi", None).unwrap();
        let all = [
            theme.text,
            theme.dim,
            theme.accent,
            theme.border,
            theme.border_focused,
            theme.title,
            theme.selection_bg,
            theme.ok,
            theme.warn,
            theme.error,
        ];
        for c in all
            .iter()
            .chain(theme.gauge.iter())
            .chain(theme.status.iter())
        {
            assert!(!matches!(c, Color::Rgb(..) | Color::Indexed(_)), "{c:?}");
        }
    }

    #[test]
    fn bad_themes_are_refused_with_the_key() {
        let broken = include_str!("../../../themes/dark.toml")
            .replace("accent = \"#5fafff\"", "accent = \"blurple\"");
        let err = Theme::from_toml("x", &broken).unwrap_err().to_string();
        assert!(err.contains("accent"), "{err}");
        let unknown = format!(
            "{}\nsparkle = true\n",
            include_str!("../../../themes/dark.toml")
        );
        assert!(Theme::from_toml("x", &unknown).is_err());
        assert!(
            Theme::from_toml("x", "name = \"x\"")
                .unwrap_err()
                .to_string()
                .contains("missing")
        );
        assert!(matches!(
            Theme::load("nope", None),
            Err(ThemeError::Unknown(_))
        ));
    }

    #[test]
    fn no_color_strips_everything() {
        let theme = Theme::default_dark().without_color();
        assert_eq!(theme.status(JobStatus::Failed).fg, Some(Color::Reset));
        assert!(theme.monochrome);
    }

    #[test]
    fn colours_parse() {
        assert_eq!(parse_color("#ff0000"), Some(Color::Rgb(255, 0, 0)));
        assert_eq!(parse_color("33"), Some(Color::Indexed(33)));
        assert_eq!(parse_color("LightCyan"), Some(Color::LightCyan));
        assert_eq!(parse_color("#fff"), None);
        assert_eq!(parse_color("rainbow"), None);
    }
}
