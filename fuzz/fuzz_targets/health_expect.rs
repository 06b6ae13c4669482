//! The send/expect check's matching of what a server sent: the first line of the input is the
//! configured pattern, the rest arrives in reads whose sizes the first byte picks. Nothing
//! panics, the check waits while nothing matches and there is room, and once it answers, the
//! answer is the one the whole of what was received gets.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_core::pattern::Pattern;
use rvs_health::fuzz::expect_reply;

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else { return };
    let Some(nl) = data.iter().position(|b| *b == b'\n') else { return };
    let Ok(source) = std::str::from_utf8(&data[..nl]) else { return };
    let Ok(pattern) = Pattern::new(source) else { return };
    let received = &data[nl + 1..];
    let step = usize::from(step).max(1);
    let mut got = Vec::new();
    for read in received.chunks(step) {
        got.extend_from_slice(read);
        if let Some(verdict) = expect_reply(&pattern, &got) {
            assert_eq!(verdict.is_ok(), pattern.is_match(&got));
            return;
        }
    }
    // (Nothing received: the check judges only after a read.)
    assert!(got.is_empty() || !pattern.is_match(&got), "matched but the check still waits");
});
