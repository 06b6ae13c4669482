//! rvsd, the rvs director daemon: reads the configuration, owns the service table, runs the
//! proxy engine, serves the control API and metrics, reloads on SIGHUP, drains on SIGTERM,
//! and hands its listening sockets to a new rvsd for a binary upgrade.

#![forbid(unsafe_code)]

mod api;
mod change;
mod demo;
mod director;
mod health;
mod limits;
mod manual;
mod metrics;
mod notify;
mod packet_engine;
mod real_server;
mod report;
mod sync;
mod ui;
mod upgrade;
mod vrrp;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use rvs_config::Config;
use rvs_dataplane::{Clock, ConnLimit};
use rvs_proxy::{Engine, EngineConfig, RelayMode};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

use crate::director::Director;

#[derive(Debug, Parser)]
#[command(name = "rvsd", version, about = "rvs, the Rust Virtual Server: the director daemon")]
struct Cli {
    /// The configuration file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate the configuration file and exit.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
    /// Worker threads (default: one per CPU), and as many TCP event loops. With 1, rvsd runs
    /// on a single-threaded runtime. `TOKIO_WORKER_THREADS` is honoured too.
    #[arg(long, env = "RVSD_THREADS", value_name = "N")]
    threads: Option<usize>,
    /// Override the API unix socket of the configuration.
    #[arg(long, value_name = "PATH")]
    api_socket: Option<PathBuf>,
    /// Write the manual page rvsd.8 (from these definitions) into DIR and exit (packaging).
    #[arg(long, value_name = "DIR", hide = true, exclusive = true)]
    generate_man: Option<PathBuf>,
    /// Print the shell completion script for SHELL and exit (packaging).
    #[arg(long, value_name = "SHELL", hide = true, exclusive = true)]
    completions: Option<clap_complete::Shell>,
    /// Binary upgrade: take over the listening sockets of the rvsd running with this API
    /// socket (its services', its API's), start on them, then tell it to stop accepting,
    /// drain its connections and exit. Nothing is refused meanwhile.
    #[arg(long, value_name = "API_SOCKET", requires = "config")]
    upgrade_from: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a demo: three real servers on loopback behind TCP, UDP and HTTP virtual services.
    Demo {
        /// The virtual service address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The Layer-7 (http) virtual service address.
        #[arg(long, default_value = "127.0.0.1:8081")]
        http_listen: SocketAddr,
        /// The API unix socket.
        #[arg(long, default_value = "/tmp/rvsd-demo.sock")]
        api_socket: PathBuf,
        /// The dashboard and TCP API address (loopback; a token is made up and printed).
        #[arg(long, default_value = "127.0.0.1:8082")]
        ui_listen: SocketAddr,
    },
    /// Set up, check (--check) or undo (--remove) this machine as a real server behind a
    /// director that forwards by direct routing or tunnel; no director needs to run here.
    RealServer {
        #[command(subcommand)]
        cmd: real_server::RealServerCmd,
    },
    /// Show (or with --remove, take away) the packet engine a stopped rvsd left pinned: its
    /// program stays attached and its flows keep flowing until the next rvsd takes over.
    PacketEngine(packet_engine::PacketEngineArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(dir) = &cli.generate_man {
        return match manual::write_man(Cli::command(), dir) {
            Ok(path) => {
                println!("{}", path.display());
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rvsd: cannot write the manual page into {}: {e}", dir.display());
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Some(shell) = cli.completions {
        clap_complete::generate(shell, &mut Cli::command(), "rvsd", &mut std::io::stdout());
        return std::process::ExitCode::SUCCESS;
    }
    let cli = match cli.command {
        Some(Cmd::RealServer { cmd }) => return real_server::run(cmd),
        Some(Cmd::PacketEngine(args)) => return packet_engine::run(args),
        _ => cli,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RVSD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(path) = &cli.check_config {
        return match Config::load(path).map_err(|e| e.to_string()).and_then(|c| check_runtime(&c).map(|()| c)) {
            Ok(c) => {
                let servers: usize = c.table.services.values().map(|s| s.servers.len()).sum();
                let pools: usize = c.http.iter().map(|h| h.pools.len()).sum();
                println!(
                    "{}: configuration OK: {} tcp virtual services with {} real servers, {} http virtual services with {} pools",
                    path.display(),
                    c.table.services.len(),
                    servers,
                    c.http.len(),
                    pools
                );
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let threads = cli.threads.or_else(|| std::env::var("TOKIO_WORKER_THREADS").ok()?.parse().ok());
    let runtime = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread().worker_threads(n.max(1)).enable_all().build(),
        None => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rvsd: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: {}", report::chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    limits::raise_nofile_limit();
    let (config, demo) = match (&cli.command, &cli.config) {
        (Some(Cmd::Demo { listen, http_listen, api_socket, ui_listen }), _) => {
            (demo::start(*listen, *http_listen, api_socket.clone(), *ui_listen).await?, true)
        }
        (None, Some(path)) => (Config::load(path)?, false),
        (None, None) => anyhow::bail!("give --config FILE (or `rvsd demo`); see rvsd --help"),
        (Some(Cmd::RealServer { .. } | Cmd::PacketEngine(_)), _) => unreachable!("main runs these commands"),
    };
    let mut config = config;
    if let Some(s) = cli.api_socket {
        config.api.socket = s;
    }
    // A binary upgrade takes the running rvsd's sockets first: the data planes take them
    // instead of binding.
    let mut takeover = match &cli.upgrade_from {
        Some(from) => {
            let t = upgrade::take_over(from).with_context(|| format!("binary upgrade from {}", from.display()))?;
            info!(
                pid = t.from,
                services = t.services,
                "binary upgrade: took over the running rvsd's listening sockets"
            );
            Some(t)
        }
        None => None,
    };
    if let (Some(t), Some(_)) = (&takeover, &config.packet_engine) {
        t.release_pins().context("binary upgrade: taking the packet engine's pins over")?;
    }
    let clock = Clock::default();
    // One cap for both data planes; `Director::load` sets it from the file (and on reload).
    let limit = ConnLimit::new(None);
    let threads = cli.threads.or_else(|| std::env::var("TOKIO_WORKER_THREADS").ok()?.parse().ok());
    let engine = Engine::new(
        EngineConfig {
            connect_timeout: config.director.connect_timeout,
            connect_retries: config.director.connect_retries,
            relay: match config.director.relay {
                rvs_config::Relay::Sockmap { connections } => RelayMode::Sockmap { capacity: connections },
                rvs_config::Relay::Splice => RelayMode::Splice,
            },
            // As many TCP event loops as worker threads.
            loops: threads.unwrap_or(EngineConfig::default().loops),
            ..EngineConfig::default()
        },
        clock,
        limit.clone(),
    );
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let (health, health_events) = health::HealthPlane::start();
    let l7 = rvs_l7::L7Engine::new(rvs_l7::L7EngineConfig { seed, ..Default::default() }, clock, limit.clone());
    let config_path = if demo { None } else { cli.config.clone() };
    let packet = match &config.packet_engine {
        None => rvs_xdp::PacketEngine::detached(clock),
        Some(p) => rvs_xdp::PacketEngine::start(
            &rvs_xdp::PacketSettings {
                interfaces: p.interfaces.clone(),
                attach: match p.xdp_mode {
                    rvs_config::XdpMode::Auto => rvs_xdp::XdpAttach::Auto,
                    rvs_config::XdpMode::Native => rvs_xdp::XdpAttach::Native,
                    rvs_config::XdpMode::Generic => rvs_xdp::XdpAttach::Generic,
                },
                connections: p.connections,
                pin_dir: Some(
                    packet_engine::pin_dir(p.pin_path.as_ref()).context("the packet engine's pin directory")?,
                ),
            },
            clock,
        )
        .context("starting the packet engine ([packet_engine])")?,
    };
    let release_pins: Box<dyn Fn() + Send> = {
        let packet = packet.clone();
        Box::new(move || packet.release_pins())
    };
    let sync = Arc::new(sync::SyncDaemon::new(packet.clone()));
    let planes: Vec<Arc<dyn rvs_dataplane::DataPlane>> = vec![engine, l7, packet];
    let director = Arc::new(Director::new(planes, health.clone(), sync.clone(), limit, clock, config_path, seed));
    sync.attach(&director);
    tokio::spawn(health::run(Arc::downgrade(&director), health.clone(), health_events));
    let api = config.api.clone();
    let drain = config.director.drain_timeout;
    let sync_config = config.sync.clone();
    director.load(config).context("applying the configuration")?;
    if let Some(s) = sync_config {
        sync.start(&sync::spec(&s)).context("starting the connection sync daemon ([sync])")?;
    }
    director.vrrp.attach(&director);
    director.vrrp.reconcile(director.vrrp_specs());
    let access = api.token.clone().map(|t| ui::session::Access::new(t, api.read_only_token.clone()));
    let dash = Arc::new(ui::Dashboard::new(access));
    dash.start(&director);
    let handed_unix = takeover.as_mut().and_then(|t| t.api_unix.take()).filter(|(p, _)| *p == api.socket);
    let unix = match handed_unix {
        Some((_, fd)) => std::os::unix::net::UnixListener::from(fd),
        None => api::bind_unix(&api.socket).with_context(|| format!("control API socket {}", api.socket.display()))?,
    };
    let unix_offer = (api.socket.clone(), OwnedFd::from(unix.try_clone()?));
    let unix_task = api::serve_unix(unix, director.clone(), dash.clone())?;
    let mut tcp_offer = None;
    let mut tcp_task = None;
    let mut dashboard = None;
    if let (Some(addr), Some(_)) = (api.listen, api.token.as_ref()) {
        let handed = takeover.as_mut().and_then(|t| t.api_tcp.take()).filter(|(a, _)| *a == addr);
        let listener = match handed {
            Some((_, fd)) => std::net::TcpListener::from(fd),
            None => std::net::TcpListener::bind(addr).with_context(|| format!("control API on {addr}"))?,
        };
        tcp_offer = Some((addr, OwnedFd::from(listener.try_clone()?)));
        let (task, addr) = api::serve_tcp(listener, director.clone(), dash.clone())
            .with_context(|| format!("control API on {addr}"))?;
        tcp_task = Some(task);
        info!(%addr, "control API listening on TCP (bearer token required); the dashboard at http://{addr}/ui/");
        dashboard = Some(addr);
    }
    let upgrade_path = upgrade::socket_path(&api.socket);
    let handed_upgrade = takeover.as_mut().and_then(|t| t.upgrade.take()).filter(|(p, _)| *p == upgrade_path);
    let upgrade_socket = match handed_upgrade {
        Some((_, fd)) => fd,
        None => upgrade::bind(&upgrade_path).with_context(|| format!("upgrade socket {}", upgrade_path.display()))?,
    };
    for key in rvs_dataplane::handover::close_untaken() {
        warn!(service = %key, "binary upgrade: the configuration has no such service: its listener closes");
    }
    if let Some(t) = takeover {
        let from = t.from;
        match t.finish() {
            Ok(()) => info!(pid = from, "binary upgrade done: the previous rvsd stops accepting and drains"),
            Err(e) => warn!(pid = from, "binary upgrade: the previous rvsd did not confirm it stops: {e}"),
        }
    }
    let stopping = Arc::new(AtomicBool::new(false));
    let (upgraded_tx, mut upgraded_rx) = tokio::sync::mpsc::unbounded_channel();
    upgrade::serve(
        upgrade::Offer {
            api_unix: unix_offer,
            api_tcp: tcp_offer,
            upgrade: (upgrade_path.clone(), upgrade_socket),
            stopping: stopping.clone(),
            release_pins,
        },
        upgraded_tx,
    )
    .context("serving binary upgrades")?;
    info!(socket = %api.socket.display(), "control API listening");
    if demo {
        print_demo_help(&director, &api.socket);
        if let (Some(addr), Some(token)) = (dashboard, &api.token) {
            println!("rvs demo: the dashboard at http://{addr}/ui/ (log in with the token {token})");
        }
        println!("ctrl-c stops the demo");
    }
    let ticker = {
        let d = director.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_millis(rvs_core::stats::Estimator::PERIOD_MS));
            loop {
                t.tick().await;
                d.tick();
            }
        })
    };
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    println!("rvsd ready");
    notify::notify(notify::State::Ready);
    let mut upgraded = None;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                notify::notify(notify::State::Reloading);
                let _ = director.reload_logged("SIGHUP");
                notify::notify(notify::State::Ready);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            Some(pid) = upgraded_rx.recv() => {
                upgraded = Some(pid);
                break;
            }
        }
    }
    notify::notify(notify::State::Stopping);
    stopping.store(true, Ordering::SeqCst);
    if let Some(pid) = upgraded {
        // The new rvsd serves the API now: this one's copies of the sockets close.
        unix_task.abort();
        tcp_task.iter().for_each(tokio::task::JoinHandle::abort);
        info!(
            pid,
            deadline_secs = drain.as_secs(),
            connections = director.report().connections,
            "stopping after a binary upgrade: the new rvsd accepts, this one drains"
        );
    } else {
        info!(
            deadline_secs = drain.as_secs(),
            connections = director.report().connections,
            "stopping: no new connections, draining"
        );
    }
    // The checks stop first: those through a VIP lose their road when the packet engine stops,
    // and no health transition is to come of that.
    health.shutdown();
    sync.shutdown();
    // The backup takes over now (priority 0), not after a Master_Down_Interval.
    director.vrrp.shutdown().await;
    // Their notify commands (and any before them) run before rvsd exits, within bounds.
    let _ = tokio::time::timeout(Duration::from_secs(5), health.flush_notifications()).await;
    let closed = director.shutdown(drain).await;
    if closed > 0 {
        warn!(closed, "drain deadline reached: closed the remaining connections");
    }
    ticker.abort();
    if upgraded.is_none() {
        // After an upgrade these are the new rvsd's.
        let _ = std::fs::remove_file(&api.socket);
        let _ = std::fs::remove_file(&upgrade_path);
    }
    info!("stopped");
    Ok(())
}

/// What the data planes and the health plane check when they prepare a configuration, beyond
/// the file's own validation: TLS certificates against their keys, checks' CA files and names.
fn check_runtime(c: &Config) -> Result<(), String> {
    for svc in &c.http {
        if let Some(tls) = &svc.tls {
            rvs_l7::check_tls(tls).map_err(|e| format!("http virtual service {}: {e}", svc.key.addr))?;
        }
    }
    for (key, h) in &c.health {
        let specs = h.default_check.iter().chain(h.server_checks.values()).chain(h.pool_checks.values());
        for spec in specs {
            rvs_health::Check::prepare(spec.check.clone())
                .map_err(|e| format!("virtual service {key}: health check {}: {e}", spec.check))?;
        }
    }
    Ok(())
}

fn print_demo_help(director: &Director, socket: &std::path::Path) {
    let model = director.model();
    let table = director.table();
    for svc in table.services() {
        println!("rvs demo: virtual service {} ({}) in front of:", svc.key, svc.settings().scheduler);
        for d in svc.dests().iter() {
            println!("  -> {} weight {}", d.addr, d.weight());
        }
        println!("try:");
        let Some(key) = svc.key.addr() else { continue };
        if key.protocol == rvs_core::Protocol::Udp {
            println!(
                "  python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
                 s.sendto(b\"hi\", (\"{}\", {})); print(s.recv(100))'   # a new client port: the next server",
                key.addr.ip(),
                key.addr.port()
            );
            continue;
        }
        println!("  curl http://{}/            # repeat it: each answer names its real server", key.addr);
        println!("  curl -s --unix-socket {} http://rvsd/v1/services", socket.display());
        println!("  cargo run -p rvsadm -- --api {} -L -n --stats   # ipvsadm -L, from rvs", socket.display());
    }
    drop(table);
    for svc in &model.http {
        println!(
            "rvs demo: http virtual service {} (Layer 7): /rs1/... goes to rs1, the rest round robin",
            svc.key.addr
        );
        println!("  curl http://{}/rs1/x ; curl http://{}/", svc.key.addr, svc.key.addr);
        println!("  curl -s --unix-socket {} http://rvsd/v1/http", socket.display());
    }
}
