//! What an http (Layer-7) virtual service counts, as plain readings: requests, status classes,
//! bytes, a latency histogram with fixed buckets and upstream reuse, per service, rule, pool and
//! real server. The L7 engine fills them from its counters; the API and metrics show them.

use std::net::SocketAddr;

use crate::health::Health;
use crate::sched::SchedulerKind;
use crate::service::ServiceAddr;

/// Upper bounds (µs) of the latency buckets; one more bucket holds everything slower.
pub const LATENCY_BUCKETS_US: [u64; 15] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];
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
    pub key: ServiceAddr,
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
