//! A refused change as an API answer: the status (404 for what is missing, 409 for what exists
//! or an address in use, 400 for what is bad), a code for scripts, and the field at fault.

use hyper::StatusCode;
use rvs_api::ApiError;
use rvs_core::{Command, CommandError};
use rvs_dataplane::PlaneErrorKind;
use rvs_model::HttpChangeError;

use super::{error, Resp};
use crate::change::Change;
use crate::director::ApplyError;

/// The status and code of a refused table command.
fn classify(e: &CommandError) -> (StatusCode, &'static str) {
    match e {
        CommandError::NoService(_) => (StatusCode::NOT_FOUND, "no_service"),
        CommandError::NoServer { .. } => (StatusCode::NOT_FOUND, "no_server"),
        CommandError::ServiceExists(_) => (StatusCode::CONFLICT, "service_exists"),
        CommandError::ServerExists { .. } => (StatusCode::CONFLICT, "server_exists"),
        CommandError::Unsupported(_) | CommandError::SctpNeedsPacketEngine { .. } => {
            (StatusCode::BAD_REQUEST, "unsupported")
        }
        _ => (StatusCode::BAD_REQUEST, "invalid"),
    }
}

/// The status, code and field of a refused change to an http service.
fn classify_http(e: &HttpChangeError) -> (StatusCode, Option<&'static str>, Option<&'static str>) {
    match e {
        HttpChangeError::NoService(_) => (StatusCode::NOT_FOUND, None, None),
        HttpChangeError::RuleExists(_) => (StatusCode::BAD_REQUEST, Some("rule_exists"), Some("name")),
        HttpChangeError::NoRuleBefore(_) => (StatusCode::NOT_FOUND, Some("no_rule"), Some("before")),
        HttpChangeError::NoRule(_) => (StatusCode::NOT_FOUND, Some("no_rule"), None),
        HttpChangeError::NoPool { .. } => (StatusCode::NOT_FOUND, Some("no_pool"), None),
        HttpChangeError::ServerExists(_) => (StatusCode::BAD_REQUEST, Some("server_exists"), Some("server.address")),
        HttpChangeError::NoServer { .. } => (StatusCode::NOT_FOUND, Some("no_server"), None),
    }
}

/// The response to a refused batch. In a `/v1/commands` batch (`batch`) the field names the
/// change at fault; a single-change endpoint gives the change's own message.
pub(crate) fn apply_error(e: ApplyError, changes: &[Change], batch: bool) -> Resp {
    match e {
        ApplyError::Command(b) => {
            let (status, code) = classify(&b.error);
            // A method that cannot join its service's real servers, or an address that would
            // loop, is the change's own field.
            let own = match b.error {
                CommandError::MixedEngines(_) | CommandError::SctpNeedsPacketEngine { .. } => Some("server.method"),
                CommandError::OwnAddress { .. } => Some("server.address"),
                _ => None,
            };
            let field = match (batch, own) {
                (true, Some(f)) => Some(format!("commands[{}].{f}", b.index)),
                (true, None) => Some(format!("commands[{}]", b.index)),
                (false, f) => f.map(str::to_string),
            };
            error(status, ApiError { field, message: b.error.to_string(), code: Some(code.into()) })
        }
        ApplyError::Http { index, error: e } => {
            let (status, code, field) = classify_http(&e);
            let field = match (batch, field) {
                (true, Some(f)) => Some(format!("commands[{index}].{f}")),
                (true, None) => Some(format!("commands[{index}]")),
                (false, f) => f.map(str::to_string),
            };
            error(status, ApiError { field, message: e.to_string(), code: code.map(str::to_string) })
        }
        ApplyError::Plane { error: e, .. } => {
            let (status, code) = match e.kind {
                PlaneErrorKind::Listen => (StatusCode::CONFLICT, "listen"),
                PlaneErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid"),
                PlaneErrorKind::Load => (StatusCode::SERVICE_UNAVAILABLE, "load"),
            };
            // The address at fault is the one of the service the batch adds.
            let index = e.service.and_then(|key| {
                changes.iter().position(|c| matches!(c, Change::Table(Command::AddService { key: k, .. }) if *k == key))
            });
            let field = match (e.kind, batch, index) {
                (PlaneErrorKind::Listen, true, Some(i)) => Some(format!("commands[{i}].service.address")),
                (PlaneErrorKind::Listen, _, _) => Some("service.address".to_string()),
                _ => None,
            };
            error(status, ApiError { field, message: e.to_string(), code: Some(code.into()) })
        }
        ApplyError::Health(e) => error(StatusCode::BAD_REQUEST, ApiError::message(e).with_code("invalid")),
    }
}
