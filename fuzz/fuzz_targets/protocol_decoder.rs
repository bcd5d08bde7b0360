//! Fuzzes the worker protocol decoder (`gridx_proto::protocol`).
//!
//! The input is one WebSocket text frame. Both peers' decoders must:
//! * never panic, whatever the text;
//! * refuse a frame longer than the limit with `TooLarge` before parsing, and give
//!   the same answer as with the default limit for a frame within it;
//! * quote at most 80 characters of a hostile `type` back in an error;
//! * for every frame they accept, re-encode it with `encode` into a frame that
//!   decodes to an equal message and re-encodes to the same text (the peer on the
//!   other side must read exactly what was sent).
//!
//! A violated property panics, so libFuzzer records it as a crash.

#![no_main]

use gridx_proto::protocol::{
    CoordinatorMessage, DEFAULT_MAX_FRAME_BYTES, DecodeError, WorkerMessage,
    decode_coordinator_message, decode_worker_message, encode,
};
use libfuzzer_sys::fuzz_target;
use std::fmt::Debug;

/// A small limit, so that short fuzz inputs exercise both sides of the size check.
const SMALL_MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8 by the WebSocket spec (tungstenite checks it before the
    // decoder sees them), so other bytes never reach the decoder.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check::<WorkerMessage, _>("worker", text, decode_worker_message);
    check::<CoordinatorMessage, _>("coordinator", text, decode_coordinator_message);
});

fn check<T, F>(side: &str, text: &str, decode: F)
where
    T: serde::Serialize + PartialEq + Debug,
    F: Fn(&str, usize) -> Result<T, DecodeError>,
{
    let full = decode(text, DEFAULT_MAX_FRAME_BYTES);

    // The size limit is checked first and only depends on the length.
    let small = decode(text, SMALL_MAX);
    if text.len() > SMALL_MAX {
        assert_eq!(
            small,
            Err(DecodeError::TooLarge {
                len: text.len(),
                max: SMALL_MAX
            }),
            "{side}: a {}-byte frame passed a {SMALL_MAX}-byte limit",
            text.len()
        );
    } else {
        assert_eq!(
            small, full,
            "{side}: the limit changed the result of a small frame"
        );
    }

    match full {
        Ok(message) => round_trip(side, text, &message, &decode),
        Err(DecodeError::UnknownType(kind)) => {
            // `truncate_for_message`: 80 bytes plus an ellipsis at most.
            assert!(
                kind.len() <= 80 + '…'.len_utf8(),
                "{side}: error quotes {} bytes of the input",
                kind.len()
            );
        }
        Err(_) => {}
    }
}

fn round_trip<T, F>(side: &str, input: &str, message: &T, decode: &F)
where
    T: serde::Serialize + PartialEq + Debug,
    F: Fn(&str, usize) -> Result<T, DecodeError>,
{
    let encoded = match encode(message) {
        Ok(text) => text,
        Err(e) => panic!("{side}: cannot encode a decoded message: {e}\ninput: {input:?}"),
    };
    let decoded = match decode(&encoded, DEFAULT_MAX_FRAME_BYTES) {
        Ok(m) => m,
        Err(e) => panic!(
            "{side}: re-encoded frame does not decode: {e}\ninput:   {input:?}\nencoded: {encoded:?}\nmessage: {message:?}"
        ),
    };
    assert_eq!(
        &decoded, message,
        "{side}: round trip changed the message\ninput:   {input:?}\nencoded: {encoded:?}"
    );
    let again = match encode(&decoded) {
        Ok(text) => text,
        Err(e) => panic!("{side}: cannot re-encode: {e}"),
    };
    assert_eq!(again, encoded, "{side}: encoding is not stable");
}
