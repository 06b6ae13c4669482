//! An HTTP/2 request as the h2 crate hands it over (method, URI and fields the http crate
//! accepts; LF separates them in the input, the first byte says whether the body is empty)
//! through the conversion into the HTTP/1.1 head the session reads. The head is one the L7
//! request parser takes whole, with the framing the stream's body is sent with, the
//! `:authority` as its one Host field, and no connection-specific field from the client; or it
//! is refused as the session would refuse a client's HTTP/1.1 request.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_l7::fuzz::{forward_request, h2_request_head, Framing};
use rvs_model::http::{Limits, MAX_HEADERS};

const REPARSE: Limits = Limits { max_header_bytes: usize::MAX, max_headers: MAX_HEADERS, max_body_bytes: None };

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let end = flags & 1 != 0;
    let mut parts = rest.split(|b| *b == b'\n');
    let (Some(method), Some(uri)) = (parts.next(), parts.next()) else { return };
    let rest: Vec<&[u8]> = parts.collect();
    let fields: Vec<(&[u8], &[u8])> = rest.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let Some(head) = h2_request_head(method, uri, &fields, end) else { return };

    let lower = |n: &[u8]| n.to_ascii_lowercase();
    let has = |name: &[u8]| fields.iter().any(|(n, _)| lower(n) == name);
    let chunked = !end && !has(b"content-length");
    match forward_request(&head, &REPARSE) {
        Ok(Some(f)) => {
            assert_eq!(f.consumed, head.len(), "the head is not taken whole");
            assert!(!f.keep_alive, "a stream's exchange is one request");
            match f.framing {
                Framing::Chunked => assert!(chunked, "chunked framing for a body of known length"),
                Framing::Length(_) => assert!(!chunked && has(b"content-length") || end, "a length from nowhere"),
                Framing::None => assert!(!chunked, "a body with no framing"),
            }
        }
        Ok(None) => panic!("incomplete head {:?}", String::from_utf8_lossy(&head)),
        // Refused as a client's own HTTP/1.1 request would be (a bad Host, two lengths, more
        // fields than the limit, ...).
        Err(r) => {
            assert!(matches!(r.status(), 400 | 405 | 431 | 501), "{r:?} for {:?}", String::from_utf8_lossy(&head))
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let hosts = text.split("\r\n").filter(|l| l.starts_with("host:")).count();
    assert!(hosts <= 1 || !uri_has_authority(uri), "{hosts} Host fields");
    for l in text.split("\r\n").skip(1) {
        for bad in ["keep-alive:", "proxy-connection:", "upgrade:", "te:", "http2-settings:"] {
            assert!(!l.starts_with(bad), "{l:?} forwarded");
        }
    }
});

fn uri_has_authority(uri: &[u8]) -> bool {
    uri.windows(3).any(|w| w == b"://")
}
