//! The director's Layer-7 side: the L7 engine's services as the API shows them, and the
//! run-time rule changes (`POST`/`DELETE /v1/http/{address}/rules`), published whole to the
//! engine so a refused change alters nothing.

use std::collections::HashMap;
use std::net::SocketAddr;

use rvs_api::{
    ApiError, CheckView, HttpCountersView, HttpPoolView, HttpRealServerView, HttpRuleSpec, HttpRuleView,
    HttpServiceList, HttpServiceView, RealServerSpec,
};
use rvs_core::ServiceKey;
use rvs_l7::{CounterSnapshot, L7Engine};
use rvs_model::http::{L7ServiceConfig, PoolPersistence, Rule};

use crate::health::HealthKey;

/// Request counters without the upstream ones (rules, the default route).
fn counters(c: &CounterSnapshot) -> HttpCountersView {
    HttpCountersView { upstream_connects: None, upstream_reuses: None, reuse_ratio: None, ..upstream_counters(c) }
}

/// Request counters with the upstream connections opened and reused (pools).
fn upstream_counters(c: &CounterSnapshot) -> HttpCountersView {
    HttpCountersView {
        requests: c.requests,
        status_classes: c.status_classes,
        bytes_in: c.bytes_in,
        bytes_out: c.bytes_out,
        latency_bounds_us: c.latency_bounds_us.clone(),
        latency_counts: c.latency_counts.clone(),
        latency_p50_us: c.latency_quantile_us(0.5),
        latency_p99_us: c.latency_quantile_us(0.99),
        upstream_connects: Some(c.upstream_connects),
        upstream_reuses: Some(c.upstream_reuses),
        reuse_ratio: Some(c.reuse_ratio()),
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

/// Every L7 service with its rules, pools and counters.
pub fn list(engine: &L7Engine, checks: &HashMap<HealthKey, CheckView>) -> HttpServiceList {
    let configs = engine.services();
    let services = engine
        .stats()
        .into_iter()
        .map(|st| {
            let cfg = configs.iter().find(|c| c.key == st.key);
            HttpServiceView {
                address: st.key.addr.to_string(),
                tls: cfg.is_some_and(|c| c.tls.is_some()),
                default_pool: cfg.and_then(|c| c.default_pool.clone()),
                counters: {
                    // The service's upstream connections are its pools'.
                    let mut c = st.counters.clone();
                    c.upstream_connects = st.pools.iter().map(|p| p.counters.upstream_connects).sum();
                    c.upstream_reuses = st.pools.iter().map(|p| p.counters.upstream_reuses).sum();
                    upstream_counters(&c)
                },
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
                        counters: counters(&r.counters),
                    })
                    .collect(),
                default_route: counters(&st.default_route),
                unrouted: st.unrouted,
                pools: st
                    .pools
                    .iter()
                    .map(|p| HttpPoolView {
                        name: p.name.clone(),
                        scheduler: p.scheduler.name().into(),
                        persistence: cfg
                            .and_then(|c| c.find_pool(&p.name))
                            .map_or_else(|| "none".into(), |pc| persistence_name(&pc.persistence)),
                        sorry_server: cfg
                            .and_then(|c| c.find_pool(&p.name))
                            .and_then(|pc| pc.sorry_server)
                            .map(|a| a.to_string()),
                        counters: upstream_counters(&p.counters),
                        real_servers: p
                            .servers
                            .iter()
                            .map(|s| HttpRealServerView {
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
                                check: checks
                                    .get(&HealthKey { service: st.key, pool: Some(p.name.clone()), server: s.addr })
                                    .cloned(),
                            })
                            .collect(),
                    })
                    .collect(),
                client_connections: st.client_connections,
                max_connections: st.max_connections.map(std::num::NonZeroU32::get),
                http2_connections: st.http2_connections,
                http2_streams: st.http2_streams,
                http2_refused_streams: st.http2_refused_streams,
            }
        })
        .collect();
    HttpServiceList { services }
}

/// Why a change to an http service was refused: something missing (404) or bad (400).
pub enum ChangeError {
    NotFound(ApiError),
    Invalid(ApiError),
}

/// The engine's services with one change made to `key`, checked and published whole.
fn change(
    engine: &std::sync::Arc<L7Engine>,
    key: ServiceKey,
    f: impl FnOnce(&mut L7ServiceConfig) -> Result<(), ChangeError>,
) -> Result<(), ChangeError> {
    let mut all = engine.services();
    let svc = all.iter_mut().find(|c| c.key == key).ok_or_else(|| {
        ChangeError::NotFound(ApiError::message(format!("no such http virtual service {}", key.addr)))
    })?;
    f(svc)?;
    engine.publish(all).map_err(|e| ChangeError::Invalid(ApiError::message(e).with_code("invalid")))
}

/// Adds a rule (before `spec.before`, or last).
pub fn add_rule(engine: &std::sync::Arc<L7Engine>, key: ServiceKey, spec: HttpRuleSpec) -> Result<(), ChangeError> {
    let matches: Vec<&str> = spec.matches.iter().map(String::as_str).collect();
    let rule = Rule::parse(spec.name.clone(), &matches, spec.pool.clone())
        .map_err(|e| ChangeError::Invalid(ApiError::field("match", e).with_code("invalid")))?;
    change(engine, key, |svc| {
        if svc.rules.iter().any(|r| r.name == rule.name) {
            return Err(ChangeError::Invalid(
                ApiError::field("name", format!("rule `{}` already exists", rule.name)).with_code("rule_exists"),
            ));
        }
        let at = match &spec.before {
            None => svc.rules.len(),
            Some(b) => svc.rules.iter().position(|r| &r.name == b).ok_or_else(|| {
                ChangeError::NotFound(ApiError::field("before", format!("no rule `{b}`")).with_code("no_rule"))
            })?,
        };
        svc.rules.insert(at, rule);
        Ok(())
    })
}

pub fn delete_rule(engine: &std::sync::Arc<L7Engine>, key: ServiceKey, name: &str) -> Result<(), ChangeError> {
    change(engine, key, |svc| {
        let before = svc.rules.len();
        svc.rules.retain(|r| r.name != name);
        if svc.rules.len() == before {
            return Err(ChangeError::NotFound(ApiError::message(format!("no rule `{name}`")).with_code("no_rule")));
        }
        Ok(())
    })
}

/// A change to one real server of a pool.
pub enum ServerChange {
    Add(RealServerSpec),
    /// Edit the real server at this address (absent fields keep their value).
    Edit(SocketAddr, RealServerSpec),
    Delete(SocketAddr),
}

/// Adds, edits or deletes a real server of `pool`. Its counters and health stay when it
/// stays; its connections are not cut.
pub fn change_server(
    engine: &std::sync::Arc<L7Engine>,
    key: ServiceKey,
    pool: &str,
    what: ServerChange,
) -> Result<(), ChangeError> {
    let invalid = |e: ApiError| ChangeError::Invalid(e.with_code("invalid"));
    change(engine, key, |svc| {
        let p = svc.pools.iter_mut().find(|p| p.name == pool).ok_or_else(|| {
            ChangeError::NotFound(ApiError::message(format!("no pool `{pool}` in {}", key.addr)).with_code("no_pool"))
        })?;
        let missing = |addr: SocketAddr| {
            ChangeError::NotFound(
                ApiError::message(format!("no real server {addr} in pool `{pool}`")).with_code("no_server"),
            )
        };
        match what {
            ServerChange::Add(spec) => {
                let server = spec.to_core(&key, None, "server").map_err(invalid)?;
                if p.servers.iter().any(|s| s.addr == server.addr) {
                    return Err(ChangeError::Invalid(
                        ApiError::field("server.address", format!("real server {} already exists", server.addr))
                            .with_code("server_exists"),
                    ));
                }
                p.servers.push(server);
            }
            ServerChange::Edit(addr, spec) => {
                let slot = p.servers.iter_mut().find(|s| s.addr == addr).ok_or_else(|| missing(addr))?;
                let server = spec.to_core(&key, Some(*slot), "server").map_err(invalid)?;
                if server.addr != addr {
                    return Err(invalid(ApiError::field(
                        "server.address",
                        format!("{} does not match the path's {addr}", server.addr),
                    )));
                }
                *slot = server;
            }
            ServerChange::Delete(addr) => {
                let before = p.servers.len();
                p.servers.retain(|s| s.addr != addr);
                if p.servers.len() == before {
                    return Err(missing(addr));
                }
            }
        }
        Ok(())
    })
}
