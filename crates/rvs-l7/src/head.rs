//! Strict checks and field-value helpers shared by request and response heads: CRLF-only line
//! endings, no control characters, comma-separated token lists, Content-Length and
//! Transfer-Encoding as RFC 9110/9112 allow them and nothing looser, hop-by-hop fields.

/// Every line ends in CRLF (no bare LF, no bare CR) and no control character other than HTAB
/// appears. Run on a complete head.
pub(crate) fn check_bytes(head: &[u8]) -> Result<(), &'static str> {
    let mut prev = 0u8;
    for (i, &b) in head.iter().enumerate() {
        if b < 0x20 || b == 0x7f {
            match b {
                b'\n' if prev != b'\r' => return Err("bare LF line ending"),
                b'\r' if head.get(i + 1) != Some(&b'\n') => return Err("bare CR"),
                b'\n' | b'\r' | b'\t' => {}
                _ => return Err("control character in head"),
            }
        }
        prev = b;
    }
    Ok(())
}

/// Like [`check_bytes`] on an incomplete head: fails early on what can already be seen.
pub(crate) fn check_partial(head: &[u8]) -> Result<(), &'static str> {
    match head.last() {
        Some(b'\r') => check_bytes(&head[..head.len() - 1]),
        _ => check_bytes(head),
    }
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The non-empty elements of a comma-separated list, OWS trimmed.
pub(crate) fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(trim_ows).filter(|e| !e.is_empty())
}

/// The message length from Content-Length fields: each a list of decimal numbers, all equal
/// (RFC 9110 8.6 allows `42, 42`). Signs, spaces inside, hex, empty values or differing
/// values are refused.
pub(crate) fn content_length<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Option<u64>, &'static str> {
    let mut len: Option<u64> = None;
    for v in values {
        let mut any = false;
        for e in v.split(|b| *b == b',').map(trim_ows) {
            if e.is_empty() || e.len() > 19 || !e.iter().all(u8::is_ascii_digit) {
                return Err("invalid Content-Length");
            }
            let n: u64 = std::str::from_utf8(e).ok().and_then(|s| s.parse().ok()).ok_or("invalid Content-Length")?;
            if len.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length");
            }
            len = Some(n);
            any = true;
        }
        if !any {
            return Err("invalid Content-Length");
        }
    }
    Ok(len)
}

/// What a Transfer-Encoding field says about framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// Exactly `chunked`.
    Chunked,
    /// A valid list of codings ending in `chunked`, with others before it (`gzip, chunked`).
    ChunkedAfterOthers,
    /// A valid list of codings whose last is not `chunked`.
    NotChunked,
    /// Not a list of codings (`chunked;x`, `chunked, `, odd bytes, `chunked, chunked`).
    Invalid,
}

/// Reads one Transfer-Encoding field value.
pub(crate) fn transfer_coding(value: &[u8]) -> Coding {
    let v = trim_ows(value);
    if v.eq_ignore_ascii_case(b"chunked") {
        return Coding::Chunked;
    }
    let parts: Vec<&[u8]> = v.split(|b| *b == b',').map(trim_ows).collect();
    if parts.iter().any(|p| p.is_empty() || !p.iter().all(|b| crate::matcher::is_tchar(*b))) {
        return Coding::Invalid;
    }
    let chunked = |p: &[u8]| p.eq_ignore_ascii_case(b"chunked");
    match parts.iter().rposition(|p| chunked(p)) {
        Some(i) if i + 1 == parts.len() && parts.iter().filter(|p| chunked(p)).count() == 1 => {
            Coding::ChunkedAfterOthers
        }
        Some(_) => Coding::Invalid,
        None => Coding::NotChunked,
    }
}

/// Fields that belong to one connection (RFC 9110 7.6.1) and never pass through the proxy as
/// they are; framing fields are rewritten by the proxy, so they are listed too.
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&str; 7] =
        ["connection", "keep-alive", "proxy-connection", "te", "upgrade", "transfer-encoding", "content-length"];
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// A field name that some servers normalise into a framing or routing field (`Content_Length`
/// read as `Content-Length` by CGI-style gateways): refused, so it cannot smuggle one.
pub(crate) fn is_disguised_critical(name: &str) -> bool {
    if !name.contains('_') {
        return false;
    }
    let n = name.replace('_', "-");
    ["content-length", "transfer-encoding", "host", "connection"].iter().any(|c| c.eq_ignore_ascii_case(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings() {
        assert!(check_bytes(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert!(check_bytes(b"GET / HTTP/1.1\nHost: a\r\n\r\n").is_err());
        assert!(check_bytes(b"GET / HTTP/1.1\r\nHost: a\r\n\n").is_err());
        assert!(check_bytes(b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n").is_err());
        assert!(check_bytes(b"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n").is_err());
        assert!(check_bytes(b"GET / HTTP/1.1\r\nX: a\tb\r\n\r\n").is_ok());
        assert!(check_partial(b"GET / HTTP/1.1\r").is_ok());
        assert!(check_partial(b"GET / HTTP/1.1\n").is_err());
    }

    #[test]
    fn content_lengths() {
        let cl = |vs: &[&[u8]]| content_length(vs.iter().copied());
        assert_eq!(cl(&[]), Ok(None));
        assert_eq!(cl(&[b"42"]), Ok(Some(42)));
        assert_eq!(cl(&[b"42, 42", b"42"]), Ok(Some(42)));
        assert!(cl(&[b"42", b"43"]).is_err());
        assert!(cl(&[b"+42"]).is_err());
        assert!(cl(&[b"0x10"]).is_err());
        assert!(cl(&[b"4 2"]).is_err());
        assert!(cl(&[b""]).is_err());
        assert!(cl(&[b"42,"]).is_err());
        assert!(cl(&[b"99999999999999999999"]).is_err());
    }

    #[test]
    fn codings() {
        assert_eq!(transfer_coding(b"chunked"), Coding::Chunked);
        assert_eq!(transfer_coding(b"CHUNKED"), Coding::Chunked);
        assert_eq!(transfer_coding(b"gzip, chunked"), Coding::ChunkedAfterOthers);
        assert_eq!(transfer_coding(b"chunked, identity"), Coding::Invalid);
        assert_eq!(transfer_coding(b"gzip"), Coding::NotChunked);
        assert_eq!(transfer_coding(b"xchunked"), Coding::NotChunked);
        assert_eq!(transfer_coding(b"chunked, chunked"), Coding::Invalid);
        assert_eq!(transfer_coding(b"chunked;q=1"), Coding::Invalid);
        assert_eq!(transfer_coding(b"chunked,"), Coding::Invalid);
        assert_eq!(transfer_coding(b"\x0bchunked"), Coding::Invalid);
    }

    #[test]
    fn lists_and_tokens() {
        assert_eq!(list(b" a ,, b,\tc ").collect::<Vec<_>>(), [&b"a"[..], b"b", b"c"]);
        assert!(is_disguised_critical("Content_Length"));
        assert!(!is_disguised_critical("X_Custom"));
        assert!(is_hop_by_hop("Keep-Alive"));
        assert!(!is_hop_by_hop("Trailer"));
    }
}
