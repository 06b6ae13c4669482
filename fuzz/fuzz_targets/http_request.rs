//! Arbitrary client bytes through the request parser and the head rewrite, as the proxy would
//! see them, under the default limits and under tight ones. Whatever is accepted must be
//! forwarded with one unambiguous framing that re-parses the same; partial heads stay within
//! the limit; tighter limits never accept more, and a head's answer does not depend on how
//! the bytes were split into reads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_l7::fuzz::{forward_request, Forwarded, Framing};
use rvs_l7::Refusal;
use rvs_model::http::{Limits, MAX_HEADERS};

const TIGHT: Limits = Limits { max_header_bytes: 256, max_headers: 8, max_body_bytes: Some(1024) };

/// Limits a forwarded head is re-read under: the proxy adds fields (X-Forwarded-*), so it may
/// be a little larger than what the client sent.
const REPARSE: Limits = Limits { max_header_bytes: usize::MAX, max_headers: MAX_HEADERS, max_body_bytes: None };

fuzz_target!(|data: &[u8]| {
    let default = forward_request(data, &Limits::default());
    check(data, &Limits::default(), &default);
    let tight = forward_request(data, &TIGHT);
    check(data, &TIGHT, &tight);

    // Every limit of TIGHT is below the default's: it may refuse for size where the default
    // does not, but never accepts what the default refuses, nor accepts it differently.
    match (&default, &tight) {
        (a, b) if a == b => {}
        (_, Err(Refusal::HeadTooLarge | Refusal::BodyTooLarge | Refusal::UriTooLong)) => {}
        _ => panic!("tight limits answer {tight:?}, default {default:?}"),
    }
});

fn check(data: &[u8], limits: &Limits, result: &Result<Option<Forwarded>, Refusal>) {
    match result {
        Ok(None) => {
            // An incomplete head is only buffered up to the limit.
            assert!(data.len() <= limits.max_header_bytes, "{} bytes buffered", data.len());
        }
        Ok(Some(f)) => {
            check_forwarded(data, limits, f);
            // The answer for a complete head does not depend on what follows it ...
            assert_eq!(forward_request(&data[..f.consumed], limits).as_ref(), Ok(&Some(f.clone())));
            // ... nor on the reads it came in: a strict prefix is just incomplete.
            let cut = data.first().map_or(0, |b| usize::from(*b)) % f.consumed;
            for at in [cut, f.consumed - 1] {
                assert_eq!(forward_request(&data[..at], limits), Ok(None), "prefix of {at} bytes");
            }
        }
        Err(r) => {
            assert!(matches!(r.status(), 400 | 405 | 413 | 414 | 417 | 431 | 501 | 505), "{r:?}");
        }
    }
}

fn check_forwarded(data: &[u8], limits: &Limits, f: &Forwarded) {
    let head = &f.head;
    assert!(f.consumed <= data.len() && f.consumed <= limits.max_header_bytes);
    assert!(head.ends_with(b"\r\n\r\n"));
    if let (Framing::Length(n), Some(max)) = (f.framing, limits.max_body_bytes) {
        assert!(n <= max, "body of {n} over the limit");
    }
    // CRLF only, no control characters but HTAB.
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\n' => assert!(i > 0 && head[i - 1] == b'\r', "bare LF forwarded"),
            b'\r' => assert_eq!(head.get(i + 1), Some(&b'\n'), "bare CR forwarded"),
            b'\t' => {}
            _ => assert!(b >= 0x20 && b != 0x7f, "control byte {b:#x} forwarded"),
        }
    }
    let lines: Vec<&[u8]> =
        head[..head.len() - 4].split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).collect();

    // The request line goes out as the client sent it (leading empty lines skipped).
    let mut sent = &data[..f.consumed];
    while let Some(rest) = sent.strip_prefix(b"\r\n") {
        sent = rest;
    }
    let sent_line = sent.split(|b| *b == b'\n').next().unwrap_or_default();
    assert_eq!(Some(lines[0]), sent_line.strip_suffix(b"\r"), "request line changed");

    // One framing field at most, none folded or disguised, and it says what `framing` says;
    // a lenient server (any TE naming chunked wins, else the first Content-Length) agrees.
    let mut framing_fields = 0;
    let (mut te, mut cl) = (false, None);
    for line in &lines[1..] {
        assert!(!line.is_empty() && !line.starts_with(b" ") && !line.starts_with(b"\t"), "folded or empty line");
        let colon = line.iter().position(|b| *b == b':').expect("field without a colon");
        let name = String::from_utf8_lossy(&line[..colon]).trim().to_ascii_lowercase();
        let value = String::from_utf8_lossy(&line[colon + 1..]).to_ascii_lowercase();
        assert!(name == name.replace('_', "-") || !is_critical(&name.replace('_', "-")), "disguised {name}");
        match name.as_str() {
            "transfer-encoding" => {
                framing_fields += 1;
                te |= value.contains("chunked");
            }
            "content-length" => {
                framing_fields += 1;
                cl = cl.or(value.trim().parse::<u64>().ok());
            }
            _ => {}
        }
    }
    assert!(framing_fields <= 1, "{framing_fields} framing fields");
    let lenient = match (te, cl) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::None,
    };
    assert_eq!(lenient, f.framing, "a lenient server reads the framing differently");

    // The forwarded head is itself accepted, whole, with the same framing.
    let again = forward_request(head, &REPARSE).expect("forwarded head refused").expect("forwarded head incomplete");
    assert_eq!(again.consumed, head.len());
    assert_eq!(again.framing, f.framing);
}

fn is_critical(name: &str) -> bool {
    matches!(name, "content-length" | "transfer-encoding" | "host" | "connection")
}
