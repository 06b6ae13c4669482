//! Counters of requests, per L7 virtual service, rule and pool: requests, status classes,
//! bytes in and out, a latency histogram with fixed buckets, upstream connections opened and
//! reused. Sharded per worker thread so the data plane adds without contention; read as plain
//! snapshot structs for the API.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rvs_core::{Health, SchedulerKind, ServiceKey};

/// Upper bounds (µs) of the latency buckets; one more bucket holds everything slower.
pub const LATENCY_BUCKETS_US: [u64; 15] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];
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

/// A reading of one set of counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub requests: u64,
    /// Responses by class: 1xx, 2xx, 3xx, 4xx, 5xx (the proxy's own answers included).
    pub status_classes: [u64; 5],
    /// Bytes from clients (heads and bodies).
    pub bytes_in: u64,
    /// Bytes to clients.
    pub bytes_out: u64,
    /// Upper bounds of the latency buckets in µs; `latency_counts` has one more, unbounded.
    pub latency_bounds_us: Vec<u64>,
    /// Requests per latency bucket (head received to response sent).
    pub latency_counts: Vec<u64>,
    pub latency_sum_us: u64,
    /// Requests sent on a new connection to a real server.
    pub upstream_connects: u64,
    /// Requests sent on a kept-alive connection to a real server.
    pub upstream_reuses: u64,
}

impl CounterSnapshot {
    /// Reused upstream connections over all requests sent upstream (0 when none).
    pub fn reuse_ratio(&self) -> f64 {
        let all = self.upstream_connects + self.upstream_reuses;
        if all == 0 {
            0.0
        } else {
            self.upstream_reuses as f64 / all as f64
        }
    }

    /// The bucket bound under which fraction `q` of requests completed (None: no requests, or
    /// in the unbounded bucket).
    pub fn latency_quantile_us(&self, q: f64) -> Option<u64> {
        let total: u64 = self.latency_counts.iter().sum();
        if total == 0 {
            return None;
        }
        let want = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, c) in self.latency_counts.iter().enumerate() {
            acc += c;
            if acc >= want {
                return self.latency_bounds_us.get(i).copied();
            }
        }
        None
    }
}

/// One real server of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerStats {
    pub addr: SocketAddr,
    /// The weight scheduling uses now (0 while down or draining).
    pub weight: u32,
    pub configured_weight: u32,
    pub health: Health,
    /// Requests in flight.
    pub active: u32,
    pub inactive: u32,
    /// Requests scheduled to it (the core's connection counter: one per request).
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connect_failures: u64,
    /// Kept-alive connections waiting for a request.
    pub idle_connections: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    pub name: String,
    pub scheduler: SchedulerKind,
    pub counters: CounterSnapshot,
    pub servers: Vec<RealServerStats>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleStats {
    pub name: String,
    pub pool: String,
    pub counters: CounterSnapshot,
}

/// Everything counted for one L7 virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L7ServiceStats {
    pub key: ServiceKey,
    /// Every request, the refused and unrouted ones included.
    pub counters: CounterSnapshot,
    pub rules: Vec<RuleStats>,
    /// Requests no rule matched that went to the default pool.
    pub default_route: CounterSnapshot,
    /// Requests no rule matched and no default pool took (503).
    pub unrouted: u64,
    pub pools: Vec<PoolStats>,
    /// Client connections open now.
    pub client_connections: usize,
    /// The service's own cap on them (`max_connections`), when it has one.
    pub max_connections: Option<std::num::NonZeroU32>,
    /// HTTP/2 client connections since the start or the last zeroing (each also counts in
    /// `client_connections` while open).
    pub http2_connections: u64,
    /// HTTP/2 streams since the start or the last zeroing (each is a request in the counters).
    pub http2_streams: u64,
    /// HTTP/2 streams refused (REFUSED_STREAM) at the exchange or connection cap.
    pub http2_refused_streams: u64,
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
