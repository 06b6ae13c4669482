//! One running `[[vrrp]]` instance: a tokio task that feeds its router the advertisements its
//! socket receives and the timer the router asks for, and carries out the router's actions
//! (send, addresses through netlink, gratuitous ARP, notify and the apply path); its status.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rvs_model::vrrp::{VrrpInstanceSpec, VrrpRole};
use rvs_vrrp::packet::{self, Family, MULTICAST_V4};
use rvs_vrrp::{Action, MemberId, Router, RouterConfig, State, SyncGroup, TrackKey, Tracking};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::garp::Announcer;
use super::netlink::{self, Link};
use super::socket::VrrpSocket;
use crate::change::Change;
use crate::director::Director;

/// What `GET /v1/vrrp` and `/metrics` show of an instance.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub state: &'static str,
    pub priority: u8,
    /// The master last heard from (this router's own primary address while master).
    pub master: Option<IpAddr>,
    pub primary: Option<IpAddr>,
    pub sent: u64,
    pub received: u64,
    pub decode_errors: BTreeMap<&'static str, u64>,
    /// Received but not for this router (another VRID, version or family).
    pub ignored: u64,
    pub transitions: u64,
    /// Why the instance does not run, if it does not.
    pub error: Option<String>,
}

/// An instance's spec and its live status.
pub struct Instance {
    pub spec: VrrpInstanceSpec,
    status: Mutex<Status>,
}

impl Instance {
    pub fn new(spec: VrrpInstanceSpec) -> Arc<Instance> {
        Arc::new(Instance { spec, status: Mutex::new(Status { state: "init", ..Status::default() }) })
    }

    pub fn status(&self) -> Status {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn role(s: State) -> Option<VrrpRole> {
    match s {
        State::Backup => Some(VrrpRole::Backup),
        State::Master => Some(VrrpRole::Master),
        State::Fault => Some(VrrpRole::Fault),
        State::Stopped => Some(VrrpRole::Stopped),
        State::Initialize => None,
    }
}

/// Runs the instance until `stop` is cancelled, then shuts it down (a priority-0
/// advertisement if master, its addresses removed).
pub async fn run(inst: Arc<Instance>, director: Weak<Director>, stop: CancellationToken) {
    if let Err(e) = drive(&inst, &director, &stop).await {
        warn!(instance = %inst.spec.name, "vrrp instance not running: {e}");
        let mut st = inst.lock();
        st.state = "fault";
        st.error = Some(e);
    }
}

/// Everything the task holds.
struct Shell<'a> {
    inst: &'a Instance,
    director: &'a Weak<Director>,
    handle: rtnetlink::Handle,
    link: Link,
    socket: VrrpSocket,
    announcer: Announcer,
    primary: Ipv4Addr,
}

async fn drive(inst: &Arc<Instance>, director: &Weak<Director>, stop: &CancellationToken) -> Result<(), String> {
    let spec = &inst.spec;
    if spec.virtual_addresses.iter().any(IpAddr::is_ipv6) {
        return Err("IPv6 virtual addresses are not run yet (IPv4 only)".into());
    }
    let handle = netlink::connect().map_err(|e| e.to_string())?;
    let link = netlink::link(&handle, &spec.interface).await.map_err(|e| e.to_string())?;
    let primary = match spec.unicast_source {
        Some(IpAddr::V4(a)) => a,
        _ => netlink::primary_v4(&handle, &spec.interface, link.index, &spec.virtual_addresses)
            .await
            .map_err(|e| e.to_string())?,
    };
    let socket = VrrpSocket::open(&spec.interface, link.index, primary, spec.unicast_peers.is_empty())
        .map_err(|e| format!("raw VRRP socket on {}: {e}", spec.interface))?;
    let announcer =
        Announcer::open(link.index, link.mac).map_err(|e| format!("packet socket on {}: {e}", spec.interface))?;
    let clock = director.upgrade().ok_or("rvsd is stopping")?.clock;
    let mut group = SyncGroup::new(spec.sync_group.clone());
    group.add(spec.name.clone(), Router::new(RouterConfig::from_spec(spec, primary.into())), Tracking::from_spec(spec));
    inst.lock().primary = Some(primary.into());
    let shell = Shell { inst, director, handle, link, socket, announcer, primary };
    // Virtual addresses a previous run left behind go before we start as backup.
    shell.remove_addresses().await;
    // The tracked interfaces' real states first (the instance's own: FAULT while down).
    let acts = shell.track_interfaces(&mut group, clock.now_ms()).await;
    shell.carry_out(&group, acts).await;
    let acts = group.start(clock.now_ms());
    shell.carry_out(&group, acts).await;
    let mut links = tokio::time::interval(LINK_POLL);
    links.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(instance = %spec.name, interface = %spec.interface, vrid = spec.vrid, %primary, "vrrp instance running");
    let mut buf = vec![0u8; 4096];
    loop {
        let wait = group.deadline().map(|d| Duration::from_millis(d.saturating_sub(clock.now_ms())));
        let acts = tokio::select! {
            _ = stop.cancelled() => break,
            r = shell.socket.recv(&mut buf) => match r {
                Ok(Some(p)) => shell.received(&mut group, p.src, p.dst, p.ttl, p.payload, clock.now_ms()),
                Ok(None) => {
                    inst.lock().decode_errors.entry("truncated").and_modify(|n| *n += 1).or_insert(1);
                    Vec::new()
                }
                Err(e) => {
                    warn!(instance = %spec.name, "vrrp receive: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Vec::new()
                }
            },
            _ = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600))), if wait.is_some() => {
                group.poll(clock.now_ms())
            }
            _ = links.tick() => shell.track_interfaces(&mut group, clock.now_ms()).await,
        };
        shell.carry_out(&group, acts).await;
    }
    let acts = group.shutdown(clock.now_ms());
    shell.carry_out(&group, acts).await;
    shell.remove_addresses().await;
    if let Some(d) = director.upgrade() {
        let _ = d.apply(&[Change::Vrrp { instance: spec.name.clone(), role: None }]);
    }
    info!(instance = %spec.name, "vrrp instance stopped");
    Ok(())
}

/// How often the tracked interfaces' states are read.
const LINK_POLL: Duration = Duration::from_millis(100);

impl Shell<'_> {
    /// Reads the instance's interface and its `track_interface` ones, and reports each to the
    /// group (which acts only on a change); one that cannot be read counts as down.
    async fn track_interfaces(&self, group: &mut SyncGroup, now: u64) -> Vec<(MemberId, Action)> {
        let spec = &self.inst.spec;
        let names = std::iter::once(&spec.interface).chain(spec.track_interfaces.iter().map(|t| &t.interface));
        let mut out = Vec::new();
        for name in names {
            let up = netlink::link(&self.handle, name).await.is_ok_and(|l| l.up);
            out.extend(group.set_tracked(&TrackKey::Interface(name.clone()), up, now));
        }
        out
    }

    fn received(
        &self,
        group: &mut SyncGroup,
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
        payload: &[u8],
        now: u64,
    ) -> Vec<(MemberId, Action)> {
        let adv = match packet::decode(payload, Family::V4, src, dst, ttl) {
            Ok(a) => a,
            Err(e) => {
                *self.inst.lock().decode_errors.entry(e.kind()).or_insert(0) += 1;
                return Vec::new();
            }
        };
        let Some(id) = group.member_of(adv.vrid) else {
            self.inst.lock().ignored += 1;
            return Vec::new();
        };
        match group.receive(id, &adv, src, now) {
            Ok(acts) => {
                let mut st = self.inst.lock();
                st.received += 1;
                st.master = group.router(id).master().map(|(a, _)| a).or(st.master);
                acts
            }
            Err(_) => {
                self.inst.lock().ignored += 1;
                Vec::new()
            }
        }
    }

    async fn carry_out(&self, group: &SyncGroup, acts: Vec<(MemberId, Action)>) {
        let spec = &self.inst.spec;
        for (id, act) in acts {
            match act {
                Action::SendAdvertisement(adv) => self.advertise(&adv),
                Action::AddAddresses => {
                    for a in &spec.virtual_addresses {
                        if let Err(e) = netlink::add(&self.handle, &spec.interface, self.link.index, *a).await {
                            warn!(instance = %spec.name, address = %a, "adding the virtual address: {e}");
                        }
                    }
                }
                Action::RemoveAddresses => self.remove_addresses().await,
                Action::Announce { repeat } => self.announce(repeat),
                Action::Notify(state) => self.transition(group, id, state),
            }
        }
        let r = group.router(0);
        let mut st = self.inst.lock();
        st.priority = r.priority();
        if r.state() == State::Master {
            st.master = Some(self.primary.into());
        }
    }

    fn advertise(&self, adv: &packet::Advertisement) {
        let spec = &self.inst.spec;
        let peers: Vec<Ipv4Addr> = if spec.unicast_peers.is_empty() {
            vec![MULTICAST_V4]
        } else {
            spec.unicast_peers.iter().filter_map(|p| if let IpAddr::V4(a) = p { Some(*a) } else { None }).collect()
        };
        for dst in peers {
            match packet::encode(adv, self.primary.into(), dst.into()) {
                Ok(bytes) => match self.socket.send(&bytes, dst) {
                    Ok(()) => self.inst.lock().sent += 1,
                    Err(e) => warn!(instance = %spec.name, %dst, "sending an advertisement: {e}"),
                },
                Err(e) => warn!(instance = %spec.name, "encoding an advertisement: {e}"),
            }
        }
    }

    async fn remove_addresses(&self) {
        let spec = &self.inst.spec;
        for a in &spec.virtual_addresses {
            if let Err(e) = netlink::remove(&self.handle, &spec.interface, self.link.index, *a).await {
                warn!(instance = %spec.name, address = %a, "removing the virtual address: {e}");
            }
        }
    }

    fn announce(&self, repeat: u32) {
        for _ in 0..repeat.max(1) {
            for a in &self.inst.spec.virtual_addresses {
                if let IpAddr::V4(v4) = a {
                    if let Err(e) = self.announcer.announce(*v4) {
                        warn!(instance = %self.inst.spec.name, address = %v4, "gratuitous ARP: {e}");
                    }
                }
            }
        }
    }

    /// A transition: the status, the events log and notify command, and the apply path.
    fn transition(&self, group: &SyncGroup, id: MemberId, to: State) {
        let spec = &self.inst.spec;
        let from = {
            let mut st = self.inst.lock();
            let from = st.state;
            st.state = to.as_str();
            st.transitions += 1;
            st.priority = group.router(id).priority();
            from
        };
        info!(instance = %spec.name, from, to = to.as_str(), "vrrp transition");
        let Some(director) = self.director.upgrade() else { return };
        let notify = match to {
            State::Master => spec.notify.master.clone().map(|c| (rvs_health::NotifyKind::VrrpMaster, c)),
            State::Backup => spec.notify.backup.clone().map(|c| (rvs_health::NotifyKind::VrrpBackup, c)),
            State::Fault => spec.notify.fault.clone().map(|c| (rvs_health::NotifyKind::VrrpFault, c)),
            State::Stopped => spec.notify.stop.clone().map(|c| (rvs_health::NotifyKind::VrrpStop, c)),
            State::Initialize => None,
        };
        director.health.vrrp_transition(&spec.name, from, to.as_str(), notify);
        if let Some(role) = role(to) {
            if let Err(e) = director.apply(&[Change::Vrrp { instance: spec.name.clone(), role: Some(role) }]) {
                warn!(instance = %spec.name, "vrrp state refused by the apply path: {e}");
            }
        }
    }
}
