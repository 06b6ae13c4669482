//! The proxy engine: one listener per virtual service, served by the TCP event loops (each
//! connection's path: schedule, connect with timeout and retries, PROXY header, relay: see
//! `event_loop` and `tcp_conn`) and the UDP tasks; the idle-timeout sweeper and the drain on
//! shutdown. It reads the service table only through the published [`Snapshot`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use rvs_bpf::sockmap::KernelRelay;
use std::collections::HashMap;

use rvs_core::{Applied, ConnState, Protocol, ServiceAddr, ServiceKey, Snapshot, VirtualService};
use rvs_dataplane::clock::Clock;
use rvs_dataplane::conn_limit::{ConnLimit, ServiceCaps};
use rvs_dataplane::connect_failures::{ConnectFailureObserver, ConnectFailures, FailedConnect};
use rvs_dataplane::listeners::{ListenError, ListenerSet};
use rvs_dataplane::ConnInfo;
use std::net::TcpListener;
use tokio::net::UdpSocket;
use tracing::{debug, error, info, warn};

use crate::conn_table::{ConnEntry, ConnTable};
use crate::event_loop::{self, Cmd, LoopHandle};

/// Knobs of the proxy engine.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// How long a connect to a real server may take before another is tried.
    pub connect_timeout: Duration,
    /// How many other real servers to try after the first refuses or times out.
    pub connect_retries: u32,
    /// Listen backlog of each virtual service.
    pub backlog: u32,
    /// How established connections are relayed.
    pub relay: RelayMode,
    /// TCP event loops (threads); their connections are spread over them as they are accepted.
    pub loops: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            connect_retries: 2,
            backlog: 4096,
            relay: RelayMode::default(),
            loops: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// How the engine relays established connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    /// Long-lived connections (a second request, or a bulk burst) are linked into a sockmap so
    /// the kernel moves their bytes; up to `capacity` at once, the rest as with `Splice`. If
    /// the kernel refuses the sockmap program, the engine says so and uses `Splice`.
    Sockmap { capacity: u32 },
    /// rvsd moves every byte itself: copied, or spliced through a pipe in bulk.
    Splice,
}

impl Default for RelayMode {
    /// Splice: on the kernels measured so far (6.18), the sockmap's sends from kernel workers
    /// cost more CPU per request and per byte than rvsd's own relay (see bench/run.sh).
    fn default() -> Self {
        RelayMode::Splice
    }
}

/// Listeners and UDP sockets bound for a change, not yet serving.
#[derive(Debug)]
pub(crate) struct BoundSockets {
    tcp: Vec<(ServiceAddr, TcpListener)>,
    udp: Vec<(ServiceAddr, UdpSocket)>,
}

pub struct Engine {
    cfg: EngineConfig,
    snapshot: ArcSwap<Snapshot>,
    /// The service of each listening address (a firewall mark's service has several).
    routes: ArcSwap<HashMap<ServiceAddr, Arc<VirtualService>>>,
    listeners: ListenerSet<TcpListener>,
    /// The TCP event loops.
    loops: Vec<LoopHandle>,
    /// The sockets of the UDP services.
    udp: ListenerSet<UdpSocket>,
    pub(crate) conns: ConnTable,
    pub(crate) clock: Clock,
    /// Set at the drain deadline of a shutdown, when what is left is closed.
    stopped: std::sync::atomic::AtomicBool,
    /// Set when a shutdown has begun.
    draining: std::sync::atomic::AtomicBool,
    /// Told of every failed connect to a real server (passive health checking).
    on_connect_failure: ConnectFailures,
    /// The sockmap that relays long-lived connections, when loaded.
    kernel: Option<Arc<KernelRelay>>,
    /// The director's cap on client connections (shared with the L7 engine).
    pub(crate) limit: Arc<ConnLimit>,
    /// Each TCP service's own cap (`max_connections`).
    service_caps: ServiceCaps<ServiceKey>,
    /// The runtime the helpers' connection tasks (FTP) run on.
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("cfg", &self.cfg).field("connections", &self.conns.len()).finish()
    }
}

impl Engine {
    pub fn new(cfg: EngineConfig, clock: Clock, limit: Arc<ConnLimit>) -> Arc<Self> {
        let kernel = match cfg.relay {
            RelayMode::Splice => None,
            RelayMode::Sockmap { capacity } => match KernelRelay::load(capacity) {
                Ok(k) => {
                    info!(capacity, "kernel relay (sockmap) loaded: long-lived connections are relayed in the kernel");
                    Some(k)
                }
                Err(e) => {
                    warn!(error = %e, "kernel relay (sockmap) unavailable: rvsd relays every connection with splice");
                    None
                }
            },
        };
        let engine = Arc::new_cyclic(|weak| Self {
            cfg,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            routes: ArcSwap::from_pointee(HashMap::new()),
            listeners: ListenerSet::new(cfg.backlog),
            loops: (0..cfg.loops.max(1))
                .filter_map(|n| match event_loop::spawn(weak.clone(), n) {
                    Ok(l) => Some(l),
                    Err(e) => {
                        error!(error = %e, "cannot start a TCP event loop");
                        None
                    }
                })
                .collect(),
            udp: ListenerSet::new(cfg.backlog),
            conns: ConnTable::default(),
            clock,
            stopped: Default::default(),
            draining: Default::default(),
            on_connect_failure: ConnectFailures::default(),
            kernel,
            limit,
            service_caps: ServiceCaps::default(),
            runtime: tokio::runtime::Handle::current(),
        });
        tokio::spawn(sweep_idle(Arc::downgrade(&engine)));
        engine
    }

    /// Binds the listeners and UDP sockets of the services in `keys` that have none yet,
    /// keeping nothing: what [`Self::adopt`] takes when the change is published. All or nothing.
    pub(crate) fn bind_missing(
        &self,
        keys: impl IntoIterator<Item = ServiceAddr>,
    ) -> Result<BoundSockets, ListenError> {
        let (udp, tcp): (Vec<ServiceAddr>, Vec<ServiceAddr>) =
            keys.into_iter().partition(|k| k.protocol == Protocol::Udp);
        Ok(BoundSockets { tcp: self.listeners.bind_missing(tcp)?, udp: self.udp.bind_missing(udp)? })
    }

    /// Publishes a new snapshot with the sockets prepared for it: starts accepting on the
    /// services it adds, closes the listeners of services it no longer has (their connections
    /// drain), and closes connections of removed real servers when `expire_nodest_conn` is set.
    pub(crate) fn publish(
        self: &Arc<Self>,
        bound: BoundSockets,
        listeners: Vec<(ServiceAddr, ServiceKey)>,
        snapshot: Arc<Snapshot>,
        applied: &Applied,
    ) {
        let expire_nodest = snapshot.options.expire_nodest_conn;
        self.service_caps.publish(
            snapshot
                .services
                .iter()
                .filter(|(k, _)| k.protocol() != Some(Protocol::Udp))
                .map(|(k, s)| (*k, s.settings().max_connections)),
        );
        let routes = listeners.iter().filter_map(|(l, k)| snapshot.services.get(k).map(|s| (*l, s.clone()))).collect();
        let of: HashMap<ServiceAddr, ServiceKey> = listeners.iter().copied().collect();
        let keys: Vec<ServiceAddr> = listeners.iter().map(|(l, _)| *l).collect();
        self.routes.store(Arc::new(routes));
        self.snapshot.store(snapshot);
        self.listeners.adopt(bound.tcp);
        self.udp.adopt(bound.udp);
        for (key, listener, stop) in self.listeners.retain(&keys, "virtual service") {
            info!(service = %key, "accepting");
            let cap = self.service_caps.get(&of.get(&key).copied().unwrap_or(key.into()));
            let listener = Arc::new(listener);
            for l in &self.loops {
                l.send(Cmd::Listen { key, listener: listener.clone(), cap: cap.clone() });
            }
            let engine = Arc::downgrade(self);
            tokio::spawn(async move {
                stop.cancelled().await;
                if let Some(engine) = engine.upgrade() {
                    engine.loops.iter().for_each(|l| {
                        l.send(Cmd::Unlisten { key });
                    });
                }
            });
        }
        for (key, socket, stop) in self.udp.retain(&keys, "virtual service") {
            info!(service = %key, "receiving");
            tokio::spawn(crate::udp::serve(self.clone(), key, socket, stop));
        }
        if expire_nodest {
            for dest in &applied.removed_servers {
                let n = self.close_connections_to(dest);
                if n > 0 {
                    info!(dest = %dest.addr, closed = n, "expire_nodest_conn: closed connections of a deleted real server");
                }
            }
        }
    }

    /// Serves an FTP control connection an event loop accepted in a task of its own.
    pub(crate) fn serve_ftp(self: &Arc<Self>, start: crate::ftp_session::FtpStart) {
        self.runtime.spawn(crate::ftp_session::serve(self.clone(), start));
    }

    /// Hands a related connection (an FTP data connection, both sides up) to an event loop,
    /// which relays it as any other; its entry leaves the table if no loop takes it.
    pub(crate) fn relay_related(&self, r: event_loop::Related) {
        let id = r.entry.id;
        let taken = match self.loops.get(id as usize % self.loops.len().max(1)) {
            Some(l) => l.send(Cmd::Relate(Box::new(r))),
            None => false,
        };
        if !taken {
            self.conns.remove(id);
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The virtual service that listening address `key` serves.
    pub(crate) fn service(&self, key: &ServiceAddr) -> Option<Arc<VirtualService>> {
        self.routes.load().get(key).cloned()
    }

    /// The published snapshot, borrowed for a moment (no reference count taken).
    pub(crate) fn snapshot_ref(&self) -> Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.cfg.connect_timeout
    }

    pub(crate) fn connect_retries(&self) -> u32 {
        self.cfg.connect_retries
    }

    /// Whether the shutdown deadline has passed: what is left is closed, nothing new is taken.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Tells the observer of failed connects (passive health checking) of one.
    pub(crate) fn connect_failed(&self, key: ServiceAddr, dest: SocketAddr, reason: &str) {
        // The service's own key: a firewall mark's listening addresses are many.
        let service = self.service(&key).map_or(key.into(), |s| s.key);
        self.on_connect_failure.report(&FailedConnect { service, pool: None, server: dest, reason });
    }

    /// Sets the observer of failed connects (once; later calls are ignored).
    pub fn observe_connect_failures(&self, observer: ConnectFailureObserver) {
        self.on_connect_failure.observe(observer);
    }

    /// Closes every connection to `dest` now. Returns how many.
    pub fn close_connections_to(&self, dest: &Arc<rvs_core::RealServer>) -> usize {
        self.conns.close_dest(dest)
    }

    /// The kernel relay, when it is loaded.
    pub fn kernel_relay(&self) -> Option<&Arc<KernelRelay>> {
        self.kernel.as_ref()
    }

    /// Whether a shutdown is draining the connections.
    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The director's cap on client connections.
    pub fn connection_limit(&self) -> &Arc<ConnLimit> {
        &self.limit
    }

    /// How many connections the engine holds now.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Every proxied connection now.
    pub fn connections(&self) -> Vec<ConnInfo> {
        let now = self.clock.now_ms();
        let t = self.snapshot.load().timeouts;
        self.conns
            .entries()
            .into_iter()
            .map(|e| {
                let state = e.state();
                let timeout_ms = timeout_ms(e.protocol, state, &t, self.cfg.connect_timeout);
                ConnInfo {
                    protocol: e.protocol,
                    client: e.client,
                    virtual_addr: e.virtual_addr,
                    dest: e.dest().map(|d| d.addr),
                    state,
                    sctp_state: None,
                    expires_ms: (e.last_activity_ms() + timeout_ms).saturating_sub(now),
                }
            })
            .collect()
    }

    /// Stops accepting on every service, waits up to `deadline` for connections to finish,
    /// then closes what is left. Returns how many were closed at the deadline.
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        self.draining.store(true, std::sync::atomic::Ordering::Relaxed);
        // Only the listeners stop now; the connections drain until the deadline.
        self.listeners.stop_all();
        self.udp.stop_all();
        let until = tokio::time::Instant::now() + deadline;
        while !self.conns.is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.conns.len();
        // A connection is either in the table now (and closed here) or sees `stopped` after
        // entering it (and closes itself).
        self.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        self.conns.close_all();
        left
    }
}

fn timeout_ms(protocol: Protocol, state: ConnState, t: &rvs_core::Timeouts, connect: Duration) -> u64 {
    if protocol == Protocol::Udp {
        return u64::from(t.udp_secs) * 1000;
    }
    match state {
        ConnState::Opening => connect.as_millis() as u64,
        ConnState::Established => u64::from(t.tcp_secs) * 1000,
        ConnState::Closing => u64::from(t.tcpfin_secs) * 1000,
    }
}

/// Closes connections idle for longer than their state's timeout, once a second, with the
/// timeouts of the current snapshot (so `--set` applies to existing connections at once).
async fn sweep_idle(engine: std::sync::Weak<Engine>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(engine) = engine.upgrade() else { return };
        let now = engine.clock.now_ms();
        let t = engine.snapshot.load().timeouts;
        for e in engine.conns.entries() {
            if e.protocol == Protocol::Tcp && e.state() == ConnState::Opening {
                continue; // the connect timeout covers it
            }
            if now.saturating_sub(e.last_activity_ms())
                >= timeout_ms(e.protocol, e.state(), &t, engine.cfg.connect_timeout)
            {
                idle_close(&e);
            }
        }
    }
}

fn idle_close(e: &ConnEntry) {
    debug!(client = %e.client, "idle timeout");
    e.cancel.cancel();
}
