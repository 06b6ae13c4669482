//! Arbitrary ring buffer records through the packet engine's first-packet path on the Rust
//! side: the record decoded into a new-flow event (header, then the frame), the flow's
//! addresses read from its key, the UDP payload a persistence engine sees taken from the
//! frame, and the sip engine's Call-ID looked for in it. Nothing panics; the frame is the
//! record's bytes after the header, never longer than the header says nor than the largest
//! frame; the payload is a part of the frame no longer than its UDP header says.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_bpf::xdp::NewFlowEvent;
use rvs_bpf::xdp_maps::{NewFlowHeader, FAMILY_V6, NEWFLOW_MAX_FRAME};
use rvs_xdp::new_flows::udp_payload;

fuzz_target!(|data: &[u8]| {
    let hl = size_of::<NewFlowHeader>();
    let Some(event) = NewFlowEvent::decode(data) else {
        assert!(data.len() < hl);
        return;
    };
    let said = usize::from(u16::from_ne_bytes([data[hl - 4], data[hl - 3]]));
    assert!(event.frame.len() <= said.min(NEWFLOW_MAX_FRAME));
    assert_eq!(event.frame, data[hl..hl + event.frame.len()]);
    assert!(event.frame.len() == said.min(NEWFLOW_MAX_FRAME) || hl + event.frame.len() == data.len());
    let (client, vip) = (event.key.client(), event.key.vip());
    assert_eq!(client.is_ipv6(), event.key.family == FAMILY_V6);
    assert_eq!(vip.is_ipv6(), event.key.family == FAMILY_V6);

    let payload = udp_payload(&event.frame, event.key.family);
    if !payload.is_empty() {
        let start = payload.as_ptr() as usize - event.frame.as_ptr() as usize;
        assert!(start + payload.len() <= event.frame.len(), "a part of the frame");
        let udp = start - 8;
        let len = usize::from(u16::from_be_bytes([event.frame[udp + 4], event.frame[udp + 5]]));
        assert_eq!(payload.len(), len - 8, "as long as the UDP header says");
    }
    let _ = rvs_core::sip::call_id(payload);
});
