//! Strict checks and field-value helpers shared by request and response heads: CRLF-only line
//! endings, no control characters, comma-separated token lists, Content-Length and
//! Transfer-Encoding as RFC 9110/9112 allow them and nothing looser, hop-by-hop fields.

/// Every line ends in CRLF (no bare LF, no bare CR) and no control character other than HTAB
/// appears. Run on a complete head.
pub(crate) fn check_bytes(head: &[u8]) -> Result<(), &'static str> {
    let mut i = 0;
    while i < head.len() {
        // Eight bytes at a time to the next control character (most of a head has none).
        if let Some(word) = head.get(i..i + 8) {
            let mask = control_mask(u64::from_le_bytes(word.try_into().expect("eight bytes")));
            if mask == 0 {
                i += 8;
                continue;
            }
            i += mask.trailing_zeros() as usize / 8;
        }
        let b = head[i];
        if b < 0x20 || b == 0x7f {
            match b {
                b'\n' if i == 0 || head[i - 1] != b'\r' => return Err("bare LF line ending"),
                b'\r' if head.get(i + 1) != Some(&b'\n') => return Err("bare CR"),
                // A line end: past its LF at once.
                b'\r' => i += 1,
                b'\n' | b'\t' => {}
                _ => return Err("control character in head"),
            }
        }
        i += 1;
    }
    Ok(())
}

/// The high bit of each byte of `w` (little-endian) that is a control character (below 0x20,
/// or DEL), exactly: the per-byte additions never carry into the next byte.
fn control_mask(w: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bit set where the byte is at least 0x20.
    let printable = (((w & LOW7) + 0x6060_6060_6060_6060) | w) & HIGH;
    // High bit set where the byte is not 0x7f.
    let del = w ^ LOW7;
    let not_del = (((del & LOW7) + LOW7) | del) & HIGH;
    (!printable | !not_del) & HIGH
}

/// [`check_bytes`] for a head httparse accepted whole (with its default configuration),
/// whose fields are `fields`. httparse lets no control character through but HTAB inside
/// values and the reason phrase, and takes CR only right before LF; what it still takes that
/// `check_bytes` refuses is a bare LF ending a line. So only the line ends need a look: the
/// empty lines before the first line, the one before each field, and the last two.
pub(crate) fn check_line_ends(head: &[u8], fields: &[httparse::Header<'_>]) -> Result<(), &'static str> {
    let first = head.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(head.len());
    let crlf_before = |at: usize| at >= 2 && &head[at - 2..at] == b"\r\n";
    let ok = head[..first].chunks(2).all(|l| l == b"\r\n")
        && head.ends_with(b"\r\n\r\n")
        && fields.iter().all(|h| crlf_before(offset(head, h.name.as_bytes())));
    if ok {
        Ok(())
    } else {
        Err("bare LF line ending")
    }
}

/// Where `part`, a slice of `head`, starts in it.
pub(crate) fn offset(head: &[u8], part: &[u8]) -> usize {
    let at = (part.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize);
    debug_assert!(at <= head.len(), "a slice outside its head");
    at
}

/// Like [`check_bytes`] on an incomplete head: fails early on what can already be seen.
pub(crate) fn check_partial(head: &[u8]) -> Result<(), &'static str> {
    match head.last() {
        Some(b'\r') => check_bytes(&head[..head.len() - 1]),
        _ => check_bytes(head),
    }
}

/// Whether `s` is `lower` but for ASCII case, eight bytes at a time. `lower` holds lowercase
/// letters, digits and `-` only (field names and tokens the proxy knows); `s` comes from a
/// checked head (no control character but HTAB). Then setting bit 0x20 of a byte of `s`
/// gives a byte of `lower` only from that byte or its uppercase letter: exact, as
/// `eq_ignore_ascii_case` (the only other byte it maps onto `lower`'s, CR onto `-`, is ruled out).
pub(crate) fn eq_lower(s: &[u8], lower: &[u8]) -> bool {
    debug_assert!(lower.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-'));
    const CASE: u64 = 0x2020_2020_2020_2020;
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("eight bytes"));
    let n = s.len();
    if n != lower.len() {
        return false;
    }
    if n < 8 {
        return s.iter().zip(lower).all(|(a, b)| a | 0x20 == *b);
    }
    // Whole words, then the last eight bytes (overlapping the last word when `n` is no multiple of 8).
    let whole = s.chunks_exact(8).zip(lower.chunks_exact(8)).all(|(a, b)| word(a) | CASE == word(b));
    whole && word(&s[n - 8..]) | CASE == word(&lower[n - 8..])
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
    let mut take = |n: u64| match len {
        Some(l) if l != n => Err("conflicting Content-Length"),
        _ => {
            len = Some(n);
            Ok(())
        }
    };
    for v in values {
        // Most values are one number: no list to split.
        if let Some(n) = decimal(v) {
            take(n)?;
            continue;
        }
        let mut any = false;
        for e in v.split(|b| *b == b',').map(trim_ows) {
            take(decimal(e).ok_or("invalid Content-Length")?)?;
            any = true;
        }
        if !any {
            return Err("invalid Content-Length");
        }
    }
    Ok(len)
}

/// `e` as a decimal number of 1 to 19 digits (so always below u64::MAX), nothing else.
fn decimal(e: &[u8]) -> Option<u64> {
    if e.is_empty() || e.len() > 19 || !e.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(e.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
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
    if eq_lower(v, b"chunked") {
        return Coding::Chunked;
    }
    let parts: Vec<&[u8]> = v.split(|b| *b == b',').map(trim_ows).collect();
    if parts.iter().any(|p| p.is_empty() || !p.iter().all(|b| rvs_model::http::is_tchar(*b))) {
        return Coding::Invalid;
    }
    let chunked = |p: &[u8]| eq_lower(p, b"chunked");
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
    is_hop_by_hop_bytes(name.as_bytes())
}

/// [`is_hop_by_hop`] on bytes (a token of a Connection field).
pub(crate) fn is_hop_by_hop_bytes(name: &[u8]) -> bool {
    let hop: &[&[u8]] = match name.len() {
        2 => &[b"te"],
        7 => &[b"upgrade"],
        10 => &[b"connection", b"keep-alive"],
        14 => &[b"content-length"],
        16 => &[b"proxy-connection"],
        17 => &[b"transfer-encoding"],
        _ => return false,
    };
    hop.iter().any(|h| eq_lower(name, h))
}

/// A field name that some servers normalise into a framing or routing field (`Content_Length`
/// read as `Content-Length` by CGI-style gateways): refused, so it cannot smuggle one.
pub(crate) fn is_disguised_critical(name: &str) -> bool {
    const CRITICAL: [&[u8]; 4] = [b"content-length", b"transfer-encoding", b"host", b"connection"];
    let n = name.as_bytes();
    // `_` for `-` keeps the length: most names are ruled out by it alone, the others by
    // having no `_` at all.
    CRITICAL.iter().filter(|c| c.len() == n.len()).any(|c| {
        if !n.contains(&b'_') {
            return false;
        }
        let mut underscore = false;
        let same = c.iter().zip(n).all(|(&c, &b)| {
            let swapped = c == b'-' && b == b'_';
            underscore |= swapped;
            swapped || c == b.to_ascii_lowercase()
        });
        same && underscore
    })
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
        assert!(check_bytes(b"\nGET / HTTP/1.1\r\n\r\n").is_err());
        assert!(check_bytes(b"GET /a-long-path HTTP/1.1\r\nX-Long-Name: value\x7f\r\n\r\n").is_err());
    }

    /// The check byte by byte, as the word-at-a-time one must answer.
    fn byte_walk(head: &[u8]) -> Result<(), &'static str> {
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

    #[test]
    fn control_mask_is_exact() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = b;
                let want = if b < 0x20 || b == 0x7f { 0x80u64 << (8 * at) } else { 0 };
                assert_eq!(control_mask(u64::from_le_bytes(word)), want, "byte {b:#x} at {at}");
            }
        }
    }

    #[test]
    fn word_check_agrees_with_the_byte_walk() {
        let alphabet = [b'a', b'\r', b'\n', b'\t', 0, 0x1f, 0x7f, 0x80, b' '];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    for d in alphabet {
                        let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
                        head.extend_from_slice(&[a, b, c, d]);
                        head.extend_from_slice(b"\r\n\r\n");
                        assert_eq!(check_bytes(&head), byte_walk(&head), "{head:?}");
                        assert_eq!(check_bytes(&head[18..]), byte_walk(&head[18..]), "{head:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn line_end_check_agrees_with_the_byte_check_on_parsed_heads() {
        let alphabet = [b'a', b'\r', b'\n', b'\t', 0, 0x1f, 0x7f, 0x80, b' ', b':'];
        let templates: [(&[u8], &[u8], bool); 11] = [
            (b"", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (b"GET /", b" HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (b"GET / HTTP/1.1", b"Host: a\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nX: ", b"\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nX: a", b"Y: b\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nX: a\r\n", b"", true),
            (b"", b"HTTP/1.1 200 OK\r\nX: a\r\n\r\n", false),
            (b"HTTP/1.1 200 ", b"\r\nX: a\r\n\r\n", false),
            (b"HTTP/1.1 200", b"X: a\r\n\r\n", false),
            (b"HTTP/1.1 200 OK\r\nX: a", b"\r\n", false),
            (b"HTTP/1.1 204 OK", b"", false),
        ];
        let mut accepted = 0;
        for (before, after, request) in templates {
            for slot in 0..alphabet.len().pow(4) {
                let mut head = before.to_vec();
                let mut n = slot;
                for _ in 0..4 {
                    head.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                head.extend_from_slice(after);
                let mut fields = [httparse::EMPTY_HEADER; 8];
                let parsed = if request {
                    let mut r = httparse::Request::new(&mut fields);
                    r.parse(&head).ok().and_then(|s| s.is_complete().then(|| (s.unwrap(), r.headers.len())))
                } else {
                    let mut r = httparse::Response::new(&mut fields);
                    r.parse(&head).ok().and_then(|s| s.is_complete().then(|| (s.unwrap(), r.headers.len())))
                };
                let Some((len, count)) = parsed else { continue };
                accepted += 1;
                let head = &head[..len];
                assert_eq!(check_line_ends(head, &fields[..count]), check_bytes(head), "{head:?}");
            }
        }
        assert!(accepted > 1000, "{accepted} heads accepted");
    }

    #[test]
    fn eq_lower_agrees_with_eq_ignore_ascii_case() {
        // Every byte a checked head may hold, at every place of names of every length class.
        let bytes: Vec<u8> = (0..=255u8).filter(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f)).collect();
        for lower in [
            &b"te"[..],
            b"close",
            b"upgrade",
            b"chunked",
            b"connection",
            b"content-length",
            b"transfer-encoding",
            b"x-forwarded-proto",
            b"100-continue",
        ] {
            assert!(eq_lower(lower, lower));
            assert!(eq_lower(&lower.to_ascii_uppercase(), lower));
            assert!(!eq_lower(&lower[1..], lower));
            for at in 0..lower.len() {
                for &b in &bytes {
                    let mut s = lower.to_vec();
                    s[at] = b;
                    assert_eq!(eq_lower(&s, lower), s.eq_ignore_ascii_case(lower), "{s:?}");
                }
            }
        }
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
        assert!(is_disguised_critical("transfer_Encoding"));
        assert!(is_disguised_critical("Content_length"));
        assert!(!is_disguised_critical("Content-Length"));
        assert!(!is_disguised_critical("Hos_"));
        assert!(!is_disguised_critical("conn_ection"));
        assert!(is_hop_by_hop("Keep-Alive"));
        assert!(!is_hop_by_hop("Trailer"));
        for h in
            ["Connection", "keep-alive", "Proxy-Connection", "TE", "Upgrade", "Transfer-Encoding", "Content-Length"]
        {
            assert!(is_hop_by_hop(h), "{h}");
        }
        assert!(!is_hop_by_hop("Keep-Alivf"));
    }
}
