//! Arbitrary bytes through the VRRP advertisement decoder, as the raw socket would hand them
//! over: the first byte picks the family and the TTL, the rest is the VRRP message. Nothing
//! panics; whatever is accepted names a VRID and re-encodes to the bytes received, or,
//! with what is ignored on reception set to zero, to bytes that decode the same.

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
        // What is ignored on reception (VRRPv3's reserved bits, RFC 5798 5.2.5; VRRPv2's
        // authentication data, RFC 3768 5.3.10) goes out as zero: then the bytes differ only
        // there and in the checksum, and they decode to the same advertisement.
        assert_eq!(bytes.len(), msg.len());
        if bytes != msg {
            assert_eq!(decode(&bytes, family, src, dst, ttl).as_ref(), Ok(&adv));
        }
    }
});
