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

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
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
use tokio::sync::Notify;

use crate::change::Change;
use crate::director::{Director, Outcome};
use crate::metrics;
use crate::ui::session::Denied;
use crate::ui::Dashboard;

mod config;
mod dashboard;
pub(crate) mod director;
mod errors;
pub(crate) mod health;
pub(crate) mod http;
mod marks;
mod servers;
mod services;
mod sync;
mod vrrp;

/// Largest request body accepted.
const MAX_BODY: usize = 4 << 20;
/// The send buffer of a TCP API connection: small, so a push-channel client that stops
/// reading is seen (its queue fills) within seconds.
const TCP_SEND_BUFFER: usize = 32 << 10;

/// Any answer: a whole body, or the push channel's stream.
type AnyBody = BoxBody<Bytes, Infallible>;

/// What every connection of a listener shares.
struct Ctx {
    director: Arc<Director>,
    dash: Arc<Dashboard>,
    /// The TCP listener's tokens (the unix socket has none: its permissions guard it).
    tcp: bool,
}

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
    dash: Arc<Dashboard>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(listener)?;
    let ctx = Arc::new(Ctx { director, dash, tcp: false });
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => spawn_conn(stream, ctx.clone()),
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }))
}

/// Serves the API and the dashboard on a loopback TCP listener (its own, or one a previous
/// rvsd handed over); every API request needs a token (`Authorization: Bearer`) or a
/// dashboard session (`dash.access`).
pub fn serve_tcp(
    listener: std::net::TcpListener,
    director: Arc<Director>,
    dash: Arc<Dashboard>,
) -> std::io::Result<(tokio::task::JoinHandle<()>, std::net::SocketAddr)> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let bound = listener.local_addr()?;
    let ctx = Arc::new(Ctx { director, dash, tcp: true });
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(TCP_SEND_BUFFER);
                    spawn_conn(stream, ctx.clone())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok((task, bound))
}

fn spawn_conn<S>(stream: S, ctx: Arc<Ctx>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        // Fired when the push channel drops this connection's client for not reading.
        let kill = Arc::new(Notify::new());
        let k = kill.clone();
        let svc = service_fn(move |req| {
            let ctx = ctx.clone();
            let kill = k.clone();
            async move { Ok::<_, Infallible>(handle(&ctx, kill, req).await) }
        });
        let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
        tokio::select! {
            _ = conn => {}
            _ = kill.notified() => {}
        }
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

pub(crate) async fn body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Resp> {
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Err(error(StatusCode::PAYLOAD_TOO_LARGE, ApiError::message(format!("request body: {e}")))),
    };
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { Bytes::from_static(b"null") } else { bytes };
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, ApiError::message(format!("invalid JSON body: {e}"))))
}

pub(crate) fn path_key(proto: &str, addr: &str) -> Result<ServiceKey, Resp> {
    service_key(&ServiceId { protocol: proto.to_string(), address: addr.to_string() }, "path")
        .map_err(|e| error(StatusCode::BAD_REQUEST, e))
}

/// The address of an http service in a path (`/v1/http/ADDR/...`).
pub(crate) fn path_addr(addr: &str) -> Result<rvs_core::ServiceAddr, Resp> {
    rvs_core::addr::parse_endpoint(addr, None)
        .map(rvs_core::ServiceAddr::tcp)
        .map_err(|e| error(StatusCode::BAD_REQUEST, ApiError::field("path", e)))
}

async fn handle(ctx: &Ctx, kill: Arc<Notify>, req: Request<Incoming>) -> Response<AnyBody> {
    let resp = match (ctx.tcp, ctx.dash.access.as_ref()) {
        (false, _) => answer(ctx, kill, req).await,
        (true, None) => error(StatusCode::UNAUTHORIZED, ApiError::message("missing or wrong bearer token")).map(boxed),
        (true, Some(access)) => {
            let path = req.uri().path();
            if path == "/ui" || path.starts_with("/ui/") {
                crate::ui::route(access, req).await.map(boxed)
            } else {
                match access.authorize(req.method(), req.headers()) {
                    Ok(_) => answer(ctx, kill, req).await,
                    Err(d) => denied(d).map(boxed),
                }
            }
        }
    };
    if ctx.tcp {
        crate::ui::secure_headers(resp)
    } else {
        resp
    }
}

fn boxed(b: Full<Bytes>) -> AnyBody {
    b.boxed()
}

fn denied(d: Denied) -> Resp {
    match d {
        Denied::Unauthenticated => error(StatusCode::UNAUTHORIZED, ApiError::message("missing or wrong bearer token")),
        Denied::ReadOnly => error(
            StatusCode::FORBIDDEN,
            ApiError::message("a read-only token may look but not change").with_code("read_only"),
        ),
        Denied::Csrf => error(
            StatusCode::FORBIDDEN,
            ApiError::message("a change through a dashboard session needs its X-RVS-CSRF header").with_code("csrf"),
        ),
    }
}

/// An authorised request: the push channel, or a route.
async fn answer(ctx: &Ctx, kill: Arc<Notify>, req: Request<Incoming>) -> Response<AnyBody> {
    if req.uri().path() == "/v1/stream" && req.method() == Method::GET {
        return match ctx.dash.hub.subscribe(kill) {
            Some(body) => Response::builder()
                .status(StatusCode::OK)
                .header(CONTENT_TYPE, "text/event-stream")
                .header(hyper::header::CACHE_CONTROL, "no-store")
                .body(body.boxed())
                .unwrap_or_default(),
            None => {
                error(StatusCode::SERVICE_UNAVAILABLE, ApiError::message("too many push-channel clients")).map(boxed)
            }
        };
    }
    match route(&ctx.director, &ctx.dash, req).await {
        Ok(r) | Err(r) => r.map(boxed),
    }
}

async fn route(director: &Director, dash: &Dashboard, req: Request<Incoming>) -> Result<Resp, Resp> {
    let path = req.uri().path().to_string();
    let segs = rvs_api::path::segments(&path);
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let at = Route { director, method: &method, path: &path };
    match segs.as_slice() {
        ["metrics"] if method == Method::GET => Ok(metrics::render(director)),
        ["v1", "services", rest @ ..] => match rest {
            [proto, addr, "servers", rest @ ..] => servers::route(&at, proto, addr, rest, req).await,
            _ => services::route(&at, rest, req).await,
        },
        ["v1", "marks", rest @ ..] => marks::route(&at, rest, req).await,
        ["v1", "http", rest @ ..] => http::route(&at, rest, req).await,
        ["v1", "events"] => health::events(&at, &req),
        ["v1", "sync", rest @ ..] => sync::route(&at, rest, req).await,
        ["v1", "vrrp"] => vrrp::route(&at),
        ["v1", "config", rest @ ..] => config::route(&at, rest, req).await,
        ["v1", which @ ("dashboard" | "history")] => dashboard::route(&at, dash, which, req.uri().query()),
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
