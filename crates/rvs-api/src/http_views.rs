//! The views of the http (Layer-7) virtual services, each made once from its one source: the
//! data plane's counter readings (rvs-core's `http_stats`) and the service as configured
//! (rvs-model). The check state of each real server is the caller's to fill in.

use rvs_core::http_stats::{CounterSnapshot, L7ServiceStats, RealServerStats};
use rvs_model::http::{L7ServiceConfig, PoolPersistence};

use crate::types::{CheckView, HttpCountersView, HttpPoolView, HttpRealServerView, HttpRuleView, HttpServiceView};

impl HttpCountersView {
    /// Request counters; with `upstream`, also the connections to real servers opened and
    /// reused (pools and services carry them, rules and the default route do not).
    pub fn of(c: &CounterSnapshot, upstream: bool) -> Self {
        Self {
            requests: c.requests,
            status_classes: c.status_classes,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            latency_bounds_us: c.latency_bounds_us.clone(),
            latency_counts: c.latency_counts.clone(),
            latency_p50_us: c.latency_quantile_us(0.5),
            latency_p99_us: c.latency_quantile_us(0.99),
            upstream_connects: upstream.then_some(c.upstream_connects),
            upstream_reuses: upstream.then_some(c.upstream_reuses),
            reuse_ratio: upstream.then(|| c.reuse_ratio()),
        }
    }
}

impl HttpRealServerView {
    pub fn of(s: &RealServerStats, check: Option<CheckView>) -> Self {
        Self {
            address: s.addr.to_string(),
            weight: s.weight,
            configured_weight: s.configured_weight,
            health: s.health.name().into(),
            active: s.active,
            inactive: s.inactive,
            requests: s.requests,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            connect_failures: s.connect_failures,
            idle_connections: s.idle_connections,
            check,
        }
    }
}

fn persistence_name(p: &PoolPersistence) -> String {
    match p {
        PoolPersistence::None => "none".into(),
        PoolPersistence::Source(p) => format!("source {} s mask {}", p.timeout_secs, p.netmask),
        PoolPersistence::Cookie(c) => format!("cookie {}", c.name),
        PoolPersistence::Hash(_) => "hash".into(),
    }
}

/// One http service: its counters (`st`) with its configuration (`cfg`, the one at the same
/// address), each pool's real server with the check state `check(pool, server)` gives.
pub fn view_http_service(
    st: &L7ServiceStats,
    cfg: Option<&L7ServiceConfig>,
    check: impl Fn(&str, std::net::SocketAddr) -> Option<CheckView>,
) -> HttpServiceView {
    // The service's upstream connections are its pools'.
    let mut counters = st.counters.clone();
    counters.upstream_connects = st.pools.iter().map(|p| p.counters.upstream_connects).sum();
    counters.upstream_reuses = st.pools.iter().map(|p| p.counters.upstream_reuses).sum();
    HttpServiceView {
        address: st.key.addr.to_string(),
        tls: cfg.is_some_and(|c| c.tls.is_some()),
        default_pool: cfg.and_then(|c| c.default_pool.clone()),
        counters: HttpCountersView::of(&counters, true),
        rules: st
            .rules
            .iter()
            .map(|r| HttpRuleView {
                name: r.name.clone(),
                matches: cfg
                    .and_then(|c| c.rules.iter().find(|x| x.name == r.name))
                    .map(|x| x.matches.iter().map(|m| m.to_string()).collect())
                    .unwrap_or_default(),
                pool: r.pool.clone(),
                counters: HttpCountersView::of(&r.counters, false),
            })
            .collect(),
        default_route: HttpCountersView::of(&st.default_route, false),
        unrouted: st.unrouted,
        pools: st
            .pools
            .iter()
            .map(|p| {
                let pc = cfg.and_then(|c| c.find_pool(&p.name));
                HttpPoolView {
                    name: p.name.clone(),
                    scheduler: p.scheduler.name().into(),
                    persistence: pc.map_or_else(|| "none".into(), |pc| persistence_name(&pc.persistence)),
                    sorry_server: pc.and_then(|pc| pc.sorry_server).map(|a| a.to_string()),
                    counters: HttpCountersView::of(&p.counters, true),
                    real_servers: p.servers.iter().map(|s| HttpRealServerView::of(s, check(&p.name, s.addr))).collect(),
                }
            })
            .collect(),
        client_connections: st.client_connections,
        max_connections: st.max_connections.map(std::num::NonZeroU32::get),
        http2_connections: st.http2_connections,
        http2_streams: st.http2_streams,
        http2_refused_streams: st.http2_refused_streams,
    }
}
