//! Escape sequences in configured send strings (`\r\n`, `\t`, `\xHH`, ...), honoured as the
//! nanny and ldirectord do: the bytes a check's `send`, `payload` or agent `send` stands for.

/// A send string with a bad escape sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid escape sequence `{sequence}` at offset {offset}; use \\r \\n \\t \\0 \\e \\\\ \\\" \\' or \\xHH")]
pub struct EscapeError {
    pub offset: usize,
    pub sequence: String,
}

/// Turns `\r`, `\n`, `\t`, `\0`, `\e` (ESC), `\\`, `\"`, `\'` and `\xHH` into their bytes.
/// Everything else is taken as it is (already-real control characters pass through).
pub fn unescape(s: &str) -> Result<Vec<u8>, EscapeError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let bad = |len: usize| EscapeError { offset: i, sequence: s[i..(i + len).min(s.len())].to_owned() };
        let Some(&next) = bytes.get(i + 1) else {
            return Err(bad(1));
        };
        let byte = match next {
            b'r' => b'\r',
            b'n' => b'\n',
            b't' => b'\t',
            b'0' => 0,
            b'e' => 0x1b,
            b'\\' => b'\\',
            b'"' => b'"',
            b'\'' => b'\'',
            b'x' => {
                let hex = bytes.get(i + 2..i + 4).ok_or_else(|| bad(s.len() - i))?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad(2))?;
                let v = u8::from_str_radix(hex, 16).map_err(|_| bad(4))?;
                out.push(v);
                i += 4;
                continue;
            }
            _ => return Err(bad(if next.is_ascii() { 2 } else { 1 })),
        };
        out.push(byte);
        i += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences() {
        assert_eq!(unescape(r"GET / HTTP/1.0\r\n\r\n").unwrap(), b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(unescape(r"a\tb\\c\x41\x00\e").unwrap(), b"a\tb\\cA\0\x1b");
        assert_eq!(unescape("real\r\nlines").unwrap(), b"real\r\nlines");
        assert_eq!(unescape(r#"\"q\'"#).unwrap(), b"\"q'");
        assert_eq!(unescape(r"\xff").unwrap(), [0xff]);
    }

    #[test]
    fn bad_sequences() {
        assert_eq!(unescape(r"ab\q").unwrap_err(), EscapeError { offset: 2, sequence: r"\q".into() });
        assert!(unescape("trailing\\").is_err());
        assert!(unescape(r"\x4").is_err());
        assert!(unescape(r"\xzz").is_err());
        let e = unescape(r"\q").unwrap_err().to_string();
        assert!(e.contains("`\\q` at offset 0"), "{e}");
    }
}
