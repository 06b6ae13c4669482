//! Arbitrary bytes through the VRRP advertisement decoder, as the raw socket would hand them
//! over: the first byte picks the family and the TTL, the rest is the VRRP message. Nothing
//! panics; whatever is accepted names a VRID and re-encodes to exactly the bytes received.

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
        assert_eq!(encode(&adv, src, dst).expect("an accepted advertisement re-encodes"), msg);
    }
});
