//! The dashboard themes that ship inside the binary (the TOML files in `themes/`), by
//! name. No terminal types here: the console grammar lists the names and the
//! dashboard's `ui::theme` parses the text.

/// The built-in themes' names, in the order they are listed.
pub const NAMES: [&str; 4] = ["dark", "light", "high-contrast", "ansi"];

/// A built-in theme's TOML text, or `None` for a name that is not built in.
pub fn text(name: &str) -> Option<&'static str> {
    match name {
        "dark" => Some(include_str!("../../themes/dark.toml")),
        "light" => Some(include_str!("../../themes/light.toml")),
        "high-contrast" => Some(include_str!("../../themes/high-contrast.toml")),
        "ansi" => Some(include_str!("../../themes/ansi.toml")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{NAMES, text};

    #[test]
    fn every_listed_name_has_a_text_and_no_other_does() {
        for name in NAMES {
            assert!(text(name).is_some_and(|t| t.contains(name)), "{name}");
        }
        assert_eq!(text("solarized"), None);
    }
}
