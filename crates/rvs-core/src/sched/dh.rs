//! dh, destination hashing: the destination IP hashes into a 256-bucket table whose buckets
//! go to the servers in turn, weights aside; an unavailable server there means no server.

use super::hash::{addr_fold, hash_32};
use super::{DestView, SchedRequest, Scheduler};

const DH_TAB_BITS: u32 = 8;
const DH_TAB_SIZE: usize = 1 << DH_TAB_BITS;

#[derive(Debug, Default)]
pub struct DestinationHashing {
    /// Bucket -> server index; empty when there are no servers.
    buckets: Vec<usize>,
}

impl Scheduler for DestinationHashing {
    fn schedule(&mut self, dests: &[DestView], req: &SchedRequest) -> Option<usize> {
        let h = hash_32(addr_fold(req.destination.ip()), DH_TAB_BITS) as usize;
        let i = *self.buckets.get(h)?;
        dests.get(i).is_some_and(DestView::available).then_some(i)
    }

    fn update(&mut self, dests: &[DestView]) {
        // The kernel's ip_vs_dh_assign: bucket i goes to server i mod n.
        self.buckets.clear();
        if !dests.is_empty() {
            self.buckets.extend((0..DH_TAB_SIZE).map(|b| b % dests.len()));
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

    fn req(dst: [u8; 4], client_port: u16) -> SchedRequest {
        SchedRequest {
            client: SocketAddr::from(([192, 0, 2, 1], client_port)),
            destination: SocketAddr::from((dst, 80)),
            now_ms: 0,
        }
    }

    #[test]
    fn same_destination_same_server_whatever_the_client_or_load() {
        let mut dests = [d(1, 1), d(2, 1), d(3, 1)];
        let mut s = DestinationHashing::default();
        s.update(&dests);
        let first = s.schedule(&dests, &req([198, 51, 100, 7], 1000)).unwrap();
        dests[first].active = 1000;
        for port in 1..200 {
            assert_eq!(s.schedule(&dests, &req([198, 51, 100, 7], port)), Some(first));
        }
    }

    #[test]
    fn buckets_follow_the_kernel_hash() {
        let dests = [d(1, 1), d(2, 1), d(3, 1)];
        let mut s = DestinationHashing::default();
        s.update(&dests);
        let dst = [203, 0, 113, 9];
        let bucket = hash_32(u32::from_be_bytes(dst), 8) as usize;
        assert_eq!(s.schedule(&dests, &req(dst, 1)), Some(bucket % 3));
    }

    #[test]
    fn spreads_destinations_over_all_servers_ignoring_weight() {
        let dests = [d(1, 1), d(2, 50), d(3, 1)];
        let mut s = DestinationHashing::default();
        s.update(&dests);
        let mut count = [0; 3];
        for x in 0..=255u8 {
            for y in 0..16u8 {
                count[s.schedule(&dests, &req([10, y, x, 1], 1)).unwrap()] += 1;
            }
        }
        assert!(count.iter().all(|&c| c > 4096 / 3 - 400), "{count:?}");
    }

    #[test]
    fn unavailable_server_gives_none() {
        let mut dests = [d(1, 1), d(2, 1)];
        let mut s = DestinationHashing::default();
        s.update(&dests);
        let r = req([198, 51, 100, 7], 1);
        let i = s.schedule(&dests, &r).unwrap();
        dests[i].overloaded = true;
        assert_eq!(s.schedule(&dests, &r), None);
        dests[i].overloaded = false;
        dests[i].weight = 0;
        s.update(&dests);
        assert_eq!(s.schedule(&dests, &r), None);
        s.update(&[]);
        assert_eq!(s.schedule(&[], &r), None);
    }
}
