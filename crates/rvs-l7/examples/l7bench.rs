//! l7bench: one L7 virtual service in front of some HTTP backends, for benchmarks until rvsd
//! serves `http` services itself. It prints `ready <addr>` once listening, the counters on
//! SIGINT/SIGTERM, and exits.
//!
//! ```text
//! l7bench --listen 127.0.0.1:18004 --backend 127.0.0.1:18101 --backend 127.0.0.1:18102 \
//!         [--scheduler rr] [--route PATH_PREFIX=POOL_INDEX ...] [--tls CERT.pem KEY.pem]
//! ```
//!
//! Worker threads follow `TOKIO_WORKER_THREADS` (as rvsd does in bench/run.sh).
//!
//! An `http` section for bench/run.sh, beside HAProxy and nginx on the same two backends:
//!
//! ```text
//! # rvs http   (127.0.0.1:18004)
//! TOKIO_WORKER_THREADS=$THREADS target/release/examples/l7bench --listen 127.0.0.1:18004 \
//!     --backend 127.0.0.1:18101 --backend 127.0.0.1:18102 --scheduler rr
//! # HAProxy mode http (127.0.0.1:18005)
//! defaults
//!     mode http
//!     option http-keep-alive
//!     http-reuse always
//!     timeout connect 3s
//!     timeout client 60s
//!     timeout server 60s
//! frontend fe
//!     bind 127.0.0.1:18005
//!     default_backend be
//! backend be
//!     balance roundrobin
//!     server s1 127.0.0.1:18101
//!     server s2 127.0.0.1:18102
//! # nginx proxy_pass with upstream keep-alive (127.0.0.1:18006)
//! upstream be { server 127.0.0.1:18101; server 127.0.0.1:18102; keepalive 128; }
//! server {
//!     listen 127.0.0.1:18006;
//!     location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }
//! }
//! # measure each with: wrk -t1 -c64 -d5s --latency http://ADDR/  (keep-alive requests/s, p99)
//! # and the balancer's utime+stime over the run for requests per CPU-second.
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use rvs_core::{SchedulerKind, ServiceAddr};
use rvs_dataplane::Clock;
use rvs_l7::{L7Engine, L7EngineConfig};
use rvs_model::http::{L7ServiceConfig, PoolConfig, Rule, TlsCertificate, TlsConfig};

struct Args {
    listen: SocketAddr,
    backends: Vec<SocketAddr>,
    scheduler: SchedulerKind,
    routes: Vec<(String, usize)>,
    tls: Option<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut listen = None;
    let mut backends = Vec::new();
    let mut scheduler = SchedulerKind::Rr;
    let mut routes = Vec::new();
    let mut tls = None;
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?),
            "--backend" => backends.push(value()?.parse().map_err(|e| format!("--backend: {e}"))?),
            "--scheduler" => scheduler = value()?.parse().map_err(|e| format!("--scheduler: {e}"))?,
            "--route" => {
                let v = value()?;
                let (prefix, i) = v.split_once('=').ok_or("--route PREFIX=BACKEND_INDEX")?;
                routes.push((prefix.to_string(), i.parse().map_err(|e| format!("--route: {e}"))?));
            }
            "--tls" => {
                let cert = value()?;
                let key = args.next().ok_or("--tls CERT KEY")?;
                tls = Some((cert, key));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    if backends.is_empty() {
        return Err("at least one --backend is required".into());
    }
    Ok(Args { listen, backends, scheduler, routes, tls })
}

fn config(a: &Args) -> Result<L7ServiceConfig, String> {
    let mut all = PoolConfig::new("all", a.scheduler).map_err(|e| e.to_string())?;
    for b in &a.backends {
        all = all.server(*b);
    }
    let mut cfg = L7ServiceConfig::new(ServiceAddr::tcp(a.listen)).pool(all).default_pool("all");
    for (i, (prefix, backend)) in a.routes.iter().enumerate() {
        let addr = *a.backends.get(*backend).ok_or("--route: no such backend index")?;
        let name = format!("route{i}");
        let pool = PoolConfig::new(name.clone(), a.scheduler).map_err(|e| e.to_string())?.server(addr);
        let rule = Rule::parse(format!("r{i}"), &[&format!("path^={prefix}")], name).map_err(|e| e.to_string())?;
        cfg = cfg.pool(pool).rule(rule);
    }
    if let Some((cert, key)) = &a.tls {
        let c = TlsCertificate::from_pem_files(vec![], cert.as_ref(), key.as_ref()).map_err(|e| e.to_string())?;
        cfg.tls = Some(TlsConfig::new(vec![c]));
    }
    Ok(cfg)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            let usage = "usage: l7bench --listen ADDR --backend ADDR [--backend ADDR ...] [--scheduler NAME] \
                         [--route PREFIX=INDEX ...] [--tls CERT KEY]";
            if e.is_empty() {
                println!("{usage}");
                return ExitCode::SUCCESS;
            }
            eprintln!("l7bench: {e}\n{usage}");
            return ExitCode::from(2);
        }
    };
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("l7bench: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        let engine = L7Engine::new(L7EngineConfig::default(), Clock::default(), rvs_dataplane::ConnLimit::new(None));
        // Published as the director does: prepared from the model, then published.
        let model = rvs_model::DirectorModel { http: vec![cfg], ..Default::default() };
        let prepared = match rvs_dataplane::DataPlane::prepare(&*engine, &model) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("l7bench: {e}");
                return ExitCode::FAILURE;
            }
        };
        let publication = rvs_dataplane::Publication {
            generation: 1,
            model: std::sync::Arc::new(model),
            services: Default::default(),
            removed: Default::default(),
        };
        rvs_dataplane::DataPlane::publish(engine.clone(), prepared, &publication);
        println!("ready {}", args.listen);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        for s in engine.stats() {
            let c = &s.counters;
            let pools: Vec<_> = s.pools.iter().map(|p| (p.name.as_str(), p.counters.reuse_ratio())).collect();
            eprintln!(
                "requests {} 2xx {} 5xx {} p50<={:?}us p99<={:?}us reuse {:?}",
                c.requests,
                c.status_classes[1],
                c.status_classes[4],
                c.latency_quantile_us(0.5),
                c.latency_quantile_us(0.99),
                pools
            );
        }
        engine.shutdown(std::time::Duration::from_secs(1)).await;
        ExitCode::SUCCESS
    })
}
