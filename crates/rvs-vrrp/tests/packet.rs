//! The codec against advertisements built by hand byte by byte (checksums summed here, apart
//! from the crate's), every refusal of `decode`, round trips, and arbitrary bytes.

use std::net::IpAddr;

use proptest::prelude::*;
use rvs_model::vrrp::VrrpVersion;
use rvs_vrrp::packet::{decode, encode, Advertisement, DecodeError, EncodeError, Family};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One's-complement sum of 16-bit words, folded at the end: a second way of summing.
fn ones_complement(bytes: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    for pair in bytes.chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        let lo = pair.get(1).copied().map_or(0, u64::from);
        sum += hi | lo;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Version 3 over IPv4: 198.18.0.1 → 224.0.0.18, VRID 51, priority 100, 1 s (100 cs), one address.
fn v3_v4() -> (Vec<u8>, Advertisement) {
    let mut msg = vec![0x31, 51, 100, 1, 0x00, 0x64, 0, 0, 198, 18, 0, 10];
    let mut ph = vec![198, 18, 0, 1, 224, 0, 0, 18, 0, 112, 0, 12];
    ph.extend_from_slice(&msg);
    let sum = ones_complement(&ph);
    assert_eq!(sum, 0xfda7, "worked out by hand as well");
    msg[6..8].copy_from_slice(&sum.to_be_bytes());
    let adv = Advertisement {
        version: VrrpVersion::V3,
        vrid: 51,
        priority: 100,
        interval_cs: 100,
        addresses: vec![ip("198.18.0.10")],
    };
    (msg, adv)
}

/// Version 3 over IPv6: fe80::1 → ff02::12, VRID 7, priority 200, 100 ms (10 cs), 2001:db8::10.
fn v3_v6() -> (Vec<u8>, Advertisement) {
    let mut msg = vec![0x31, 7, 200, 1, 0x00, 0x0a, 0, 0];
    msg.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);
    let mut ph = vec![0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    ph.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12]);
    ph.extend_from_slice(&[0, 0, 0, 24, 0, 0, 0, 112]);
    ph.extend_from_slice(&msg);
    let sum = ones_complement(&ph);
    msg[6..8].copy_from_slice(&sum.to_be_bytes());
    let adv = Advertisement {
        version: VrrpVersion::V3,
        vrid: 7,
        priority: 200,
        interval_cs: 10,
        addresses: vec![ip("2001:db8::10")],
    };
    (msg, adv)
}

/// Version 2: VRID 51, priority 100, 1 s, two addresses, auth type 0 and 8 zero bytes.
fn v2() -> (Vec<u8>, Advertisement) {
    let mut msg = vec![0x21, 51, 100, 2, 0, 1, 0, 0, 198, 18, 0, 10, 198, 18, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0];
    let sum = ones_complement(&msg);
    assert_eq!(sum, 0xee8e, "worked out by hand as well");
    msg[6..8].copy_from_slice(&sum.to_be_bytes());
    let adv = Advertisement {
        version: VrrpVersion::V2,
        vrid: 51,
        priority: 100,
        interval_cs: 100,
        addresses: vec![ip("198.18.0.10"), ip("198.18.0.11")],
    };
    (msg, adv)
}

const V4: (&str, &str) = ("198.18.0.1", "224.0.0.18");
const V6: (&str, &str) = ("fe80::1", "ff02::12");

#[test]
fn hand_built_advertisements_decode_and_encode_to_the_same_bytes() {
    for ((bytes, adv), (src, dst), family) in
        [(v3_v4(), V4, Family::V4), (v3_v6(), V6, Family::V6), (v2(), V4, Family::V4)]
    {
        assert_eq!(decode(&bytes, family, ip(src), ip(dst), 255), Ok(adv.clone()));
        assert_eq!(encode(&adv, ip(src), ip(dst)).unwrap(), bytes);
    }
}

#[test]
fn version_2_checksum_ignores_the_addresses_of_the_ip_header() {
    let (bytes, adv) = v2();
    assert_eq!(decode(&bytes, Family::V4, ip("198.18.9.9"), ip("198.18.0.2"), 255), Ok(adv));
}

#[test]
fn version_3_checksum_covers_the_pseudo_header() {
    let (bytes, _) = v3_v4();
    let e = decode(&bytes, Family::V4, ip("198.18.0.2"), ip("224.0.0.18"), 255).unwrap_err();
    assert!(matches!(e, DecodeError::Checksum { found: 0xfda7, .. }), "{e:?}");
}

/// Rewrites the checksum after a change, so that only the change is refused.
fn resum(bytes: &mut [u8], family: Family, src: IpAddr, dst: IpAddr) {
    bytes[6] = 0;
    bytes[7] = 0;
    let sum = if bytes[0] >> 4 == 2 {
        ones_complement(bytes)
    } else {
        let mut ph: Vec<u8> = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                [&s.octets()[..], &d.octets(), &[0, 112], &(bytes.len() as u16).to_be_bytes()].concat()
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                [&s.octets()[..], &d.octets(), &(bytes.len() as u32).to_be_bytes(), &[0, 0, 0, 112]].concat()
            }
            _ => unreachable!(),
        };
        let _ = family;
        ph.extend_from_slice(bytes);
        ones_complement(&ph)
    };
    bytes[6..8].copy_from_slice(&sum.to_be_bytes());
}

#[test]
fn every_refusal_is_named() {
    let (src, dst) = (ip(V4.0), ip(V4.1));
    let changed = |f: &dyn Fn(&mut Vec<u8>)| {
        let (mut b, _) = v3_v4();
        f(&mut b);
        resum(&mut b, Family::V4, src, dst);
        decode(&b, Family::V4, src, dst, 255)
    };
    assert_eq!(changed(&|b| b[0] = 0x41), Err(DecodeError::Version(4)));
    assert_eq!(changed(&|b| b[0] = 0x32), Err(DecodeError::Type(2)));
    assert_eq!(changed(&|b| b[1] = 0), Err(DecodeError::Vrid));
    assert_eq!(changed(&|b| b[3] = 2), Err(DecodeError::Length { count: 2, expected: 16, actual: 12 }));
    assert_eq!(
        changed(&|b| b.extend_from_slice(&[0, 0])),
        Err(DecodeError::Length { count: 1, expected: 12, actual: 14 })
    );
    assert_eq!(changed(&|b| b[4..6].copy_from_slice(&[0xf0, 0])), Err(DecodeError::ZeroInterval));
    let (b, _) = v3_v4();
    assert_eq!(decode(&b, Family::V4, src, dst, 254), Err(DecodeError::Ttl(254)));
    assert_eq!(decode(&b[..7], Family::V4, src, dst, 255), Err(DecodeError::Truncated(7)));
    assert_eq!(decode(&b, Family::V6, src, dst, 255), Err(DecodeError::Family));
    assert_eq!(decode(&b, Family::V4, src, ip("ff02::12"), 255), Err(DecodeError::Family));
    let mut flipped = b.clone();
    flipped[9] ^= 1;
    assert!(matches!(decode(&flipped, Family::V4, src, dst, 255), Err(DecodeError::Checksum { .. })));

    // Version 2: authentication, and IPv6.
    let (mut b2, _) = v2();
    b2[4] = 1;
    resum(&mut b2, Family::V4, src, dst);
    assert_eq!(decode(&b2, Family::V4, src, dst, 255), Err(DecodeError::Authentication(1)));
    let (b2, _) = v2();
    assert_eq!(decode(&b2, Family::V6, ip(V6.0), ip(V6.1), 255), Err(DecodeError::Version2OverIpv6));
    // Version 2 without its authentication data is short.
    let mut short = b2[..16].to_vec();
    resum(&mut short, Family::V4, src, dst);
    assert_eq!(
        decode(&short, Family::V4, src, dst, 255),
        Err(DecodeError::Length { count: 2, expected: 24, actual: 16 })
    );
    // Every kind has its own counter name.
    let kinds = [
        DecodeError::Truncated(0).kind(),
        DecodeError::Version(0).kind(),
        DecodeError::Type(0).kind(),
        DecodeError::Ttl(0).kind(),
        DecodeError::Vrid.kind(),
        DecodeError::Length { count: 0, expected: 0, actual: 0 }.kind(),
        DecodeError::Checksum { found: 0, expected: 0 }.kind(),
        DecodeError::Authentication(0).kind(),
        DecodeError::ZeroInterval.kind(),
        DecodeError::Version2OverIpv6.kind(),
        DecodeError::Family.kind(),
    ];
    let distinct: std::collections::BTreeSet<_> = kinds.iter().collect();
    assert_eq!(distinct.len(), kinds.len());
}

#[test]
fn encode_refuses_what_the_wire_cannot_carry() {
    let (_, mut adv) = v2();
    adv.interval_cs = 150;
    assert_eq!(encode(&adv, ip(V4.0), ip(V4.1)), Err(EncodeError::Interval(150)));
    let (_, mut adv) = v3_v4();
    adv.interval_cs = 4096;
    assert_eq!(encode(&adv, ip(V4.0), ip(V4.1)), Err(EncodeError::Interval(4096)));
    let (_, adv) = v3_v4();
    assert_eq!(encode(&adv, ip(V6.0), ip(V6.1)), Err(EncodeError::Family(ip("198.18.0.10"))));
    let (_, mut adv) = v3_v4();
    adv.addresses = (0..256).map(|i| IpAddr::from([198, 18, 1, i as u8])).collect();
    assert_eq!(encode(&adv, ip(V4.0), ip(V4.1)), Err(EncodeError::TooManyAddresses));
}

fn arb_advertisement() -> impl Strategy<Value = (Advertisement, IpAddr, IpAddr)> {
    let v4 = (
        any::<bool>(),
        1..=255u8,
        any::<u8>(),
        prop::collection::vec(any::<[u8; 4]>(), 0..20),
        1..=4095u16,
        1..=255u16,
    )
        .prop_map(|(v2, vrid, priority, addrs, cs, secs)| {
            let version = if v2 { VrrpVersion::V2 } else { VrrpVersion::V3 };
            let interval_cs = if v2 { secs * 100 } else { cs };
            let addresses = addrs.into_iter().map(IpAddr::from).collect();
            (Advertisement { version, vrid, priority, interval_cs, addresses }, ip("198.18.0.1"), ip("224.0.0.18"))
        });
    let v6 = (1..=255u8, any::<u8>(), prop::collection::vec(any::<[u8; 16]>(), 0..10), 1..=4095u16, any::<[u8; 16]>())
        .prop_map(|(vrid, priority, addrs, interval_cs, src)| {
            let addresses = addrs.into_iter().map(IpAddr::from).collect();
            let adv = Advertisement { version: VrrpVersion::V3, vrid, priority, interval_cs, addresses };
            (adv, IpAddr::from(src), ip("ff02::12"))
        });
    prop_oneof![v4, v6]
}

proptest! {
    #[test]
    fn round_trip((adv, src, dst) in arb_advertisement()) {
        let bytes = encode(&adv, src, dst).unwrap();
        prop_assert_eq!(decode(&bytes, Family::of(&src), src, dst, 255), Ok(adv));
    }

    #[test]
    fn any_single_bit_flip_is_refused((adv, src, dst) in arb_advertisement(), bit in any::<prop::sample::Index>()) {
        let mut bytes = encode(&adv, src, dst).unwrap();
        let at = bit.index(bytes.len() * 8);
        bytes[at / 8] ^= 1 << (at % 8);
        prop_assert!(decode(&bytes, Family::of(&src), src, dst, 255).is_err());
    }
}

/// A small xorshift, so the byte strings differ run to run only if the seed does.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn thousands_of_random_and_mutated_packets_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let seeds = [v3_v4(), v3_v6(), v2()];
    let mut accepted = 0;
    for i in 0..6000 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            let len = (rng.next() % 80) as usize;
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let (mut b, _) = seeds[i % 3].clone();
            for _ in 0..=(rng.next() % 4) {
                match rng.next() % 3 {
                    0 if !b.is_empty() => {
                        let at = (rng.next() as usize) % b.len();
                        b[at] = rng.next() as u8;
                    }
                    1 => b.truncate((rng.next() as usize) % (b.len() + 1)),
                    _ => b.push(rng.next() as u8),
                }
            }
            b
        };
        for (family, (src, dst)) in [(Family::V4, V4), (Family::V6, V6)] {
            let ttl = if rng.next().is_multiple_of(8) { rng.next() as u8 } else { 255 };
            if let Ok(adv) = decode(&bytes, family, ip(src), ip(dst), ttl) {
                // What is accepted re-encodes to the very bytes.
                assert_eq!(encode(&adv, ip(src), ip(dst)).unwrap(), bytes);
                accepted += 1;
            }
        }
    }
    // Some mutations (those that leave the packet alone, or hit nothing checked) pass.
    assert!(accepted > 0);
}
