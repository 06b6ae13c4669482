//! Arbitrary bytes as one direction of an FTP control stream through the proxy's FTP helper:
//! cut into lines in two reads (the first byte picks where), each line parsed as a client
//! command (`PORT`, `EPRT`) and as a server reply (`227`, `229`) and rewritten when it parses.
//! The lines and pass-through pieces joined must be the input, and a rewritten line must read
//! back as the new address (`rvs_dataplane::ftp::fuzz_control_stream` asserts both).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::ftp::fuzz_control_stream;

fuzz_target!(|data: &[u8]| {
    let at = data.first().map_or(0, |b| usize::from(*b));
    fuzz_control_stream(data, at);
    fuzz_control_stream(data, data.len() / 2);
});
