//! mh, Maglev hashing: a prime-sized lookup table filled from per-server permutations in
//! proportion to weight, looked up by a keyed hash of the client IP (and port with mh-port).

use std::net::IpAddr;

use super::hash::{addr_fold, hsiphash_u32};
use super::{DestView, SchedFlags, SchedRequest, Scheduler};

/// The lookup table sizes the kernel offers (its `primes[]`).
pub const MH_TABLE_SIZES: [u32; 10] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];

/// The kernel's default (`CONFIG_IP_VS_MH_TAB_INDEX` 12).
pub const MH_DEFAULT_TABLE_SIZE: u32 = 4093;

/// The kernel's fixed hsiphash keys (`generate_hash_secret`); the service seed is mixed in.
const HASH1_KEY: u64 = 2_654_435_761;
const HASH2_KEY: u64 = 2_654_446_892;

/// A slot of the lookup table that no server holds.
const EMPTY: u32 = u32::MAX;

#[derive(Debug)]
pub struct MaglevHashing {
    flags: SchedFlags,
    size: u32,
    /// `IP_VS_MH_TAB_BITS` for this size: weights above 2^bits (after the gcd) are shifted down.
    tab_bits: u32,
    hash1: [u64; 2],
    hash2: [u64; 2],
    /// Slot -> server index, or [`EMPTY`].
    lookup: Vec<u32>,
}

impl MaglevHashing {
    /// A table of `table_size` slots; a size that is not one of [`MH_TABLE_SIZES`] falls back to
    /// [`MH_DEFAULT_TABLE_SIZE`] (configuration checks it first and reports `BadMhTableSize`).
    pub fn new(flags: SchedFlags, table_size: u32, seed: u64) -> Self {
        let index = MH_TABLE_SIZES
            .iter()
            .position(|&p| p == table_size)
            .or_else(|| MH_TABLE_SIZES.iter().position(|&p| p == MH_DEFAULT_TABLE_SIZE))
            .unwrap_or(4);
        let mix = seed.rotate_left(32);
        Self {
            flags,
            size: MH_TABLE_SIZES[index],
            // The kernel's CONFIG_IP_VS_MH_TAB_INDEX is the prime's index + 8; bits are half.
            tab_bits: (index as u32 + 8) / 2,
            hash1: [HASH1_KEY ^ seed, HASH1_KEY ^ mix],
            hash2: [HASH2_KEY ^ seed, HASH2_KEY ^ mix],
            lookup: Vec::new(),
        }
    }

    /// The kernel's `ip_vs_mh_hashkey`: hsiphash of offset + port + folded address.
    fn hashkey(ip: IpAddr, port: u16, key: [u64; 2], offset: u32) -> u32 {
        hsiphash_u32(offset.wrapping_add(u32::from(port)).wrapping_add(addr_fold(ip)), key)
    }

    fn populate(&mut self, dests: &[DestView]) {
        let size = self.size;
        self.lookup.clear();
        self.lookup.resize(size as usize, EMPTY);
        let g = dests.iter().map(|d| d.weight).filter(|&w| w > 0).fold(0, gcd);
        if g == 0 {
            return;
        }
        // ip_vs_mh_shift_weight: keep weight/gcd within tab_bits bits.
        let mw = dests.iter().map(|d| d.weight).max().unwrap_or(0) / g;
        let rshift = (32 - mw.leading_zeros()).saturating_sub(self.tab_bits);
        // ip_vs_mh_permutate: each server's preference list is offset, offset + skip, ...
        // Servers of weight 0 take no turns and so no slots.
        let mut setup: Vec<(u32, u32, u32)> = dests
            .iter()
            .map(|d| {
                let (ip, port) = (d.addr.ip(), d.addr.port());
                let offset = Self::hashkey(ip, port, self.hash1, 0) % size;
                let skip = Self::hashkey(ip, port, self.hash2, 0) % (size - 1) + 1;
                let w = d.weight / g;
                let turns = match w >> rshift {
                    0 => u32::from(w != 0),
                    t => t,
                };
                (offset, skip, turns)
            })
            .collect();
        // ip_vs_mh_populate: round after round, each server claims `turns` slots, each the
        // next free one along its own permutation.
        let mut filled = 0;
        loop {
            for (i, (perm, skip, turns)) in setup.iter_mut().enumerate() {
                for _ in 0..*turns {
                    while self.lookup[*perm as usize] != EMPTY {
                        *perm += *skip;
                        if *perm >= size {
                            *perm -= size;
                        }
                    }
                    self.lookup[*perm as usize] = i as u32;
                    filled += 1;
                    if filled == size {
                        return;
                    }
                }
            }
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Scheduler for MaglevHashing {
    fn schedule(&mut self, dests: &[DestView], req: &SchedRequest) -> Option<usize> {
        let ip = req.client.ip();
        let port = if self.flags.mh_port { req.client.port() } else { 0 };
        let at = |slot: u32| match self.lookup.get(slot as usize) {
            Some(&i) if i != EMPTY => Some(i as usize),
            _ => None,
        };
        let usable = |i: usize| dests.get(i).is_some_and(DestView::available);
        let ihash = Self::hashkey(ip, port, self.hash1, 0) % self.size;
        let i = at(ihash)?;
        if usable(i) {
            return Some(i);
        }
        if !self.flags.mh_fallback {
            return None;
        }
        // ip_vs_mh_get_fallback: rehash with offsets counting on from the original slot.
        for offset in 0..self.size {
            let roffset = (offset + ihash) % self.size;
            let i = at(Self::hashkey(ip, port, self.hash1, roffset) % self.size)?;
            if usable(i) {
                return Some(i);
            }
        }
        None
    }

    fn update(&mut self, dests: &[DestView]) {
        self.populate(dests);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn d(host: u8, weight: u32) -> DestView {
        DestView { addr: SocketAddr::from(([10, 0, 0, host], 80)), weight, active: 0, inactive: 0, overloaded: false }
    }

    fn req(src: [u8; 4], port: u16) -> SchedRequest {
        SchedRequest {
            client: SocketAddr::from((src, port)),
            destination: SocketAddr::from(([198, 51, 100, 1], 80)),
            now_ms: 0,
        }
    }

    fn built(flags: SchedFlags, size: u32, dests: &[DestView]) -> MaglevHashing {
        let mut s = MaglevHashing::new(flags, size, 0);
        s.update(dests);
        s
    }

    fn slots(s: &MaglevHashing, i: u32) -> usize {
        s.lookup.iter().filter(|&&x| x == i).count()
    }

    #[test]
    fn table_is_full_and_shared_by_weight() {
        let dests = [d(1, 1), d(2, 1), d(3, 2), d(4, 0)];
        let s = built(SchedFlags::default(), 4093, &dests);
        assert!(s.lookup.iter().all(|&x| x != EMPTY));
        assert_eq!(slots(&s, 3), 0, "weight 0 holds no slot");
        let (a, b, c) = (slots(&s, 0), slots(&s, 1), slots(&s, 2));
        assert_eq!(a + b + c, 4093);
        assert!(a.abs_diff(1023) <= 1 && b.abs_diff(1023) <= 1 && c.abs_diff(2046) <= 2);
    }

    #[test]
    fn big_weights_are_shifted_but_stay_proportional() {
        let dests = [d(1, 60000), d(2, 20000)];
        let s = built(SchedFlags::default(), 251, &dests);
        // gcd 20000 gives turns 3 and 1.
        assert!(slots(&s, 0).abs_diff(188) <= 3, "{}", slots(&s, 0));
    }

    #[test]
    fn bad_table_size_falls_back_to_default() {
        assert_eq!(MaglevHashing::new(SchedFlags::default(), 1000, 0).size, 4093);
        assert_eq!(MaglevHashing::new(SchedFlags::default(), 251, 0).size, 251);
    }

    #[test]
    fn same_client_same_server() {
        let dests: Vec<_> = (1..=5).map(|h| d(h, 1)).collect();
        let mut s = built(SchedFlags::default(), 4093, &dests);
        let first = s.schedule(&dests, &req([192, 0, 2, 9], 1));
        assert!(first.is_some());
        for port in 2..300 {
            assert_eq!(s.schedule(&dests, &req([192, 0, 2, 9], port)), first);
        }
        let flags = SchedFlags { mh_port: true, ..SchedFlags::default() };
        let mut s = built(flags, 4093, &dests);
        let picks: std::collections::BTreeSet<_> =
            (1..300).map(|p| s.schedule(&dests, &req([192, 0, 2, 9], p))).collect();
        assert!(picks.len() > 1);
    }

    #[test]
    fn seed_changes_the_table() {
        let dests: Vec<_> = (1..=5).map(|h| d(h, 1)).collect();
        let mut a = MaglevHashing::new(SchedFlags::default(), 4093, 1);
        let mut b = MaglevHashing::new(SchedFlags::default(), 4093, 2);
        a.update(&dests);
        b.update(&dests);
        assert_ne!(a.lookup, b.lookup);
    }

    #[test]
    fn unavailable_without_fallback_gives_none() {
        let mut dests: Vec<_> = (1..=4).map(|h| d(h, 1)).collect();
        let mut s = built(SchedFlags::default(), 251, &dests);
        let r = req([192, 0, 2, 9], 1);
        let i = s.schedule(&dests, &r).unwrap();
        dests[i].overloaded = true;
        assert_eq!(s.schedule(&dests, &r), None);
    }

    #[test]
    fn fallback_rehashes_to_an_available_server() {
        let mut dests: Vec<_> = (1..=4).map(|h| d(h, 1)).collect();
        let flags = SchedFlags { mh_fallback: true, ..SchedFlags::default() };
        let mut s = built(flags, 251, &dests);
        let r = req([192, 0, 2, 9], 1);
        let i = s.schedule(&dests, &r).unwrap();
        dests[i].overloaded = true;
        let j = s.schedule(&dests, &r).unwrap();
        assert_ne!(i, j);
        assert_eq!(s.schedule(&dests, &r), Some(j));
        for d in &mut dests {
            d.overloaded = true;
        }
        assert_eq!(s.schedule(&dests, &r), None);
    }

    #[test]
    fn no_positive_weight_means_empty_table() {
        let dests = [d(1, 0), d(2, 0)];
        let mut s = built(SchedFlags { mh_fallback: true, ..SchedFlags::default() }, 251, &dests);
        assert_eq!(s.schedule(&dests, &req([192, 0, 2, 9], 1)), None);
        s.update(&[]);
        assert_eq!(s.schedule(&[], &req([192, 0, 2, 9], 1)), None);
    }
}
