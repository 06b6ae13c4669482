//! The chunked transfer coding, validated as it streams through: the bytes pass on unchanged,
//! but only as far as they form valid framing (hex sizes of at most 16 digits, CRLF after
//! every line and every chunk, extensions and trailers without control characters or folding).
//! Whatever follows an error is never forwarded, so a real server never sees an ambiguous body.

/// Longest chunk-size line (with extensions) and longest trailer section.
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked body: {0}")]
pub(crate) struct ChunkError(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    /// Whitespace after the size: only `;` may follow.
    SizeWs,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
}

/// Where a chunked body stands.
#[derive(Debug, Clone)]
pub(crate) struct Chunked {
    state: State,
    /// Size being read, then data bytes left in the chunk.
    size: u64,
    digits: u8,
    line: usize,
    trailers: usize,
    decoded: u64,
}

impl Default for Chunked {
    fn default() -> Self {
        Self { state: State::Size, size: 0, digits: 0, line: 0, trailers: 0, decoded: 0 }
    }
}

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Payload bytes seen so far (the sum of chunk sizes).
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Takes the longest prefix of `input` that continues the body validly and returns its
    /// length; stops after the final CRLF. Invalid framing is an error.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, ChunkError> {
        self.feed_with(input, |_| {})
    }

    /// [`Chunked::feed`], handing each run of payload bytes (the framing stripped) to `data`.
    pub fn feed_with(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                let take = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                data(&input[i..i + take]);
                i += take;
                self.size -= take as u64;
                self.decoded += take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            if self.state == State::Done {
                break;
            }
            let b = input[i];
            i += 1;
            self.step(b)?;
        }
        Ok(i)
    }

    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        let ctl = |b: u8| (b < 0x20 && b != b'\t') || b == 0x7f;
        match self.state {
            State::Size => match hex(b) {
                Some(v) => {
                    if self.digits == 16 {
                        return Err(ChunkError("chunk size too long"));
                    }
                    self.size = self.size << 4 | u64::from(v);
                    self.digits += 1;
                }
                None if self.digits == 0 => return Err(ChunkError("missing chunk size")),
                None => match b {
                    b';' => self.state = State::Ext,
                    b'\r' => self.state = State::SizeLf,
                    b' ' | b'\t' => self.state = State::SizeWs,
                    _ => return Err(ChunkError("invalid chunk size")),
                },
            },
            State::SizeWs => match b {
                b' ' | b'\t' => {}
                b';' => self.state = State::Ext,
                _ => return Err(ChunkError("whitespace after the chunk size")),
            },
            State::Ext => {
                if b == b'\r' {
                    self.state = State::SizeLf;
                } else if ctl(b) {
                    return Err(ChunkError("control character in chunk extension"));
                }
            }
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ChunkError("chunk size line not ended by CRLF"));
                }
                self.state = if self.size == 0 { State::TrailerStart } else { State::Data };
            }
            State::DataCr => {
                if b != b'\r' {
                    return Err(ChunkError("chunk data not followed by CRLF"));
                }
                self.state = State::DataLf;
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(ChunkError("chunk data not followed by CRLF"));
                }
                self.state = State::Size;
                self.size = 0;
                self.digits = 0;
                self.line = 0;
            }
            State::TrailerStart => {
                if b == b'\r' {
                    self.state = State::EndLf;
                } else if rvs_model::http::is_tchar(b) {
                    self.state = State::TrailerName;
                } else {
                    return Err(ChunkError("invalid trailer field"));
                }
            }
            State::TrailerName => {
                if b == b':' {
                    self.state = State::TrailerValue;
                } else if !rvs_model::http::is_tchar(b) {
                    return Err(ChunkError("invalid trailer field name"));
                }
            }
            State::TrailerValue => {
                if b == b'\r' {
                    self.state = State::TrailerLf;
                } else if ctl(b) {
                    return Err(ChunkError("control character in trailer field"));
                }
            }
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(ChunkError("trailer field not ended by CRLF"));
                }
                self.state = State::TrailerStart;
            }
            State::EndLf => {
                if b != b'\n' {
                    return Err(ChunkError("chunked body not ended by CRLF"));
                }
                self.state = State::Done;
            }
            State::Data | State::Done => unreachable!("handled by feed"),
        }
        match self.state {
            State::Size | State::SizeWs | State::Ext | State::SizeLf => {
                self.line += 1;
                if self.line > MAX_LINE {
                    return Err(ChunkError("chunk size line too long"));
                }
            }
            State::TrailerStart | State::TrailerName | State::TrailerValue | State::TrailerLf | State::EndLf => {
                self.trailers += 1;
                if self.trailers > MAX_TRAILERS {
                    return Err(ChunkError("trailer section too large"));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(input: &[u8]) -> Result<(usize, bool, u64), ChunkError> {
        let mut c = Chunked::default();
        let n = c.feed(input)?;
        Ok((n, c.is_done(), c.decoded()))
    }

    #[test]
    fn valid_bodies() {
        assert_eq!(whole(b"5\r\nhello\r\n0\r\n\r\n"), Ok((15, true, 5)));
        assert_eq!(whole(b"5;ext=1\r\nhello\r\n0\r\nX-T: v\r\n\r\nNEXT"), Ok((29, true, 5)));
        assert_eq!(whole(b"A \t;x\r\n0123456789\r\n0\r\n\r\n"), Ok((24, true, 10)));
        assert_eq!(whole(b"5\r\nhel"), Ok((6, false, 3)));
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let body = b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n";
        let mut c = Chunked::default();
        let mut taken = 0;
        for b in body.iter() {
            taken += c.feed(std::slice::from_ref(b)).unwrap();
        }
        assert!(c.is_done());
        assert_eq!(taken, body.len());
        assert_eq!(c.decoded(), 19);
    }

    #[test]
    fn payload_without_framing() {
        let body = b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n";
        let mut c = Chunked::default();
        let mut payload = Vec::new();
        for part in body.chunks(5) {
            assert_eq!(c.feed_with(part, |d| payload.extend_from_slice(d)).unwrap(), part.len());
        }
        assert!(c.is_done());
        assert_eq!(payload, b"abc0123456789abcdef");
    }

    #[test]
    fn invalid_bodies() {
        for bad in [
            &b"\r\n"[..],
            b"x\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloX\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"-5\r\n",
            b"0x5\r\n",
            b"11111111111111111\r\n",
            b"5 5\r\n",
            b"0\r\n\tfolded\r\n\r\n",
            b"0\r\nbad name: v\r\n\r\n",
            b"0\r\nX: a\x00\r\n\r\n",
            b"0\r\n\r\r",
            b"5;a\x01\r\n",
        ] {
            assert!(whole(bad).is_err(), "{}", String::from_utf8_lossy(bad).escape_debug());
        }
    }
}
