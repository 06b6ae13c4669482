//! sh, source hashing: the client IP (and port with sh-port) hashes into a 256-bucket table in
//! which each server holds runs of `weight` buckets; sh-fallback probes on past unavailable ones.

use super::hash::{addr_fold, hash_32};
use super::{DestView, SchedFlags, SchedRequest, Scheduler};

const SH_TAB_BITS: u32 = 8;
const SH_TAB_SIZE: u32 = 1 << SH_TAB_BITS;
const SH_TAB_MASK: u32 = SH_TAB_SIZE - 1;

#[derive(Debug)]
pub struct SourceHashing {
    flags: SchedFlags,
    /// Bucket -> server index; empty when there are no servers.
    buckets: Vec<usize>,
}

impl SourceHashing {
    pub fn new(flags: SchedFlags) -> Self {
        Self { flags, buckets: Vec::new() }
    }

    /// The kernel's `ip_vs_sh_hashkey`.
    fn hashkey(fold: u32, port: u16, offset: u32) -> usize {
        (offset.wrapping_add(hash_32(u32::from(port).wrapping_add(fold), SH_TAB_BITS)) & SH_TAB_MASK) as usize
    }
}

impl Scheduler for SourceHashing {
    fn schedule(&mut self, dests: &[DestView], req: &SchedRequest) -> Option<usize> {
        let fold = addr_fold(req.client.ip());
        let port = if self.flags.sh_port { req.client.port() } else { 0 };
        let usable = |i: usize| dests.get(i).is_some_and(DestView::available);
        let ihash = Self::hashkey(fold, port, 0);
        let i = *self.buckets.get(ihash)?;
        if usable(i) {
            return Some(i);
        }
        if !self.flags.sh_fallback {
            return None;
        }
        // ip_vs_sh_get_fallback: walk the table from a point fixed by the original hash, so
        // the same client keeps landing on the same replacement.
        (0..SH_TAB_SIZE)
            .map(|offset| self.buckets[Self::hashkey(fold, port, (offset + ihash as u32) % SH_TAB_SIZE)])
            .find(|&i| usable(i))
    }

    fn update(&mut self, dests: &[DestView]) {
        // The kernel's ip_vs_sh_reassign: fill the buckets in order, each server holding
        // `weight` consecutive buckets before the next takes over (one if its weight is 0).
        self.buckets.clear();
        if dests.is_empty() {
            return;
        }
        let (mut p, mut count) = (0, 0);
        for _ in 0..SH_TAB_SIZE {
            self.buckets.push(p);
            count += 1;
            if count >= dests[p].weight {
                p = (p + 1) % dests.len();
                count = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn d(port: u16, weight: u32) -> DestView {
        DestView { addr: SocketAddr::from(([10, 0, 0, 1], port)), weight, active: 0, inactive: 0, overloaded: false }
    }

    fn req(src: [u8; 4], port: u16) -> SchedRequest {
        SchedRequest {
            client: SocketAddr::from((src, port)),
            destination: SocketAddr::from(([198, 51, 100, 1], 80)),
            now_ms: 0,
        }
    }

    fn built(flags: SchedFlags, dests: &[DestView]) -> SourceHashing {
        let mut s = SourceHashing::new(flags);
        s.update(dests);
        s
    }

    #[test]
    fn buckets_are_runs_of_weight() {
        let s = built(SchedFlags::default(), &[d(1, 3), d(2, 1), d(3, 0), d(4, 2)]);
        assert_eq!(&s.buckets[..14], &[0, 0, 0, 1, 2, 3, 3, 0, 0, 0, 1, 2, 3, 3]);
        let count = |i| s.buckets.iter().filter(|&&b| b == i).count();
        assert_eq!((count(0), count(1), count(2), count(3)), (111, 37, 36, 72));
    }

    #[test]
    fn same_client_ip_same_server_any_port() {
        let dests = [d(1, 1), d(2, 2), d(3, 3)];
        let mut s = built(SchedFlags::default(), &dests);
        let first = s.schedule(&dests, &req([192, 0, 2, 33], 1000));
        assert!(first.is_some());
        for port in 1..500 {
            assert_eq!(s.schedule(&dests, &req([192, 0, 2, 33], port)), first);
        }
    }

    #[test]
    fn sh_port_hashes_the_port_too() {
        let dests = [d(1, 1), d(2, 1), d(3, 1), d(4, 1)];
        let flags = SchedFlags { sh_port: true, ..SchedFlags::default() };
        let mut s = built(flags, &dests);
        let picks: std::collections::BTreeSet<_> =
            (1000..1100).map(|p| s.schedule(&dests, &req([192, 0, 2, 33], p))).collect();
        assert!(picks.len() > 1);
        let again = s.schedule(&dests, &req([192, 0, 2, 33], 1042));
        assert_eq!(again, s.schedule(&dests, &req([192, 0, 2, 33], 1042)));
    }

    #[test]
    fn unavailable_without_fallback_gives_none() {
        let mut dests = [d(1, 1), d(2, 1), d(3, 1)];
        let mut s = built(SchedFlags::default(), &dests);
        let r = req([192, 0, 2, 7], 1);
        let i = s.schedule(&dests, &r).unwrap();
        dests[i].overloaded = true;
        assert_eq!(s.schedule(&dests, &r), None);
    }

    #[test]
    fn fallback_finds_another_server_stably() {
        let mut dests = [d(1, 1), d(2, 1), d(3, 1)];
        let flags = SchedFlags { sh_fallback: true, ..SchedFlags::default() };
        let mut s = built(flags, &dests);
        let r = req([192, 0, 2, 7], 1);
        let i = s.schedule(&dests, &r).unwrap();
        dests[i].overloaded = true;
        let j = s.schedule(&dests, &r).unwrap();
        assert_ne!(i, j);
        assert_eq!(s.schedule(&dests, &r), Some(j));
        // Clients whose server is fine are not moved.
        for x in 0..=255u8 {
            let r = req([192, 0, 3, x], 1);
            let mut plain = built(SchedFlags::default(), &dests);
            if let Some(k) = plain.schedule(&dests, &r) {
                assert_eq!(s.schedule(&dests, &r), Some(k));
            }
        }
        for d in &mut dests {
            d.weight = 0;
        }
        assert_eq!(s.schedule(&dests, &r), None);
    }
}
