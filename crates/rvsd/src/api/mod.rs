//! The control API server: HTTP/1.1 + JSON under `/v1`, on a unix socket and optionally on a
//! loopback TCP port that requires a bearer token; plus `/metrics` for Prometheus. Routes are
//! split by resource, one module each; every change goes through [`Director::apply`] and its
//! answer carries the change's generation; a refused request changes nothing.

// Handlers return `Result<Resp, Resp>` so `?` can turn any refusal into its response; the
// error side is a whole HTTP response by design.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rvs_api::{service_key, ApiError, ErrorBody, ServiceId};
use rvs_core::ServiceKey;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use crate::change::Change;
use crate::director::{Director, Outcome};
use crate::metrics;

mod director;
mod errors;
mod health;
mod http;
mod servers;
mod services;
mod sync;
mod vrrp;

/// Largest request body accepted.
const MAX_BODY: usize = 4 << 20;

pub(crate) type Resp = Response<Full<Bytes>>;

/// Binds the unix socket (replacing a stale one).
pub fn bind_unix(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    if path.exists() {
        // A socket nobody answers on is stale; one that answers belongs to a running rvsd.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "{} is in use by a running rvsd (to replace it, start the new one with --upgrade-from)",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the API on a bound unix socket (its own, or one a previous rvsd handed over).
pub fn serve_unix(
    listener: std::os::unix::net::UnixListener,
    director: Arc<Director>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(listener)?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => spawn_conn(stream, director.clone(), None),
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }))
}

/// Serves the API on a loopback TCP listener; every request needs `Authorization: Bearer`.
pub fn serve_tcp(
    listener: std::net::TcpListener,
    token: String,
    director: Arc<Director>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let token: Arc<str> = token.into();
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => spawn_conn(stream, director.clone(), Some(token.clone())),
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }))
}

fn spawn_conn<S>(stream: S, director: Arc<Director>, token: Option<Arc<str>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = service_fn(move |req| {
            let director = director.clone();
            let token = token.clone();
            async move { Ok::<_, Infallible>(handle(&director, token.as_deref(), req).await) }
        });
        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
    });
}

pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Resp {
    let mut bytes = serde_json::to_vec_pretty(body).unwrap_or_default();
    bytes.push(b'\n');
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap_or_default()
}

pub(crate) fn error(status: StatusCode, e: ApiError) -> Resp {
    json(status, &ErrorBody { error: e })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) async fn body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Resp> {
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Err(error(StatusCode::PAYLOAD_TOO_LARGE, ApiError::message(format!("request body: {e}")))),
    };
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { Bytes::from_static(b"null") } else { bytes };
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, ApiError::message(format!("invalid JSON body: {e}"))))
}

/// `%XX` escapes in a path segment.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn path_key(proto: &str, addr: &str) -> Result<ServiceKey, Resp> {
    service_key(&ServiceId { protocol: proto.to_string(), address: addr.to_string() }, "path")
        .map_err(|e| error(StatusCode::BAD_REQUEST, e))
}

async fn handle(director: &Director, token: Option<&str>, req: Request<Incoming>) -> Resp {
    if let Some(t) = token {
        let given =
            req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), t.as_bytes())) {
            return error(StatusCode::UNAUTHORIZED, ApiError::message("missing or wrong bearer token"));
        }
    }
    match route(director, req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn route(director: &Director, req: Request<Incoming>) -> Result<Resp, Resp> {
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let at = Route { director, method: &method, path: &path };
    match segs.as_slice() {
        ["metrics"] if method == Method::GET => Ok(metrics::render(director)),
        ["v1", "services", rest @ ..] => match rest {
            [proto, addr, "servers", rest @ ..] => servers::route(&at, proto, addr, rest, req).await,
            _ => services::route(&at, rest, req).await,
        },
        ["v1", "http", rest @ ..] => http::route(&at, rest, req).await,
        ["v1", "events"] => health::events(&at, &req),
        ["v1", "sync", rest @ ..] => sync::route(&at, rest, req).await,
        ["v1", "vrrp"] => vrrp::route(&at),
        ["v1", rest @ ..] => director::route(&at, rest, req).await,
        _ => Err(at.not_found()),
    }
}

/// Where a request is being routed: the director, and the method and path for errors.
pub(crate) struct Route<'a> {
    pub director: &'a Director,
    pub method: &'a Method,
    pub path: &'a str,
}

impl Route<'_> {
    pub fn not_found(&self) -> Resp {
        error(StatusCode::NOT_FOUND, ApiError::message(format!("no such endpoint: {} {}", self.method, self.path)))
    }
}

/// The answer to an applied change: its generation (the apply path's sequence number).
pub(crate) fn changed(status: StatusCode, outcome: &Outcome) -> Resp {
    json(status, &serde_json::json!({"ok": true, "generation": outcome.generation}))
}

/// The answer to an applied change that echoes what was created, with its generation.
pub(crate) fn created<T: Serialize>(spec: &T, outcome: &Outcome) -> Resp {
    let mut v = serde_json::to_value(spec).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("generation".into(), outcome.generation.into());
    }
    json(StatusCode::CREATED, &v)
}

/// Applies changes for a one-change endpoint: the refusal as its own message.
pub(crate) fn apply(director: &Director, changes: &[Change]) -> Result<Resp, Resp> {
    director.apply(changes).map(|o| changed(StatusCode::OK, &o)).map_err(|e| errors::apply_error(e, changes, false))
}

pub(crate) fn not_allowed() -> Resp {
    error(StatusCode::METHOD_NOT_ALLOWED, ApiError::message("method not allowed here"))
}
