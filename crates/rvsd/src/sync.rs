//! The sync daemon (IPVS's `--start-daemon`): a master thread that sends the packet engine's
//! flow changes every 100 ms in datagrams of at most 1,400 bytes, and a backup thread that
//! validates what it receives (malformed: counted by reason, dropped) and installs the rest.
//! Full-NAT services' persistence templates (read from the service table once a second, sent
//! when new or moved) are synced too; their connections are not (they end with the director).
//! A template of a persistence engine (`--pe sip`) carries the engine's name and data (the
//! Call-ID), so the backup keeps each call, not only each client, on its real server.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rvs_api::SyncDaemonSpec;
use rvs_core::{ForwardingMethod, Protocol, ServiceKey, TemplateKey};
use rvs_sync::message::{Entry, Message, DEFAULT_PORT, MAX_DATAGRAM, REASONS};
use rvs_sync::socket::{Endpoint, Receiver, Sender};
use rvs_sync::{PeData, TemplateEntry};
use rvs_xdp::PacketEngine;

use crate::director::Director;

/// How often a master sends what changed (sooner when a datagram's worth is waiting).
const SEND_INTERVAL: Duration = Duration::from_millis(100);
/// How often a master looks whether a datagram's worth is waiting.
const LOOK_INTERVAL: Duration = Duration::from_millis(10);
/// IPv4 flow entries a datagram holds: the master sends as soon as that many wait.
const DATAGRAM_ENTRIES: usize =
    (MAX_DATAGRAM - rvs_sync::message::HEADER_LEN) / rvs_sync::message::entry_len(true, false);
/// How often a master sends its whole table again (as IPVS's `sync_refresh_period`): a backup
/// that starts late (a director back from a failure, before it preempts) holds every flow
/// within this time.
const REFRESH_INTERVAL: Duration = Duration::from_secs(2);
/// How often a master reads the full-NAT services' templates.
const TEMPLATE_INTERVAL: Duration = Duration::from_secs(1);

/// Which of the two daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Backup,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "master" => Some(Role::Master),
            "backup" => Some(Role::Backup),
            _ => None,
        }
    }
}

/// Why a daemon did not start.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("state must be master or backup, not {0:?}")]
    State(String),
    #[error("peer {0:?} is not an IP address")]
    Peer(String),
    #[error("a master needs --mcast-interface or --sync-peer")]
    NoTarget,
    #[error("the {0} sync daemon is already running")]
    Running(&'static str),
    #[error("no {0} sync daemon is running")]
    NotRunning(&'static str),
    #[error("the sync socket: {0}")]
    Socket(#[from] std::io::Error),
}

#[derive(Debug, Default)]
struct Counters {
    sent_datagrams: AtomicU64,
    sent_entries: AtomicU64,
    send_errors: AtomicU64,
    received_datagrams: AtomicU64,
    installed_flows: AtomicU64,
    installed_templates: AtomicU64,
    skipped: AtomicU64,
    rejected: [AtomicU64; REASONS.len()],
}

struct Running {
    spec: SyncDaemonSpec,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The master and backup daemons of this director (either, both or none).
pub struct SyncDaemon {
    engine: Arc<PacketEngine>,
    master: Mutex<Option<Running>>,
    backup: Mutex<Option<Running>>,
    counters: Arc<Counters>,
    /// The director, for the service table's templates (set once it exists).
    director: Arc<OnceLock<Weak<Director>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn name(role: Role) -> &'static str {
    match role {
        Role::Master => "master",
        Role::Backup => "backup",
    }
}

impl SyncDaemon {
    pub fn new(engine: Arc<PacketEngine>) -> Self {
        Self {
            engine,
            master: Mutex::default(),
            backup: Mutex::default(),
            counters: Arc::default(),
            director: Arc::default(),
        }
    }

    /// The director whose service table holds the templates.
    pub fn attach(&self, director: &Arc<Director>) {
        let _ = self.director.set(Arc::downgrade(director));
    }

    fn slot(&self, role: Role) -> &Mutex<Option<Running>> {
        match role {
            Role::Master => &self.master,
            Role::Backup => &self.backup,
        }
    }

    /// Starts a daemon as `spec` says.
    pub fn start(&self, spec: &SyncDaemonSpec) -> Result<(), SyncError> {
        let role = Role::parse(&spec.state).ok_or_else(|| SyncError::State(spec.state.clone()))?;
        let peer = match &spec.peer {
            None => None,
            Some(p) => Some(p.parse::<IpAddr>().map_err(|_| SyncError::Peer(p.clone()))?),
        };
        if role == Role::Master && peer.is_none() && spec.mcast_interface.is_none() {
            return Err(SyncError::NoTarget);
        }
        let mut slot = lock(self.slot(role));
        if slot.is_some() {
            return Err(SyncError::Running(name(role)));
        }
        let at = Endpoint { interface: spec.mcast_interface.clone(), peer, port: spec.port.unwrap_or(DEFAULT_PORT) };
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, counters, syncid, halt) = (self.engine.clone(), self.counters.clone(), spec.syncid, stop.clone());
        let director = self.director.clone();
        let thread = match role {
            Role::Master => {
                let sender = Sender::open(&at)?;
                engine.sync_master(true);
                std::thread::Builder::new()
                    .name("rvs-sync-master".into())
                    .spawn(move || master(&engine, &director, &sender, syncid, &counters, &halt))?
            }
            Role::Backup => {
                let receiver = Receiver::open(&at)?;
                std::thread::Builder::new()
                    .name("rvs-sync-backup".into())
                    .spawn(move || backup(&engine, &director, &receiver, syncid, &counters, &halt))?
            }
        };
        tracing::info!("started the {spec}");
        *slot = Some(Running { spec: spec.clone(), stop, thread: Some(thread) });
        Ok(())
    }

    /// Stops a daemon.
    pub fn stop(&self, role: Role) -> Result<(), SyncError> {
        let running = lock(self.slot(role)).take().ok_or(SyncError::NotRunning(name(role)))?;
        if role == Role::Master {
            self.engine.sync_master(false);
        }
        tracing::info!("stopped the {}", running.spec);
        drop(running);
        Ok(())
    }

    /// The daemons running.
    pub fn daemons(&self) -> Vec<SyncDaemonSpec> {
        [&self.master, &self.backup].iter().filter_map(|m| lock(m).as_ref().map(|r| r.spec.clone())).collect()
    }

    /// The counters by name (for `/v1/sync` and `/metrics`).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut m: BTreeMap<String, u64> = [
            ("sent_datagrams", get(&c.sent_datagrams)),
            ("sent_entries", get(&c.sent_entries)),
            ("send_errors", get(&c.send_errors)),
            ("received_datagrams", get(&c.received_datagrams)),
            ("installed_flows", get(&c.installed_flows)),
            ("installed_templates", get(&c.installed_templates)),
            ("skipped", get(&c.skipped)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (reason, n) in REASONS.iter().zip(&c.rejected) {
            m.insert(format!("rejected_{reason}"), get(n));
        }
        m
    }

    /// Stops both (rvsd stops).
    pub fn shutdown(&self) {
        let _ = self.stop(Role::Master);
        let _ = self.stop(Role::Backup);
    }
}

/// The daemon a `[sync]` table asks for.
pub fn spec(c: &rvs_config::SyncConfig) -> SyncDaemonSpec {
    SyncDaemonSpec {
        state: match c.state {
            rvs_config::SyncState::Master => "master",
            rvs_config::SyncState::Backup => "backup",
        }
        .to_string(),
        syncid: c.syncid,
        mcast_interface: c.mcast_interface.clone(),
        peer: c.peer.map(|p| p.to_string()),
        port: c.port,
    }
}

/// The entries in datagrams that fit [`MAX_DATAGRAM`].
fn batches(syncid: u8, entries: Vec<Entry>) -> Vec<Message> {
    let mut out = Vec::new();
    let mut m = Message { syncid, entries: Vec::new() };
    for e in entries {
        if !m.fits(&e) {
            out.push(std::mem::replace(&mut m, Message { syncid, entries: Vec::new() }));
        }
        m.entries.push(e);
    }
    if !m.entries.is_empty() {
        out.push(m);
    }
    debug_assert!(out.iter().all(|m| m.wire_len() <= MAX_DATAGRAM));
    out
}

/// What a master last sent of one template (by service, client network and Call-ID): its real
/// server, its expiry, and when.
type SentTemplates = HashMap<(ServiceKey, TemplateKey), (SocketAddr, u64, u64)>;

/// The templates of full-NAT persistent services that are new or moved since `sent` (a held
/// one, whose expiry restarts when its connections end, again each half of its timeout).
fn fullnat_templates(d: &Director, sent: &mut SentTemplates) -> Vec<Entry> {
    let now = d.clock.now_ms();
    let table = d.table();
    let mut out = Vec::new();
    let mut live = HashSet::new();
    for svc in table.services() {
        let Some(p) = svc.settings().persistence else { continue };
        if !svc.dests().first().is_some_and(|r| r.settings().method == ForwardingMethod::FullNat) {
            continue;
        }
        let timeout = u64::from(p.timeout_secs) * 1000;
        let engine = p.engine.map(|e| e.name());
        for (t, left) in svc.templates(now) {
            let held = t.controlled() > 0;
            let left = if held { timeout } else { left };
            if left == 0 {
                continue;
            }
            let k = (svc.key, TemplateKey { client_net: t.client_net, pe_data: t.pe_data.clone() });
            live.insert(k.clone());
            let fresh = match sent.get(&k) {
                None => true,
                Some((dest, _, _)) if *dest != t.dest => true,
                Some((_, _, at)) if held => now.saturating_sub(*at) > timeout / 2,
                Some((_, expires, _)) => (now + left).abs_diff(*expires) > 1_000,
            };
            // A firewall mark's template names one address of the mark, which the backup
            // classifies back to the mark.
            let Some((protocol, vip)) = table.model().wire_address(&svc.key) else { continue };
            if fresh {
                sent.insert(k, (t.dest, now + left, now));
                let pe = match (engine, &t.pe_data) {
                    (Some(name), Some(data)) => match PeData::new(name, data) {
                        Ok(pe) => Some(pe),
                        // Not made: the engine's data is at most MAX_PE_DATA bytes.
                        Err(_) => continue,
                    },
                    _ => None,
                };
                out.push(Entry::Template(TemplateEntry {
                    protocol: protocol.number(),
                    client_net: t.client_net,
                    vip,
                    real_server: t.dest,
                    timeout_ms: left.min(u64::from(u32::MAX)) as u32,
                    pe,
                }));
            }
        }
    }
    sent.retain(|k, _| live.contains(k));
    out
}

fn master(
    engine: &PacketEngine,
    director: &OnceLock<Weak<Director>>,
    sender: &Sender,
    syncid: u8,
    c: &Counters,
    stop: &AtomicBool,
) {
    let mut sent = SentTemplates::new();
    let (mut last_send, mut last_templates, mut last_refresh) = (Instant::now(), Instant::now(), Instant::now());
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(LOOK_INTERVAL);
        if last_refresh.elapsed() >= REFRESH_INTERVAL {
            last_refresh = Instant::now();
            engine.sync_refresh();
        }
        if last_send.elapsed() < SEND_INTERVAL && engine.sync_pending() < DATAGRAM_ENTRIES {
            continue;
        }
        last_send = Instant::now();
        let mut entries = engine.sync_take();
        if last_templates.elapsed() >= TEMPLATE_INTERVAL {
            last_templates = Instant::now();
            if let Some(d) = director.get().and_then(Weak::upgrade) {
                entries.extend(fullnat_templates(&d, &mut sent));
            }
        }
        for m in batches(syncid, entries) {
            match sender.send(&m.encode()) {
                Ok(_) => {
                    c.sent_datagrams.fetch_add(1, Ordering::Relaxed);
                    c.sent_entries.fetch_add(m.entries.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    if c.send_errors.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
                        tracing::warn!(to = %sender.target(), "connection sync: sending: {e}");
                    }
                }
            }
        }
    }
}

fn backup(
    engine: &PacketEngine,
    director: &OnceLock<Weak<Director>>,
    receiver: &Receiver,
    syncid: u8,
    c: &Counters,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let (bytes, from) = match receiver.recv(&mut buf) {
            Ok(Some(got)) => got,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("connection sync: receiving: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        c.received_datagrams.fetch_add(1, Ordering::Relaxed);
        match Message::decode(bytes, Some(syncid)) {
            Ok(mut m) => {
                // Templates go to the service table (packet and full-NAT services alike).
                if let Some(d) = director.get().and_then(Weak::upgrade) {
                    let now = d.clock.now_ms();
                    let table = d.table();
                    m.entries.retain(|e| {
                        let Entry::Template(t) = e else { return true };
                        // The template's address finds its service as a packet would (a
                        // firewall mark's first).
                        let protocol = Protocol::from_number(t.protocol).unwrap_or(Protocol::Tcp);
                        let key = table.model().service_for(protocol, t.vip);
                        let pe = t.pe.as_ref().map(|p| (p.name(), p.data()));
                        let ok = key.and_then(|k| table.service(&k)).is_some_and(|s| {
                            s.restore_template(t.client_net, pe, t.real_server, now, u64::from(t.timeout_ms))
                        });
                        let n = if ok { &c.installed_templates } else { &c.skipped };
                        n.fetch_add(1, Ordering::Relaxed);
                        false
                    });
                }
                let done = engine.sync_install(&m.entries);
                c.installed_flows.fetch_add(done.flows, Ordering::Relaxed);
                c.installed_templates.fetch_add(done.templates, Ordering::Relaxed);
                c.skipped.fetch_add(done.skipped, Ordering::Relaxed);
            }
            Err(e) => {
                let i = REASONS.iter().position(|r| *r == e.reason()).unwrap_or(0);
                if c.rejected[i].fetch_add(1, Ordering::Relaxed) < 10 {
                    tracing::warn!(%from, "connection sync: dropped a datagram: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_sync::{FlowEntry, Method};

    #[test]
    fn entries_are_split_into_datagrams_that_fit() {
        let e = |i: u16| {
            Entry::Flow(FlowEntry {
                protocol: 6,
                client: format!("198.18.0.2:{i}").parse().unwrap(),
                vip: "198.18.1.10:80".parse().unwrap(),
                real_server: "198.18.0.11:80".parse().unwrap(),
                method: Method::Gate,
                state: 1,
                flags: 0,
                timeout_ms: 1,
            })
        };
        let b = batches(3, (0..100).map(e).collect());
        assert_eq!(b.iter().map(|m| m.entries.len()).collect::<Vec<_>>(), [46, 46, 8]);
        assert_eq!(DATAGRAM_ENTRIES, 46, "a master sends as soon as a datagram is full");
        assert!(batches(3, Vec::new()).is_empty());
    }
}
