//! Arbitrary datagrams through the sip persistence engine's Call-ID extractor: nothing panics,
//! and an accepted Call-ID is a non-empty slice of the datagram of at most 255 bytes, with no
//! line end and no surrounding white space in it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_core::sip::{call_id, MAX_CALL_ID};

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = call_id(data) {
        assert!(!id.is_empty() && id.len() <= MAX_CALL_ID);
        assert!(!id.iter().any(|&b| b == b'\r' || b == b'\n'));
        assert!(![b' ', b'\t'].contains(&id[0]) && ![b' ', b'\t'].contains(&id[id.len() - 1]));
        let start = id.as_ptr() as usize - data.as_ptr() as usize;
        assert!(start + id.len() <= data.len(), "a slice of the datagram");
    }
});
