//! `/v1/http`: the http (Layer-7) virtual services as configured with their counters, and
//! their run-time changes (rules added and deleted, pools' real servers added, edited and
//! deleted), each a change through the one apply path.

use std::collections::HashMap;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use rvs_api::{
    ApiError, CheckView, HttpCountersView, HttpPoolView, HttpRealServerView, HttpRuleSpec, HttpRuleView,
    HttpServiceList, HttpServiceView, RealServerSpec,
};
use rvs_core::http_stats::{CounterSnapshot, L7ServiceStats};
use rvs_model::http::{PoolPersistence, Rule};
use rvs_model::{DirectorModel, HttpChange};

use super::{body, changed, error, not_allowed, path_key, Resp, Route};
use crate::change::Change;
use crate::health::HealthKey;

pub(crate) async fn route(at: &Route<'_>, rest: &[&str], req: Request<Incoming>) -> Result<Resp, Resp> {
    let director = at.director;
    let apply = |change: HttpChange, status: StatusCode| {
        let changes = [Change::Http(change)];
        director
            .apply(&changes)
            .map(|o| changed(status, &o))
            .map_err(|e| super::errors::apply_error(e, &changes, false))
    };
    match (at.method, rest) {
        (&Method::GET, []) => {
            let list = list(&director.model(), director.report().http, &director.health.check_views());
            Ok(super::json(StatusCode::OK, &list))
        }
        (&Method::POST, [addr, "rules"]) => {
            let service = path_key("tcp", addr)?;
            let spec: HttpRuleSpec = body(req).await?;
            let matches: Vec<&str> = spec.matches.iter().map(String::as_str).collect();
            let rule = Rule::parse(spec.name.clone(), &matches, spec.pool.clone())
                .map_err(|e| error(StatusCode::BAD_REQUEST, ApiError::field("match", e).with_code("invalid")))?;
            apply(HttpChange::AddRule { service, rule, before: spec.before }, StatusCode::OK)
        }
        (&Method::DELETE, [addr, "rules", name]) => {
            let service = path_key("tcp", addr)?;
            apply(HttpChange::DeleteRule { service, name: name.to_string() }, StatusCode::OK)
        }
        (&Method::POST, [addr, "pools", pool, "servers"]) => {
            let service = path_key("tcp", addr)?;
            let spec: RealServerSpec = body(req).await?;
            let server = spec.to_core(&service, None, "server").map_err(invalid)?;
            apply(HttpChange::AddServer { service, pool: pool.to_string(), server }, StatusCode::CREATED)
        }
        (m, [addr, "pools", pool, "servers", raddr]) => {
            let service = path_key("tcp", addr)?;
            let addr = rvs_core::addr::parse_endpoint(raddr, Some(service.addr.port()))
                .map_err(|e| error(StatusCode::BAD_REQUEST, ApiError::field("path", e)))?;
            let pool = pool.to_string();
            match *m {
                Method::PUT => {
                    let spec: RealServerSpec = body(req).await?;
                    let key = rvs_model::PoolServer { service, pool: pool.clone(), server: addr };
                    // Absent fields keep their value; a missing server is the change's refusal.
                    let base = director.model().pool_server(&key).copied();
                    let server = spec.to_core(&service, base, "server").map_err(invalid)?;
                    if server.addr != addr {
                        return Err(invalid(ApiError::field(
                            "server.address",
                            format!("{} does not match the path's {addr}", server.addr),
                        )));
                    }
                    apply(HttpChange::EditServer { service, pool, server }, StatusCode::OK)
                }
                Method::DELETE => apply(HttpChange::DeleteServer { service, pool, addr }, StatusCode::OK),
                _ => Err(not_allowed()),
            }
        }
        _ => Err(at.not_found()),
    }
}

fn invalid(e: ApiError) -> Resp {
    error(StatusCode::BAD_REQUEST, e.with_code("invalid"))
}

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
fn list(model: &DirectorModel, stats: Vec<L7ServiceStats>, checks: &HashMap<HealthKey, CheckView>) -> HttpServiceList {
    let configs = &model.http;
    let services = stats
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
