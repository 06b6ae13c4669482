//! Arbitrary datagrams through the DNS check's judging of an answer: the first two bytes are
//! the query id it waits for. Nothing panics; a datagram is only taken as the answer when it
//! is a response with that id, and the server is up only on NOERROR with an answer record.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_health::fuzz::dns_reply;

fuzz_target!(|data: &[u8]| {
    let [a, b, resp @ ..] = data else { return };
    let id = u16::from_be_bytes([*a, *b]);
    let Some(verdict) = dns_reply(id, resp) else { return };
    assert!(resp.len() >= 12 && resp[..2] == id.to_be_bytes() && resp[2] & 0x80 != 0, "not an answer to {id}");
    let (rcode, answers) = (resp[3] & 0x0f, u16::from_be_bytes([resp[6], resp[7]]));
    assert_eq!(verdict.is_ok(), rcode == 0 && answers > 0, "{verdict:?}");
});
