//! The flows the packet engine scheduled, as the domain core accounts them: one core
//! [`Binding`] per flow in the kernel's connection table, so that active and inactive counts,
//! persistence templates and the least-connection schedulers see packet-engine flows exactly
//! as they see proxied connections. A sweep reads each flow's state back from the kernel, each
//! flow when it is due (soon after it opens, then about when it could have expired), so the
//! cost of a sweep follows the flows that change rather than all the flows held.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use rvs_bpf::xdp_maps as maps;
use rvs_core::{Binding, ConnState, Protocol, RealServer, SctpState};
use rvs_dataplane::ConnInfo;

/// What [`Flows::bound`] gives: service, real server, persistence engine data.
pub type Bound = (Arc<rvs_core::VirtualService>, Arc<RealServer>, Option<Box<[u8]>>);

/// One flow: its binding, the slot of its real server and its key in the kernel table.
#[derive(Debug)]
pub struct Flow {
    pub binding: Binding,
    pub dest_id: u32,
    pub protocol: Protocol,
}

/// How soon a new flow is first looked at (it should be established by then).
const FIRST_CHECK_MS: u64 = 1_000;
/// The longest a live flow goes unchecked: how late an established flow's close, or an
/// eviction, may reach the counts.
const MAX_CHECK_MS: u64 = 10_000;
/// Checks fall into buckets of this width.
const BUCKET_MS: u64 = 250;

#[derive(Debug)]
struct Entry {
    flow: Flow,
    due_ms: u64,
    /// The kernel state last seen (`NOT_SEEN` before the first look).
    state: u8,
    /// When connection sync was last told of this flow.
    synced_ms: u64,
}

const NOT_SEEN: u8 = u8::MAX;

#[derive(Debug, Default)]
struct Inner {
    flows: HashMap<maps::ConnKey, Entry>,
    /// Keys by the bucket they are due in; a key whose entry has another due time is stale.
    due: BTreeMap<u64, Vec<maps::ConnKey>>,
    /// Flows per real-server slot.
    per_dest: HashMap<u32, usize>,
}

impl Inner {
    fn add(&mut self, key: maps::ConnKey, flow: Flow) {
        *self.per_dest.entry(flow.dest_id).or_default() += 1;
        if let Some(old) = self.flows.insert(key, Entry { flow, due_ms: 0, state: NOT_SEEN, synced_ms: 0 }) {
            self.forget(old.flow.dest_id);
        }
    }

    fn remove(&mut self, key: &maps::ConnKey) -> Option<Flow> {
        let e = self.flows.remove(key)?;
        self.forget(e.flow.dest_id);
        Some(e.flow)
    }

    fn forget(&mut self, dest_id: u32) {
        if let Some(n) = self.per_dest.get_mut(&dest_id) {
            *n -= 1;
            if *n == 0 {
                self.per_dest.remove(&dest_id);
            }
        }
    }

    fn schedule(&mut self, key: maps::ConnKey, due_ms: u64) {
        let bucket = due_ms.div_ceil(BUCKET_MS) * BUCKET_MS;
        if let Some(e) = self.flows.get_mut(&key) {
            e.due_ms = bucket;
            self.due.entry(bucket).or_default().push(key);
        }
    }
}

/// What the kernel says of one flow at a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// In the table, in this state, last seen `idle_ms` ago.
    Live { state: u8, idle_ms: u64 },
    /// Gone from the table (evicted, deleted) or past its timeout.
    Gone,
}

/// The flows by their kernel key.
#[derive(Debug, Default)]
pub struct Flows {
    map: Mutex<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An SCTP flow's association state, for a kernel state that is one.
pub fn sctp_state(state: u8) -> Option<SctpState> {
    state.checked_sub(maps::S_SCTP).and_then(SctpState::from_u8)
}

/// The state `ipvsadm -L -c` shows for a kernel state, as the core names states.
pub fn core_state(state: u8) -> ConnState {
    if let Some(s) = sctp_state(state) {
        return s.conn_state();
    }
    match state {
        maps::S_ESTABLISHED => ConnState::Established,
        maps::S_FIN_WAIT | maps::S_TIME_WAIT | maps::S_CLOSE | maps::S_CLOSE_WAIT | maps::S_LAST_ACK => {
            ConnState::Closing
        }
        _ => ConnState::Opening,
    }
}

impl Flows {
    /// A newly scheduled flow at `now_ms`. A retransmitted first packet may schedule a flow that
    /// exists: the new binding replaces the old one (which is released).
    pub fn insert(&self, key: maps::ConnKey, flow: Flow, now_ms: u64) {
        let mut inner = lock(&self.map);
        inner.add(key, flow);
        inner.schedule(key, now_ms + FIRST_CHECK_MS);
    }

    pub fn len(&self) -> usize {
        lock(&self.map).flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every flow's key (a starting sync master sends the whole table).
    pub fn keys(&self) -> Vec<maps::ConnKey> {
        lock(&self.map).flows.keys().copied().collect()
    }

    /// The slot of the flow's real server, if rvsd scheduled it.
    pub fn dest_of(&self, key: &maps::ConnKey) -> Option<u32> {
        lock(&self.map).flows.get(key).map(|e| e.flow.dest_id)
    }

    /// The keys due for a look at `now_ms`, taken off the schedule: the caller looks each up
    /// in the kernel and reports it with [`Flows::observe`].
    pub fn due(&self, now_ms: u64) -> Vec<maps::ConnKey> {
        let mut inner = lock(&self.map);
        let later = inner.due.split_off(&(now_ms + 1));
        let now = std::mem::replace(&mut inner.due, later);
        now.into_iter()
            .flat_map(|(bucket, keys)| keys.into_iter().map(move |k| (bucket, k)))
            .filter(|(bucket, k)| inner.flows.get(k).is_some_and(|e| e.due_ms == *bucket))
            .map(|(_, k)| k)
            .collect()
    }

    /// Moves a flow's binding along with what the kernel saw; `Gone` ends it, a live flow is
    /// looked at again when it could next have changed. `timeout_ms` is its state's timeout.
    /// Whether connection sync is to send the flow again: its kernel state changed since the
    /// last look, or half its timeout went by since it was last sent (so that a backup's copy of
    /// a long flow does not expire while the flow lives).
    pub fn observe(&self, key: &maps::ConnKey, seen: Seen, timeout_ms: u64, now_ms: u64) -> bool {
        let mut inner = lock(&self.map);
        match seen {
            Seen::Gone => {
                if let Some(f) = inner.remove(key) {
                    f.binding.finish(now_ms);
                }
                false
            }
            Seen::Live { state, idle_ms } => {
                let Some(e) = inner.flows.get_mut(key) else { return false };
                let changed = std::mem::replace(&mut e.state, state) != state
                    || now_ms.saturating_sub(e.synced_ms) > timeout_ms / 2;
                if changed {
                    e.synced_ms = now_ms;
                }
                let f = &e.flow;
                if f.protocol != Protocol::Udp {
                    match core_state(state) {
                        ConnState::Established => f.binding.established(),
                        ConnState::Closing => {
                            f.binding.established();
                            f.binding.closing(now_ms);
                        }
                        ConnState::Opening => {}
                    }
                }
                let left = timeout_ms.saturating_sub(idle_ms) + BUCKET_MS;
                inner.schedule(*key, now_ms + left.min(MAX_CHECK_MS));
                changed
            }
        }
    }

    /// The service and real server of a flow rvsd knows, and the persistence engine's data of
    /// the template it was scheduled under (a SIP Call-ID), if any.
    pub fn bound(&self, key: &maps::ConnKey) -> Option<Bound> {
        lock(&self.map).flows.get(key).map(|e| {
            let b = &e.flow.binding;
            (b.service.clone(), b.dest.clone(), b.template().and_then(|t| t.pe_data.clone()))
        })
    }

    /// Ends every flow to `dest` (`expire_nodest_conn`); their keys, for the caller to delete
    /// from the kernel table.
    pub fn remove_to(&self, dest: &Arc<RealServer>, now_ms: u64) -> Vec<maps::ConnKey> {
        let mut inner = lock(&self.map);
        let keys: Vec<maps::ConnKey> =
            inner.flows.iter().filter(|(_, e)| Arc::ptr_eq(&e.flow.binding.dest, dest)).map(|(k, _)| *k).collect();
        for k in &keys {
            if let Some(f) = inner.remove(k) {
                f.binding.finish(now_ms);
            }
        }
        keys
    }

    /// Whether any flow still uses slot `dest_id`.
    pub fn uses(&self, dest_id: u32) -> bool {
        lock(&self.map).per_dest.contains_key(&dest_id)
    }

    /// The flows as `ipvsadm -L -c` lists them; `expires` gives a flow's kernel state and
    /// milliseconds left (`None`: gone from the kernel, not listed).
    pub fn list(&self, expires: impl Fn(&maps::ConnKey) -> Option<(u8, u64)>) -> Vec<ConnInfo> {
        let keys: Vec<(maps::ConnKey, Protocol, SocketAddr)> =
            lock(&self.map).flows.iter().map(|(k, e)| (*k, e.flow.protocol, e.flow.binding.dest.addr)).collect();
        keys.into_iter()
            .filter_map(|(k, protocol, dest)| {
                let (state, expires_ms) = expires(&k)?;
                Some(ConnInfo {
                    protocol,
                    client: k.client(),
                    virtual_addr: k.vip(),
                    dest: Some(dest),
                    state: if protocol == Protocol::Udp { ConnState::Opening } else { core_state(state) },
                    sctp_state: if protocol == Protocol::Sctp { sctp_state(state) } else { None },
                    expires_ms,
                })
            })
            .collect()
    }

    /// Ends every flow (the engine stops).
    pub fn clear(&self, now_ms: u64) -> usize {
        let mut inner = lock(&self.map);
        inner.due.clear();
        inner.per_dest.clear();
        let drained: Vec<Entry> = inner.flows.drain().map(|(_, e)| e).collect();
        drop(inner);
        let n = drained.len();
        for e in drained {
            e.flow.binding.finish(now_ms);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::{Command, RealServerSettings, SchedRequest, ServiceKey, ServiceSettings, ServiceTable};

    fn table() -> (ServiceTable, ServiceKey) {
        let key = ServiceKey::tcp("198.18.1.10:80".parse().unwrap());
        let mut t = ServiceTable::new(1);
        t.apply_batch(&[
            Command::AddService { key, settings: ServiceSettings::default() },
            Command::AddServer { service: key, server: RealServerSettings::new("198.18.0.11:80".parse().unwrap()) },
        ])
        .unwrap();
        (t, key)
    }

    fn flow(t: &ServiceTable, key: &ServiceKey, client: &str) -> (maps::ConnKey, Flow) {
        let svc = t.service(key).unwrap();
        let client: SocketAddr = client.parse().unwrap();
        let binding = svc
            .schedule(&SchedRequest { client, destination: key.addr().unwrap().addr, now_ms: 0 }, &[], false)
            .unwrap();
        (maps::ConnKey::new(client, key.addr().unwrap().addr, 6), Flow { binding, dest_id: 0, protocol: Protocol::Tcp })
    }

    #[test]
    fn sctp_states_are_named_and_counted_as_ipvs_does() {
        assert_eq!(sctp_state(maps::S_SCTP_COOKIE_ECHOED), Some(SctpState::CookieEchoed));
        assert_eq!(sctp_state(maps::S_ESTABLISHED), None);
        assert_eq!(sctp_state(maps::S_SCTP_CLOSED + 1), None);
        assert_eq!(core_state(maps::S_SCTP_ESTABLISHED), ConnState::Established);
        assert_eq!(core_state(maps::S_SCTP_SHUTDOWN_RECEIVED), ConnState::Closing);
        assert_eq!(core_state(maps::S_SCTP_INIT1), ConnState::Opening);
        assert_eq!(core_state(maps::S_ESTABLISHED), ConnState::Established, "TCP's as before");
        // Connection sync carries the program's states as they are.
        assert_eq!(rvs_sync::message::SCTP_STATES, maps::S_SCTP..=maps::S_SCTP_CLOSED);
        assert_eq!(rvs_sync::message::MAX_STATE, maps::S_UDP);
        for s in SctpState::ALL {
            let v = maps::S_SCTP + s as u8;
            assert_eq!(maps::Config::default().timeout_ms[usize::from(v)], s.timeout_ms(), "{s:?}");
        }
    }

    #[test]
    fn a_flow_is_looked_at_when_due_and_its_state_reaches_the_counts() {
        let (t, key) = table();
        let rs = t.service(&key).unwrap().dests()[0].clone();
        let flows = Flows::default();
        let (k, f) = flow(&t, &key, "198.18.0.2:40000");
        flows.insert(k, f, 0);
        assert_eq!((rs.active(), rs.inactive()), (0, 1), "opening counts inactive");
        assert!(flows.due(500).is_empty(), "not due before a second");
        assert_eq!(flows.due(1_000), [k]);
        assert!(flows.due(1_000).is_empty(), "taken off the schedule");
        flows.observe(&k, Seen::Live { state: maps::S_ESTABLISHED, idle_ms: 100 }, 900_000, 1_000);
        assert_eq!((rs.active(), rs.inactive()), (1, 0));
        // An established flow with a long timeout is looked at again within MAX_CHECK_MS.
        assert!(flows.due(1_000 + MAX_CHECK_MS - BUCKET_MS - 1).is_empty());
        assert_eq!(flows.due(1_000 + MAX_CHECK_MS), [k]);
        flows.observe(&k, Seen::Live { state: maps::S_FIN_WAIT, idle_ms: 0 }, 2_000, 11_000);
        assert_eq!((rs.active(), rs.inactive()), (0, 1), "closing counts inactive");
        assert!(flows.uses(0));
        flows.observe(&k, Seen::Gone, 0, 13_000);
        assert_eq!((rs.active(), rs.inactive()), (0, 0));
        assert!(!flows.uses(0) && flows.is_empty());
    }

    #[test]
    fn a_flow_is_to_be_synced_when_its_state_changes_and_again_each_half_timeout() {
        let (t, key) = table();
        let flows = Flows::default();
        let (k, f) = flow(&t, &key, "198.18.0.2:40000");
        flows.insert(k, f, 0);
        let live = |state| Seen::Live { state, idle_ms: 0 };
        assert!(flows.observe(&k, live(maps::S_ESTABLISHED), 900_000, 1_000), "first look: new state");
        assert!(!flows.observe(&k, live(maps::S_ESTABLISHED), 900_000, 11_000), "unchanged");
        assert!(flows.observe(&k, live(maps::S_ESTABLISHED), 900_000, 452_000), "half the timeout went by");
        assert!(!flows.observe(&k, live(maps::S_ESTABLISHED), 900_000, 462_000));
        assert!(flows.observe(&k, live(maps::S_FIN_WAIT), 120_000, 463_000), "closing");
        assert!(!flows.observe(&k, Seen::Gone, 0, 470_000), "gone: nothing to send");
    }

    #[test]
    fn removing_a_real_servers_flows_ends_their_accounting() {
        let (t, key) = table();
        let rs = t.service(&key).unwrap().dests()[0].clone();
        let flows = Flows::default();
        for port in [40000, 40001] {
            let (k, f) = flow(&t, &key, &format!("198.18.0.2:{port}"));
            flows.insert(k, f, 0);
        }
        assert_eq!(rs.inactive(), 2);
        assert_eq!(flows.remove_to(&rs, 5).len(), 2);
        assert_eq!(rs.inactive(), 0);
        assert!(flows.due(10_000).is_empty(), "removed flows are not looked at");
    }
}
