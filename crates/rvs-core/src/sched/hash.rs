//! The hashing the hashing schedulers share (dh, sh, mh, lblc, lblcr): the kernel's address
//! fold, its multiplicative `hash_32`, and the SipHash-1-3 `hsiphash` that Maglev keys with.

use std::net::IpAddr;

/// The kernel's `GOLDEN_RATIO_32` (include/linux/hash.h).
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// An address as the kernel hashes it: an IPv4 address in host order, an IPv6 address as the
/// XOR of its four 32-bit words (`ip6[0] ^ ip6[1] ^ ip6[2] ^ ip6[3]`, then `ntohl`).
pub(super) fn addr_fold(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            (0..4).fold(0, |acc, w| acc ^ u32::from_be_bytes([o[4 * w], o[4 * w + 1], o[4 * w + 2], o[4 * w + 3]]))
        }
    }
}

/// The kernel's `hash_32(val, bits)`: multiply by the golden ratio, keep the top `bits` bits.
pub(super) fn hash_32(val: u32, bits: u32) -> u32 {
    debug_assert!((1..=32).contains(&bits));
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// The kernel's `hsiphash` of one 32-bit word on a 64-bit machine, where it is SipHash-1-3 with a
/// 128-bit key and the 64-bit result truncated to 32 bits.
pub(super) fn hsiphash_u32(v: u32, key: [u64; 2]) -> u32 {
    let mut s = [
        0x736f_6d65_7073_6575 ^ key[0],
        0x646f_7261_6e64_6f6d ^ key[1],
        0x6c79_6765_6e65_7261 ^ key[0],
        0x7465_6462_7974_6573 ^ key[1],
    ];
    let b = (4u64 << 56) | u64::from(v);
    s[3] ^= b;
    sip_round(&mut s);
    s[0] ^= b;
    s[2] ^= 0xff;
    sip_round(&mut s);
    sip_round(&mut s);
    sip_round(&mut s);
    ((s[0] ^ s[1]) ^ (s[2] ^ s[3])) as u32
}

fn sip_round(s: &mut [u64; 4]) {
    s[0] = s[0].wrapping_add(s[1]);
    s[1] = s[1].rotate_left(13) ^ s[0];
    s[0] = s[0].rotate_left(32);
    s[2] = s[2].wrapping_add(s[3]);
    s[3] = s[3].rotate_left(16) ^ s[2];
    s[0] = s[0].wrapping_add(s[3]);
    s[3] = s[3].rotate_left(21) ^ s[0];
    s[2] = s[2].wrapping_add(s[1]);
    s[1] = s[1].rotate_left(17) ^ s[2];
    s[2] = s[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn fold_is_host_order_for_v4_and_xor_of_words_for_v6() {
        assert_eq!(addr_fold(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))), 0x0a00_0001);
        let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0x0a00, 0x0001);
        assert_eq!(addr_fold(IpAddr::V6(v6)), 0x2001_0db8 ^ 0x0a00_0001);
    }

    #[test]
    fn hash_32_keeps_the_top_bits() {
        assert_eq!(hash_32(0, 8), 0);
        assert_eq!(hash_32(1, 8), GOLDEN_RATIO_32 >> 24);
        assert_eq!(hash_32(1, 32), GOLDEN_RATIO_32);
        assert!((0..10_000u32).all(|v| hash_32(v, 10) < 1024));
    }

    #[test]
    fn hsiphash_is_siphash_1_3() {
        // SipHash-1-3 of the 4 little-endian bytes with a zero key, as std's SipHasher13 gives.
        assert_eq!(hsiphash_u32(0, [0, 0]), 0x9ac4_8af0);
        assert_eq!(hsiphash_u32(1, [0, 0]), 0xc37b_7090);
        assert_eq!(hsiphash_u32(0xdead_beef, [0, 0]), 0x84fb_8253);
    }

    #[test]
    fn hsiphash_depends_on_key_and_value() {
        let k = [2_654_435_761, 2_654_435_761];
        assert_eq!(hsiphash_u32(7, k), hsiphash_u32(7, k));
        assert_ne!(hsiphash_u32(7, k), hsiphash_u32(8, k));
        assert_ne!(hsiphash_u32(7, k), hsiphash_u32(7, [k[0] ^ 1, k[1]]));
    }
}
