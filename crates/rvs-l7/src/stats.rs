//! Counters of requests, per L7 virtual service, rule and pool: requests, status classes,
//! bytes in and out, a latency histogram with fixed buckets, upstream connections opened and
//! reused. Sharded per worker thread so the data plane adds without contention; read as plain
//! snapshot structs for the API.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub use rvs_core::http_stats::{
    CounterSnapshot, L7ServiceStats, PoolStats, RealServerStats, RuleStats, LATENCY_BUCKETS_US,
};

const BUCKETS: usize = LATENCY_BUCKETS_US.len() + 1;
/// Shards of the per-thread structures (counters, idle lists).
pub(crate) const SHARDS: usize = 8;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    requests: AtomicU64,
    status: [AtomicU64; 5],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    latency: [AtomicU64; BUCKETS],
    latency_sum_us: AtomicU64,
    upstream_connects: AtomicU64,
    upstream_reuses: AtomicU64,
}

/// One finished request as the counters see it: the shard, status class and latency bucket
/// are found once, however many sets of counters (service, rule, pool) it is added to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    shard: usize,
    /// The status class (0 for 1xx), none when no status was sent or it is out of range.
    class: Option<usize>,
    bucket: usize,
    bytes_in: u64,
    bytes_out: u64,
    latency_us: u64,
}

impl Record {
    pub fn new(status: u16, bytes_in: u64, bytes_out: u64, latency_us: u64) -> Self {
        let class = (status / 100).checked_sub(1).filter(|c| *c < 5).map(usize::from);
        Self { shard: shard_index(), class, bucket: bucket(latency_us), bytes_in, bytes_out, latency_us }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    shards: [Shard; SHARDS],
}

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

/// This worker thread's shard.
pub(crate) fn shard_index() -> usize {
    SHARD.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(i);
        }
        i
    })
}

fn bucket(latency_us: u64) -> usize {
    LATENCY_BUCKETS_US.iter().position(|&b| latency_us <= b).unwrap_or(LATENCY_BUCKETS_US.len())
}

impl Counters {
    fn shard(&self) -> &Shard {
        &self.shards[shard_index()]
    }

    pub fn record(&self, r: &Record) {
        let s = &self.shards[r.shard];
        s.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = r.class {
            s.status[c].fetch_add(1, Ordering::Relaxed);
        }
        s.bytes_in.fetch_add(r.bytes_in, Ordering::Relaxed);
        s.bytes_out.fetch_add(r.bytes_out, Ordering::Relaxed);
        s.latency[r.bucket].fetch_add(1, Ordering::Relaxed);
        s.latency_sum_us.fetch_add(r.latency_us, Ordering::Relaxed);
    }

    /// A request got an upstream connection: a reused one or a new one.
    pub fn upstream(&self, reused: bool) {
        let s = self.shard();
        if reused {
            s.upstream_reuses.fetch_add(1, Ordering::Relaxed);
        } else {
            s.upstream_connects.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn read(&self) -> CounterSnapshot {
        let mut c = CounterSnapshot { latency_bounds_us: LATENCY_BUCKETS_US.to_vec(), ..Default::default() };
        c.latency_counts = vec![0; BUCKETS];
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for s in &self.shards {
            c.requests += get(&s.requests);
            for (i, v) in s.status.iter().enumerate() {
                c.status_classes[i] += get(v);
            }
            c.bytes_in += get(&s.bytes_in);
            c.bytes_out += get(&s.bytes_out);
            for (i, v) in s.latency.iter().enumerate() {
                c.latency_counts[i] += get(v);
            }
            c.latency_sum_us += get(&s.latency_sum_us);
            c.upstream_connects += get(&s.upstream_connects);
            c.upstream_reuses += get(&s.upstream_reuses);
        }
        c
    }

    pub fn zero(&self) {
        for s in &self.shards {
            let all =
                [&s.requests, &s.bytes_in, &s.bytes_out, &s.latency_sum_us, &s.upstream_connects, &s.upstream_reuses];
            for a in all.into_iter().chain(&s.status).chain(&s.latency) {
                a.store(0, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_and_read() {
        let c = Counters::default();
        for (status, us) in [(200, 100), (204, 700), (503, 30_000), (101, 20_000_000)] {
            c.record(&Record::new(status, 10, 20, us));
        }
        c.upstream(false);
        c.upstream(true);
        c.upstream(true);
        c.upstream(true);
        let s = c.read();
        assert_eq!(s.requests, 4);
        assert_eq!(s.status_classes, [1, 2, 0, 0, 1]);
        assert_eq!((s.bytes_in, s.bytes_out), (40, 80));
        assert_eq!(s.latency_counts.iter().sum::<u64>(), 4);
        assert_eq!(s.latency_counts[0], 1);
        assert_eq!(s.latency_counts[BUCKETS - 1], 1);
        assert_eq!(s.reuse_ratio(), 0.75);
        assert_eq!(s.latency_quantile_us(0.5), Some(1_000));
        c.zero();
        assert_eq!(c.read().requests, 0);
    }
}
