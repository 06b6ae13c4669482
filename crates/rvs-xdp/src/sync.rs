//! The packet engine's side of connection sync: as master, the flows that were created or whose
//! kernel state changed (noted by the new-flow path and the sweep, at the cost of one relaxed
//! load when sync is off) become sync entries; as backup, entries received become flows of the
//! kernel's table and core bindings, as a restart's adoption makes them.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rvs_bpf::xdp::now_ticks;
use rvs_bpf::xdp_maps as maps;
use rvs_core::persistence::Template;
use rvs_core::{Binding, ForwardingMethod, Persistence, Protocol};
use rvs_sync::message::Entry;
use rvs_sync::{FlowEntry, Method, PeData, TemplateEntry};

use crate::engine::{PacketEngine, MS_PER_TICK};
use crate::flows::Flow;
use crate::layout::DestKey;

/// One noted flow: its key, whether it is new (its persistence template goes with it), and
/// for a persistence engine's service the template it was scheduled under (one flow of a SIP
/// service carries many calls, each datagram scheduled by its Call-ID, each call's template
/// to its own real server).
type Noted = (maps::ConnKey, bool, Option<Arc<Template>>);

/// Flows to send, noted as they change.
#[derive(Debug, Default)]
pub struct SyncQueue {
    on: AtomicBool,
    pending: Mutex<Vec<Noted>>,
}

/// The most keys held between two sends (beyond: dropped, as a full sync queue is in IPVS).
const MAX_PENDING: usize = 1 << 16;

impl SyncQueue {
    fn note(&self, key: maps::ConnKey, new: bool, template: Option<&Arc<Template>>) {
        if self.on.load(Ordering::Relaxed) {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.len() < MAX_PENDING {
                p.push((key, new, template.filter(|t| t.pe_data.is_some()).cloned()));
            }
        }
    }
    /// A flow was scheduled (or a datagram of a SIP service, under its Call-ID's template).
    pub fn created(&self, key: maps::ConnKey, binding: &Binding) {
        self.note(key, true, binding.template());
    }
    /// The sweep saw a flow's kernel state change.
    pub fn changed(&self, key: maps::ConnKey) {
        self.note(key, false, None);
    }
}

/// What a backup did with the entries of one datagram.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Installed {
    pub flows: u64,
    pub templates: u64,
    /// Entries for a virtual service or real server this director does not have.
    pub skipped: u64,
}

fn method(m: ForwardingMethod) -> Option<Method> {
    match m {
        ForwardingMethod::Gate => Some(Method::Gate),
        ForwardingMethod::Masq => Some(Method::Masq),
        ForwardingMethod::Tunnel => Some(Method::Tunnel),
        ForwardingMethod::FullNat => None,
    }
}

/// The template entry of a new flow's client (with the persistence engine's data, if any).
fn template_entry(key: &maps::ConnKey, p: Persistence, real_server: SocketAddr, pe_data: Option<Box<[u8]>>) -> Entry {
    Entry::Template(TemplateEntry {
        protocol: key.proto,
        client_net: p.netmask.apply(key.client().ip()),
        vip: key.vip(),
        real_server,
        timeout_ms: p.timeout_secs.saturating_mul(1000),
        pe: pe_data.zip(p.engine).and_then(|(d, e)| PeData::new(e.name(), &d).ok()),
    })
}

fn protocol(p: u8) -> Protocol {
    Protocol::from_number(p).unwrap_or(Protocol::Tcp)
}

impl PacketEngine {
    /// Starts (or stops) noting flow changes for a sync master; stopping drops what is noted.
    pub fn sync_master(&self, on: bool) {
        self.sync.on.store(on, Ordering::Relaxed);
        self.sync.pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if on {
            self.sync_refresh();
        }
    }

    /// Notes every flow (with its template) to be sent again: what a master does when it starts
    /// and at each refresh, so a backup that joined late holds the whole table.
    pub fn sync_refresh(&self) {
        let keys = self.flows.keys();
        let mut pending = self.sync.pending.lock().unwrap_or_else(|e| e.into_inner());
        let room = MAX_PENDING.saturating_sub(pending.len());
        pending.extend(keys.into_iter().take(room).map(|k| (k, true, None)));
    }

    /// How many flow changes are noted and not yet taken.
    pub fn sync_pending(&self) -> usize {
        self.sync.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The entries of the flows noted since the last call, read from the kernel's table now
    /// (state and time left); flows gone meanwhile are left out.
    pub fn sync_take(&self) -> Vec<Entry> {
        let pending = std::mem::take(&mut *self.sync.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let Some(r) = &self.running else { return Vec::new() };
        if pending.is_empty() {
            return Vec::new();
        }
        let published = self.published.load();
        let now = now_ticks();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut flows_sent = HashSet::new();
        for (key, new, template) in pending {
            if !seen.insert((key, new, template.as_ref().and_then(|t| t.pe_data.clone()))) {
                continue;
            }
            let (Some(c), Some((svc, dest, pe_data))) = (r.program.conn(&key), self.flows.bound(&key)) else {
                continue;
            };
            let Some(m) = method(dest.settings().method) else { continue };
            let idle_ms = (now.wrapping_sub(c.last_seen) as f64 * MS_PER_TICK) as u64;
            let left = published.timeout_ms(c.state).saturating_sub(idle_ms);
            // A template noted with its flow names its own real server and Call-ID; else the
            // flow's binding does (a refresh: the last call's).
            let (real_server, pe_data) = match &template {
                Some(t) => (t.dest, t.pe_data.clone()),
                None => (dest.addr, pe_data),
            };
            if !flows_sent.insert(key) {
                if let Some(p) = svc.settings().persistence.filter(|_| new) {
                    out.push(template_entry(&key, p, real_server, pe_data));
                }
                continue;
            }
            out.push(Entry::Flow(FlowEntry {
                protocol: key.proto,
                client: key.client(),
                vip: key.vip(),
                real_server: dest.addr,
                method: m,
                state: c.state,
                flags: 0,
                timeout_ms: left.min(u64::from(u32::MAX)) as u32,
            }));
            if let Some(p) = svc.settings().persistence.filter(|_| new) {
                out.push(template_entry(&key, p, real_server, pe_data));
            }
        }
        out
    }

    /// Installs what a sync master sent: each flow in the kernel's table (to this director's
    /// slot of its real server, its time left going on) and in the core's accounting; each
    /// template in its service's persistence table.
    pub fn sync_install(&self, entries: &[Entry]) -> Installed {
        let mut done = Installed::default();
        let published = self.published.load();
        let now_ms = self.clock.now_ms();
        for e in entries {
            match e {
                Entry::Flow(f) => {
                    if self.install_flow(f, &published, now_ms) {
                        done.flows += 1;
                    } else {
                        done.skipped += 1;
                    }
                }
                Entry::Template(t) => {
                    let svc =
                        published.service_for(protocol(t.protocol), t.vip).and_then(|(_, id)| published.service(id));
                    let remaining = u64::from(t.timeout_ms);
                    let pe = t.pe.as_ref().map(|p| (p.name(), p.data()));
                    if svc.is_some_and(|s| s.restore_template(t.client_net, pe, t.real_server, now_ms, remaining)) {
                        done.templates += 1;
                    } else {
                        done.skipped += 1;
                    }
                }
            }
        }
        done
    }

    fn install_flow(&self, f: &FlowEntry, published: &crate::engine::Published, now_ms: u64) -> bool {
        let Some(r) = &self.running else { return false };
        let Some((service, svc)) = published
            .service_for(protocol(f.protocol), f.vip)
            .and_then(|(key, id)| published.service(id).map(|s| (key, s)))
        else {
            return false;
        };
        let rs: SocketAddr = f.real_server;
        let Some(dest_id) = published.assignment.dest_id(&DestKey { service, addr: rs }) else { return false };
        if svc.dest(rs).is_none_or(|d| method(d.settings().method) != Some(f.method)) {
            return false;
        }
        let key = maps::ConnKey::new(f.client, f.vip, f.protocol);
        // A state the program knows (decoding refused the others; NONE, the shortest, else).
        let state = if rvs_sync::message::known_state(f.state) { f.state } else { maps::S_NONE };
        let elapsed_ms = published.timeout_ms(state).saturating_sub(u64::from(f.timeout_ms));
        let now = now_ticks();
        let mut conn = maps::Conn::new(dest_id, state, now);
        conn.last_seen = now.wrapping_sub((elapsed_ms as f64 / MS_PER_TICK) as u32);
        // A copy at least as fresh is here already: this director forwards the flow itself (its
        // own flow, sent back by the other director's master daemon), or heard it more lately.
        if r.program
            .conn(&key)
            .is_some_and(|old| old.dest == dest_id && old.last_seen.wrapping_sub(conn.last_seen) as i32 >= 0)
        {
            return true;
        }
        if let Err(e) = r.program.insert_conn(&key, &conn) {
            tracing::warn!(client = %f.client, "connection sync: installing a flow: {e}");
            return false;
        }
        // A firewall mark's masq flow: its replies find it by the real server's address.
        if service.mark().is_some() && f.method == Method::Masq {
            let rport = if rs.port() == 0 { f.vip.port() } else { rs.port() };
            let reply = maps::ConnKey::new(f.client, SocketAddr::new(rs.ip(), rport), f.protocol);
            if let Err(e) = r.program.put_mark_reply(&reply, &maps::MarkReply::new(f.vip)) {
                tracing::warn!(client = %f.client, "connection sync: installing a flow's reply entry: {e}");
            }
        }
        if self.flows.dest_of(&key) != Some(dest_id) {
            let Some(binding) = svc.adopt(f.client, rs, now_ms) else { return false };
            self.flows.insert(key, Flow { binding, dest_id, protocol: protocol(f.protocol) }, now_ms);
        }
        true
    }
}
