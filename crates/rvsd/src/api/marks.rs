//! `/v1/marks`: the firewall marks that `-f` services serve, listed, defined (or their
//! matches replaced) and deleted, through the one apply path.

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use rvs_api::{ApiError, MarkList, MarkSpec};
use rvs_core::Command;

use super::{apply, body, error, json, not_allowed, Resp, Route};
use crate::change::Change;

pub(crate) async fn route(at: &Route<'_>, rest: &[&str], req: Request<Incoming>) -> Result<Resp, Resp> {
    let director = at.director;
    match (at.method, rest) {
        (&Method::GET, []) => {
            let marks = director.table().model().marks.values().map(MarkSpec::from_core).collect();
            Ok(json(StatusCode::OK, &MarkList { marks }))
        }
        (m, [mark]) => {
            let n =
                rvs_api::parse_mark(mark).map_err(|e| error(StatusCode::BAD_REQUEST, ApiError::field("path", e)))?;
            match *m {
                Method::GET => {
                    let table = director.table();
                    let def = table.model().marks.get(&n).ok_or_else(|| {
                        error(StatusCode::NOT_FOUND, ApiError::message(rvs_core::fwmark::MarkError::Undefined(n)))
                    })?;
                    Ok(json(StatusCode::OK, &MarkSpec::from_core(def)))
                }
                Method::PUT => {
                    let spec: MarkSpec = body(req).await?;
                    if spec.mark != n.get() {
                        return Err(error(
                            StatusCode::BAD_REQUEST,
                            ApiError::field("mark", format!("{} does not match the path's {n}", spec.mark)),
                        ));
                    }
                    let def = spec.to_core("mark").map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
                    apply(director, &[Change::Table(Command::SetMark(def))])
                }
                Method::DELETE => apply(director, &[Change::Table(Command::DeleteMark(n))]),
                _ => Err(not_allowed()),
            }
        }
        _ => Err(at.not_found()),
    }
}
