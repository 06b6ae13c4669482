//! The health side of the API: each real server's check state in the listings, and
//! `/v1/events`, the log of health transitions (real servers and quorum).

use std::collections::HashMap;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use rvs_api::{service_key, ApiError, CheckView, ServiceId, ServiceView};

use super::{error, json, Resp, Route};
use crate::health::HealthKey;

/// Fills in each real server's health-check state.
pub(crate) fn with_checks(mut view: ServiceView, checks: &HashMap<HealthKey, CheckView>) -> ServiceView {
    let Ok(service) = service_key(&ServiceId { protocol: view.protocol.clone(), address: view.address.clone() }, "")
    else {
        return view;
    };
    for rs in &mut view.real_servers {
        if let Ok(server) = rs.address.parse() {
            rs.check = checks.get(&HealthKey { service, pool: None, server }).cloned();
        }
    }
    view
}

/// `GET /v1/events?since=N` (health transitions; with `log=reload`, the reloads of the file).
pub(crate) fn events(at: &Route<'_>, req: &Request<Incoming>) -> Result<Resp, Resp> {
    if at.method != Method::GET {
        return Err(at.not_found());
    }
    let since = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("since=")))
        .map(|v| v.parse::<u64>())
        .transpose()
        .map_err(|e| error(StatusCode::BAD_REQUEST, ApiError::field("since", e)))?
        .unwrap_or(0);
    let reloads = req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv == "log=reload"));
    let health = &at.director.health;
    Ok(json(StatusCode::OK, &if reloads { health.reload_events(since) } else { health.events(since) }))
}
