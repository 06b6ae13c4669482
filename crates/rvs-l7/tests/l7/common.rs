//! The test harness: real backends on 127.0.0.1 (hyper servers that name themselves and echo
//! what they got, raw TCP servers for misbehaviour), an engine started on a free port, and
//! clients (a hyper keep-alive connection, raw sockets, curl). Every wait is bounded.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rvs_core::{Health, SchedulerKind, ServiceAddr};
use rvs_dataplane::{Clock, DataPlane, PlaneError, Publication};
use rvs_l7::{L7Engine, L7EngineConfig, L7Error};
use rvs_model::http::{L7ServiceConfig, PoolConfig};
use rvs_model::{DirectorModel, HttpChange, HttpChangeError, PoolServer, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const T: Duration = Duration::from_secs(10);

/// Drives an engine as the director does, through the data-plane interface: the next model is
/// prepared, then published.
pub trait Drive {
    /// Makes `services` the engine's http services (all or nothing).
    fn publish(&self, services: Vec<L7ServiceConfig>) -> Result<(), L7Error>;
    /// Prepares `services` and drops the result: whether a publish would be taken.
    fn check(&self, services: &[L7ServiceConfig]) -> Result<(), L7Error>;
    /// A health checker's verdict on a real server of a pool.
    fn set_health(
        &self,
        key: &ServiceAddr,
        pool: &str,
        server: SocketAddr,
        health: Health,
        weight: Option<u32>,
    ) -> Result<(), HttpChangeError>;
}

fn plane_error(e: PlaneError) -> L7Error {
    match e.source.downcast::<L7Error>() {
        Ok(e) => *e,
        Err(other) => panic!("the L7 engine refused with something else: {other}"),
    }
}

fn drive(engine: &Arc<L7Engine>, next: DirectorModel) -> Result<(), L7Error> {
    let prepared = DataPlane::prepare(&**engine, &next).map_err(plane_error)?;
    let publication =
        Publication { generation: 0, model: Arc::new(next), services: Arc::default(), removed: Arc::default() };
    DataPlane::publish(engine.clone(), prepared, &publication);
    Ok(())
}

impl Drive for Arc<L7Engine> {
    fn publish(&self, services: Vec<L7ServiceConfig>) -> Result<(), L7Error> {
        let mut next = (*self.model()).clone();
        next.http = services;
        next.retain_pool_health();
        drive(self, next)
    }

    fn check(&self, services: &[L7ServiceConfig]) -> Result<(), L7Error> {
        let next = DirectorModel { http: services.to_vec(), ..(*self.model()).clone() };
        DataPlane::prepare(&**self, &next).map(drop).map_err(plane_error)
    }

    fn set_health(
        &self,
        key: &ServiceAddr,
        pool: &str,
        server: SocketAddr,
        health: Health,
        weight: Option<u32>,
    ) -> Result<(), HttpChangeError> {
        let mut next = (*self.model()).clone();
        let server = PoolServer { service: *key, pool: pool.to_string(), server };
        next.apply_http(&HttpChange::Health { server, verdict: Verdict { health, weight } })?;
        drive(self, next).map_err(|e| panic!("a verdict refused by the engine: {e}"))
    }
}

/// A port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// An HTTP backend: answers `NAME METHOD TARGET`, or per path: `/echo-head` (the request
/// head it saw), `/echo-body` (the body), `/big?n=N` (N patterned bytes), `/slow?ms=N`,
/// `/status?code=N`. Counts connections and requests.
pub struct Backend {
    pub addr: SocketAddr,
    pub conns: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
}

pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn query(uri: &hyper::Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=').map(str::to_string))
}

async fn handle(
    name: Arc<str>,
    requests: Arc<AtomicUsize>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    requests.fetch_add(1, Ordering::SeqCst);
    let uri = req.uri().clone();
    let method = req.method().clone();
    let mut status = StatusCode::OK;
    let body: Vec<u8> = match uri.path() {
        "/echo-head" => {
            let mut s = format!("{} {} {:?}\n", method, uri, req.version());
            for (k, v) in req.headers() {
                s.push_str(&format!("{}: {}\n", k, String::from_utf8_lossy(v.as_bytes())));
            }
            s.into_bytes()
        }
        "/echo-body" => req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default(),
        "/big" => pattern(query(&uri, "n").and_then(|n| n.parse().ok()).unwrap_or(0)),
        "/slow" => {
            let ms = query(&uri, "ms").and_then(|n| n.parse().ok()).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            format!("{name} slow").into_bytes()
        }
        "/status" => {
            status = StatusCode::from_u16(query(&uri, "code").and_then(|n| n.parse().ok()).unwrap_or(200)).unwrap();
            Vec::new()
        }
        _ => format!("{name} {method} {uri}").into_bytes(),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert("x-backend", name.parse().unwrap());
    Ok(resp)
}

pub async fn backend(name: &str) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let name: Arc<str> = name.into();
    let (c, r) = (conns.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let (name, r) = (name.clone(), r.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(name.clone(), r.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
            });
        }
    });
    Backend { addr, conns, requests }
}

/// A raw TCP backend: `f` gets each accepted connection. Keeps what it read in `seen`.
pub struct RawBackend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<u8>>>,
    pub conns: Arc<AtomicUsize>,
}

pub async fn raw_backend<F, Fut>(f: F) -> RawBackend
where
    F: Fn(TcpStream, Arc<Mutex<Vec<u8>>>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let conns = Arc::new(AtomicUsize::new(0));
    let (s2, c2) = (seen.clone(), conns.clone());
    let f = Arc::new(f);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            c2.fetch_add(1, Ordering::SeqCst);
            let fut = f(s, s2.clone());
            tokio::spawn(fut);
        }
    });
    RawBackend { addr, seen, conns }
}

/// Reads one request head (to the blank line) from `s`, appending it to `seen`.
pub async fn read_head(s: &mut TcpStream, seen: &Mutex<Vec<u8>>) -> Vec<u8> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(T, s.read(&mut b)).await {
            Ok(Ok(1)) => head.push(b[0]),
            _ => break,
        }
    }
    seen.lock().unwrap().extend_from_slice(&head);
    head
}

/// Starts an engine serving `cfg` on a free port (retrying if the port was taken meanwhile).
pub async fn start(mut cfg: L7ServiceConfig) -> (Arc<L7Engine>, SocketAddr) {
    start_with(L7EngineConfig::default(), &mut cfg).await
}

pub async fn start_with(ecfg: L7EngineConfig, cfg: &mut L7ServiceConfig) -> (Arc<L7Engine>, SocketAddr) {
    start_limited(ecfg, cfg, rvs_dataplane::ConnLimit::new(None)).await
}

/// As [`start_with`], under the director's connection cap `limit`.
pub async fn start_limited(
    ecfg: L7EngineConfig,
    cfg: &mut L7ServiceConfig,
    limit: Arc<rvs_dataplane::ConnLimit>,
) -> (Arc<L7Engine>, SocketAddr) {
    let engine = L7Engine::new(ecfg, Clock::default(), limit);
    for _ in 0..5 {
        cfg.key = ServiceAddr::tcp(free_addr());
        match Drive::publish(&engine, vec![cfg.clone()]) {
            Ok(()) => return (engine, cfg.key.addr),
            Err(L7Error::Listen(_)) => continue,
            Err(e) => panic!("publish: {e}"),
        }
    }
    panic!("no free port");
}

pub fn service() -> L7ServiceConfig {
    L7ServiceConfig::new(ServiceAddr::tcp(free_addr()))
}

pub fn pool(name: &str, sched: SchedulerKind, servers: &[SocketAddr]) -> PoolConfig {
    let mut p = PoolConfig::new(name, sched).unwrap();
    for s in servers {
        p = p.server(*s);
    }
    p
}

/// A response read by the raw client.
#[derive(Debug)]
pub struct Raw {
    pub bytes: Vec<u8>,
}

impl Raw {
    pub fn status(&self) -> u16 {
        let t = String::from_utf8_lossy(&self.bytes);
        t.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    /// How many status lines (responses) came.
    pub fn responses(&self) -> usize {
        self.text().matches("HTTP/1.1 ").count()
    }
}

/// Writes `req` and reads until the proxy closes (or `T`).
pub async fn raw(addr: SocketAddr, req: &[u8]) -> Raw {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(req).await;
    read_to_close(&mut s).await
}

pub async fn read_to_close(s: &mut TcpStream) -> Raw {
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut bytes)).await;
    Raw { bytes }
}

/// One HTTP/1.1 keep-alive connection through hyper's client.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn backend(&self) -> String {
        self.headers.get("x-backend").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
    }
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await.unwrap();
        tokio::spawn(conn);
        Self { sender }
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Resp {
        let fut = async {
            self.sender.ready().await.unwrap();
            let resp = self.sender.send_request(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.unwrap().to_bytes().to_vec();
            Resp { status: parts.status, headers: parts.headers, body }
        };
        tokio::time::timeout(T, fut).await.expect("response in time")
    }

    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut b = Request::get(path).header("host", "test.example");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::new(Bytes::new())).unwrap()).await
    }

    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// Runs curl with `args`; returns (exit ok, stdout).
pub async fn curl(args: &[&str]) -> (bool, Vec<u8>) {
    let out = tokio::time::timeout(
        T,
        tokio::process::Command::new("curl").args(["-sS", "--max-time", "8"]).args(args).kill_on_drop(true).output(),
    )
    .await
    .expect("curl in time")
    .expect("curl runs");
    if !out.status.success() {
        eprintln!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), out.stdout)
}

/// Waits (up to 2 s) until `f` holds: counters are recorded just after the response that a
/// client has already read.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}
