//! `/v1/services`: the TCP and UDP virtual services, listed, added, edited, deleted, zeroed.

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use rvs_api::{view_service, ApiError, ServiceList, ServiceSpec};
use rvs_core::{Command, CommandError, ServiceKey};

use super::health::with_checks;
use super::{apply, body, created, error, json, not_allowed, path_key, Resp, Route};
use crate::change::Change;

pub(crate) async fn route(at: &Route<'_>, rest: &[&str], req: Request<Incoming>) -> Result<Resp, Resp> {
    let director = at.director;
    let now = director.clock.now_ms();
    match (at.method, rest) {
        (&Method::GET, []) => {
            let checks = director.health.check_views();
            let services = director.table().services().map(|s| with_checks(view_service(s, now), &checks)).collect();
            Ok(json(StatusCode::OK, &ServiceList { services }))
        }
        (&Method::POST, []) => {
            let spec: ServiceSpec = body(req).await?;
            let (key, settings) = spec.to_core("service").map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
            let changes = [Change::Table(Command::AddService { key, settings })];
            let outcome = director.apply(&changes).map_err(|e| super::errors::apply_error(e, &changes, false))?;
            Ok(created(&spec, &outcome))
        }
        (&Method::DELETE, []) => apply(director, &[Change::Table(Command::Clear)]),
        (m, [proto, addr]) => {
            let key = path_key(proto, addr)?;
            match *m {
                Method::GET => {
                    let checks = director.health.check_views();
                    let table = director.table();
                    let svc = table.service(&key).ok_or_else(|| no_service(key))?;
                    Ok(json(StatusCode::OK, &with_checks(view_service(svc, now), &checks)))
                }
                Method::PUT => {
                    let spec: ServiceSpec = body(req).await?;
                    let (bkey, settings) = spec.to_core("service").map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
                    if bkey != key {
                        return Err(error(
                            StatusCode::BAD_REQUEST,
                            ApiError::field("service.address", format!("{bkey} does not match the path's {key}")),
                        ));
                    }
                    apply(director, &[Change::Table(Command::EditService { key, settings })])
                }
                Method::DELETE => apply(director, &[Change::Table(Command::DeleteService { key })]),
                _ => Err(not_allowed()),
            }
        }
        (&Method::POST, [proto, addr, "zero"]) => {
            let key = path_key(proto, addr)?;
            apply(director, &[Change::Table(Command::Zero { service: Some(key) })])
        }
        _ => Err(at.not_found()),
    }
}

fn no_service(key: ServiceKey) -> Resp {
    error(StatusCode::NOT_FOUND, ApiError::message(CommandError::NoService(key)))
}
