//! lblcr, locality-based least-connection with replication: per destination IP a set of
//! servers; the least loaded member serves, an overloaded set gains the service's least loaded
//! server, and a set unchanged for the expiration time sheds its most loaded member.

use std::net::SocketAddr;

use super::lblc::{least_loaded, overloaded_for_locality, LocalityTable, DEFAULT_EXPIRATION_MS};
use super::{DestView, SchedRequest, Scheduler};

/// How long a set of more than one server must go unmodified before it sheds its most loaded
/// member: the kernel uses the entry expiration (sysctl `lblcr_expiration`) for this too.
pub(super) const SET_SHRINK_AFTER_MS: u64 = DEFAULT_EXPIRATION_MS;

/// The kernel's `ip_vs_dest_set`: servers by address, and when the set last changed.
#[derive(Debug)]
struct DestSet {
    members: Vec<SocketAddr>,
    lastmod: u64,
}

impl DestSet {
    fn member_indices<'a>(&'a self, dests: &'a [DestView]) -> impl Iterator<Item = usize> + 'a {
        (0..dests.len()).filter(move |&i| self.members.contains(&dests[i].addr))
    }

    /// `ip_vs_dest_set_min`: the available member with the least load per weight.
    fn min(&self, dests: &[DestView]) -> Option<usize> {
        let mut least: Option<(usize, u64, u64)> = None;
        for i in self.member_indices(dests).filter(|&i| dests[i].available()) {
            let (doh, dwt) = (dests[i].load(), u64::from(dests[i].weight));
            match least {
                Some((_, loh, lwt)) if loh * dwt <= doh * lwt => {}
                _ => least = Some((i, doh, dwt)),
            }
        }
        least.map(|(i, _, _)| i)
    }

    /// `ip_vs_dest_set_max`: the member of positive weight with the most load per weight
    /// (overloaded or not).
    fn max(&self, dests: &[DestView]) -> Option<usize> {
        let mut most: Option<(usize, u64, u64)> = None;
        for i in self.member_indices(dests).filter(|&i| dests[i].weight > 0) {
            let (doh, dwt) = (dests[i].load(), u64::from(dests[i].weight));
            match most {
                Some((_, moh, mwt)) if moh * dwt >= doh * mwt => {}
                _ => most = Some((i, doh, dwt)),
            }
        }
        most.map(|(i, _, _)| i)
    }

    fn insert(&mut self, addr: SocketAddr, now: u64) {
        if !self.members.contains(&addr) {
            self.members.push(addr);
            self.lastmod = now;
        }
    }
}

#[derive(Debug, Default)]
pub struct LocalityBasedLeastConnectionReplication {
    table: LocalityTable<DestSet>,
}

impl Scheduler for LocalityBasedLeastConnectionReplication {
    fn schedule(&mut self, dests: &[DestView], req: &SchedRequest) -> Option<usize> {
        let now = req.now_ms;
        self.table.expire(now);
        let daddr = req.destination.ip();
        if let Some(en) = self.table.get_mut(daddr, now) {
            en.lastuse = now;
            let set = &mut en.value;
            // Servers that left the service leave the set (the kernel keeps them, unusable).
            set.members.retain(|a| dests.iter().any(|d| d.addr == *a));
            let min = set.min(dests);
            if set.members.len() > 1 && now > set.lastmod.saturating_add(SET_SHRINK_AFTER_MS) {
                if let Some(m) = set.max(dests) {
                    set.members.retain(|a| *a != dests[m].addr);
                    set.lastmod = now;
                }
            }
            if let Some(i) = min.filter(|&i| !overloaded_for_locality(&dests[i], dests)) {
                return Some(i);
            }
            let i = least_loaded(dests, req)?;
            set.insert(dests[i].addr, now);
            return Some(i);
        }
        let i = least_loaded(dests, req)?;
        self.table.insert(daddr, DestSet { members: vec![dests[i].addr], lastmod: now }, now);
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(host: u8, weight: u32, active: u32) -> DestView {
        DestView { addr: SocketAddr::from(([10, 0, 0, host], 80)), weight, active, inactive: 0, overloaded: false }
    }

    fn req(now_ms: u64) -> SchedRequest {
        SchedRequest {
            client: SocketAddr::from(([192, 0, 2, 1], 5000)),
            destination: SocketAddr::from(([198, 51, 100, 1], 80)),
            now_ms,
        }
    }

    fn members(s: &mut LocalityBasedLeastConnectionReplication, now: u64) -> Vec<SocketAddr> {
        let en = s.table.get_mut(req(now).destination.ip(), now).unwrap();
        en.value.members.clone()
    }

    #[test]
    fn grows_the_set_under_overload_and_serves_the_least_member() {
        let mut dests = [d(1, 4, 0), d(2, 4, 0), d(3, 4, 0)];
        let mut s = LocalityBasedLeastConnectionReplication::default();
        assert_eq!(s.schedule(&dests, &req(0)), Some(0));
        // Busy but not overloaded by the kernel rule (nobody under half weight): stay.
        dests[0].active = 5;
        dests[1].active = 2;
        dests[2].active = 3;
        assert_eq!(s.schedule(&dests, &req(1)), Some(0));
        // Server 1 drops under half its weight: server 0 counts as overloaded, the least
        // loaded server of the service joins the set and takes the connection.
        dests[1].active = 1;
        assert_eq!(s.schedule(&dests, &req(2)), Some(1));
        assert_eq!(members(&mut s, 2), [dests[0].addr, dests[1].addr]);
        // From now on the least loaded member serves; server 2 stays outside the set.
        dests[2].active = 0;
        assert_eq!(s.schedule(&dests, &req(3)), Some(1));
        dests[1].active = 6;
        dests[0].active = 4;
        assert_eq!(s.schedule(&dests, &req(4)), Some(0));
    }

    #[test]
    fn sheds_the_most_loaded_member_after_the_set_sits_unchanged() {
        let mut dests = [d(1, 4, 0), d(2, 4, 0)];
        let mut s = LocalityBasedLeastConnectionReplication::default();
        assert_eq!(s.schedule(&dests, &req(0)), Some(0));
        dests[0].active = 5;
        dests[1].active = 1;
        assert_eq!(s.schedule(&dests, &req(1)), Some(1));
        assert_eq!(members(&mut s, 1).len(), 2);
        dests[0].active = 3;
        dests[1].active = 2;
        // Not yet: the set changed at 1 ms.
        assert_eq!(s.schedule(&dests, &req(SET_SHRINK_AFTER_MS)), Some(1));
        assert_eq!(members(&mut s, SET_SHRINK_AFTER_MS).len(), 2);
        // Past it: server 0 (3/4) is dropped, server 1 serves.
        let t = SET_SHRINK_AFTER_MS + 2;
        assert_eq!(s.schedule(&dests, &req(t)), Some(1));
        assert_eq!(members(&mut s, t), [dests[1].addr]);
    }

    #[test]
    fn unavailable_members_are_passed_over() {
        let mut dests = vec![d(1, 1, 0), d(2, 1, 0), d(3, 1, 0)];
        let mut s = LocalityBasedLeastConnectionReplication::default();
        assert_eq!(s.schedule(&dests, &req(0)), Some(0));
        dests[0].overloaded = true;
        dests[1].active = 1;
        assert_eq!(s.schedule(&dests, &req(1)), Some(2));
        assert_eq!(members(&mut s, 1).len(), 2);
        dests.remove(2);
        s.update(&dests);
        // Server 0 is still overloaded and server 3 left: server 1 joins.
        assert_eq!(s.schedule(&dests, &req(2)), Some(1));
        assert_eq!(members(&mut s, 2), [dests[0].addr, dests[1].addr]);
        dests[1].weight = 0;
        assert_eq!(s.schedule(&dests, &req(3)), None);
    }
}
