//! lblc, locality-based least-connection: a table from destination IP to the server that last
//! took it, kept while that server is usable and not overloaded, else wlc picks again; plus the
//! kernel's expiring, size-bounded entry table that lblcr shares.

use std::net::{IpAddr, SocketAddr};

use super::hash::{addr_fold, hash_32};
use super::wlc::WeightedLeastConnection;
use super::{DestView, SchedRequest, Scheduler};

/// How often the kernel's timer looks for stale entries (`CHECK_EXPIRE_INTERVAL`).
pub(super) const CHECK_EXPIRE_INTERVAL_MS: u64 = 60 * 1000;
/// Idle time after which an entry may be collected while the table is over its size
/// (`ENTRY_TIMEOUT`).
pub(super) const ENTRY_TIMEOUT_MS: u64 = 6 * 60 * 1000;
/// Idle time after which an entry is dropped in any case (sysctl `lblc_expiration` and
/// `lblcr_expiration`, both a day by default).
pub(super) const DEFAULT_EXPIRATION_MS: u64 = 24 * 60 * 60 * 1000;
/// A full expiration pass every 30 checks (`COUNT_FOR_FULL_EXPIRATION`).
const FULL_CHECK_INTERVAL_MS: u64 = 30 * CHECK_EXPIRE_INTERVAL_MS;
const TAB_BITS: u32 = 10;
const TAB_SIZE: usize = 1 << TAB_BITS;
/// Entries above which idle ones are collected (the kernel's `max_size`, 16 per bucket).
pub(super) const MAX_SIZE: usize = TAB_SIZE * 16;
/// Entries the table never exceeds: reaching it evicts the least recently used down to
/// [`MAX_SIZE`]. The kernel has no hard bound (it grows between timer runs).
pub(super) const HARD_LIMIT: usize = 2 * MAX_SIZE;

#[derive(Debug)]
pub(super) struct Entry<V> {
    pub(super) addr: IpAddr,
    pub(super) lastuse: u64,
    pub(super) value: V,
}

/// The kernel's lblc/lblcr hash table: destination IP -> `V`, with the periodic expiry run
/// from the scheduling calls (by `now_ms`) instead of a timer.
#[derive(Debug)]
pub(super) struct LocalityTable<V> {
    buckets: Vec<Vec<Entry<V>>>,
    entries: usize,
    /// Where the goal-limited collection resumes (the kernel's `rover`).
    rover: usize,
    next_check: Option<u64>,
    next_full_check: Option<u64>,
}

impl<V> Default for LocalityTable<V> {
    fn default() -> Self {
        Self { buckets: Vec::new(), entries: 0, rover: 0, next_check: None, next_full_check: None }
    }
}

fn idle(e_lastuse: u64, now: u64) -> u64 {
    now.saturating_sub(e_lastuse)
}

impl<V> LocalityTable<V> {
    fn bucket_of(addr: IpAddr) -> usize {
        hash_32(addr_fold(addr), TAB_BITS) as usize
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
    }

    /// Runs the kernel's periodic check if it is due: a full pass dropping entries idle for
    /// [`DEFAULT_EXPIRATION_MS`] every half hour, and each minute, when the table holds more
    /// than [`MAX_SIZE`] entries, a pass collecting entries idle for [`ENTRY_TIMEOUT_MS`].
    pub(super) fn expire(&mut self, now: u64) {
        let next_check = *self.next_check.get_or_insert(now + CHECK_EXPIRE_INTERVAL_MS);
        let next_full = *self.next_full_check.get_or_insert(now + FULL_CHECK_INTERVAL_MS);
        if now >= next_full {
            self.retain(|e| idle(e.lastuse, now) < DEFAULT_EXPIRATION_MS);
            self.next_full_check = Some(now + FULL_CHECK_INTERVAL_MS);
            self.next_check = Some(now + CHECK_EXPIRE_INTERVAL_MS);
        } else if now >= next_check {
            if self.entries > MAX_SIZE {
                let goal = ((self.entries - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2);
                self.collect_idle(now, goal);
            }
            self.next_check = Some(now + CHECK_EXPIRE_INTERVAL_MS);
        }
    }

    /// Drops entries idle for [`ENTRY_TIMEOUT_MS`], bucket by bucket from the rover, until at
    /// least `goal` are gone.
    fn collect_idle(&mut self, now: u64, goal: usize) {
        let mut removed = 0;
        for _ in 0..self.buckets.len() {
            self.rover = (self.rover + 1) % self.buckets.len();
            let bucket = &mut self.buckets[self.rover];
            let before = bucket.len();
            bucket.retain(|e| idle(e.lastuse, now) < ENTRY_TIMEOUT_MS);
            removed += before - bucket.len();
            if removed >= goal {
                break;
            }
        }
        self.entries -= removed;
    }

    /// Evicts the `count` least recently used entries.
    fn evict_oldest(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        let mut ages: Vec<u64> = self.buckets.iter().flatten().map(|e| e.lastuse).collect();
        if count >= ages.len() {
            self.retain(|_| false);
            return;
        }
        let cutoff = *ages.select_nth_unstable(count - 1).1;
        let older = ages.iter().filter(|&&t| t < cutoff).count();
        let mut at_cutoff = count - older;
        self.retain(|e| match e.lastuse {
            t if t < cutoff => false,
            t if t == cutoff && at_cutoff > 0 => {
                at_cutoff -= 1;
                false
            }
            _ => true,
        });
    }

    fn retain(&mut self, mut keep: impl FnMut(&Entry<V>) -> bool) {
        let mut n = 0;
        for bucket in &mut self.buckets {
            bucket.retain(&mut keep);
            n += bucket.len();
        }
        self.entries = n;
    }

    /// The live entry for `addr`; one idle past [`DEFAULT_EXPIRATION_MS`] is dropped instead
    /// (the kernel's full check would have removed it).
    pub(super) fn get_mut(&mut self, addr: IpAddr, now: u64) -> Option<&mut Entry<V>> {
        let bucket = self.buckets.get_mut(Self::bucket_of(addr))?;
        let pos = bucket.iter().position(|e| e.addr == addr)?;
        if idle(bucket[pos].lastuse, now) >= DEFAULT_EXPIRATION_MS {
            bucket.swap_remove(pos);
            self.entries -= 1;
            return None;
        }
        Some(&mut bucket[pos])
    }

    /// Sets the entry for `addr` (used now), making room first if the table is full.
    pub(super) fn insert(&mut self, addr: IpAddr, value: V, now: u64) {
        if self.buckets.is_empty() {
            self.buckets.resize_with(TAB_SIZE, Vec::new);
        }
        let b = Self::bucket_of(addr);
        if let Some(e) = self.buckets[b].iter_mut().find(|e| e.addr == addr) {
            e.value = value;
            e.lastuse = now;
            return;
        }
        if self.entries >= HARD_LIMIT {
            self.collect_idle(now, usize::MAX);
            if self.entries >= HARD_LIMIT {
                self.evict_oldest(self.entries - MAX_SIZE);
            }
        }
        self.buckets[b].push(Entry { addr, lastuse: now, value });
        self.entries += 1;
    }
}

/// The kernel's lblc/lblcr `is_overloaded`: more active connections than weight while some
/// server is under half its weight.
pub(super) fn overloaded_for_locality(d: &DestView, dests: &[DestView]) -> bool {
    d.active > d.weight && dests.iter().any(|m| u64::from(m.active) * 2 < u64::from(m.weight))
}

/// `__ip_vs_lblc_schedule`: weighted least-connection over the whole service.
pub(super) fn least_loaded(dests: &[DestView], req: &SchedRequest) -> Option<usize> {
    WeightedLeastConnection.schedule(dests, req)
}

#[derive(Debug, Default)]
pub struct LocalityBasedLeastConnection {
    table: LocalityTable<SocketAddr>,
}

impl Scheduler for LocalityBasedLeastConnection {
    fn schedule(&mut self, dests: &[DestView], req: &SchedRequest) -> Option<usize> {
        let now = req.now_ms;
        self.table.expire(now);
        let daddr = req.destination.ip();
        if let Some(en) = self.table.get_mut(daddr, now) {
            en.lastuse = now;
            let cached = dests.iter().position(|d| d.addr == en.value);
            // The kernel does not look at the OVERLOAD flag here; rvs never picks an
            // overloaded server.
            if let Some(i) = cached.filter(|&i| dests[i].available() && !overloaded_for_locality(&dests[i], dests)) {
                return Some(i);
            }
        }
        let i = least_loaded(dests, req)?;
        self.table.insert(daddr, dests[i].addr, now);
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(host: u8, weight: u32, active: u32) -> DestView {
        DestView { addr: SocketAddr::from(([10, 0, 0, host], 80)), weight, active, inactive: 0, overloaded: false }
    }

    fn req(dst: [u8; 4], now_ms: u64) -> SchedRequest {
        SchedRequest {
            client: SocketAddr::from(([192, 0, 2, 1], 5000)),
            destination: SocketAddr::from((dst, 80)),
            now_ms,
        }
    }

    #[test]
    fn keeps_locality_while_the_server_is_usable() {
        let mut dests = [d(1, 10, 0), d(2, 10, 0), d(3, 10, 0)];
        let mut s = LocalityBasedLeastConnection::default();
        assert_eq!(s.schedule(&dests, &req([198, 51, 100, 1], 0)), Some(0));
        // Another destination goes to the least loaded.
        dests[0].active = 5;
        assert_eq!(s.schedule(&dests, &req([198, 51, 100, 2], 1)), Some(1));
        // The first destination stays on server 0 though it is now the busiest, while it has
        // no more active connections than its weight.
        dests[0].active = 10;
        assert_eq!(s.schedule(&dests, &req([198, 51, 100, 1], 2)), Some(0));
    }

    #[test]
    fn moves_when_overloaded_by_the_kernel_rule() {
        let mut dests = [d(1, 4, 0), d(2, 4, 0)];
        let mut s = LocalityBasedLeastConnection::default();
        let r = |t| req([198, 51, 100, 1], t);
        assert_eq!(s.schedule(&dests, &r(0)), Some(0));
        // active > weight, but no server is under half its weight: stay.
        dests[0].active = 5;
        dests[1].active = 2;
        assert_eq!(s.schedule(&dests, &r(1)), Some(0));
        // Now server 1 is under half its weight: reschedule with wlc, and remember it.
        dests[1].active = 1;
        assert_eq!(s.schedule(&dests, &r(2)), Some(1));
        dests[0].active = 0;
        assert_eq!(s.schedule(&dests, &r(3)), Some(1));
    }

    #[test]
    fn moves_when_unavailable_or_gone() {
        let mut dests = vec![d(1, 1, 0), d(2, 1, 0), d(3, 1, 0)];
        let mut s = LocalityBasedLeastConnection::default();
        let r = |t| req([198, 51, 100, 1], t);
        assert_eq!(s.schedule(&dests, &r(0)), Some(0));
        dests[0].overloaded = true;
        dests[1].active = 1;
        assert_eq!(s.schedule(&dests, &r(1)), Some(2));
        dests[0].overloaded = false;
        assert_eq!(s.schedule(&dests, &r(2)), Some(2));
        dests.remove(2);
        s.update(&dests);
        assert_eq!(s.schedule(&dests, &r(3)), Some(0));
        for d in &mut dests {
            d.weight = 0;
        }
        assert_eq!(s.schedule(&dests, &r(4)), None);
    }

    #[test]
    fn entries_expire_after_a_day_idle() {
        let mut dests = [d(1, 1, 0), d(2, 1, 0)];
        let mut s = LocalityBasedLeastConnection::default();
        let r = |t| req([198, 51, 100, 1], t);
        assert_eq!(s.schedule(&dests, &r(0)), Some(0));
        dests[0].active = 1;
        // Used now and then, the entry lives on.
        let hour = 60 * 60 * 1000;
        for h in 1..=30 {
            assert_eq!(s.schedule(&dests, &r(h * hour)), Some(0));
        }
        // Idle for a day, it is gone and wlc decides again.
        let t = 30 * hour + DEFAULT_EXPIRATION_MS;
        assert_eq!(s.schedule(&dests, &r(t)), Some(1));
        // The half-hourly full check drops idle entries of other destinations too.
        assert_eq!(s.schedule(&dests, &req([198, 51, 100, 2], t)), Some(1));
        assert_eq!(s.table.len(), 2);
        s.schedule(&dests, &r(t + 23 * hour));
        assert_eq!(s.table.len(), 2);
        s.schedule(&dests, &r(t + 25 * hour));
        assert_eq!(s.table.len(), 1);
    }

    #[test]
    fn over_max_size_idle_entries_are_collected() {
        let dests = [d(1, 1, 0), d(2, 1, 0)];
        let mut s = LocalityBasedLeastConnection::default();
        let n = MAX_SIZE + 1000;
        for k in 0..n as u32 {
            let ip = (0x0a00_0000u32 + k).to_be_bytes();
            s.schedule(&dests, &req(ip, 0));
        }
        assert_eq!(s.table.len(), n);
        // A minute later nothing is idle for six minutes yet.
        s.schedule(&dests, &req([1, 1, 1, 1], CHECK_EXPIRE_INTERVAL_MS));
        assert_eq!(s.table.len(), n + 1);
        // Seven minutes later, at least (n + 1 - MAX_SIZE)·4/3 idle entries go.
        s.schedule(&dests, &req([1, 1, 1, 2], ENTRY_TIMEOUT_MS + 2 * CHECK_EXPIRE_INTERVAL_MS));
        assert!(s.table.len() <= MAX_SIZE, "{}", s.table.len());
        assert!(s.table.len() > MAX_SIZE / 2);
    }

    #[test]
    fn the_table_is_bounded() {
        let dests = [d(1, 1, 0)];
        let mut s = LocalityBasedLeastConnection::default();
        for k in 0..(HARD_LIMIT + 10) as u32 {
            let ip = (0x0a00_0000u32 + k).to_be_bytes();
            // All fresh (1 ms apart): the oldest are evicted.
            s.schedule(&dests, &req(ip, u64::from(k)));
            assert!(s.table.len() <= HARD_LIMIT);
        }
        assert!(s.table.len() >= MAX_SIZE);
        // The most recent destination is still known, the first is not.
        let last = (0x0a00_0000u32 + HARD_LIMIT as u32 + 9).to_be_bytes();
        assert!(s.table.get_mut(IpAddr::from(last), 40_000).is_some());
        assert!(s.table.get_mut(IpAddr::from([10, 0, 0, 0]), 40_000).is_none());
    }
}
