//! `/v1/services/PROTO/ADDR/servers`: a virtual service's real servers, added, edited (absent
//! fields keep their value) and deleted.

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use rvs_api::{ApiError, RealServerSpec};
use rvs_core::Command;

use super::{apply, body, created, error, not_allowed, path_key, Resp, Route};
use crate::change::Change;

pub(crate) async fn route(
    at: &Route<'_>,
    proto: &str,
    addr: &str,
    rest: &[&str],
    req: Request<Incoming>,
) -> Result<Resp, Resp> {
    let director = at.director;
    let key = path_key(proto, addr)?;
    match (at.method, rest) {
        (&Method::POST, []) => {
            let spec: RealServerSpec = body(req).await?;
            let server = spec.to_core(&key, None, "server").map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
            let changes = [Change::Table(Command::AddServer { service: key, server })];
            let outcome = director.apply(&changes).map_err(|e| super::errors::apply_error(e, &changes, false))?;
            Ok(created(&spec, &outcome))
        }
        (m, [raddr]) => {
            let raddr = rvs_core::addr::parse_endpoint(raddr, Some(key.port()))
                .map_err(|e| error(StatusCode::BAD_REQUEST, ApiError::field("path", e)))?;
            match *m {
                Method::DELETE => {
                    apply(director, &[Change::Table(Command::DeleteServer { service: key, addr: raddr })])
                }
                Method::PUT => {
                    let spec: RealServerSpec = body(req).await?;
                    let base = director
                        .model()
                        .table
                        .services
                        .get(&key)
                        .and_then(|s| s.servers.iter().find(|r| r.addr == raddr))
                        .copied();
                    let server = spec.to_core(&key, base, "server").map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
                    if server.addr != raddr {
                        return Err(error(
                            StatusCode::BAD_REQUEST,
                            ApiError::field(
                                "server.address",
                                format!("{} does not match the path's {raddr}", server.addr),
                            ),
                        ));
                    }
                    apply(director, &[Change::Table(Command::EditServer { service: key, server })])
                }
                _ => Err(not_allowed()),
            }
        }
        _ => Err(at.not_found()),
    }
}
