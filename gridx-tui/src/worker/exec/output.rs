//! Capped capture of a job's stdout and stderr: keep the first `cap` bytes, set the
//! truncated flag, and keep draining (and discarding) the rest so the job never
//! blocks on a full pipe.

use gridx_proto::api::OutputStream;

/// A byte buffer that stops growing at its cap.
#[derive(Debug, Clone)]
pub struct CappedBuffer {
    bytes: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl CappedBuffer {
    pub fn new(cap: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(cap.min(64 * 1024)),
            cap,
            truncated: false,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// The text, with invalid UTF-8 replaced; a cut in the middle of a character
    /// becomes one replacement character rather than an error.
    pub fn into_text(self) -> (String, bool) {
        (
            String::from_utf8_lossy(&self.bytes).into_owned(),
            self.truncated,
        )
    }
}

/// Where an executor hands a running job's output as it reads it (live output,
/// `crate::worker::live`): called with each stream's bytes, already within the job's
/// caps. Must not block.
#[derive(Clone)]
pub struct LiveSink(pub std::sync::Arc<LiveFn>);

/// What a [`LiveSink`] calls.
pub type LiveFn = dyn Fn(OutputStream, &[u8]) + Send + Sync;

impl std::fmt::Debug for LiveSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveSink")
    }
}

/// One stream's tap into a [`LiveSink`]: passes on at most `room` bytes, the job's
/// cap, as the captured output keeps. A compiled language's stderr first carries the
/// compiler's words and the marker line (`toolchain`); its tap holds everything until
/// that line has passed and passes on only the program's part after it.
#[derive(Debug)]
pub struct Tap {
    sink: LiveSink,
    stream: OutputStream,
    room: usize,
    /// Compiled stderr: the marker line's start (`\nMARKER `) and what came so far.
    held: Option<(Vec<u8>, Vec<u8>)>,
}

impl Tap {
    pub fn new(sink: LiveSink, stream: OutputStream, room: usize) -> Tap {
        Tap {
            sink,
            stream,
            room,
            held: None,
        }
    }

    /// Holds everything until the marker line `\nMARKER …\n` has passed.
    pub fn after_marker(mut self, marker: &str) -> Tap {
        self.held = Some((format!("\n{marker} ").into_bytes(), Vec::new()));
        self
    }

    pub fn push(&mut self, bytes: &[u8]) {
        let Some((needle, held)) = &mut self.held else {
            self.forward(bytes);
            return;
        };
        held.extend_from_slice(bytes);
        let Some(at) = held
            .windows(needle.len())
            .position(|w| w == needle.as_slice())
        else {
            // The compiler's words are bounded (the wrapper cuts them); past that
            // bound the line is not coming, and nothing of this stream goes live.
            if held.len() > gridx_proto::protocol::MAX_COMPILE_OUTPUT_BYTES + 1024 {
                self.held = None;
                self.room = 0;
            }
            return;
        };
        let Some(end) = held[at + 1..].iter().position(|b| *b == b'\n') else {
            return;
        };
        let rest = held.split_off(at + 1 + end + 1);
        self.held = None;
        self.forward(&rest);
    }

    fn forward(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.room);
        if n > 0 {
            (self.sink.0)(self.stream, &bytes[..n]);
            self.room -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collecting() -> (LiveSink, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = {
            let got = got.clone();
            LiveSink(std::sync::Arc::new(move |_, bytes: &[u8]| {
                got.lock().unwrap().extend_from_slice(bytes)
            }))
        };
        (sink, got)
    }

    #[test]
    fn a_tap_passes_on_at_most_the_cap() {
        let (sink, got) = collecting();
        let mut tap = Tap::new(sink, OutputStream::Stdout, 5);
        tap.push(b"abc");
        tap.push(b"defgh");
        assert_eq!(got.lock().unwrap().as_slice(), b"abcde");
    }

    #[test]
    fn a_compiled_stderr_tap_passes_on_only_what_follows_the_marker_line() {
        let (sink, got) = collecting();
        let mut tap = Tap::new(sink, OutputStream::Stderr, 100).after_marker("MARK");
        for piece in [
            &b"main.c: warning\n"[..],
            b"\nMA",
            b"RK 0 16",
            b"\nprog",
            b" err\n",
        ] {
            tap.push(piece);
        }
        assert_eq!(got.lock().unwrap().as_slice(), b"prog err\n");
    }

    #[test]
    fn stops_at_the_cap_and_flags_it() {
        let mut b = CappedBuffer::new(5);
        b.push(b"abc");
        assert!(!b.is_truncated());
        b.push(b"defgh");
        b.push(b"ijk");
        assert_eq!(b.into_text(), ("abcde".to_owned(), true));
    }

    #[test]
    fn exactly_the_cap_is_not_truncated() {
        let mut b = CappedBuffer::new(3);
        b.push(b"abc");
        assert_eq!(b.into_text(), ("abc".to_owned(), false));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let mut b = CappedBuffer::new(10);
        b.push(&[0x66, 0xff, 0x6f]);
        assert_eq!(b.into_text().0, "f\u{fffd}o");
    }
}
