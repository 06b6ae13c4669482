//! Arbitrary real-server bytes through the response head parser and the rewrite towards the
//! client, as the proxy reads an answer: the first byte picks whether the request was HEAD
//! and what kind of client waits. Whatever is accepted goes out with CRLF line ends only, one
//! framing field at most, and re-parses to the same status and framing; its answer does not
//! depend on the bytes after the head, and a strict prefix of the head is just incomplete.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_l7::fuzz::{forward_response, ResponseFraming};

/// The proxy's read buffer bounds a response head.
const MAX: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else { return };
    let is_head = flags & 1 != 0;
    let minor = (flags >> 1) & 1;
    let close = flags & 4 != 0;
    let result = forward_response(input, is_head, MAX, minor, close);
    let f = match result {
        Ok(None) => {
            assert!(input.len() < MAX, "{} bytes buffered", input.len());
            return;
        }
        Err(_) => return,
        Ok(Some(f)) => f,
    };
    assert!(f.consumed <= input.len());
    assert!((100..1000).contains(&f.code));
    assert_eq!(f.interim, (100..200).contains(&f.code) && f.code != 101);
    assert!(!f.reusable || f.framing != ResponseFraming::UntilClose, "reusable without a delimited body");
    if is_head || f.code == 204 || f.code == 304 || (100..200).contains(&f.code) {
        assert_eq!(f.framing, ResponseFraming::None);
    }
    let head = &f.head;
    assert!(head.starts_with(b"HTTP/1.1 ") && head.ends_with(b"\r\n\r\n"));
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\n' => assert!(i > 0 && head[i - 1] == b'\r', "bare LF forwarded"),
            b'\r' => assert_eq!(head.get(i + 1), Some(&b'\n'), "bare CR forwarded"),
            b'\t' => {}
            _ => assert!(b >= 0x20 && b != 0x7f, "control byte {b:#x} forwarded"),
        }
    }
    if !is_head && f.framing != ResponseFraming::None {
        let framing_fields = head
            .split(|b| *b == b'\n')
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with(b"content-length:") || l.starts_with(b"transfer-encoding:")
            })
            .count();
        assert!(framing_fields <= 1, "{framing_fields} framing fields");
    }

    // The head as the client reads it: whole, the same status and framing. (The proxy adds up
    // to three fields, so a head at the field limit goes out above it: not re-read here.)
    let fields = head.windows(2).filter(|w| w == b"\r\n").count() - 2;
    if fields > rvs_model::http::MAX_HEADERS {
        return;
    }
    let again = forward_response(head, is_head, usize::MAX, 1, close).expect("forwarded head refused");
    let again = again.expect("forwarded head incomplete");
    assert_eq!((again.code, again.consumed, again.framing), (f.code, head.len(), f.framing));
    assert_eq!(again.upgrade, f.upgrade);

    // Nothing after the head changes the answer, and a strict prefix is incomplete.
    let whole = &input[..f.consumed];
    assert_eq!(forward_response(whole, is_head, MAX, minor, close), Ok(Some(f.clone())));
    let cut = usize::from(flags) % f.consumed;
    for at in [cut, f.consumed - 1] {
        assert_eq!(forward_response(&input[..at], is_head, usize::MAX, minor, close), Ok(None), "prefix of {at}");
    }
});
