//! The packet engine as a data plane: `prepare` plans the packet services' slots and map entries
//! (refusing what the maps cannot hold), `publish` writes them, a scheduling thread serves the
//! first packets of new flows, and a sweep reads the kernel's connection table and counters
//! back into the core's accounting once a second.
//!
//! With a pin directory ([`PacketSettings::pin_dir`]) the maps and the attachments are pinned
//! in a bpf filesystem and outlive rvsd: a stopped rvsd leaves the program forwarding the flows
//! it knows (first packets of new flows are dropped until an rvsd runs again), and the next one
//! takes the maps over, replaces the program on the pinned links atomically, rebuilds its slots
//! from the maps ([`Assignment::from_maps`]) and, after its first publication, adopts every
//! flow of the kernel's table into the core's accounting ([`VirtualService::adopt`]).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use rvs_bpf::tc_check::MARK_BASE;
use rvs_bpf::xdp::{now_ticks, Lasting, PacketProgram, PinnedState, XdpAttach, XdpError, XdpMode};
use rvs_bpf::xdp_maps as maps;
use rvs_core::{RealServer, ServiceKey, VirtualService};
use rvs_dataplane::clock::Clock;
use rvs_dataplane::connect_failures::ConnectFailureObserver;
use rvs_dataplane::plane::{Drained, PacketReport};
use rvs_dataplane::{ConnInfo, DataPlane, PlaneError, PlaneErrorKind, PlaneReport, Prepared, Publication};
use rvs_model::health::{CheckPath, CheckPaths, ViaVip};
use rvs_model::DirectorModel;

use crate::check_route::{self, CheckRoute};
use crate::flows::{Flow, Flows, Seen};
use crate::layout::{self, Assignment, Plan};
use crate::new_flows::{Scheduler, SchedulingCounters};
use crate::sync::SyncQueue;

/// How often the sweep runs (each flow is looked at only when due).
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
/// Milliseconds per tick of the program's clock (`bpf_ktime_get_ns() >> 20`).
pub(crate) const MS_PER_TICK: f64 = 1.048_576;
/// A finding of [`check_route::reply_filtered`] and when it was made.
type ReplyFilter = (std::time::Instant, Option<String>);

/// How long a finding of [`check_route::reply_filtered`] is kept.
const REPLY_FILTER_TTL: Duration = Duration::from_secs(60);
/// How often flows taken over from a previous rvsd whose real server is gone are looked at.
const ORPHAN_CHECK_MS: u64 = 5_000;

/// Where the engine attaches and how big its connection table is (`[packet_engine]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketSettings {
    pub interfaces: Vec<String>,
    pub attach: XdpAttach,
    pub connections: u32,
    /// Where the maps and attachments are pinned (a directory of a bpf filesystem): they
    /// outlive rvsd, and the next one takes them over. `None`: a private instance, detached
    /// with its flows when the engine goes.
    pub pin_dir: Option<PathBuf>,
}

/// Why the packet engine did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Xdp(#[from] XdpError),
    #[error("the packet engine's {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
}

/// What the scheduling thread and the sweep read of the last publication.
#[derive(Debug, Default)]
pub struct Published {
    by_id: HashMap<u32, Arc<VirtualService>>,
    /// The firewall marks, to tell which service a packet's address is for.
    marks: std::collections::BTreeMap<rvs_core::Mark, rvs_core::MarkDef>,
    pub assignment: Assignment,
    pub expire_quiescent_template: bool,
    pub(crate) config: maps::Config,
}

impl Published {
    /// The virtual service in slot `id`.
    pub fn service(&self, id: u32) -> Option<&Arc<VirtualService>> {
        self.by_id.get(&id)
    }

    /// The packet engine's service a packet of `protocol` to `dest` is for, and its slot.
    pub fn service_for(&self, protocol: rvs_core::Protocol, dest: SocketAddr) -> Option<(ServiceKey, u32)> {
        let key = rvs_core::fwmark::classify(&self.marks, protocol, dest, |k| self.assignment.service_id(k).is_some())?;
        self.assignment.service_id(&key).map(|id| (key, id))
    }

    /// The timeout of a flow in kernel state `state`, in milliseconds.
    pub(crate) fn timeout_ms(&self, state: u8) -> u64 {
        u64::from(self.config.timeout_ms.get(usize::from(state)).copied().unwrap_or(0))
    }
}

/// The XDP program and what rvsd keeps beside it.
pub(crate) struct Running {
    pub(crate) program: Arc<PacketProgram>,
    attached: Vec<(String, XdpMode)>,
    capacity: u32,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The road of the checks through the VIP, or why there is none; taken down on shutdown.
    checks: Mutex<Result<CheckRoute, String>>,
}

/// The packet engine.
pub struct PacketEngine {
    pub(crate) running: Option<Running>,
    pub(crate) published: Arc<ArcSwap<Published>>,
    /// The slots as last published; `prepare` plans from it, the sweep releases drained ones.
    assignment: Mutex<Assignment>,
    pub(crate) flows: Arc<Flows>,
    counters: Arc<SchedulingCounters>,
    /// The flow changes connection sync is to send (when it runs as master).
    pub(crate) sync: Arc<SyncQueue>,
    /// The last per-slot counter readings, for the deltas added to the core's counters.
    read: Mutex<HashMap<u32, maps::DestCounters>>,
    /// Packet services in the table, attached or not.
    packet_services: std::sync::atomic::AtomicUsize,
    pub(crate) clock: Clock,
    stop: Arc<AtomicBool>,
    /// The maps were taken over from a previous rvsd: adopt their flows at the next publish.
    adopt_pending: AtomicBool,
    /// Flows taken over whose real server is no longer in the model (key -> slot): their slot
    /// stays retired while one of them lives in the kernel's table.
    orphans: Mutex<HashMap<maps::ConnKey, u32>>,
    orphans_checked_ms: std::sync::atomic::AtomicU64,
    /// Flows taken over from a previous rvsd at start (adopted into the accounting).
    taken_over: std::sync::atomic::AtomicUsize,
    /// Whether reverse-path filtering drops the replies of a check through a VIP, by (VIP,
    /// real server), as last found and when.
    reply_filters: Mutex<HashMap<(IpAddr, IpAddr), ReplyFilter>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The director's address the kernel would send from to reach `to`: a connected UDP socket
/// asks the routing table without sending anything.
fn route_source(to: IpAddr) -> std::io::Result<IpAddr> {
    let any: SocketAddr = if to.is_ipv4() { "0.0.0.0:0".parse() } else { "[::]:0".parse() }.expect("an address");
    let s = UdpSocket::bind(any)?;
    s.connect(SocketAddr::new(to, 9))?;
    Ok(s.local_addr()?.ip())
}

/// Whether `ip` is an address of this director: the kernel's route to it then starts from it.
fn is_local(ip: IpAddr) -> bool {
    route_source(ip).is_ok_and(|src| src == ip)
}

impl PacketEngine {
    /// An engine with no interface: it accepts packet services (as IPVS accepts rules before
    /// traffic arrives) and reports that they are not served.
    pub fn detached(clock: Clock) -> Arc<Self> {
        Arc::new(Self::new(None, clock))
    }

    fn new(running: Option<Running>, clock: Clock) -> Self {
        Self {
            running,
            published: Arc::new(ArcSwap::default()),
            assignment: Mutex::new(Assignment::default()),
            flows: Arc::new(Flows::default()),
            counters: Arc::new(SchedulingCounters::default()),
            sync: Arc::new(SyncQueue::default()),
            read: Mutex::new(HashMap::new()),
            packet_services: Default::default(),
            clock,
            stop: Arc::new(AtomicBool::new(false)),
            adopt_pending: AtomicBool::new(false),
            taken_over: Default::default(),
            orphans: Mutex::new(HashMap::new()),
            orphans_checked_ms: Default::default(),
            reply_filters: Mutex::new(HashMap::new()),
        }
    }

    /// Loads the program, attaches it to every interface of `settings` and starts the
    /// scheduling thread and the sweep.
    pub fn start(settings: &PacketSettings, clock: Clock) -> Result<Arc<Self>, StartError> {
        let (mut program, restored) = match &settings.pin_dir {
            None => (PacketProgram::load(settings.connections)?, false),
            Some(dir) => match PacketProgram::load_pinned(settings.connections, dir) {
                Ok((program, state)) => {
                    let dir = dir.display();
                    match &state {
                        PinnedState::Fresh => tracing::info!("packet engine: maps pinned in {dir}"),
                        PinnedState::Reused => tracing::info!(
                            "packet engine: taking over the maps pinned in {dir} by a previous rvsd: its flows go on"
                        ),
                        PinnedState::Reset(why) => tracing::error!(
                            "packet engine: the maps pinned in {dir} do not fit this rvsd ({why}): unpinned them and \
                             starting fresh; the flows they held are lost"
                        ),
                    }
                    (program, state == PinnedState::Reused)
                }
                // No bpf filesystem to pin in (a container without one, say): the engine still
                // runs, as before pinning existed.
                Err(e @ (XdpError::Pins(_) | XdpError::Io { .. })) => {
                    tracing::warn!(
                        "packet engine: cannot pin in {} ({e}): running unpinned, its flows end with this rvsd",
                        dir.display()
                    );
                    (PacketProgram::load(settings.connections)?, false)
                }
                Err(e) => return Err(e.into()),
            },
        };
        let mut attached = Vec::new();
        for name in &settings.interfaces {
            let mode = if program.pin_dir().is_some() {
                match program.attach_lasting(name, settings.attach)? {
                    Lasting::Attached(mode) => mode,
                    Lasting::Replaced(mode) => {
                        tracing::info!(interface = %name, "packet engine: replaced the previous rvsd's program on its pinned link");
                        mode
                    }
                    Lasting::Reattached { mode, why } => {
                        tracing::warn!(interface = %name, "packet engine: attached anew ({why})");
                        mode
                    }
                }
            } else {
                program.attach(name, settings.attach)?
            };
            tracing::info!(interface = %name, mode = ?mode, "packet engine attached");
            for family in ["ipv4", "ipv6"] {
                let path = format!("/proc/sys/net/{family}/conf/{name}/forwarding");
                if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "0") {
                    tracing::error!(
                        interface = %name,
                        "{family} forwarding is off on {name}: the kernel answers the packet engine's route \
                         lookups only where it is on, so its {family} packets are dropped; \
                         sysctl -w net.{family}.conf.{name}.forwarding=1"
                    );
                }
            }
            attached.push((name.clone(), mode));
        }
        for name in program.detach_lasting_except(&settings.interfaces)? {
            tracing::info!(interface = %name, "packet engine: detached from an interface the configuration no longer names");
        }
        let ring = program.take_newflows().ok_or(XdpError::Missing("the new-flow ring buffer"))?;
        let restored = restored.then(|| {
            let assignment = Assignment::from_maps(
                &program.services(),
                &|id| program.service_info(id),
                &program.dests(),
                &program.reverse_keys(),
                &program.marks(),
            );
            // Counters count from this rvsd's start: the kernel's totals so far are the baseline.
            let read: HashMap<u32, maps::DestCounters> =
                assignment.dest_ids().map(|(id, _)| (id, program.dest_counters(id))).collect();
            (assignment, read)
        });
        let checks = CheckRoute::install().map_err(|e| {
            tracing::error!(
                "packet engine: health checks of gate and tunnel real servers cannot go through the VIP ({e}): \
                 they check each real server's own address"
            );
            e.to_string()
        });
        let program = Arc::new(program);
        let running = Running {
            program: program.clone(),
            attached,
            capacity: settings.connections,
            threads: Mutex::default(),
            checks: Mutex::new(checks),
        };
        let engine = Arc::new(Self::new(Some(running), clock));
        if let Some((assignment, read)) = restored {
            tracing::info!(
                services = assignment.services_len(),
                real_servers = assignment.dest_ids().count(),
                "packet engine: slots rebuilt from the pinned maps"
            );
            *lock(&engine.assignment) = assignment;
            *lock(&engine.read) = read;
            engine.adopt_pending.store(true, Ordering::Relaxed);
        }
        let scheduler = Scheduler {
            program,
            published: engine.published.clone(),
            flows: engine.flows.clone(),
            counters: engine.counters.clone(),
            sync: engine.sync.clone(),
            clock,
            stop: engine.stop.clone(),
        };
        let sched = std::thread::Builder::new()
            .name("rvs-new-flows".into())
            .spawn(move || scheduler.run(ring))
            .map_err(|e| StartError::Thread("scheduling", e))?;
        let weak = Arc::downgrade(&engine);
        let stop = engine.stop.clone();
        let sweep = std::thread::Builder::new()
            .name("rvs-flow-sweep".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(SWEEP_INTERVAL);
                    match weak.upgrade() {
                        Some(engine) => engine.sweep(),
                        None => break,
                    }
                }
            })
            .map_err(|e| StartError::Thread("sweep", e))?;
        if let Some(r) = &engine.running {
            lock(&r.threads).extend([sched, sweep]);
        }
        Ok(engine)
    }

    /// A binary upgrade: stops scheduling new flows and sweeping (the program stays attached,
    /// the kernel forwards the flows it knows) and unlocks the pin directory, so the next rvsd
    /// takes the maps and links over while this one drains its proxied connections.
    pub fn release_pins(&self) {
        self.stop.store(true, Ordering::Relaxed);
        // The checks' device and routing are the next rvsd's to install: this one's go first
        // (they would take the next one's down with them later).
        if let Some(r) = &self.running {
            *lock(&r.checks) = Err("handed over to the next rvsd".into());
        }
        let threads: Vec<JoinHandle<()>> =
            self.running.iter().flat_map(|r| lock(&r.threads).drain(..).collect::<Vec<_>>()).collect();
        for t in threads {
            let _ = t.join();
        }
        if let Some(r) = &self.running {
            r.program.unlock_pins();
        }
    }

    /// Whether a program is attached.
    pub fn attached(&self) -> bool {
        self.running.as_ref().is_some_and(|r| !r.attached.is_empty())
    }

    /// Reads the kernel's flows and counters back: flows move between opening, established
    /// and closing in the core's accounting, those past their timeout or evicted end, drained
    /// real servers' slots are freed, and packet and byte counts reach the core's counters.
    pub fn sweep(&self) {
        let Some(r) = &self.running else { return };
        let published = self.published.load_full();
        let now_ms = self.clock.now_ms();
        let now = now_ticks();
        for key in self.flows.due(now_ms) {
            let (seen, timeout) = match r.program.conn(&key) {
                None => (Seen::Gone, 0),
                Some(c) => {
                    let idle_ms = (now.wrapping_sub(c.last_seen) as f64 * MS_PER_TICK) as u64;
                    let timeout = u64::from(published.config.timeout_ms.get(c.state as usize).copied().unwrap_or(0));
                    if idle_ms > timeout {
                        let _ = r.program.remove_conn(&key);
                        (Seen::Gone, 0)
                    } else {
                        (Seen::Live { state: c.state, idle_ms }, timeout)
                    }
                }
            };
            if self.flows.observe(&key, seen, timeout, now_ms) {
                self.sync.changed(key);
            }
        }
        self.read_counters(r, &published);
        let orphaned = self.check_orphans(r, &published, now_ms);
        let mut assignment = lock(&self.assignment);
        let drained: Vec<u32> = assignment
            .retired()
            .map(|(id, _)| id)
            .filter(|id| !self.flows.uses(*id) && !orphaned.contains(id))
            .collect();
        for id in drained {
            if let Err(e) = r.program.set_dest(id, &maps::Dest::default()) {
                tracing::warn!("packet engine: clearing real server slot {id}: {e}");
            }
            r.program.zero_dest_counters(id);
            lock(&self.read).remove(&id);
            assignment.release(id);
        }
    }

    /// Forgets the flows taken over without a real server that are gone (or past their
    /// timeout: then deleted) from the kernel's table, every ORPHAN_CHECK_MS; the slots the
    /// others still use.
    fn check_orphans(&self, r: &Running, published: &Published, now_ms: u64) -> HashSet<u32> {
        let mut orphans = lock(&self.orphans);
        if orphans.is_empty() {
            return HashSet::new();
        }
        if now_ms >= self.orphans_checked_ms.load(Ordering::Relaxed) + ORPHAN_CHECK_MS {
            self.orphans_checked_ms.store(now_ms, Ordering::Relaxed);
            let now = now_ticks();
            orphans.retain(|key, id| match r.program.conn(key) {
                Some(c) if c.dest == *id => {
                    let idle_ms = (now.wrapping_sub(c.last_seen) as f64 * MS_PER_TICK) as u64;
                    let timeout = u64::from(published.config.timeout_ms.get(c.state as usize).copied().unwrap_or(0));
                    if idle_ms > timeout {
                        let _ = r.program.remove_conn(key);
                    }
                    idle_ms <= timeout
                }
                _ => false,
            });
        }
        orphans.values().copied().collect()
    }

    /// Takes over the flows of the kernel's table (left by a previous rvsd): each one whose
    /// real server is in the model gets a core binding to it ([`VirtualService::adopt`]); one
    /// whose real server just left the model is left to drain with its retired slot; one whose
    /// slot means nothing now (its real server was deleted before the restart: its packets
    /// were dropped already) is deleted, so that a new real server in that slot never gets it.
    fn adopt(&self, r: &Running) {
        let published = self.published.load_full();
        let by_slot = published.assignment.by_slot();
        let retired: HashSet<u32> = published.assignment.retired().map(|(id, _)| id).collect();
        let now_ms = self.clock.now_ms();
        let (mut adopted, mut draining, mut deleted) = (0usize, 0usize, 0usize);
        let mut orphans = lock(&self.orphans);
        for (key, conn) in r.program.conns() {
            if self.flows.dest_of(&key).is_some() {
                continue; // scheduled by this rvsd already
            }
            let Some(dk) = by_slot.get(&conn.dest) else {
                let _ = r.program.remove_conn(&key);
                deleted += 1;
                continue;
            };
            let binding = (!retired.contains(&conn.dest))
                .then(|| published.assignment.service_id(&dk.service).and_then(|id| published.service(id)))
                .flatten()
                .and_then(|svc| svc.adopt(key.client(), dk.addr, now_ms));
            match binding {
                Some(binding) => {
                    let Some(protocol) = rvs_core::Protocol::from_number(key.proto) else { continue };
                    self.flows.insert(key, Flow { binding, dest_id: conn.dest, protocol }, now_ms);
                    adopted += 1;
                }
                None => {
                    orphans.insert(key, conn.dest);
                    draining += 1;
                }
            }
        }
        self.orphans_checked_ms.store(now_ms, Ordering::Relaxed);
        self.taken_over.store(adopted, Ordering::Relaxed);
        tracing::info!(
            adopted,
            draining,
            deleted,
            "packet engine: took over the flows of the connection table ({adopted} adopted, {draining} to real \
             servers no longer configured, {deleted} to real servers deleted before)"
        );
    }

    fn read_counters(&self, r: &Running, published: &Published) {
        let mut read = lock(&self.read);
        for (id, key) in published.assignment.dest_ids() {
            let now = r.program.dest_counters(id);
            let last = read.insert(id, now).unwrap_or_default();
            let (pin, bin) = (now.packets_in.wrapping_sub(last.packets_in), now.bytes_in.wrapping_sub(last.bytes_in));
            let (pout, bout) =
                (now.packets_out.wrapping_sub(last.packets_out), now.bytes_out.wrapping_sub(last.bytes_out));
            if pin == 0 && pout == 0 {
                continue;
            }
            let Some(svc) = published.assignment.service_id(&key.service).and_then(|sid| published.service(sid)) else {
                continue;
            };
            svc.stats.counters.add_in_packets(pin, bin);
            svc.stats.counters.add_out_packets(pout, bout);
            let dest = svc.dest(key.addr).or_else(|| svc.sorry_server().filter(|s| s.addr == key.addr));
            if let Some(d) = dest {
                d.stats.counters.add_in_packets(pin, bin);
                d.stats.counters.add_out_packets(pout, bout);
            }
        }
    }

    fn expires(&self, r: &Running, key: &maps::ConnKey) -> Option<(u8, u64)> {
        let c = r.program.conn(key)?;
        let published = self.published.load();
        let idle_ms = (now_ticks().wrapping_sub(c.last_seen) as f64 * MS_PER_TICK) as u64;
        let timeout = u64::from(published.config.timeout_ms.get(c.state as usize).copied().unwrap_or(0));
        Some((c.state, timeout.saturating_sub(idle_ms)))
    }

    /// How the check of each gate and tunnel real server of `plan` reaches it through its VIP:
    /// VIP:port with the mark of its slot, from the address the kernel routes it from; or why
    /// not (no engine attached, no check route, a VIP that is an address of this director, no
    /// route to the real server, reverse-path filtering that would drop the replies).
    fn check_paths(&self, plan: &Plan) -> CheckPaths {
        let road: Result<(), String> = match &self.running {
            None => Err("no packet engine is attached ([packet_engine] names no interface)".into()),
            Some(r) => lock(&r.checks).as_ref().map(|_| ()).map_err(|e| format!("no check route: {e}")),
        };
        let mut paths = CheckPaths::new();
        for s in &plan.services {
            // A firewall mark has no one address to check through: its checks go to the real
            // servers themselves.
            let Some(vip) = s.key.addr().map(|a| a.addr) else { continue };
            let local = road.is_ok() && is_local(vip.ip());
            for (dk, id, dest) in &s.dests {
                if dest.method != maps::FWD_GATE && dest.method != maps::FWD_TUNNEL {
                    continue;
                }
                let path = match &road {
                    Err(why) => CheckPath::Unavailable(why.clone()),
                    Ok(()) if local => CheckPath::Unavailable(format!(
                        "the VIP {} is an address of this director: the kernel delivers packets to it locally",
                        vip.ip()
                    )),
                    Ok(()) => match route_source(dk.addr.ip()) {
                        Err(e) => CheckPath::Unavailable(format!("no route to the real server: {e}")),
                        Ok(source) => match self.reply_filtered(vip.ip(), dk.addr.ip()) {
                            Some(why) => CheckPath::Unavailable(why),
                            None => CheckPath::Via(ViaVip { vip, mark: MARK_BASE | id, source }),
                        },
                    },
                };
                paths.insert((s.key, dk.addr), path);
            }
        }
        paths
    }

    /// [`check_route::reply_filtered`], asked again at most once a minute per VIP and real
    /// server (it runs `ip route get`; every change prepares every check path).
    fn reply_filtered(&self, vip: IpAddr, real_server: IpAddr) -> Option<String> {
        let now = std::time::Instant::now();
        let mut cache = lock(&self.reply_filters);
        cache.retain(|_, (at, _)| now.duration_since(*at) < REPLY_FILTER_TTL);
        cache
            .entry((vip, real_server))
            .or_insert_with(|| (now, check_route::reply_filtered(vip, real_server)))
            .1
            .clone()
    }

    /// Writes the check program's path of each gate and tunnel real server of `plan`, and
    /// clears those of the real servers that left.
    fn write_check_paths(&self, r: &Running, plan: &Plan) {
        let checks = lock(&r.checks);
        let Ok(route) = checks.as_ref() else { return };
        for s in &plan.services {
            for (dk, id, dest) in &s.dests {
                let tunnel_src = match dest.method {
                    maps::FWD_GATE => None,
                    maps::FWD_TUNNEL => Some(maps::words_addr(&dest.tunnel_src, maps::addr_words(dk.addr.ip()).1)),
                    _ => continue,
                };
                if let Err(e) = route.set(*id, dk.addr.ip(), tunnel_src) {
                    tracing::error!(dest = %dk.addr, "packet engine: writing the check path: {e}");
                }
            }
        }
        for id in &plan.newly_retired {
            let _ = route.clear(*id);
        }
    }

    /// Writes a plan to the maps. Errors here are the kernel refusing an update of a map the
    /// plan fits in: logged, never half-reported as a refusal.
    fn write(&self, r: &Running, plan: &Plan, next: &Publication) {
        let p = &r.program;
        let log = |what: &str, e: XdpError| tracing::error!("packet engine: writing {what}: {e}");
        let known = lock(&self.assignment).clone();
        if let Err(e) = p.set_config(&plan.config) {
            log("its settings", e);
        }
        for s in &plan.services {
            let runtime = next.services.services.get(&s.key);
            let info = maps::ServiceInfo::new(s.map_key);
            if let Err(e) = p.set_service_info(s.id, &info) {
                log("a service", e);
            }
            for (dk, id, dest) in &s.dests {
                let in_service = runtime.is_some_and(|svc| {
                    svc.dest(dk.addr).is_some() || svc.sorry_server().is_some_and(|x| x.addr == dk.addr)
                });
                let d = dest.with_available(in_service);
                if let Err(e) = p.set_dest(*id, &d) {
                    log("a real server", e);
                }
                if known.dest_id(dk).is_none() {
                    if let Err(e) = crate::neighbour::probe(dk.addr.ip(), None) {
                        tracing::warn!(dest = %dk.addr, "packet engine: resolving the next hop: {e}");
                    }
                }
            }
            if s.by_address {
                if let Err(e) = p.put_service(&s.map_key, &maps::Service { id: s.id, flags: s.flags }) {
                    log("a service", e);
                }
            }
        }
        for (k, v) in &plan.marks {
            if let Err(e) = p.put_mark(k, v) {
                log("a firewall mark", e);
            }
        }
        for k in &plan.removed_marks {
            if let Err(e) = p.remove_mark(k) {
                log("a firewall mark", e);
            }
        }
        for id in &plan.newly_retired {
            if let Err(e) = p.set_dest(*id, &maps::Dest::default()) {
                log("a deleted real server", e);
            }
        }
        for key in plan.removed_services.iter().filter_map(ServiceKey::addr) {
            if let Err(e) = p.remove_service(&maps::ServiceKey::new(key.addr, key.protocol.number())) {
                log("a deleted service", e);
            }
        }
        for (k, v) in &plan.reverse {
            if let Err(e) = p.put_reverse(k, v) {
                log("a masq reply entry", e);
            }
        }
        for k in &plan.removed_reverse {
            if let Err(e) = p.remove_reverse(k) {
                log("a masq reply entry", e);
            }
        }
    }
}

impl DataPlane for PacketEngine {
    fn name(&self) -> &'static str {
        "xdp"
    }

    fn prepare(&self, next: &DirectorModel) -> Result<Prepared, PlaneError> {
        let current = lock(&self.assignment).clone();
        let plan = layout::plan(&current, &next.table, &route_source)
            .map_err(|e| PlaneError::new(PlaneErrorKind::Invalid, e.service(), e))?;
        let paths = self.check_paths(&plan);
        Ok(Prepared::new(plan).with_check_paths(paths))
    }

    fn publish(self: Arc<Self>, prepared: Prepared, next: &Publication) {
        let Some(plan) = prepared.take::<Plan>() else {
            tracing::error!("packet engine: handed another data plane's prepared change; not published");
            return;
        };
        if let Some(r) = &self.running {
            self.write(r, &plan, next);
            self.write_check_paths(r, &plan);
        } else if !plan.services.is_empty() && self.packet_services.load(Ordering::Relaxed) == 0 {
            tracing::warn!(
                services = plan.services.len(),
                "virtual services with gate, masq or tunnel real servers need the packet engine, which is \
                 not attached: name its interfaces in [packet_engine]"
            );
        }
        self.packet_services.store(plan.services.len(), Ordering::Relaxed);
        let by_id = plan
            .services
            .iter()
            .filter_map(|s| next.services.services.get(&s.key).map(|svc| (s.id, svc.clone())))
            .collect();
        self.published.store(Arc::new(Published {
            by_id,
            marks: next.services.marks.clone(),
            assignment: plan.next.clone(),
            expire_quiescent_template: next.services.options.expire_quiescent_template,
            config: plan.config,
        }));
        *lock(&self.assignment) = plan.next;
        if let Some(r) = &self.running {
            if self.adopt_pending.swap(false, Ordering::Relaxed) {
                self.adopt(r);
            }
        }
    }

    fn report(&self) -> PlaneReport {
        let packet = PacketReport {
            services: self.packet_services.load(Ordering::Relaxed),
            pin_dir: self.running.as_ref().and_then(|r| r.program.pin_dir()).map(|d| d.display().to_string()),
            taken_over: self.taken_over.load(Ordering::Relaxed),
            interfaces: self
                .running
                .iter()
                .flat_map(|r| r.attached.iter())
                .map(|(name, mode)| (name.clone(), mode.name()))
                .collect(),
            flows: self.flows.len(),
            capacity: self.running.as_ref().map_or(0, |r| r.capacity),
            table_bytes: self.running.as_ref().and_then(|r| r.program.conn_table_bytes()),
            scheduled: self.counters.scheduled.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
            schedule_ns: self.counters.busy_ns.load(Ordering::Relaxed),
            stats: self
                .running
                .as_ref()
                .map(|r| {
                    let mut stats: Vec<(&'static str, u64)> = maps::STAT_NAMES
                        .iter()
                        .copied()
                        .zip(r.program.stats())
                        .filter(|(n, _)| !n.is_empty())
                        .collect();
                    // The checks through the VIP, as the check program counted them.
                    if let Some(c) = lock(&r.checks).as_ref().ok().and_then(|route| route.counters()) {
                        stats.extend([
                            ("check_sent", c.sent),
                            ("check_unknown", c.unknown),
                            ("check_no_route", c.no_route),
                            ("check_encap_failed", c.encap_failed),
                        ]);
                    }
                    stats
                })
                .unwrap_or_default(),
        };
        PlaneReport { connections: self.flows.len(), packet: Some(packet), ..PlaneReport::default() }
    }

    fn connections(&self) -> Vec<ConnInfo> {
        let Some(r) = &self.running else { return Vec::new() };
        self.flows.list(|k| self.expires(r, k))
    }

    fn close_connections_to(&self, dest: &Arc<RealServer>) -> usize {
        let keys = self.flows.remove_to(dest, self.clock.now_ms());
        if let Some(r) = &self.running {
            for k in &keys {
                let _ = r.program.remove_conn(k);
            }
        }
        keys.len()
    }

    fn observe_connect_failures(&self, _observer: ConnectFailureObserver) {
        // The packet engine never connects: a real server's failures show in its health checks.
    }

    fn shutdown(&self, _deadline: Duration) -> Drained<'_> {
        self.stop.store(true, Ordering::Relaxed);
        // The checks stop with rvsd; the flows (XDP) go on.
        if let Some(r) = &self.running {
            *lock(&r.checks) = Err("rvsd is stopping".into());
        }
        let threads: Vec<JoinHandle<()>> =
            self.running.iter().flat_map(|r| lock(&r.threads).drain(..).collect::<Vec<_>>()).collect();
        for t in threads {
            let _ = t.join();
        }
        let ended = self.flows.clear(self.clock.now_ms());
        Box::pin(async move { ended })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::{ForwardingMethod, Protocol, RealServerSettings, ServiceKey, ServiceModel, ServiceSettings};

    #[test]
    fn without_an_attached_engine_gate_and_tunnel_checks_have_no_path_and_masq_ones_none_to_take() {
        let mut model = DirectorModel::default();
        let key = ServiceKey::new(Protocol::Tcp, "198.18.1.10:80".parse().unwrap());
        let server =
            |addr: &str, method| RealServerSettings { method, ..RealServerSettings::new(addr.parse().unwrap()) };
        let servers = vec![
            server("198.18.0.11:80", ForwardingMethod::Gate),
            server("127.0.0.1:80", ForwardingMethod::Tunnel),
            server("198.18.0.13:8080", ForwardingMethod::Masq),
        ];
        model.table.services.insert(key, ServiceModel { settings: ServiceSettings::default(), servers });
        let engine = PacketEngine::detached(Clock::default());
        let prepared = engine.prepare(&model).unwrap();
        let paths = prepared.check_paths().unwrap();
        assert_eq!(paths.len(), 2, "gate and tunnel, not masq: {paths:?}");
        for rs in ["198.18.0.11:80", "127.0.0.1:80"] {
            match &paths[&(key, rs.parse().unwrap())] {
                CheckPath::Unavailable(why) => assert!(why.contains("no packet engine is attached"), "{why}"),
                other => panic!("{rs}: {other:?}"),
            }
        }
    }
}
