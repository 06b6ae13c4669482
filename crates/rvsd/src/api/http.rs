//! `/v1/http`: the http (Layer-7) virtual services as configured with their counters, and
//! their run-time changes (rules added and deleted, pools' real servers added, edited and
//! deleted), each a change through the one apply path.

use std::collections::HashMap;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use rvs_api::{view_http_service, ApiError, CheckView, HttpRuleSpec, HttpServiceList, RealServerSpec};
use rvs_core::http_stats::L7ServiceStats;
use rvs_model::http::Rule;
use rvs_model::{DirectorModel, HttpChange};

use super::{body, changed, error, not_allowed, path_addr, Resp, Route};
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
            let service = path_addr(addr)?;
            let spec: HttpRuleSpec = body(req).await?;
            let matches: Vec<&str> = spec.matches.iter().map(String::as_str).collect();
            let rule = Rule::parse(spec.name.clone(), &matches, spec.pool.clone())
                .map_err(|e| error(StatusCode::BAD_REQUEST, ApiError::field("match", e).with_code("invalid")))?;
            apply(HttpChange::AddRule { service, rule, before: spec.before }, StatusCode::OK)
        }
        (&Method::DELETE, [addr, "rules", name]) => {
            let service = path_addr(addr)?;
            apply(HttpChange::DeleteRule { service, name: name.to_string() }, StatusCode::OK)
        }
        (&Method::POST, [addr, "pools", pool, "servers"]) => {
            let service = path_addr(addr)?;
            let spec: RealServerSpec = body(req).await?;
            let server = spec.to_core(&service.into(), None, "server").map_err(invalid)?;
            apply(HttpChange::AddServer { service, pool: pool.to_string(), server }, StatusCode::CREATED)
        }
        (m, [addr, "pools", pool, "servers", raddr]) => {
            let service = path_addr(addr)?;
            let addr = rvs_core::addr::parse_endpoint(raddr, Some(service.addr.port()))
                .map_err(|e| error(StatusCode::BAD_REQUEST, ApiError::field("path", e)))?;
            let pool = pool.to_string();
            match *m {
                Method::PUT => {
                    let spec: RealServerSpec = body(req).await?;
                    let key = rvs_model::PoolServer { service, pool: pool.clone(), server: addr };
                    // Absent fields keep their value; a missing server is the change's refusal.
                    let base = director.model().pool_server(&key).copied();
                    let server = spec.to_core(&service.into(), base, "server").map_err(invalid)?;
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

/// Every L7 service with its rules, pools and counters.
pub(crate) fn list(
    model: &DirectorModel,
    stats: Vec<L7ServiceStats>,
    checks: &HashMap<HealthKey, CheckView>,
) -> HttpServiceList {
    let services = stats
        .iter()
        .map(|st| {
            let check = |pool: &str, server| {
                checks.get(&HealthKey { service: st.key.into(), pool: Some(pool.to_string()), server }).cloned()
            };
            view_http_service(st, model.http_service(&st.key), check)
        })
        .collect();
    HttpServiceList { services }
}
