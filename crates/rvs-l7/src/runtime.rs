//! What the data plane reads for one L7 virtual service, immutable once published: the rules
//! in order with their pools, each pool's rvs-core virtual service (scheduler, persistence,
//! real servers), idle connections and counters, the limits and timeouts, the TLS acceptor.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use rvs_core::{Binding, ProxyProtocol, SchedRequest, ServiceAddr, VirtualService};
use rvs_dataplane::hasher::UnkeyedMap;

use crate::request_view::RequestView;
use crate::stats::Counters;
use crate::upstream::IdleList;
use rvs_model::http::Rule;
use rvs_model::http::{ForwardedHeaders, HttpTimeouts, Limits};
use rvs_model::http::{HashOn, HashSource};

#[derive(Debug)]
pub(crate) struct RuleRuntime {
    pub rule: Rule,
    pub pool: usize,
    pub counters: Arc<Counters>,
}

/// How a pool makes requests stick, ready for the data plane.
#[derive(Debug)]
pub(crate) enum Sticky {
    /// Nothing here (or the core's source persistence, which works inside `schedule`).
    None,
    Cookie {
        name: String,
        by_id: HashMap<u64, SocketAddr>,
    },
    Hash(HashOn),
}

/// One real server of a pool as the data plane needs it beyond rvs-core's view.
#[derive(Debug)]
pub(crate) struct DestRuntime {
    pub idle: Arc<IdleList>,
    pub proxy_protocol: ProxyProtocol,
    /// The whole Set-Cookie value naming this server (cookie persistence only).
    pub set_cookie: Option<Box<[u8]>>,
}

#[derive(Debug)]
pub(crate) struct PoolRuntime {
    pub name: String,
    pub vs: Arc<VirtualService>,
    pub sticky: Sticky,
    /// Looked up on every request: keyed by a fast hash.
    pub dests: UnkeyedMap<SocketAddr, DestRuntime>,
    pub counters: Arc<Counters>,
}

impl PoolRuntime {
    /// The address the scheduler hashes for this request: the client's, or for hash
    /// persistence one made from the hash of the captured text.
    pub fn sched_client(&self, req: &RequestView<'_>, client: SocketAddr) -> SocketAddr {
        let Sticky::Hash(on) = &self.sticky else { return client };
        let text = match &on.source {
            HashSource::Uri => Some(req.target.as_bytes()),
            HashSource::Header(name) => req.header_values(name).next(),
        };
        match text.and_then(|t| on.pattern.capture(t)) {
            Some(key) => {
                let h = hash64(0, key);
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(h as u32), (h >> 32) as u16))
            }
            None => client,
        }
    }

    /// The real server the request's persistence cookie names, if any.
    pub fn cookie_dest(&self, req: &RequestView<'_>) -> Option<SocketAddr> {
        let Sticky::Cookie { name, by_id } = &self.sticky else { return None };
        let v = req.cookie(name)?;
        let id = std::str::from_utf8(v).ok().filter(|s| s.len() == 16).and_then(|s| u64::from_str_radix(s, 16).ok())?;
        by_id.get(&id).copied()
    }

    /// Schedules on exactly `addr` when the scheduler may still send it new work (up, weight
    /// above zero, not overloaded): every other real server is excluded.
    pub fn schedule_to(self: &Arc<Self>, addr: SocketAddr, req: &SchedRequest) -> Option<Binding> {
        let dests = self.vs.dests();
        if !dests.iter().any(|d| d.addr == addr) {
            return None;
        }
        let others: Vec<SocketAddr> = dests.iter().map(|d| d.addr).filter(|a| *a != addr).collect();
        self.vs.schedule(req, &others, false).filter(|b| b.dest.addr == addr)
    }
}

/// An L7 virtual service as published.
#[derive(Debug)]
pub(crate) struct ServiceRuntime {
    pub key: ServiceAddr,
    pub rules: Vec<RuleRuntime>,
    pub pools: Vec<Arc<PoolRuntime>>,
    pub default_pool: Option<usize>,
    pub default_counters: Arc<Counters>,
    /// Requests no rule and no default pool took.
    pub unrouted: Arc<Counters>,
    pub counters: Arc<Counters>,
    pub forwarded: ForwardedHeaders,
    pub limits: Limits,
    pub timeouts: HttpTimeouts,
    pub connect_retries: u32,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Bodies of at least this known length move by splice between plain sockets.
    pub splice_threshold: u64,
    /// The service's own cap on client connections (`max_connections`); its count is the
    /// client connections open now (shared across publishes).
    pub cap: Arc<rvs_dataplane::ConnLimit>,
    /// HTTP/2 connections and streams (shared across publishes).
    pub http2: Arc<crate::http2::Http2Counters>,
}

/// Where routing sent a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    /// The rule that matched; none for the default pool.
    pub rule: Option<usize>,
    pub pool: usize,
}

impl ServiceRuntime {
    /// The first rule that matches, else the default pool, else none (503).
    pub fn route(&self, req: &RequestView<'_>) -> Option<Route> {
        match self.rules.iter().position(|r| crate::routing::rule_matches(&r.rule, req)) {
            Some(i) => Some(Route { rule: Some(i), pool: self.rules[i].pool }),
            None => self.default_pool.map(|pool| Route { rule: None, pool }),
        }
    }

    pub fn route_counters(&self, route: &Route) -> &Counters {
        match route.rule {
            Some(i) => &self.rules[i].counters,
            None => &self.default_counters,
        }
    }
}

/// FNV-1a with a final mix: stable across processes and releases (cookie ids, hash keys).
pub(crate) fn hash64(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finaliser
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The opaque cookie id of real server `addr` in pool `pool`.
pub(crate) fn cookie_id(seed: u64, pool: &str, addr: SocketAddr) -> u64 {
    let mut text = pool.as_bytes().to_vec();
    text.push(0);
    text.extend_from_slice(addr.to_string().as_bytes());
    hash64(seed, &text)
}
