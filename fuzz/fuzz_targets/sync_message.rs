//! Arbitrary bytes through the connection sync decoder (what a backup reads from the network):
//! it never panics, and what it accepts encodes to a datagram that decodes to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_sync::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data, None) {
        let bytes = m.encode();
        assert_eq!(bytes.len(), m.wire_len());
        assert_eq!(Message::decode(&bytes, Some(m.syncid)), Ok(m));
    }
});
