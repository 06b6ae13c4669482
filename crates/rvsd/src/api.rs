//! The control API server: HTTP/1.1 + JSON under `/v1`, on a unix socket and optionally on a
//! loopback TCP port that requires a bearer token; plus `/metrics` for Prometheus. Every
//! change goes through [`Director::apply`]; a refused request changes nothing.

// Handlers return `Result<Resp, Resp>` so `?` can turn any refusal into its response; the
// error side is a whole HTTP response by design.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rvs_api::*;
use rvs_core::timeouts::MAX_TIMEOUT_SECS;
use rvs_core::{Command, CommandError, ServiceKey};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use crate::director::{ApplyError, Director, ReloadError};
use crate::health::HealthKey;
use crate::http;
use crate::metrics;

/// Largest request body accepted.
const MAX_BODY: usize = 4 << 20;

type Resp = Response<Full<Bytes>>;

/// Binds the unix socket (replacing a stale one) and serves it.
pub fn serve_unix(path: &Path, director: Arc<Director>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    if path.exists() {
        // A socket nobody answers on is stale; one that answers belongs to a running rvsd.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running rvsd", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
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

/// Serves the API on a loopback TCP address; every request needs `Authorization: Bearer`.
pub async fn serve_tcp(
    addr: SocketAddr,
    token: String,
    director: Arc<Director>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
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

fn json<T: Serialize>(status: StatusCode, body: &T) -> Resp {
    let mut bytes = serde_json::to_vec_pretty(body).unwrap_or_default();
    bytes.push(b'\n');
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap_or_default()
}

fn error(status: StatusCode, e: ApiError) -> Resp {
    json(status, &ErrorBody { error: e })
}

fn ok() -> Resp {
    json(StatusCode::OK, &serde_json::json!({"ok": true}))
}

/// The status and code of a refused command: 404 for what is missing, 409 for what exists.
fn classify(e: &CommandError) -> (StatusCode, &'static str) {
    match e {
        CommandError::NoService(_) => (StatusCode::NOT_FOUND, "no_service"),
        CommandError::NoServer { .. } => (StatusCode::NOT_FOUND, "no_server"),
        CommandError::ServiceExists(_) => (StatusCode::CONFLICT, "service_exists"),
        CommandError::ServerExists { .. } => (StatusCode::CONFLICT, "server_exists"),
        CommandError::Unsupported(_) => (StatusCode::BAD_REQUEST, "unsupported"),
        _ => (StatusCode::BAD_REQUEST, "invalid"),
    }
}

/// The response to a refused batch. In a `/v1/commands` batch (`batch`) the field names the
/// command at fault; a single-command endpoint gives the command's own message.
fn apply_error(e: ApplyError, cmds: &[Command], batch: bool) -> Resp {
    match e {
        ApplyError::Command(b) => {
            let (status, code) = classify(&b.error);
            let field = batch.then(|| format!("commands[{}]", b.index));
            error(status, ApiError { field, message: b.error.to_string(), code: Some(code.into()) })
        }
        ApplyError::Listen(l) => {
            let index = cmds.iter().position(|c| matches!(c, Command::AddService { key, .. } if *key == l.key));
            let field = match (batch, index) {
                (true, Some(i)) => format!("commands[{i}].service.address"),
                _ => "service.address".to_string(),
            };
            error(StatusCode::CONFLICT, ApiError::field(field, l).with_code("listen"))
        }
        ApplyError::Http(e) => error(StatusCode::BAD_REQUEST, ApiError::message(e).with_code("invalid")),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Resp> {
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

fn path_key(proto: &str, addr: &str) -> Result<ServiceKey, Resp> {
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
    let now = director.clock.now_ms();
    let apply = |cmds: &[Command]| director.apply(cmds).map(|_| ok()).map_err(|e| apply_error(e, cmds, false));
    let model = || director.table().model().clone();
    match (&method, segs.as_slice()) {
        (&Method::GET, ["metrics"]) => Ok(metrics::render(director)),
        (&Method::GET, ["v1", "info"]) => Ok(json(
            StatusCode::OK,
            &InfoView {
                version: env!("CARGO_PKG_VERSION").to_string(),
                connections: director.engine.connection_count(),
                services: director.table().services().count(),
                client_connections: director.engine.connection_limit().current(),
                max_connections: director.engine.connection_limit().max().map_or(0, |m| m.get()),
                max_connections_waits: director.engine.connection_limit().waits(),
                config_file: director.config_path().map(|p| p.display().to_string()),
                draining: director.engine.draining(),
                relay: if director.engine.kernel_relay().is_some() { "sockmap" } else { "splice" }.to_string(),
                sockmap: director.engine.kernel_relay().map(|k| SockmapView {
                    capacity: k.capacity(),
                    linked: k.linked(),
                    linked_total: k.linked_total(),
                }),
            },
        )),
        (&Method::GET, ["v1", "services"]) => {
            let checks = director.health.check_views();
            let services = director.table().services().map(|s| with_checks(view_service(s, now), &checks)).collect();
            Ok(json(StatusCode::OK, &ServiceList { services }))
        }
        (&Method::GET, ["v1", "http"]) => {
            Ok(json(StatusCode::OK, &http::list(&director.l7, &director.health.check_views())))
        }
        (&Method::POST, ["v1", "http", addr, "rules"]) => {
            let key = path_key("tcp", addr)?;
            let spec: HttpRuleSpec = body(req).await?;
            http::add_rule(&director.l7, key, spec).map(|_| ok()).map_err(change_error)
        }
        (&Method::DELETE, ["v1", "http", addr, "rules", name]) => {
            let key = path_key("tcp", addr)?;
            http::delete_rule(&director.l7, key, name).map(|_| ok()).map_err(change_error)
        }
        (&Method::POST, ["v1", "http", addr, "pools", pool, "servers"]) => {
            let key = path_key("tcp", addr)?;
            let spec: RealServerSpec = body(req).await?;
            let what = http::ServerChange::Add(spec);
            http::change_server(&director.l7, key, pool, what).map_err(change_error)?;
            director.health.sync(&director.table(), &director.l7);
            Ok(json(StatusCode::CREATED, &serde_json::json!({"ok": true})))
        }
        (m, ["v1", "http", addr, "pools", pool, "servers", raddr]) => {
            let key = path_key("tcp", addr)?;
            let raddr = rvs_core::addr::parse_endpoint(raddr, Some(key.addr.port()))
                .map_err(|e| error(StatusCode::BAD_REQUEST, ApiError::field("path", e)))?;
            let what = match *m {
                Method::PUT => http::ServerChange::Edit(raddr, body(req).await?),
                Method::DELETE => http::ServerChange::Delete(raddr),
                _ => return Err(not_allowed()),
            };
            http::change_server(&director.l7, key, pool, what).map_err(change_error)?;
            director.health.sync(&director.table(), &director.l7);
            Ok(ok())
        }
        (&Method::GET, ["v1", "events"]) => {
            let since = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("since=")))
                .map(|v| v.parse::<u64>())
                .transpose()
                .map_err(|e| error(StatusCode::BAD_REQUEST, ApiError::field("since", e)))?
                .unwrap_or(0);
            Ok(json(StatusCode::OK, &director.health.events(since)))
        }
        (&Method::POST, ["v1", "services"]) => {
            let spec: ServiceSpec = body(req).await?;
            let (key, settings) = spec.to_core("service").map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
            apply(&[Command::AddService { key, settings }]).map(|_| json(StatusCode::CREATED, &spec))
        }
        (&Method::DELETE, ["v1", "services"]) => apply(&[Command::Clear]),
        (m, ["v1", "services", proto, addr]) => {
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
                    apply(&[Command::EditService { key, settings }])
                }
                Method::DELETE => apply(&[Command::DeleteService { key }]),
                _ => Err(not_allowed()),
            }
        }
        (&Method::POST, ["v1", "services", proto, addr, "servers"]) => {
            let key = path_key(proto, addr)?;
            let spec: RealServerSpec = body(req).await?;
            let server = spec.to_core(&key, None, "server").map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
            apply(&[Command::AddServer { service: key, server }]).map(|_| json(StatusCode::CREATED, &spec))
        }
        (&Method::POST, ["v1", "services", proto, addr, "zero"]) => {
            let key = path_key(proto, addr)?;
            apply(&[Command::Zero { service: Some(key) }])
        }
        (m, ["v1", "services", proto, addr, "servers", raddr]) => {
            let key = path_key(proto, addr)?;
            let raddr = rvs_core::addr::parse_endpoint(raddr, Some(key.addr.port()))
                .map_err(|e| error(StatusCode::BAD_REQUEST, ApiError::field("path", e)))?;
            match *m {
                Method::DELETE => apply(&[Command::DeleteServer { service: key, addr: raddr }]),
                Method::PUT => {
                    let spec: RealServerSpec = body(req).await?;
                    let base =
                        model().services.get(&key).and_then(|s| s.servers.iter().find(|r| r.addr == raddr)).copied();
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
                    apply(&[Command::EditServer { service: key, server }])
                }
                _ => Err(not_allowed()),
            }
        }
        (&Method::POST, ["v1", "commands"]) => {
            let batch: CommandBatch = body(req).await?;
            let mut model = model();
            let mut cmds = Vec::with_capacity(batch.commands.len());
            for (i, c) in batch.commands.iter().enumerate() {
                let cmd = c.to_core(&model).map_err(|e| {
                    error(
                        StatusCode::BAD_REQUEST,
                        ApiError::field(format!("commands[{i}].{}", e.field.unwrap_or_default()), e.message)
                            .with_code("invalid"),
                    )
                })?;
                // Later commands of the batch see the earlier ones (edits fill from them).
                let _ = model.apply(&cmd);
                cmds.push(cmd);
            }
            director.apply(&cmds).map_err(|e| apply_error(e, &cmds, true))?;
            Ok(json(StatusCode::OK, &serde_json::json!({"ok": true, "applied": cmds.len()})))
        }
        (&Method::GET, ["v1", "save"]) => {
            Ok(json(StatusCode::OK, &CommandBatch { commands: table_to_commands(&model()) }))
        }
        (&Method::GET, ["v1", "connections"]) => {
            let connections = director
                .engine
                .connections()
                .into_iter()
                .map(|c| ConnectionView {
                    protocol: c.protocol.name().into(),
                    client: c.client.to_string(),
                    virtual_address: c.virtual_addr.to_string(),
                    real_server: c.dest.map(|d| d.to_string()),
                    // IPVS names a UDP connection's state UDP.
                    state: if c.protocol == rvs_core::Protocol::Udp { "UDP" } else { c.state.ipvs_name() }.into(),
                    expires_ms: c.expires_ms,
                })
                .collect();
            Ok(json(StatusCode::OK, &ConnectionList { connections }))
        }
        (&Method::GET, ["v1", "templates"]) => {
            let table = director.table();
            let templates = table
                .services()
                .flat_map(|s| {
                    s.templates(now).into_iter().map(|(t, left)| TemplateView {
                        protocol: s.key.protocol.name().into(),
                        client_net: t.client_net.to_string(),
                        virtual_address: s.key.addr.to_string(),
                        real_server: t.dest.to_string(),
                        expires_ms: left,
                        connections: t.controlled(),
                    })
                })
                .collect();
            Ok(json(StatusCode::OK, &TemplateList { templates }))
        }
        (&Method::GET, ["v1", "timeouts"]) => Ok(json(StatusCode::OK, &timeouts_view(&model().timeouts))),
        (&Method::PUT, ["v1", "timeouts"]) => {
            let t: TimeoutsView = body(req).await?;
            for (name, v) in [("tcp", t.tcp), ("tcpfin", t.tcpfin), ("udp", t.udp)] {
                if v > MAX_TIMEOUT_SECS {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        ApiError::field(
                            name,
                            format!("{v} is out of range: at most {MAX_TIMEOUT_SECS} seconds (0 leaves it unchanged)"),
                        ),
                    ));
                }
            }
            apply(&[Command::SetTimeouts(model().timeouts.merged(t.tcp, t.tcpfin, t.udp))])
        }
        (&Method::GET, ["v1", "options"]) => {
            let o = model().options;
            Ok(json(
                StatusCode::OK,
                &OptionsView {
                    expire_nodest_conn: o.expire_nodest_conn,
                    expire_quiescent_template: o.expire_quiescent_template,
                },
            ))
        }
        (&Method::PUT, ["v1", "options"]) => {
            let o: OptionsView = body(req).await?;
            let cmd = ApiCommand::SetOptions { options: o }
                .to_core(&model())
                .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
            apply(&[cmd])
        }
        (&Method::POST, ["v1", "zero"]) => {
            let id: Option<ServiceId> = body(req).await?;
            if id.is_none() {
                director.l7.zero(None);
            }
            let cmd =
                ApiCommand::Zero { service: id }.to_core(&model()).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
            apply(&[cmd])
        }
        (&Method::POST, ["v1", "reload"]) => match director.reload() {
            Ok((cmds, notes)) => {
                Ok(json(StatusCode::OK, &ReloadReport { changes: cmds.iter().map(|c| c.to_string()).collect(), notes }))
            }
            Err(e @ ReloadError::NoFile) => Err(error(StatusCode::CONFLICT, ApiError::message(e))),
            Err(e) => Err(error(StatusCode::BAD_REQUEST, ApiError::message(e))),
        },
        _ => Err(error(StatusCode::NOT_FOUND, ApiError::message(format!("no such endpoint: {method} {path}")))),
    }
}

/// Fills in each real server's health-check state.
fn with_checks(mut view: ServiceView, checks: &HashMap<HealthKey, CheckView>) -> ServiceView {
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

fn change_error(e: http::ChangeError) -> Resp {
    match e {
        http::ChangeError::NotFound(e) => error(StatusCode::NOT_FOUND, e),
        http::ChangeError::Invalid(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

fn no_service(key: ServiceKey) -> Resp {
    error(StatusCode::NOT_FOUND, ApiError::message(CommandError::NoService(key)))
}

fn not_allowed() -> Resp {
    error(StatusCode::METHOD_NOT_ALLOWED, ApiError::message("method not allowed here"))
}
