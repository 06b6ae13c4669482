//! Arbitrary request paths through the API's path decoding (segments between `/`, `%XX`
//! escapes decoded) and, for `/v1/services/{protocol}/{address}`, the service key they name.
//! Decoding agrees with an independent decoder, and a key the path names prints to an
//! address that names the same key again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_api::path::segments;
use rvs_api::{service_key, ServiceId};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    let segs = segments(path);
    let raw: Vec<&str> = path.trim_matches('/').split('/').collect();
    assert_eq!(segs.len(), raw.len());
    for (seg, raw) in segs.iter().zip(&raw) {
        assert_eq!(*seg, reference(raw), "segment {raw:?}");
    }
    if let ["v1", "services", proto, addr, ..] = segs.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        let id = ServiceId { protocol: proto.to_string(), address: addr.to_string() };
        match service_key(&id, "path") {
            Ok(key) => {
                let printed = rvs_api::id_from_core(&key);
                assert_eq!(service_key(&printed, "path"), Ok(key), "{id:?} printed as {printed:?}");
            }
            Err(e) => assert!(e.field.is_some_and(|f| f.starts_with("path."))),
        }
    }
});

/// RFC 3986 percent-decoding, a `%` without two hex digits after it kept as it is.
fn reference(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c))) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
