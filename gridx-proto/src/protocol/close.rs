//! The WebSocket close status codes (RFC 6455 §7.4.1) the coordinator ends a worker
//! connection with. A `reject` says *what* the worker should do; the close status
//! says what happened at the WebSocket level, and is all a worker gets when a frame
//! it sent after `welcome` could not be accepted.

use crate::protocol::{DecodeError, RejectCode};
use std::fmt;

/// Why the coordinator closed a worker's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: the session ended in order (the worker closed first).
    Normal,
    /// 1001: the coordinator is shutting down (after `reject shutting_down`).
    GoingAway,
    /// 1002: the frame broke the WebSocket protocol itself (reserved bits, an
    /// unmasked client frame, ...).
    ProtocolError,
    /// 1003: a binary frame; the protocol is text only.
    Unsupported,
    /// 1007: a text frame that is not a valid message: not JSON, an unknown `type`,
    /// a missing or mistyped field, an unknown enumerated value, a value out of
    /// bounds, or text that is not UTF-8.
    InvalidPayload,
    /// 1008: a valid frame the coordinator refuses in this place: after a `reject`
    /// (bad token, revoked, protocol mismatch, hello timeout, replaced), a first
    /// frame that is not `hello`, a second `hello`, or a silent worker.
    PolicyViolation,
    /// 1009: a frame over the coordinator's size limit.
    TooBig,
}

/// The most bytes a close frame's reason may hold (125 minus the 2-byte code).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

impl CloseCode {
    pub const ALL: [CloseCode; 7] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::ProtocolError,
        CloseCode::Unsupported,
        CloseCode::InvalidPayload,
        CloseCode::PolicyViolation,
        CloseCode::TooBig,
    ];

    /// The status code on the wire.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::ProtocolError => 1002,
            CloseCode::Unsupported => 1003,
            CloseCode::InvalidPayload => 1007,
            CloseCode::PolicyViolation => 1008,
            CloseCode::TooBig => 1009,
        }
    }

    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// A few words for logs and the worker's console.
    pub fn describe(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal closure",
            CloseCode::GoingAway => "going away",
            CloseCode::ProtocolError => "WebSocket protocol error",
            CloseCode::Unsupported => "unsupported data",
            CloseCode::InvalidPayload => "invalid message",
            CloseCode::PolicyViolation => "refused",
            CloseCode::TooBig => "frame too big",
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.describe())
    }
}

impl RejectCode {
    /// The close status that follows this `reject`. Its reason is the reject code
    /// itself (`"replaced"`), so a worker that reads only the close still knows.
    pub fn close_code(self) -> CloseCode {
        match self {
            RejectCode::ShuttingDown => CloseCode::GoingAway,
            RejectCode::Malformed => CloseCode::InvalidPayload,
            RejectCode::BadToken
            | RejectCode::Revoked
            | RejectCode::ProtocolMismatch
            | RejectCode::HelloTimeout
            | RejectCode::Replaced => CloseCode::PolicyViolation,
        }
    }
}

impl DecodeError {
    /// The close status for a frame that failed to decode.
    pub fn close_code(&self) -> CloseCode {
        match self {
            DecodeError::TooLarge { .. } => CloseCode::TooBig,
            _ => CloseCode::InvalidPayload,
        }
    }
}

/// `text` cut to fit a close frame's reason, on a character boundary.
pub fn close_reason(text: &str) -> String {
    if text.len() <= MAX_CLOSE_REASON_BYTES {
        return text.to_owned();
    }
    // Room for the ellipsis (3 bytes) that says the reason was cut.
    let mut end = MAX_CLOSE_REASON_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::{CloseCode, MAX_CLOSE_REASON_BYTES, close_reason};
    use crate::protocol::{DecodeError, RejectCode};

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for code in CloseCode::ALL {
            assert_eq!(CloseCode::from_code(code.code()), Some(code));
        }
        assert_eq!(CloseCode::from_code(1006), None);
        assert_eq!(
            CloseCode::InvalidPayload.to_string(),
            "1007 invalid message"
        );
    }

    #[test]
    fn every_reject_and_decode_error_has_a_close_code() {
        assert_eq!(RejectCode::ShuttingDown.close_code(), CloseCode::GoingAway);
        assert_eq!(
            RejectCode::Replaced.close_code(),
            CloseCode::PolicyViolation
        );
        assert_eq!(
            RejectCode::Malformed.close_code(),
            CloseCode::InvalidPayload
        );
        let big = DecodeError::TooLarge { len: 2, max: 1 };
        assert_eq!(big.close_code(), CloseCode::TooBig);
        assert_eq!(
            DecodeError::MissingType.close_code(),
            CloseCode::InvalidPayload
        );
    }

    #[test]
    fn reasons_fit_a_close_frame_whatever_the_text() {
        assert_eq!(close_reason("short"), "short");
        let exact = "x".repeat(MAX_CLOSE_REASON_BYTES);
        assert_eq!(close_reason(&exact), exact);
        for text in ["y".repeat(500), "é".repeat(200), "日本".repeat(100)] {
            let cut = close_reason(&text);
            assert!(cut.len() <= MAX_CLOSE_REASON_BYTES, "{}", cut.len());
            assert!(cut.ends_with('…'));
        }
    }
}
