//! Arbitrary bytes through the streaming chunked validator: it never takes more than it was
//! given, a body it calls complete ends at a last-chunk and its trailers as an independent
//! decoder reads them, an incomplete one takes all the input, and two reads answer as one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_l7::fuzz::{chunked_body, chunked_body_split};

fuzz_target!(|data: &[u8]| {
    let whole = chunked_body(data);
    match whole {
        Ok((n, true)) => {
            assert!(n <= data.len());
            assert!(data[..n].ends_with(b"\r\n"));
            assert_eq!(reference(data), Some(n), "complete where the reference decoder disagrees");
        }
        Ok((n, false)) => assert_eq!(n, data.len(), "an incomplete body takes all the input"),
        Err(_) => {}
    }
    // The first byte picks where the input is split into two reads.
    let at = data.first().map_or(0, |b| usize::from(*b));
    assert_eq!(chunked_body_split(data, at), whole, "split at {at}");
    assert_eq!(chunked_body_split(data, data.len() / 2), whole, "split in half");
});

/// An independent, lenient chunked decoder: the length of the body at the start of `input`
/// (last-chunk and trailers included), or None when it is not a whole valid body.
fn reference(input: &[u8]) -> Option<usize> {
    let line_end = |from: usize| input.get(from..)?.windows(2).position(|w| w == b"\r\n").map(|p| p + from);
    let mut i = 0;
    loop {
        let end = line_end(i)?;
        let line = &input[i..end];
        let size = line.split(|b| *b == b';').next()?;
        let size = std::str::from_utf8(size).ok()?.trim_end_matches([' ', '\t']);
        if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let size = usize::try_from(u64::from_str_radix(size, 16).ok()?).ok()?;
        i = end + 2;
        if size == 0 {
            // Trailer fields up to an empty line.
            loop {
                let end = line_end(i)?;
                let empty = end == i;
                i = end + 2;
                if empty {
                    return Some(i);
                }
            }
        }
        let data_end = i.checked_add(size)?;
        if input.get(data_end..data_end.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        i = data_end + 2;
    }
}
