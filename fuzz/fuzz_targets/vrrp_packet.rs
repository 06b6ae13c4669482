//! Arbitrary bytes through the VRRP advertisement decoder, as the raw socket would hand them
//! over: the first byte picks the family and the TTL, the rest is the VRRP message. Nothing
//! panics; whatever is accepted names a VRID and re-encodes to the bytes received (reserved
//! bits cleared).

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use rvs_vrrp::packet::{decode, encode, Family, MULTICAST_V4, MULTICAST_V6};

fuzz_target!(|data: &[u8]| {
    let Some((&head, msg)) = data.split_first() else { return };
    let (family, src, dst): (Family, IpAddr, IpAddr) = if head & 1 == 0 {
        (Family::V4, [198, 18, 0, 1].into(), MULTICAST_V4.into())
    } else {
        (Family::V6, "fe80::1".parse().unwrap(), MULTICAST_V6.into())
    };
    // Mostly 255, so that the rest of the checks are reached.
    let ttl = if head & 2 == 0 { 255 } else { head };
    if let Ok(adv) = decode(msg, family, src, dst, ttl) {
        assert_ne!(adv.vrid, 0);
        assert!(adv.interval_cs > 0);
        assert!(adv.addresses.iter().all(|a| Family::of(a) == family));
        let bytes = encode(&adv, src, dst).expect("an accepted advertisement re-encodes");
        // VRRPv3's reserved bits are ignored on reception (RFC 5798 5.2.5) and sent as zero:
        // then only they and the checksum differ; otherwise the bytes are the ones received.
        if msg[0] >> 4 == 3 && msg[4] & 0xf0 != 0 {
            assert_eq!(decode(&bytes, family, src, dst, ttl).as_ref(), Ok(&adv));
            assert_eq!((bytes.len(), bytes[4] & 0xf0), (msg.len(), 0));
        } else {
            assert_eq!(bytes, msg);
        }
    }
});
