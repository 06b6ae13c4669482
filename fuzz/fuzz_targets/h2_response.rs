//! Real-server bytes through the proxy's response rewrite and then through the HTTP/2 side's
//! reading of that head (what an HTTP/2 client's stream gets): the status and the framing the
//! stream uses are the ones the HTTP/1.1 client would have used, and no connection-specific
//! field reaches the stream. Raw bytes go through the HTTP/2 reader too: nothing panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_l7::fuzz::{forward_response, h2_response_head, ResponseFraming};

const CONNECTION_SPECIFIC: [&str; 8] =
    ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "http2-settings", "trailer"];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else { return };
    let is_head = flags & 1 != 0;
    if let Ok(Some(r)) = h2_response_head(input, is_head) {
        check(&r, input.len());
    }
    // The session serves an HTTP/2 stream as an HTTP/1.1 client whose connection closes.
    let Ok(Some(f)) = forward_response(input, is_head, 16 * 1024, 1, true) else { return };
    if f.code == 101 {
        return; // a stream never asks to upgrade: the session refuses a 101 (502)
    }
    let r = h2_response_head(&f.head, is_head).expect("a forwarded head is refused").expect("incomplete");
    check(&r, f.head.len());
    assert_eq!((r.status, r.consumed, r.interim), (f.code, f.head.len(), f.interim));
    assert_eq!(r.framing, f.framing, "the stream reads the body differently from an HTTP/1.1 client");
});

fn check(r: &rvs_l7::fuzz::H2Response, len: usize) {
    assert!(r.consumed <= len);
    assert!((100..1000).contains(&r.status));
    assert_eq!(r.interim, (100..200).contains(&r.status));
    if r.interim {
        assert_eq!(r.framing, ResponseFraming::None);
    }
    for (name, _) in &r.fields {
        assert!(!CONNECTION_SPECIFIC.contains(&name.as_str()), "{name} sent on a stream");
    }
}
