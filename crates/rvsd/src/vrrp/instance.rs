//! One running `[[vrrp]]` instance: a tokio task that feeds its router the advertisements its
//! socket receives and the timer the router asks for, and carries out the router's actions
//! (send, addresses through netlink, gratuitous ARP, notify and the apply path); its status.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rvs_model::vrrp::{VrrpInstanceSpec, VrrpRole};
use rvs_vrrp::packet::{self, Family, MULTICAST_V4, MULTICAST_V6};
use rvs_vrrp::{Action, MemberId, Router, RouterConfig, State, SyncGroup, TrackKey, Tracking};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::garp::Announcer;
use super::na::NeighbourAnnouncer;
use super::netlink::{self, Link};
use super::socket::VrrpSocket;
use super::socket6::Vrrp6Socket;
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

/// Runs a sync group's instances (a lone instance is a group of one) until `stop` is
/// cancelled, then shuts them down (priority-0 advertisements, addresses removed).
pub async fn run(members: Vec<Arc<Instance>>, director: Weak<Director>, stop: CancellationToken) {
    if let Err(e) = drive(&members, &director, &stop).await {
        for inst in &members {
            warn!(instance = %inst.spec.name, "vrrp instance not running: {e}");
            let mut st = inst.lock();
            st.state = "fault";
            st.error = Some(e.clone());
        }
    }
}

/// A member's VRRP sockets, by family.
#[derive(Clone)]
enum Sock {
    V4(Arc<VrrpSocket>),
    V6(Arc<Vrrp6Socket>),
}

/// How a member announces its addresses: gratuitous ARP, or unsolicited NA.
enum Announce {
    Arp(Announcer),
    Na(NeighbourAnnouncer),
}

/// One member's side of the world: its interface, sockets and addresses.
struct Member<'a> {
    inst: &'a Instance,
    link: Link,
    socket: Sock,
    announcer: Announce,
    primary: IpAddr,
}

/// Everything the task holds.
struct Shell<'a> {
    director: &'a Weak<Director>,
    handle: rtnetlink::Handle,
    /// In the group's member order (a `MemberId` indexes it).
    members: Vec<Member<'a>>,
}

/// A packet one member's socket read (`None`: too short for an IPv4 header).
type Packet = (MemberId, Option<(IpAddr, IpAddr, u8, Vec<u8>)>);

async fn open_member<'a>(handle: &rtnetlink::Handle, inst: &'a Instance) -> Result<Member<'a>, String> {
    let spec = &inst.spec;
    let link = netlink::link(handle, &spec.interface).await.map_err(|e| e.to_string())?;
    let multicast = spec.unicast_peers.is_empty();
    let (socket, announcer, primary) = if spec.virtual_addresses.iter().any(IpAddr::is_ipv6) {
        let primary = match spec.unicast_source {
            Some(IpAddr::V6(a)) => a,
            _ => netlink::link_local_v6(handle, &spec.interface, link.index).await.map_err(|e| e.to_string())?,
        };
        let socket = Vrrp6Socket::open(&spec.interface, link.index, primary, multicast)
            .map_err(|e| format!("raw VRRP socket on {}: {e}", spec.interface))?;
        let na = NeighbourAnnouncer::open(&spec.interface, link.index, link.mac)
            .map_err(|e| format!("ICMPv6 socket on {}: {e}", spec.interface))?;
        (Sock::V6(Arc::new(socket)), Announce::Na(na), IpAddr::V6(primary))
    } else {
        let primary = match spec.unicast_source {
            Some(IpAddr::V4(a)) => a,
            _ => netlink::primary_v4(handle, &spec.interface, link.index, &spec.virtual_addresses)
                .await
                .map_err(|e| e.to_string())?,
        };
        let socket = VrrpSocket::open(&spec.interface, link.index, primary, multicast)
            .map_err(|e| format!("raw VRRP socket on {}: {e}", spec.interface))?;
        let arp =
            Announcer::open(link.index, link.mac).map_err(|e| format!("packet socket on {}: {e}", spec.interface))?;
        (Sock::V4(Arc::new(socket)), Announce::Arp(arp), IpAddr::V4(primary))
    };
    inst.lock().primary = Some(primary);
    Ok(Member { inst, link, socket, announcer, primary })
}

/// Reads `socket` for member `id` into `tx` until the receiver goes. IPv6 gives no
/// destination: it is the group for a multicast instance, else the router's own address.
async fn read(id: MemberId, socket: Sock, own: IpAddr, multicast: bool, tx: tokio::sync::mpsc::Sender<Packet>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let got = match &socket {
            Sock::V4(s) => s.recv(&mut buf).await.map(|p| p.map(|p| (p.src, p.dst, p.ttl, p.payload.to_vec()))),
            Sock::V6(s) => s.recv(&mut buf).await.map(|(src, hops, n)| {
                let dst = if multicast { IpAddr::V6(MULTICAST_V6) } else { own };
                Some((IpAddr::V6(src), dst, hops, buf[..n].to_vec()))
            }),
        };
        let p = match got {
            Ok(p) => p,
            Err(e) => {
                warn!("vrrp receive: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if tx.send((id, p)).await.is_err() {
            return;
        }
    }
}

async fn drive(members: &[Arc<Instance>], director: &Weak<Director>, stop: &CancellationToken) -> Result<(), String> {
    let handle = netlink::connect().map_err(|e| e.to_string())?;
    let mut opened = Vec::new();
    for inst in members {
        opened.push(open_member(&handle, inst).await?);
    }
    let clock = director.upgrade().ok_or("rvsd is stopping")?.clock;
    let mut group = SyncGroup::new(members[0].spec.sync_group.clone());
    for m in &opened {
        let spec = &m.inst.spec;
        group.add(spec.name.clone(), Router::new(RouterConfig::from_spec(spec, m.primary)), Tracking::from_spec(spec));
    }
    let shell = Shell { director, handle, members: opened };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Packet>(256);
    let readers: Vec<_> = shell
        .members
        .iter()
        .enumerate()
        .map(|(id, m)| {
            let multicast = m.inst.spec.unicast_peers.is_empty();
            tokio::spawn(read(id, m.socket.clone(), m.primary, multicast, tx.clone()))
        })
        .collect();
    drop(tx);
    // Virtual addresses a previous run left behind go before we start as backup.
    for id in 0..shell.members.len() {
        shell.remove_addresses(id).await;
    }
    // The tracked interfaces' real states first (the instance's own: FAULT while down).
    let acts = shell.track_interfaces(&mut group, clock.now_ms()).await;
    shell.carry_out(&group, acts).await;
    let acts = group.start(clock.now_ms());
    shell.carry_out(&group, acts).await;
    let mut links = tokio::time::interval(LINK_POLL);
    links.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for m in &shell.members {
        let spec = &m.inst.spec;
        info!(instance = %spec.name, interface = %spec.interface, vrid = spec.vrid, primary = %m.primary, "vrrp instance running");
    }
    loop {
        let wait = group.deadline().map(|d| Duration::from_millis(d.saturating_sub(clock.now_ms())));
        let acts = tokio::select! {
            _ = stop.cancelled() => break,
            p = rx.recv() => match p {
                Some((id, Some((src, dst, ttl, payload)))) => shell.received(&mut group, id, src, dst, ttl, &payload, clock.now_ms()),
                Some((id, None)) => {
                    *shell.members[id].inst.lock().decode_errors.entry("truncated").or_insert(0) += 1;
                    Vec::new()
                }
                None => break,
            },
            _ = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600))), if wait.is_some() => {
                group.poll(clock.now_ms())
            }
            _ = links.tick() => shell.track_interfaces(&mut group, clock.now_ms()).await,
        };
        shell.carry_out(&group, acts).await;
    }
    readers.iter().for_each(|r| r.abort());
    let acts = group.shutdown(clock.now_ms());
    shell.carry_out(&group, acts).await;
    for (id, m) in shell.members.iter().enumerate() {
        shell.remove_addresses(id).await;
        if let Some(d) = director.upgrade() {
            let _ = d.apply(&[Change::Vrrp { instance: m.inst.spec.name.clone(), role: None }]);
        }
        info!(instance = %m.inst.spec.name, "vrrp instance stopped");
    }
    Ok(())
}

/// How often the tracked interfaces' and services' states are read.
const LINK_POLL: Duration = Duration::from_millis(100);

impl Shell<'_> {
    /// Reads the instances' interfaces and their `track_interface` ones (one that cannot be
    /// read counts as down) and their `track_service` quorums, and reports each to the group
    /// (which acts only on a change).
    async fn track_interfaces(&self, group: &mut SyncGroup, now: u64) -> Vec<(MemberId, Action)> {
        let mut names: Vec<&String> = Vec::new();
        for m in &self.members {
            let spec = &m.inst.spec;
            for n in std::iter::once(&spec.interface).chain(spec.track_interfaces.iter().map(|t| &t.interface)) {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        let mut out = Vec::new();
        for name in names {
            let up = netlink::link(&self.handle, name).await.is_ok_and(|l| l.up);
            out.extend(group.set_tracked(&TrackKey::Interface(name.clone()), up, now));
        }
        // Tracked services: up while they have quorum, as the apply path last set it.
        if let Some(director) = self.director.upgrade() {
            for t in self.members.iter().flat_map(|m| &m.inst.spec.track_services) {
                let up = director.table().service(&t.service.into()).is_some_and(|s| !s.quorum_lost());
                out.extend(group.set_tracked(&TrackKey::Service(t.service), up, now));
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn received(
        &self,
        group: &mut SyncGroup,
        at: MemberId,
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
        payload: &[u8],
        now: u64,
    ) -> Vec<(MemberId, Action)> {
        let inst = self.members[at].inst;
        let adv = match packet::decode(payload, Family::of(&src), src, dst, ttl) {
            Ok(a) => a,
            Err(e) => {
                *inst.lock().decode_errors.entry(e.kind()).or_insert(0) += 1;
                return Vec::new();
            }
        };
        // Each member's socket hears its whole interface: only its own VRID is for it.
        if adv.vrid != inst.spec.vrid {
            inst.lock().ignored += 1;
            return Vec::new();
        }
        let id = at;
        match group.receive(id, &adv, src, now) {
            Ok(acts) => {
                let mut st = inst.lock();
                st.received += 1;
                st.master = group.router(id).master().map(|(a, _)| a).or(st.master);
                acts
            }
            Err(_) => {
                inst.lock().ignored += 1;
                Vec::new()
            }
        }
    }

    async fn carry_out(&self, group: &SyncGroup, acts: Vec<(MemberId, Action)>) {
        for (id, act) in acts {
            let m = &self.members[id];
            let spec = &m.inst.spec;
            match act {
                Action::SendAdvertisement(adv) => self.advertise(id, &adv),
                Action::AddAddresses => {
                    for a in &spec.virtual_addresses {
                        if let Err(e) = netlink::add(&self.handle, &spec.interface, m.link.index, *a).await {
                            warn!(instance = %spec.name, address = %a, "adding the virtual address: {e}");
                        }
                    }
                }
                Action::RemoveAddresses => self.remove_addresses(id).await,
                Action::Announce { repeat } => self.announce(id, repeat),
                Action::Notify(state) => self.transition(group, id, state),
            }
        }
        for (id, m) in self.members.iter().enumerate() {
            let r = group.router(id);
            let mut st = m.inst.lock();
            st.priority = r.priority();
            if r.state() == State::Master {
                st.master = Some(m.primary);
            }
        }
    }

    fn advertise(&self, id: MemberId, adv: &packet::Advertisement) {
        let m = &self.members[id];
        let spec = &m.inst.spec;
        let group = if m.primary.is_ipv4() { IpAddr::V4(MULTICAST_V4) } else { IpAddr::V6(MULTICAST_V6) };
        let peers: Vec<IpAddr> = if spec.unicast_peers.is_empty() { vec![group] } else { spec.unicast_peers.clone() };
        for dst in peers {
            let sent = packet::encode(adv, m.primary, dst).map_err(|e| e.to_string()).and_then(|bytes| {
                match (&m.socket, dst) {
                    (Sock::V4(s), IpAddr::V4(d)) => s.send(&bytes, d),
                    (Sock::V6(s), IpAddr::V6(d)) => s.send(&bytes, d),
                    _ => Ok(()),
                }
                .map_err(|e| e.to_string())
            });
            match sent {
                Ok(()) => m.inst.lock().sent += 1,
                Err(e) => warn!(instance = %spec.name, %dst, "sending an advertisement: {e}"),
            }
        }
    }

    async fn remove_addresses(&self, id: MemberId) {
        let m = &self.members[id];
        let spec = &m.inst.spec;
        for a in &spec.virtual_addresses {
            if let Err(e) = netlink::remove(&self.handle, &spec.interface, m.link.index, *a).await {
                warn!(instance = %spec.name, address = %a, "removing the virtual address: {e}");
            }
        }
    }

    fn announce(&self, id: MemberId, repeat: u32) {
        let m = &self.members[id];
        for _ in 0..repeat.max(1) {
            for a in &m.inst.spec.virtual_addresses {
                let r = match (&m.announcer, a) {
                    (Announce::Arp(arp), IpAddr::V4(v4)) => arp.announce(*v4),
                    (Announce::Na(na), IpAddr::V6(v6)) => na.announce(*v6),
                    _ => Ok(()),
                };
                if let Err(e) = r {
                    warn!(instance = %m.inst.spec.name, address = %a, "announcing the address: {e}");
                }
            }
        }
    }

    /// A transition: the status, the events log and notify command, and the apply path.
    fn transition(&self, group: &SyncGroup, id: MemberId, to: State) {
        let inst = self.members[id].inst;
        let spec = &inst.spec;
        let from = {
            let mut st = inst.lock();
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
