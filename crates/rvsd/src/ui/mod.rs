//! The dashboard: a web page served by rvsd itself at `/ui/` on the API's TCP listener, every
//! asset embedded in the binary. It reads and changes through the same `/v1` API as rvsadm,
//! plus the push channel (`/v1/stream`) and the history (`/v1/history`). Here: the page's
//! assets, login and logout (a token exchanged for a session cookie), and the security
//! headers of every answer on the TCP listener.

#![allow(clippy::result_large_err)]

pub mod history;
pub mod sampler;
pub mod session;
pub mod stream;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use rvs_api::ApiError;
use serde::Deserialize;

use crate::api::{body, error, json, Resp};
use crate::director::Director;
use session::Access;

/// What the dashboard keeps: who may use it, the push channel's clients, the history.
pub struct Dashboard {
    pub access: Option<Access>,
    pub hub: stream::Hub,
    history: Mutex<history::History>,
    pub started: Instant,
}

impl Dashboard {
    /// `access`: the TCP listener's tokens, when it has one.
    pub fn new(access: Option<Access>) -> Self {
        Self { access, hub: stream::Hub::default(), history: Mutex::default(), started: Instant::now() }
    }

    pub fn history(&self) -> MutexGuard<'_, history::History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the once-a-second sampler.
    pub fn start(self: &Arc<Self>, director: &Arc<Director>) {
        tokio::spawn(sampler::run(Arc::downgrade(director), self.clone()));
    }
}

/// The page's assets: path under `/ui/`, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("", "text/html; charset=utf-8", include_bytes!("../../ui/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/app.js")),
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../ui/app.css")),
    (
        "vendor/uplot/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/vendor/uplot/uPlot.iife.min.js"),
    ),
    ("vendor/uplot/uPlot.min.css", "text/css; charset=utf-8", include_bytes!("../../ui/vendor/uplot/uPlot.min.css")),
];

/// The Content-Security-Policy of every answer: scripts and styles from rvsd only, none inline.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Adds the security headers every answer on the TCP listener carries.
pub fn secure_headers<B>(mut resp: Response<B>) -> Response<B> {
    let h = resp.headers_mut();
    for (k, v) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        if let Ok(v) = hyper::header::HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    }
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
    }
    resp
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// `/ui/...`: the assets (no token needed: they hold no data and no secret), `login`,
/// `logout` and `session`.
pub async fn route(access: &Access, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/ui") else { return not_found() };
    let method = req.method().clone();
    match (&method, rest) {
        (&Method::GET | &Method::HEAD, "") => Response::builder()
            .status(StatusCode::MOVED_PERMANENTLY)
            .header(LOCATION, "/ui/")
            .body(Full::new(Bytes::new()))
            .unwrap_or_default(),
        (&Method::GET, "/session") => match access.session(req.headers()) {
            Some((role, csrf)) => json(StatusCode::OK, &serde_json::json!({"role": role.name(), "csrf": csrf})),
            None => error(StatusCode::UNAUTHORIZED, ApiError::message("not logged in")),
        },
        (&Method::POST, "/login") => {
            // JSON only: a cross-site form cannot send it without the browser asking first.
            let is_json = req
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            if !is_json {
                return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, ApiError::message("send the token as JSON"));
            }
            let login: Login = match body(req).await {
                Ok(l) => l,
                Err(r) => return r,
            };
            let Some(role) = access.role_of_token(login.token.trim()) else {
                tracing::warn!("dashboard login refused: wrong token");
                return error(StatusCode::UNAUTHORIZED, ApiError::field("token", "wrong token"));
            };
            let (id, csrf) = access.login(role);
            let mut resp = json(StatusCode::OK, &serde_json::json!({"role": role.name(), "csrf": csrf}));
            if let Ok(v) = hyper::header::HeaderValue::from_str(&access.cookie(&id)) {
                resp.headers_mut().insert(SET_COOKIE, v);
            }
            resp
        }
        (&Method::POST, "/logout") => {
            // A logout is a change: it needs the session's CSRF value, as any other.
            if access.authorize(&method, req.headers()).is_err() && access.session(req.headers()).is_some() {
                return error(StatusCode::FORBIDDEN, ApiError::message("missing or wrong X-RVS-CSRF header"));
            }
            access.logout(req.headers());
            let mut resp = json(StatusCode::OK, &serde_json::json!({"ok": true}));
            if let Ok(v) = hyper::header::HeaderValue::from_str(&access.cookie("")) {
                resp.headers_mut().insert(SET_COOKIE, v);
            }
            resp
        }
        (&Method::GET | &Method::HEAD, p) => {
            let Some(name) = p.strip_prefix('/') else { return not_found() };
            match ASSETS.iter().find(|(n, _, _)| *n == name) {
                Some((_, ctype, bytes)) => Response::builder()
                    .status(StatusCode::OK)
                    .header(CONTENT_TYPE, *ctype)
                    .header(CACHE_CONTROL, "no-cache")
                    .body(Full::new(if method == Method::HEAD { Bytes::new() } else { Bytes::from_static(bytes) }))
                    .unwrap_or_default(),
                None => not_found(),
            }
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, ApiError::message("method not allowed here")),
    }
}

fn not_found() -> Resp {
    error(StatusCode::NOT_FOUND, ApiError::message("no such page"))
}
