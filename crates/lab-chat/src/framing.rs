//! Framing: turning a stream of bytes into chat lines.
//!
//! TCP (and TLS on top of it) carries a *stream* of bytes, not messages. One `recv` may
//! return half a line, or three lines and the start of a fourth: the sender's `send` calls
//! are not preserved. The typical homework assumes one `recv` is one message and works on
//! loopback by luck. A chat needs a framing rule, and ours is the simplest one: a message
//! is a UTF-8 line ending in `\n` (a `\r\n` ending is accepted too, as telnet, `openssl
//! s_client` and Windows programs send it).
//!
//! A framing rule needs limits, or a peer can make us buffer forever: a "line" that never
//! ends would grow our buffer until memory runs out. [`LineDecoder`] refuses a line longer
//! than its limit as soon as the limit is passed, without waiting for its end, and reports
//! a line that is not valid UTF-8 instead of printing it as garbage.

/// The default longest line, in bytes (without its `\n`): 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// How a peer broke the framing rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("line {line_number} is longer than the limit of {limit} bytes")]
    TooLong { line_number: u64, limit: usize },
    #[error(
        "line {line_number} is not valid UTF-8 (invalid byte at offset {valid_up_to}: 0x{byte:02x})"
    )]
    InvalidUtf8 {
        line_number: u64,
        valid_up_to: usize,
        byte: u8,
    },
}

/// Collects bytes as they arrive and hands out complete lines.
#[derive(Debug)]
pub struct LineDecoder {
    pending: Vec<u8>,
    /// How much of `pending` is known to contain no `\n` (so it is not searched again).
    scanned: usize,
    max_line: usize,
    lines_seen: u64,
}

impl LineDecoder {
    /// A decoder that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        LineDecoder {
            pending: Vec::new(),
            scanned: 0,
            max_line,
            lines_seen: 0,
        }
    }

    /// Adds bytes just received.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Bytes received that are not yet a complete line.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// The next complete line, an error if the peer broke the rules, or `None` when more
    /// bytes are needed.
    pub fn next_line(&mut self) -> Option<Result<String, FrameError>> {
        let newline = self.pending[self.scanned..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| i + self.scanned);
        let Some(newline) = newline else {
            self.scanned = self.pending.len();
            // No end in sight and already over the limit: refuse now, not when (if ever)
            // the line ends. `\r` may still come before the `\n`, hence the +1.
            if self.pending.len() > self.max_line + 1 {
                return Some(Err(FrameError::TooLong {
                    line_number: self.lines_seen + 1,
                    limit: self.max_line,
                }));
            }
            return None;
        };
        self.lines_seen += 1;
        let mut line: Vec<u8> = self.pending.drain(..=newline).collect();
        self.scanned = 0;
        line.pop(); // the \n
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > self.max_line {
            return Some(Err(FrameError::TooLong {
                line_number: self.lines_seen,
                limit: self.max_line,
            }));
        }
        Some(String::from_utf8(line).map_err(|e| {
            let valid_up_to = e.utf8_error().valid_up_to();
            FrameError::InvalidUtf8 {
                line_number: self.lines_seen,
                valid_up_to,
                byte: e.as_bytes()[valid_up_to],
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(decoder: &mut LineDecoder) -> Vec<Result<String, FrameError>> {
        std::iter::from_fn(|| decoder.next_line()).collect()
    }

    #[test]
    fn one_read_may_hold_several_lines_or_half_of_one() {
        let mut d = LineDecoder::new(100);
        d.push(b"hello\nworld\r\nhal");
        assert_eq!(lines(&mut d), vec![Ok("hello".into()), Ok("world".into())]);
        d.push(b"f a line\n");
        assert_eq!(lines(&mut d), vec![Ok("half a line".into())]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn a_line_over_the_limit_is_refused_before_it_ends() {
        let mut d = LineDecoder::new(8);
        d.push(b"12345678\n");
        assert_eq!(lines(&mut d), vec![Ok("12345678".into())]);
        d.push(&[b'x'; 20]);
        assert_eq!(
            d.next_line(),
            Some(Err(FrameError::TooLong {
                line_number: 2,
                limit: 8
            }))
        );
    }

    #[test]
    fn invalid_utf8_is_reported_with_its_offset() {
        let mut d = LineDecoder::new(100);
        d.push(b"ok\nab\xffc\n");
        assert_eq!(d.next_line(), Some(Ok("ok".into())));
        assert_eq!(
            d.next_line(),
            Some(Err(FrameError::InvalidUtf8 {
                line_number: 2,
                valid_up_to: 2,
                byte: 0xff
            }))
        );
    }
}
