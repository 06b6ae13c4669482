//! A virtual service as the data plane uses it: its current settings and real servers
//! (swapped atomically by the control side), its scheduler and persistence templates, its
//! counters. `schedule` is the IPVS decision for one new connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::conn::Binding;
use crate::forwarding::Engine;
use crate::persistence::{PersistenceEngine, PersistenceTable, Template, TemplateKey};
use crate::real_server::{RealServer, RealServerSettings};
use crate::sched::{self, DestView, SchedRequest, Scheduler};
use crate::service::{ServiceKey, ServiceSettings};
use crate::sip::{self, CallIdError};
use crate::stats::Stats;

#[derive(Debug)]
pub struct VirtualService {
    pub key: ServiceKey,
    settings: ArcSwap<ServiceSettings>,
    dests: ArcSwap<Vec<Arc<RealServer>>>,
    scheduler: Mutex<Box<dyn Scheduler>>,
    templates: Mutex<PersistenceTable>,
    seed: u64,
    /// The sorry server, when the settings name one.
    sorry: ArcSwapOption<RealServer>,
    quorum_lost: AtomicBool,
    /// Datagrams its persistence engine found no key in (dropped, as IPVS drops them).
    pe_dropped: AtomicU64,
    pub stats: Stats,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl VirtualService {
    pub fn new(key: ServiceKey, settings: ServiceSettings, seed: u64) -> Self {
        let scheduler = sched::build(&settings.sched_config(seed), &[]);
        let sorry = sorry_server(&settings, None);
        Self {
            key,
            settings: ArcSwap::from_pointee(settings),
            dests: ArcSwap::from_pointee(Vec::new()),
            scheduler: Mutex::new(scheduler),
            templates: Mutex::new(PersistenceTable::default()),
            seed,
            sorry: ArcSwapOption::from(sorry),
            quorum_lost: AtomicBool::new(false),
            pe_dropped: AtomicU64::new(0),
            stats: Stats::default(),
        }
    }

    pub fn settings(&self) -> Arc<ServiceSettings> {
        self.settings.load_full()
    }

    /// The real servers in service, in the order they were added.
    pub fn dests(&self) -> Arc<Vec<Arc<RealServer>>> {
        self.dests.load_full()
    }

    /// The engine that serves this service now, from its real servers' methods (as
    /// [`crate::ServiceModel::engine`]; the proxy engine while it has none).
    pub fn engine(&self) -> Engine {
        if self.key.packet_engine_only() {
            return Engine::Packet;
        }
        Engine::of(self.dests.load().iter().map(|d| d.settings().method))
    }

    pub fn dest(&self, addr: SocketAddr) -> Option<Arc<RealServer>> {
        self.dests.load().iter().find(|d| d.addr == addr).cloned()
    }

    fn views(dests: &[Arc<RealServer>]) -> Vec<DestView> {
        dests.iter().map(|d| d.view()).collect()
    }

    /// New settings: a new scheduler when the method or its parameters changed; persistence
    /// templates dropped when persistence changed.
    pub(crate) fn set_settings(&self, new: ServiceSettings) {
        let old = self.settings.load_full();
        if old.sched_config(self.seed) != new.sched_config(self.seed) {
            let views = Self::views(&self.dests.load());
            *lock(&self.scheduler) = sched::build(&new.sched_config(self.seed), &views);
        }
        if old.persistence != new.persistence {
            lock(&self.templates).clear();
        }
        self.sorry.store(sorry_server(&new, self.sorry.load_full()));
        self.settings.store(Arc::new(new));
    }

    /// A new list of real servers (added, removed, reordered or reweighted).
    pub(crate) fn set_dests(&self, dests: Vec<Arc<RealServer>>) {
        let views = Self::views(&dests);
        self.dests.store(Arc::new(dests));
        lock(&self.scheduler).update(&views);
    }

    /// The scheduler must see new weights or thresholds.
    pub(crate) fn refresh_scheduler(&self) {
        let views = Self::views(&self.dests.load());
        lock(&self.scheduler).update(&views);
    }

    /// The sorry server, if the service has one.
    pub fn sorry_server(&self) -> Option<Arc<RealServer>> {
        self.sorry.load_full()
    }

    pub fn quorum_lost(&self) -> bool {
        self.quorum_lost.load(Ordering::Relaxed)
    }

    pub(crate) fn set_quorum_lost(&self, lost: bool) {
        self.quorum_lost.store(lost, Ordering::Relaxed);
    }

    /// Persistence templates pointing at `dest` go (it was deleted, or quiesced with
    /// `expire_quiescent_template`).
    pub fn expire_templates_of(&self, dest: SocketAddr) {
        lock(&self.templates).expire_dest(dest);
    }

    /// Drops expired templates.
    pub fn purge_templates(&self, now_ms: u64) -> usize {
        lock(&self.templates).purge(now_ms)
    }

    /// A copy of the live persistence templates: (client network, real server, ms left, conns).
    pub fn templates(&self, now_ms: u64) -> Vec<(Arc<Template>, u64)> {
        lock(&self.templates).iter().map(|t| (t.clone(), t.expires_in_ms(now_ms))).collect()
    }

    /// Schedules one new connection, as IPVS does: a live persistence template wins when its
    /// real server is still in service (and not quiesced, with `expire_quiescent_template`);
    /// otherwise the scheduler picks among the real servers not in `exclude` (those a connect
    /// already failed to). Returns the binding that accounts the connection.
    pub fn schedule(
        self: &Arc<Self>,
        req: &SchedRequest,
        exclude: &[SocketAddr],
        expire_quiescent_template: bool,
    ) -> Option<Binding> {
        self.schedule_keyed(req, None, exclude, expire_quiescent_template)
    }

    /// Schedules one datagram of a UDP service whose every datagram is scheduled (one-packet
    /// scheduling, or a persistence engine): with the `sip` engine its template is the client
    /// network's and the message's Call-ID. A datagram the engine finds no Call-ID in is refused
    /// (and counted in [`VirtualService::pe_dropped`]), as IPVS drops it.
    pub fn schedule_datagram(
        self: &Arc<Self>,
        req: &SchedRequest,
        payload: &[u8],
        expire_quiescent_template: bool,
    ) -> Result<Option<Binding>, CallIdError> {
        let pe_data = match self.settings.load().persistence.and_then(|p| p.engine) {
            Some(PersistenceEngine::Sip) => match sip::call_id(payload) {
                Ok(id) => Some(id),
                Err(e) => {
                    self.pe_dropped.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            },
            None => None,
        };
        Ok(self.schedule_keyed(req, pe_data, &[], expire_quiescent_template))
    }

    /// Whether each datagram is scheduled on its own ([`VirtualService::schedule_datagram`]):
    /// one-packet scheduling or a persistence engine, whose key is in every datagram.
    pub fn schedules_each_datagram(&self) -> bool {
        self.settings.load().schedules_each_datagram()
    }

    /// Datagrams dropped because the persistence engine found no key in them.
    pub fn pe_dropped(&self) -> u64 {
        self.pe_dropped.load(Ordering::Relaxed)
    }

    fn schedule_keyed(
        self: &Arc<Self>,
        req: &SchedRequest,
        pe_data: Option<&[u8]>,
        exclude: &[SocketAddr],
        expire_quiescent_template: bool,
    ) -> Option<Binding> {
        let settings = self.settings.load();
        let dests = self.dests.load();
        if self.quorum_lost() {
            if let Some(sorry) = self.sorry.load_full().filter(|s| !exclude.contains(&s.addr)) {
                return Some(Binding::new(self.clone(), sorry, None, req.now_ms));
            }
        }
        if let Some(p) = settings.persistence {
            let key = TemplateKey { client_net: p.netmask.apply(req.client.ip()), pe_data: pe_data.map(Box::from) };
            let timeout_ms = u64::from(p.timeout_secs) * 1000;
            let mut templates = lock(&self.templates);
            if let Some(t) = templates.lookup(&key, req.now_ms) {
                let usable = dests.iter().find(|d| d.addr == t.dest).filter(|d| {
                    let quiesced_expired = expire_quiescent_template && d.weight() == 0;
                    !exclude.contains(&d.addr) && !quiesced_expired
                });
                match usable {
                    Some(d) => {
                        let tpl = templates.bind(&key, d.addr, req.now_ms, timeout_ms);
                        return Some(Binding::new(self.clone(), d.clone(), Some((tpl, timeout_ms)), req.now_ms));
                    }
                    None => templates.expire(&key),
                }
            }
            let d = self.pick(&dests, req, exclude)?;
            let tpl = templates.bind(&key, d.addr, req.now_ms, timeout_ms);
            return Some(Binding::new(self.clone(), d, Some((tpl, timeout_ms)), req.now_ms));
        }
        let d = self.pick(&dests, req, exclude)?;
        Some(Binding::new(self.clone(), d, None, req.now_ms))
    }

    /// A binding for a connection that exists already, accounted to real server `dest` without
    /// scheduling: a packet-engine flow found in the kernel's table when rvsd starts. With
    /// persistence, the client's template is bound (or renewed) to `dest`, so its next
    /// connections follow. `None` when `dest` is not a real server (or the sorry server) of it.
    pub fn adopt(self: &Arc<Self>, client: SocketAddr, dest: SocketAddr, now_ms: u64) -> Option<Binding> {
        let d = self.dest(dest).or_else(|| self.sorry_server().filter(|s| s.addr == dest))?;
        let template = self.settings.load().persistence.map(|p| {
            let timeout_ms = u64::from(p.timeout_secs) * 1000;
            let key = TemplateKey::net(p.netmask.apply(client.ip()));
            (lock(&self.templates).bind(&key, d.addr, now_ms, timeout_ms), timeout_ms)
        });
        Some(Binding::new(self.clone(), d, template, now_ms))
    }

    /// A binding for a connection related to one already bound (an FTP data connection beside
    /// its control connection), accounted to the same real server `dest` without scheduling,
    /// as IPVS's helpers create theirs: counted in the service's and the real server's
    /// connections and traffic.
    pub fn related(self: &Arc<Self>, dest: Arc<RealServer>, now_ms: u64) -> Binding {
        Binding::new(self.clone(), dest, None, now_ms)
    }

    /// Installs a persistence template learnt from a sync master: `client_net` (with `pe`, the
    /// persistence engine's name and data: a SIP Call-ID) stays on `dest` for `remaining_ms`
    /// more. False when the service is not persistent, has no such real server, or its
    /// persistence engine is not the template's (none for none).
    pub fn restore_template(
        &self,
        client_net: IpAddr,
        pe: Option<(&str, &[u8])>,
        dest: SocketAddr,
        now_ms: u64,
        remaining_ms: u64,
    ) -> bool {
        let Some(p) = self.settings.load().persistence else { return false };
        if self.dest(dest).is_none() || p.engine.map(PersistenceEngine::name) != pe.map(|(name, _)| name) {
            return false;
        }
        let key = TemplateKey { client_net, pe_data: pe.map(|(_, data)| Box::from(data)) };
        lock(&self.templates).restore(&key, dest, now_ms + remaining_ms);
        true
    }

    /// A binding to the sorry server, unless there is none or it is in `exclude`: for a caller
    /// that sends to it when [`VirtualService::schedule`] finds no real server.
    pub fn sorry_binding(self: &Arc<Self>, exclude: &[SocketAddr], now_ms: u64) -> Option<Binding> {
        let sorry = self.sorry.load_full().filter(|s| !exclude.contains(&s.addr))?;
        Some(Binding::new(self.clone(), sorry, None, now_ms))
    }

    fn pick(&self, dests: &[Arc<RealServer>], req: &SchedRequest, exclude: &[SocketAddr]) -> Option<Arc<RealServer>> {
        // The views are built in a buffer reused per thread: no allocation per connection.
        let i = VIEWS.with(|views| {
            let mut views = views.borrow_mut();
            views.clear();
            views.extend(dests.iter().map(|d| {
                let mut v = d.view();
                if exclude.contains(&v.addr) {
                    v.weight = 0;
                }
                v
            }));
            lock(&self.scheduler).schedule(&views, req)
        })?;
        dests.get(i).cloned()
    }
}

thread_local! {
    static VIEWS: std::cell::RefCell<Vec<DestView>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The sorry server's runtime object: the current one when its address is unchanged (its
/// counters stay), a new one when it changed, none when the settings drop it.
fn sorry_server(settings: &ServiceSettings, current: Option<Arc<RealServer>>) -> Option<Arc<RealServer>> {
    let addr = settings.sorry_server?;
    match current {
        Some(c) if c.addr == addr => Some(c),
        _ => Some(Arc::new(RealServer::new(RealServerSettings::new(addr)))),
    }
}
