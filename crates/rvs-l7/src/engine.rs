//! The L7 engine: one listener per L7 virtual service, the accept loop and TLS handshake,
//! the published snapshot (arc-swap; the data plane takes no lock on shared tables per
//! request), health and counter calls for the control plane, idle-connection expiry and the
//! drain on shutdown. A change is prepared (planned, TLS built, listeners bound) then
//! published whole, through the data-plane interface (`plane.rs`).

use std::collections::{BTreeMap, HashMap};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rvs_core::{ServiceAddr, VirtualService};
use rvs_dataplane::accept;
use rvs_dataplane::connect_failures::{ConnectFailureObserver, ConnectFailures, FailedConnect};
use rvs_dataplane::{Clock, ConnLimit, ConnSlot, ConnSlots, ListenerSet};
use rvs_dataplane::{PlaneError, PlaneErrorKind};
use rvs_model::{DirectorModel, PoolServer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::control::{BuildParams, Plan, ServiceControl};
use crate::error::L7Error;
use crate::http2;
use crate::runtime::ServiceRuntime;
use crate::session;
use crate::sessions::SessionTable;
use crate::stats::L7ServiceStats;
use rvs_model::http::ConfigError;
use rvs_model::http::L7ServiceConfig;

/// Knobs of the L7 engine.
#[derive(Debug, Clone, Copy)]
pub struct L7EngineConfig {
    /// Listen backlog of each L7 virtual service.
    pub backlog: u32,
    /// Bodies with a known length of at least this many bytes move by splice(2) between plain
    /// sockets (not through TLS).
    pub splice_threshold: u64,
    /// Idle connections to real servers are closed after this.
    pub upstream_idle_timeout: Duration,
    /// Most idle connections kept per real server of a pool.
    pub max_idle_per_server: usize,
    /// Keys the persistence cookie ids; the same seed gives the same cookies after a restart.
    pub seed: u64,
}

impl Default for L7EngineConfig {
    fn default() -> Self {
        Self {
            backlog: 4096,
            splice_threshold: 64 * 1024,
            upstream_idle_timeout: Duration::from_secs(15),
            max_idle_per_server: 256,
            seed: 0,
        }
    }
}

#[derive(Debug)]
pub struct L7Engine {
    cfg: L7EngineConfig,
    pub(crate) clock: Clock,
    snapshot: ArcSwap<HashMap<ServiceAddr, Arc<ServiceRuntime>>>,
    generation: AtomicU64,
    control: Mutex<BTreeMap<ServiceAddr, ServiceControl>>,
    /// The model of the last publication.
    model: Mutex<Arc<DirectorModel>>,
    listeners: ListenerSet,
    /// Set when the engine stops taking requests (shutdown): idle clients close, responses
    /// say `Connection: close`. A plain flag: the data plane reads it without a lock.
    stopping: AtomicBool,
    sessions: SessionTable,
    /// Told of every failed connect to a pool's real server (passive health checking).
    on_connect_failure: ConnectFailures,
    /// The director's cap on client connections (shared with the L4 engine).
    limit: Arc<ConnLimit>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl L7Engine {
    /// A new engine with no services; call from within a tokio runtime.
    pub fn new(cfg: L7EngineConfig, clock: Clock, limit: Arc<ConnLimit>) -> Arc<Self> {
        let engine = Arc::new(Self {
            cfg,
            clock,
            snapshot: ArcSwap::from_pointee(HashMap::new()),
            generation: AtomicU64::new(0),
            control: Mutex::default(),
            model: Mutex::default(),
            listeners: ListenerSet::new(cfg.backlog),
            stopping: AtomicBool::new(false),
            sessions: SessionTable::default(),
            on_connect_failure: ConnectFailures::default(),
            limit,
        });
        tokio::spawn(maintain(Arc::downgrade(&engine)));
        engine
    }

    /// Sets the observer of failed connects to pools' real servers (once; later calls are
    /// ignored).
    pub fn observe_connect_failures(&self, observer: ConnectFailureObserver) {
        self.on_connect_failure.observe(observer);
    }

    /// A connect to `dest` in `pool` of `service` failed: tell the observer.
    pub(crate) fn connect_failed(&self, service: ServiceAddr, pool: &str, dest: SocketAddr, reason: &str) {
        self.on_connect_failure.report(&FailedConnect {
            service: service.into(),
            pool: Some(pool),
            server: dest,
            reason,
        });
    }

    fn params(&self) -> BuildParams {
        BuildParams {
            seed: self.cfg.seed,
            max_idle_per_server: self.cfg.max_idle_per_server,
            splice_threshold: self.cfg.splice_threshold,
        }
    }

    /// Plans the http services of `next` against what runs (pool tables, TLS, listeners),
    /// changing nothing anyone sees: the data plane's `prepare`.
    pub(crate) fn prepare_services(&self, next: &DirectorModel) -> Result<PreparedServices, PlaneError> {
        let control = lock(&self.control);
        check_unique(&next.http).map_err(|e| PlaneError::new(PlaneErrorKind::Invalid, e.key().map(Into::into), e))?;
        let mut plans = Vec::with_capacity(next.http.len());
        for cfg in &next.http {
            let err = |source| {
                let e = L7Error::Config { key: cfg.key, source: Box::new(source) };
                PlaneError::new(PlaneErrorKind::Invalid, Some(cfg.key.into()), e)
            };
            let verdict = |pool: &str, server| {
                next.pool_health.get(&PoolServer { service: cfg.key, pool: pool.to_string(), server }).copied()
            };
            let plan = match control.get(&cfg.key) {
                Some(c) => c.plan(cfg, verdict).map_err(err)?,
                None => ServiceControl::new(self.cfg.seed).plan(cfg, verdict).map_err(err)?,
            };
            let tls = match &cfg.tls {
                Some(t) => Some(crate::tls::server_config(t).map_err(err)?),
                None => None,
            };
            plans.push((cfg.clone(), plan, tls));
        }
        drop(control);
        let bound = self
            .listeners
            .bind_missing(next.http.iter().map(|s| s.key))
            .map_err(|e| PlaneError::new(PlaneErrorKind::Listen, Some(e.key.into()), L7Error::Listen(e)))?;
        Ok(PreparedServices { plans, bound })
    }

    /// Makes prepared services the L7 services: new ones start listening, changed ones take
    /// effect for the next request (of existing connections too), missing ones stop listening
    /// and their connections finish their current request.
    pub(crate) fn publish_services(self: &Arc<Self>, prepared: PreparedServices, model: Arc<DirectorModel>) {
        let mut control = lock(&self.control);
        let keys: Vec<ServiceAddr> = prepared.plans.iter().map(|(cfg, _, _)| cfg.key).collect();
        let mut map = HashMap::with_capacity(keys.len());
        for (cfg, plan, tls) in prepared.plans {
            let key = cfg.key;
            let c = control.entry(key).or_insert_with(|| ServiceControl::new(self.cfg.seed));
            let rt = c.commit(plan, cfg, tls, self.params());
            map.insert(key, Arc::new(rt));
        }
        control.retain(|k, c| {
            let keep = keys.contains(k);
            if !keep {
                c.clear_idle();
            }
            keep
        });
        drop(control);
        self.snapshot.store(Arc::new(map));
        self.generation.fetch_add(1, Ordering::Release);
        *lock(&self.model) = model;
        self.listeners.adopt(prepared.bound);
        for (key, listener, stop) in self.listeners.retain(&keys, "L7 virtual service") {
            info!(service = %key, "L7 accepting");
            tokio::spawn(accept_loop(self.clone(), key, listener, stop));
        }
    }

    /// The model as last published (its http services are the ones running).
    pub fn model(&self) -> Arc<DirectorModel> {
        lock(&self.model).clone()
    }

    /// The L7 services as last published.
    pub fn services(&self) -> Vec<L7ServiceConfig> {
        self.model().http.clone()
    }

    /// The rvs-core virtual service that schedules `pool` (its real servers, their state and
    /// counters).
    pub fn pool_service(&self, key: &ServiceAddr, pool: &str) -> Option<Arc<VirtualService>> {
        lock(&self.control).get(key).and_then(|c| c.pool_service(pool))
    }

    /// Zeroes the counters of one L7 service (rules, pools, real servers) or of all.
    pub fn zero(&self, key: Option<&ServiceAddr>) {
        let control = lock(&self.control);
        for (k, c) in control.iter() {
            if key.is_none_or(|x| x == k) {
                c.zero();
            }
        }
    }

    /// Counters of every L7 service.
    pub fn stats(&self) -> Vec<L7ServiceStats> {
        let snap = self.snapshot.load();
        let control = lock(&self.control);
        control.iter().filter_map(|(k, c)| snap.get(k).map(|rt| c.stats(rt))).collect()
    }

    /// Client connections open now, over all L7 services.
    pub fn connection_count(&self) -> usize {
        self.sessions.len()
    }

    /// Stops accepting, closes idle client connections, waits up to `deadline` for requests in
    /// flight, then closes what is left. Returns how many connections were closed at the deadline.
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        self.stopping.store(true, Ordering::Relaxed);
        self.listeners.stop_all();
        let until = tokio::time::Instant::now() + deadline;
        while self.connection_count() > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.sessions.abort_all();
        for c in lock(&self.control).values() {
            c.clear_idle();
        }
        left
    }

    /// A place under the director's connection cap for one more exchange, if there is one now.
    pub(crate) fn try_connection_slot(&self) -> Option<ConnSlot> {
        self.limit.try_acquire()
    }

    /// The engine is shutting down.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn service(&self, key: &ServiceAddr) -> Option<Arc<ServiceRuntime>> {
        self.snapshot.load().get(key).cloned()
    }
}

fn check_unique(services: &[L7ServiceConfig]) -> Result<(), L7Error> {
    for (i, s) in services.iter().enumerate() {
        if services[..i].iter().any(|o| o.key == s.key) {
            return Err(L7Error::Config { key: s.key, source: Box::new(ConfigError::DuplicateService(s.key)) });
        }
    }
    Ok(())
}

/// What a change needs that `prepare` made: each service's planned pool tables and TLS
/// configuration, and the listeners of the new services (bound, not accepting).
pub(crate) struct PreparedServices {
    plans: Vec<(L7ServiceConfig, Plan, Option<Arc<rustls::ServerConfig>>)>,
    bound: Vec<(ServiceAddr, TcpListener)>,
}

async fn accept_loop(engine: Arc<L7Engine>, key: ServiceAddr, listener: TcpListener, stop: CancellationToken) {
    // The service's cap is kept across publishes: the one published now stays its cap.
    let Some(service_cap) = engine.service(&key).map(|s| s.cap.clone()) else { return };
    accept::accept_loop(key, listener, stop, &service_cap, &engine.limit, |stream, peer, places| {
        let e = engine.clone();
        engine.sessions.spawn(move |id| serve(e, key, stream, peer, id, places));
    })
    .await;
}

/// One client connection: the TLS handshake when the service terminates TLS, then the session
/// (HTTP/2 when the client chose `h2` by ALPN).
async fn serve(
    engine: Arc<L7Engine>,
    key: ServiceAddr,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    _places: ConnSlots,
) {
    let Some(svc) = engine.service(&key) else {
        engine.sessions.remove(id);
        return;
    };
    // TCP options: inherited from the listener (rvs_dataplane::tcp_options). The local address is
    // the service's own, unless it listens on a wildcard address: no getsockname otherwise.
    let local = if key.addr.ip().is_unspecified() { stream.local_addr().unwrap_or(key.addr) } else { key.addr };
    // Leaves the session table also when the task is aborted at the shutdown deadline (the
    // places under the caps go with the task's state).
    struct Done(Arc<L7Engine>, u64);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.sessions.remove(self.1);
        }
    }
    let _done = Done(engine.clone(), id);
    match svc.tls.clone() {
        None => session::run(engine.clone(), svc, stream, peer, local, false).await,
        Some(cfg) => {
            let acceptor = TlsAcceptor::from(cfg);
            match tokio::time::timeout(svc.timeouts.header_read, acceptor.accept(stream)).await {
                Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                    http2::serve(engine.clone(), svc, tls, peer, local).await
                }
                Ok(Ok(tls)) => session::run(engine.clone(), svc, tls, peer, local, true).await,
                Ok(Err(e)) => debug!(service = %key, client = %peer, error = %e, "TLS handshake failed"),
                Err(_) => debug!(service = %key, client = %peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Once a second: expire idle upstream connections; every two: sample rates, purge templates.
async fn maintain(engine: Weak<L7Engine>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let Some(engine) = engine.upgrade() else { return };
        let cutoff = Instant::now().checked_sub(engine.cfg.upstream_idle_timeout);
        let now_ms = engine.clock.now_ms();
        let control = lock(&engine.control);
        for c in control.values() {
            if let Some(cutoff) = cutoff {
                c.expire_idle(cutoff);
            }
            if n.is_multiple_of(2) {
                c.tick(now_ms);
            }
        }
        n += 1;
    }
}
