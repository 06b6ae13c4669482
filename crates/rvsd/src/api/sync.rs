//! `/v1/sync`: the connection sync daemons. GET lists them with their counters, POST starts one
//! (`SyncDaemonSpec`), DELETE `/v1/sync/master` or `/v1/sync/backup` stops one.

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use rvs_api::{ApiError, SyncDaemonSpec, SyncView};

use super::{body, error, json, not_allowed, Resp, Route};
use crate::sync::{Role, SyncError};

fn refused(e: SyncError) -> Resp {
    let status = match e {
        SyncError::Running(_) => StatusCode::CONFLICT,
        SyncError::NotRunning(_) => StatusCode::NOT_FOUND,
        SyncError::Socket(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, ApiError::message(e.to_string()))
}

pub(crate) async fn route(at: &Route<'_>, rest: &[&str], req: Request<Incoming>) -> Result<Resp, Resp> {
    let sync = &at.director.sync;
    match (at.method, rest) {
        (&Method::GET, []) => {
            Ok(json(StatusCode::OK, &SyncView { daemons: sync.daemons(), counters: sync.counters() }))
        }
        (&Method::POST, []) => {
            let spec: SyncDaemonSpec = body(req).await?;
            sync.start(&spec).map_err(refused)?;
            Ok(json(StatusCode::CREATED, &spec))
        }
        (&Method::DELETE, [state]) => {
            let role = Role::parse(state).ok_or_else(|| refused(SyncError::State(state.to_string())))?;
            sync.stop(role).map_err(refused)?;
            Ok(json(StatusCode::OK, &serde_json::json!({"ok": true})))
        }
        (_, [] | [_]) => Err(not_allowed()),
        _ => Err(at.not_found()),
    }
}
