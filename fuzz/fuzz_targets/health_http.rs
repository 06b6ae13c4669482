//! Arbitrary server bytes through the HTTP health check's response reader (status line,
//! framing headers, body up to a cap), as short reads of every size deliver them: the first
//! byte picks HEAD or GET, the second the read size, the third the body cap. Nothing panics,
//! an accepted status is a final one in 100..=599, the body never exceeds the cap, and the
//! verdict does not depend on how the bytes were split into reads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_health::fuzz::http_reply;

fuzz_target!(|data: &[u8]| {
    let [flags, buffer, cap, input @ ..] = data else { return };
    let head = flags & 1 != 0;
    let cap = usize::from(*cap);
    let whole = http_reply(input, head, 8 * 1024, cap);
    if let Ok(r) = &whole {
        assert!((100..=599).contains(&r.status));
        assert!(!(100..200).contains(&r.status) || r.status == 101, "interim {} taken as final", r.status);
        assert!(r.body.len() <= cap, "{} body bytes over a cap of {cap}", r.body.len());
        if head || r.status == 204 || r.status == 304 {
            assert!(r.body.is_empty() && !r.truncated);
        }
    }
    let split = http_reply(input, head, usize::from(*buffer), cap);
    assert_eq!(split, whole, "reads of {buffer} bytes");
});
