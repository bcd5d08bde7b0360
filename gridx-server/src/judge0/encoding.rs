//! Judge0's encodings: base64 as Ruby's `Base64.encode64` writes it (a newline after
//! every 60 characters and at the end) and `decode64` reads it (anything outside the
//! alphabet skipped, padding optional), and its timestamps.

use base64::Engine;
use base64::alphabet::STANDARD as ALPHABET;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

/// Ruby's decoder keeps the bytes of a last group whose unused bits are not zero,
/// and needs no padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &ALPHABET,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
use gridx_proto::time_fmt::Timestamp;

/// Ruby's `Base64.encode64`: RFC 2045 lines of 60 characters, each ended by `\n`.
pub fn encode64(bytes: &[u8]) -> String {
    let flat = STANDARD.encode(bytes);
    let mut out = String::with_capacity(flat.len() + flat.len() / 60 + 1);
    for chunk in flat.as_bytes().chunks(60) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out
}

/// Ruby's `Base64.decode64`: never fails. Characters outside the alphabet are
/// skipped, and decoding stops at the first `=` or at a last incomplete group.
pub fn decode64(text: &str) -> Vec<u8> {
    let mut clean: String = text
        .chars()
        .take_while(|c| *c != '=')
        .filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/')
        .collect();
    // A lone trailing character is not a byte: drop it, as Ruby does.
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    LENIENT.decode(clean.as_bytes()).unwrap_or_default()
}

/// `2024-04-03T05:40:51.306Z`: UTC with milliseconds, which Judge0's clients parse
/// with a fixed format.
pub fn timestamp(at: Timestamp) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// A duration in seconds as Judge0 writes it: a JSON string like `"0.002"`.
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// A limit in seconds as Judge0 writes it: `"5.0"`, `"2.5"`.
pub fn limit(seconds: f64) -> String {
    format!("{seconds:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode64_breaks_lines_like_ruby() {
        assert_eq!(encode64(b"hello, Judge0\n"), "aGVsbG8sIEp1ZGdlMAo=\n");
        assert_eq!(encode64(b""), "");
        let long = encode64(&[0u8; 60]);
        assert_eq!(long.lines().map(str::len).collect::<Vec<_>>(), [60, 20]);
        assert!(long.ends_with('\n'));
    }

    #[test]
    fn decode64_is_lenient_like_ruby() {
        assert_eq!(decode64("aGVsbG8sIEp1ZGdlMAo=\n"), b"hello, Judge0\n");
        assert_eq!(decode64("aGVs\nbG8"), b"hello");
        assert_eq!(decode64("aGVsbG8*!"), b"hello");
        assert_eq!(decode64("a"), b"");
        // Non-zero unused bits in the last group ("aGk=" is "hi"; "aGl" differs only
        // there): Ruby keeps the bytes.
        assert_eq!(decode64("aGl"), b"hi");
        assert_eq!(decode64(""), b"");
    }

    #[test]
    fn times_are_judge0s_strings() {
        assert_eq!(seconds(2), "0.002");
        assert_eq!(seconds(1500), "1.500");
        assert_eq!(limit(5.0), "5.0");
        assert_eq!(limit(2.5), "2.5");
        let at = gridx_proto::time_fmt::from_unix_millis(1_712_123_251_306);
        assert_eq!(timestamp(at), "2024-04-03T05:47:31.306Z");
    }
}
