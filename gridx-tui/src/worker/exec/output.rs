//! Capped capture of a job's stdout and stderr: keep the first `cap` bytes, set the
//! truncated flag, and keep draining (and discarding) the rest so the job never
//! blocks on a full pipe.

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

#[cfg(test)]
mod tests {
    use super::*;

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
