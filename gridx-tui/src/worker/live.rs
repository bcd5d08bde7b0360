//! Live output on the worker's side (docs/protocol.md §3, `output`): what a running
//! job printed so far, as text, and how much of it the current session has sent.
//!
//! Executors hand raw bytes to the job's sink as they read them (within the job's
//! caps, `exec::output::Tap`). Here they become text: an incomplete UTF-8 sequence at
//! the end waits for its next bytes, and invalid bytes become U+FFFD exactly as the
//! final output's lossy conversion makes them, so the text sent live is always a
//! prefix of the output `finished` reports. Each session sends from offset 0 again
//! (the coordinator keeps only what is new), so nothing is lost across a reconnect.

use gridx_proto::api::OutputStream;
use gridx_proto::protocol::MAX_OUTPUT_CHUNK_BYTES;

/// Appends the text `bytes` complete to `out`; an incomplete sequence at the end is
/// left in `tail` for the next bytes.
fn decode(tail: &mut Vec<u8>, bytes: &[u8], out: &mut String) {
    tail.extend_from_slice(bytes);
    let mut at = 0;
    while at < tail.len() {
        match std::str::from_utf8(&tail[at..]) {
            Ok(text) => {
                out.push_str(text);
                at = tail.len();
            }
            Err(e) => {
                let valid = at + e.valid_up_to();
                if let Ok(text) = std::str::from_utf8(&tail[at..valid]) {
                    out.push_str(text);
                }
                match e.error_len() {
                    Some(n) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        at = valid + n;
                    }
                    None => {
                        at = valid;
                        break;
                    }
                }
            }
        }
    }
    tail.drain(..at);
}

/// One stream of one running job.
#[derive(Debug, Default)]
struct Stream {
    text: String,
    tail: Vec<u8>,
    sent: usize,
    /// How much of it this host's own dashboard has (`unshown`).
    shown: usize,
}

/// The live output of one running job.
#[derive(Debug, Default)]
pub struct LiveOutput {
    streams: [Stream; 2],
}

/// A piece to send: `output {stream, offset, text}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub stream: OutputStream,
    pub offset: u64,
    pub text: String,
}

impl LiveOutput {
    /// Bytes the job printed on `stream` (already within its cap).
    pub fn push(&mut self, stream: OutputStream, bytes: &[u8]) {
        let s = &mut self.streams[stream.index()];
        decode(&mut s.tail, bytes, &mut s.text);
    }

    /// The text this host's own dashboard does not have yet, by stream; marked shown.
    pub fn unshown(&mut self) -> Vec<(OutputStream, String)> {
        let mut out = Vec::new();
        for (stream, s) in OutputStream::BOTH.into_iter().zip(self.streams.iter_mut()) {
            if s.shown < s.text.len() {
                out.push((stream, s.text[s.shown..].to_owned()));
                s.shown = s.text.len();
            }
        }
        out
    }

    /// A new session: everything is sent again from the start.
    pub fn resend(&mut self) {
        for s in &mut self.streams {
            s.sent = 0;
        }
    }

    /// What is not sent yet, in pieces of at most `MAX_OUTPUT_CHUNK_BYTES` and at
    /// most `per_stream` pieces of each stream, marked sent. The rest waits for the
    /// next call, so a resend after a reconnect is spread out.
    pub fn unsent(&mut self, per_stream: usize) -> Vec<Piece> {
        let mut out = Vec::new();
        for (stream, s) in OutputStream::BOTH.into_iter().zip(self.streams.iter_mut()) {
            for _ in 0..per_stream {
                if s.sent >= s.text.len() {
                    break;
                }
                let mut end = (s.sent + MAX_OUTPUT_CHUNK_BYTES).min(s.text.len());
                while !s.text.is_char_boundary(end) {
                    end -= 1;
                }
                out.push(Piece {
                    stream,
                    offset: s.sent as u64,
                    text: s.text[s.sent..end].to_owned(),
                });
                s.sent = end;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the chunking, the text is the final output's lossy conversion.
    #[test]
    fn text_sent_live_is_the_final_outputs_lossy_conversion_whatever_the_chunks() {
        let bytes: Vec<u8> = [
            "plain ".as_bytes(),
            "é".as_bytes(),
            &[0xff, 0xfe],
            "€ and 🎉".as_bytes(),
            &[0xe2, 0x82],
            b" end",
            &[0xf0, 0x9f],
        ]
        .concat();
        let whole = String::from_utf8_lossy(&bytes).into_owned();
        for size in 1..=bytes.len() {
            let mut live = LiveOutput::default();
            let mut sent = String::new();
            for chunk in bytes.chunks(size) {
                live.push(OutputStream::Stdout, chunk);
                for piece in live.unsent(usize::MAX) {
                    assert_eq!(piece.offset as usize, sent.len());
                    sent.push_str(&piece.text);
                }
            }
            assert!(whole.starts_with(&sent), "chunks of {size}: {sent:?}");
            // Only the incomplete sequence at the very end is still held.
            assert_eq!(
                whole.len() - sent.len(),
                char::REPLACEMENT_CHARACTER.len_utf8()
            );
        }
    }

    #[test]
    fn a_new_session_sends_everything_again_in_bounded_pieces() {
        let mut live = LiveOutput::default();
        live.push(
            OutputStream::Stderr,
            "x".repeat(MAX_OUTPUT_CHUNK_BYTES + 10).as_bytes(),
        );
        live.push(OutputStream::Stdout, b"out");
        let first = live.unsent(usize::MAX);
        assert_eq!(first.len(), 3);
        assert_eq!(first[0].stream, OutputStream::Stdout);
        assert_eq!(first[2].offset, MAX_OUTPUT_CHUNK_BYTES as u64);
        assert!(live.unsent(usize::MAX).is_empty());
        live.resend();
        assert_eq!(live.unsent(1).len(), 2, "one piece of each stream");
        assert_eq!(live.unsent(1), first[2..], "the rest next time");
        live.resend();
        assert_eq!(live.unsent(usize::MAX), first);
        // The dashboard's cursor is its own: a resend does not show anything twice.
        assert_eq!(live.unshown().len(), 2);
        live.push(OutputStream::Stdout, b" more");
        assert_eq!(live.unshown(), [(OutputStream::Stdout, " more".to_owned())]);
        assert!(live.unshown().is_empty());
    }
}
