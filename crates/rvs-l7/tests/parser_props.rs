//! Property tests of the request parser (the fuzz target): arbitrary bytes never panic, and
//! whatever is accepted is forwarded with one unambiguous framing that a lenient real server
//! would read the same way. The chunked validator agrees with a reference decoder.

use proptest::prelude::*;
use rvs_l7::fuzz::{chunked_body, forward_request, Forwarded, Framing};
use rvs_model::http::Limits;

fn limits() -> Limits {
    Limits { max_header_bytes: 8192, max_headers: 64, max_body_bytes: None }
}

/// How a lenient server might frame a head: any TE mentioning chunked wins, else the first
/// Content-Length, split on `\n` lines. A forwarded head must read the same under it as
/// under the strict reading.
fn lenient_framing(head: &[u8]) -> Framing {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let mut te = false;
    let mut cl = None;
    for line in text.split('\n').skip(1) {
        let line = line.trim_end_matches('\r');
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name == "transfer-encoding" && value.contains("chunked") {
                te = true;
            }
            if name == "content-length" && cl.is_none() {
                cl = value.trim().parse::<u64>().ok();
            }
        }
    }
    match (te, cl) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::None,
    }
}

fn check_forwarded(f: &Forwarded) {
    let head = &f.head;
    assert!(head.ends_with(b"\r\n\r\n"));
    for (i, b) in head.iter().enumerate() {
        if *b == b'\n' {
            assert_eq!(head[i - 1], b'\r', "bare LF forwarded");
        }
        if *b == b'\r' {
            assert_eq!(head.get(i + 1), Some(&b'\n'), "bare CR forwarded");
        }
    }
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let lines: Vec<&str> = text.split("\r\n").collect();
    let count = |n: &str| lines.iter().filter(|l| l.split(':').next().map(str::trim) == Some(n)).count();
    assert!(count("content-length") + count("transfer-encoding") <= 1, "two framing fields: {text}");
    assert!(lines.iter().skip(1).all(|l| !l.starts_with(' ') && !l.starts_with('\t')), "folded line: {text}");
    assert!(!text.contains("content_length") && !text.contains("transfer_encoding"));
    assert_eq!(lenient_framing(head), f.framing, "a lenient server reads it differently: {text}");
    // The forwarded head is itself accepted, with the same framing.
    let again = forward_request(head, &limits()).expect("forwarded head re-parses").expect("complete");
    assert_eq!(again.framing, f.framing);
    assert_eq!(again.consumed, head.len());
}

fn header_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Host: a.example".to_string()),
        Just("Host: a.example:8080".to_string()),
        Just("Host: b".to_string()),
        Just("Content-Length: 5".to_string()),
        Just("Content-Length: 6".to_string()),
        Just("Content-Length: 5, 5".to_string()),
        Just("Content-Length:  5 ".to_string()),
        Just("Content-Length: +5".to_string()),
        Just("Content-Length: 0x5".to_string()),
        Just("content-length:5".to_string()),
        Just("Content_Length: 5".to_string()),
        Just("Transfer-Encoding: chunked".to_string()),
        Just("Transfer-Encoding: CHUNKED".to_string()),
        Just("Transfer-Encoding:\tchunked\t".to_string()),
        Just("Transfer-Encoding: xchunked".to_string()),
        Just("Transfer-Encoding: chunked, identity".to_string()),
        Just("Transfer-Encoding: gzip, chunked".to_string()),
        Just("Transfer-Encoding: chunked,".to_string()),
        Just("Transfer-Encoding : chunked".to_string()),
        Just("Transfer-Encoding:\u{b}chunked".to_string()),
        Just("Transfer_Encoding: chunked".to_string()),
        Just(" Transfer-Encoding: chunked".to_string()),
        Just("Connection: close".to_string()),
        Just("Connection: keep-alive, Transfer-Encoding".to_string()),
        Just("Connection: Upgrade".to_string()),
        Just("Upgrade: websocket".to_string()),
        Just("Expect: 100-continue".to_string()),
        Just("X-Forwarded-For: 1.2.3.4".to_string()),
        Just("X-A: b".to_string()),
        Just("\tfolded".to_string()),
        "[A-Za-z-]{1,12}: [ -~]{0,20}".prop_map(|s| s),
    ]
}

fn request_strategy() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just("GET / HTTP/1.1"),
        Just("POST /x?y=1 HTTP/1.1"),
        Just("POST / HTTP/1.0"),
        Just("GET http://h.example/p HTTP/1.1"),
        Just("OPTIONS * HTTP/1.1"),
        Just("GET / HTTP/2.0"),
        Just("GET  / HTTP/1.1"),
    ];
    let eol = prop_oneof![30 => Just("\r\n"), 1 => Just("\n"), 1 => Just("\r")];
    let host = prop::option::weighted(0.9, Just("Host: h.example\r\n"));
    (
        line,
        host,
        prop::collection::vec((header_strategy(), eol.clone()), 0..5),
        eol,
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(line, host, headers, end, body)| {
            let mut r = format!("{line}\r\n{}", host.unwrap_or_default());
            for (h, e) in headers {
                r.push_str(&h);
                r.push_str(e);
            }
            r.push_str(end);
            let mut r = r.into_bytes();
            r.extend_from_slice(&body);
            r
        })
}

/// A reference chunked decoder, written independently: returns (bytes taken, payload) or None.
fn reference_chunked(input: &[u8]) -> Option<(usize, Vec<u8>)> {
    let mut i = 0;
    let mut payload = Vec::new();
    loop {
        let line_end = input[i..].windows(2).position(|w| w == b"\r\n")? + i;
        let line = String::from_utf8_lossy(&input[i..line_end]);
        let size_text = line.split(';').next()?.trim_end_matches([' ', '\t']);
        if size_text.is_empty() || size_text.len() > 16 || !size_text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let size = u64::from_str_radix(size_text, 16).ok()? as usize;
        i = line_end + 2;
        if size == 0 {
            // trailers until an empty line
            loop {
                let end = input[i..].windows(2).position(|w| w == b"\r\n")? + i;
                let empty = end == i;
                i = end + 2;
                if empty {
                    return Some((i, payload));
                }
            }
        }
        if input.len() < i + size + 2 || &input[i + size..i + size + 2] != b"\r\n" {
            return None;
        }
        payload.extend_from_slice(&input[i..i + size]);
        i += size + 2;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(Some(f)) = forward_request(&input, &limits()) {
            check_forwarded(&f);
        }
        let _ = chunked_body(&input);
    }

    #[test]
    fn structured_requests_forward_unambiguously(input in request_strategy()) {
        if let Ok(Some(f)) = forward_request(&input, &limits()) {
            check_forwarded(&f);
            prop_assert!(f.consumed <= input.len());
        }
    }

    #[test]
    fn chunked_validator_agrees_with_reference(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..5),
        ext in prop::bool::ANY,
        corrupt in prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
        tail in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut body = Vec::new();
        for c in &chunks {
            if c.is_empty() { continue; }
            body.extend_from_slice(format!("{:x}{}\r\n", c.len(), if ext { ";a=b" } else { "" }).as_bytes());
            body.extend_from_slice(c);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\nX-T: 1\r\n\r\n");
        if let Some((at, b)) = corrupt {
            let i = at.index(body.len());
            body[i] = b;
        }
        let whole_len = body.len();
        body.extend_from_slice(&tail);
        match (chunked_body(&body), reference_chunked(&body)) {
            (Ok((n, true)), Some((m, _))) => prop_assert_eq!(n, m),
            (Ok((_, true)), None) => prop_assert!(false, "validator accepted what the reference refuses"),
            (Ok((n, false)), _) => prop_assert_eq!(n, body.len(), "incomplete bodies take all input"),
            (Err(_), _) => {}
        }
        if corrupt.is_none() {
            prop_assert_eq!(chunked_body(&body), Ok((whole_len, true)));
        }
    }
}

/// The structured strategy does reach the accepting paths (else the property above is idle).
#[test]
fn structured_strategy_exercises_acceptance() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = request_strategy();
    let (mut accepted, mut chunked, mut length) = (0, 0, 0);
    for _ in 0..2000 {
        let input = strategy.new_tree(&mut runner).unwrap().current();
        if let Ok(Some(f)) = forward_request(&input, &limits()) {
            accepted += 1;
            match f.framing {
                Framing::Chunked => chunked += 1,
                Framing::Length(_) => length += 1,
                Framing::None => {}
            }
        }
    }
    assert!(accepted > 100 && chunked > 10 && length > 10, "accepted {accepted}, chunked {chunked}, length {length}");
}

/// Found by the cargo-fuzz target (fuzz/): a target with a multi-byte character across byte 7
/// or 8 panicked while checking for an `http://`/`https://` prefix.
#[test]
fn fuzz_non_ascii_target_is_refused_not_a_panic() {
    for raw in [
        &b"GEU http:/\xd1\x9b.example/x HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET http\xd1\x9b//a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET \xd1\x9b HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert!(forward_request(raw, &limits()).is_err(), "{}", String::from_utf8_lossy(raw).escape_debug());
    }
    // Non-ASCII after the scheme is still an absolute-form target.
    let raw = b"GET http://a.example/\xd1\x9b HTTP/1.1\r\nHost: a\r\n\r\n";
    check_forwarded(&forward_request(raw, &limits()).unwrap().unwrap());
}
