//! rr, round robin: each connection goes to the next available server after the one picked
//! last, wrapping around; it keeps only the position of its last pick.

use std::net::SocketAddr;

use super::{DestView, SchedRequest, Scheduler};

#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Index of the last pick; `None` starts from the first server.
    last: Option<usize>,
    /// Address of the last pick, to find it again after the server list changes.
    last_addr: Option<SocketAddr>,
}

impl Scheduler for RoundRobin {
    fn schedule(&mut self, dests: &[DestView], _req: &SchedRequest) -> Option<usize> {
        let n = dests.len();
        let start = self.last.map_or(0, |l| l.saturating_add(1));
        let i = (0..n).map(|k| (start + k) % n).find(|&i| dests[i].available())?;
        self.last = Some(i);
        self.last_addr = Some(dests[i].addr);
        Some(i)
    }

    fn update(&mut self, dests: &[DestView]) {
        // Keep going after the last pick; if that server left, the kernel steps back one so
        // the server that took its place comes next.
        match self.last_addr.and_then(|a| dests.iter().position(|d| d.addr == a)) {
            Some(i) => self.last = Some(i),
            None => {
                self.last = self.last.and_then(|l| l.checked_sub(1)).filter(|&l| l < dests.len());
                self.last_addr = self.last.map(|l| dests[l].addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::req;

    fn d(port: u16, weight: u32) -> DestView {
        DestView { addr: SocketAddr::from(([10, 0, 0, 1], port)), weight, active: 0, inactive: 0, overloaded: false }
    }

    fn picks(s: &mut RoundRobin, dests: &[DestView], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| s.schedule(dests, &req())).collect()
    }

    #[test]
    fn cycles_in_order_ignoring_weights() {
        let dests = [d(1, 1), d(2, 5), d(3, 100)];
        let mut s = RoundRobin::default();
        s.update(&dests);
        let p = picks(&mut s, &dests, 7);
        assert_eq!(p, [0, 1, 2, 0, 1, 2, 0].map(Some));
    }

    #[test]
    fn skips_unavailable_servers() {
        let mut dests = [d(1, 1), d(2, 0), d(3, 1), d(4, 1)];
        dests[3].overloaded = true;
        let mut s = RoundRobin::default();
        assert_eq!(picks(&mut s, &dests, 4), [0, 2, 0, 2].map(Some));
        dests[0].overloaded = true;
        dests[2].weight = 0;
        assert_eq!(picks(&mut s, &dests, 2), [None, None]);
        assert_eq!(s.schedule(&[], &req()), None);
    }

    #[test]
    fn update_keeps_the_position() {
        let dests = [d(1, 1), d(2, 1), d(3, 1), d(4, 1)];
        let mut s = RoundRobin::default();
        assert_eq!(picks(&mut s, &dests, 2), [Some(0), Some(1)]);
        // A server is added in front: the next pick is still the one after port 2.
        let more = [d(9, 1), d(1, 1), d(2, 1), d(3, 1), d(4, 1)];
        s.update(&more);
        assert_eq!(s.schedule(&more, &req()), Some(3));
        // The last pick (port 3) is removed: port 4, which took its place, comes next.
        let fewer = [d(9, 1), d(1, 1), d(2, 1), d(4, 1)];
        s.update(&fewer);
        assert_eq!(s.schedule(&fewer, &req()), Some(3));
    }
}
