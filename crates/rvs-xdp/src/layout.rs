//! The service table as the XDP program's maps hold it: which slot each virtual service and real
//! server has, and what each map entry says. Planned from the next model while nothing changes
//! (so a refusal, such as a full table or a tunnel with no route, comes before anything is
//! applied), written to the maps when the change is published.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};

use rvs_bpf::xdp_maps as maps;
use rvs_core::forwarding::Engine;
use rvs_core::fwmark::Family;
use rvs_core::{ForwardingMethod, Helper, MarkKey, Protocol, ServiceKey, ServiceModel, TableModel, Timeouts};

use crate::ids::IdPool;

/// One real server of one virtual service: what a slot in `rvs_dests` stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestKey {
    pub service: ServiceKey,
    pub addr: SocketAddr,
}

/// The slots handed out, kept from one change to the next so that a flow's slot keeps meaning
/// the same real server.
#[derive(Debug, Clone)]
pub struct Assignment {
    services: BTreeMap<ServiceKey, u32>,
    dests: HashMap<DestKey, u32>,
    /// Slots of real servers no longer in the model, kept until their last flow is gone.
    retired: BTreeMap<u32, DestKey>,
    reverse: HashSet<maps::ReverseKey>,
    marks: HashSet<maps::MarkKey>,
    service_ids: IdPool,
    dest_ids: IdPool,
}

impl Default for Assignment {
    fn default() -> Self {
        Self {
            services: BTreeMap::new(),
            dests: HashMap::new(),
            retired: BTreeMap::new(),
            reverse: HashSet::new(),
            marks: HashSet::new(),
            service_ids: IdPool::new(maps::MAX_SERVICES),
            dest_ids: IdPool::new(maps::MAX_DESTS),
        }
    }
}

impl Assignment {
    pub fn service_id(&self, key: &ServiceKey) -> Option<u32> {
        self.services.get(key).copied()
    }

    /// Virtual services with a slot.
    pub fn services_len(&self) -> usize {
        self.services.len()
    }

    pub fn dest_id(&self, key: &DestKey) -> Option<u32> {
        self.dests.get(key).copied()
    }

    /// The real server a slot stands for, in the model or retired.
    pub fn dest_of(&self, id: u32) -> Option<DestKey> {
        self.retired.get(&id).copied().or_else(|| self.dests.iter().find(|(_, v)| **v == id).map(|(k, _)| *k))
    }

    /// Slots of real servers that left the model and may still carry flows.
    pub fn retired(&self) -> impl Iterator<Item = (u32, DestKey)> + '_ {
        self.retired.iter().map(|(id, k)| (*id, *k))
    }

    /// Frees a retired slot once no flow refers to it.
    pub fn release(&mut self, id: u32) {
        if self.retired.remove(&id).is_some() {
            self.dest_ids.give(id);
        }
    }

    /// The slots a previous rvsd left in the pinned maps: `services` from `rvs_services` (key,
    /// slot) checked against `service_info` (`rvs_service_info`, the VIP of a slot), `dests`
    /// from `rvs_dests` (the slots that hold a real server), `reverse` the keys of
    /// `rvs_reverse`, `marks` the entries of `rvs_marks`. Each slot keeps meaning the same virtual service and real server, so the
    /// flows in the kernel's table go on to theirs; a real server whose service is not among
    /// `services` is left out (its slot is free). The next [`plan`] retires what the new
    /// model no longer has.
    pub fn from_maps(
        services: &[(maps::ServiceKey, maps::Service)],
        service_info: &dyn Fn(u32) -> Option<maps::ServiceInfo>,
        dests: &[(u32, maps::Dest)],
        reverse: &[maps::ReverseKey],
        marks: &[(maps::MarkKey, maps::MarkPorts)],
    ) -> Assignment {
        let mut a = Assignment::default();
        let mut by_slot: HashMap<u32, (ServiceKey, u8)> = HashMap::new();
        for (k, v) in services {
            let Some(protocol) = Protocol::from_number(k.proto) else { continue };
            if service_info(v.id).is_some_and(|i| i.vip != *k) || !a.service_ids.reserve(v.id) {
                continue;
            }
            let key = ServiceKey::new(protocol, k.addr());
            a.services.insert(key, v.id);
            by_slot.insert(v.id, (key, k.family));
        }
        for (mk, ports) in marks {
            a.marks.insert(*mk);
            for r in ports.ranges() {
                let id = r.service.id;
                if by_slot.contains_key(&id) {
                    continue;
                }
                let Some(key) = service_info(id).and_then(|i| mark_of_info(&i.vip)) else { continue };
                if !a.service_ids.reserve(id) {
                    continue;
                }
                a.services.insert(key, id);
                by_slot.insert(id, (key, mk.family));
            }
        }
        for (id, d) in dests {
            let Some((service, family)) = by_slot.get(&d.service) else { continue };
            if !a.dest_ids.reserve(*id) {
                continue;
            }
            a.dests.insert(DestKey { service: *service, addr: d.addr(*family) }, *id);
        }
        a.reverse = reverse.iter().copied().collect();
        a
    }

    /// The real server of every slot in use (in the model and retired).
    pub fn by_slot(&self) -> HashMap<u32, DestKey> {
        self.dest_ids().collect()
    }

    /// Every slot in use (in the model and retired), for reading counters.
    pub fn dest_ids(&self) -> impl Iterator<Item = (u32, DestKey)> + '_ {
        self.dests.iter().map(|(k, v)| (*v, *k)).chain(self.retired())
    }
}

/// The packet engine's share of the model and what its maps will say.
#[derive(Debug, Clone)]
pub struct Plan {
    pub next: Assignment,
    pub services: Vec<PlannedService>,
    /// Services the maps hold now that the model no longer has.
    pub removed_services: Vec<ServiceKey>,
    /// Slots whose real servers just left the model: marked unavailable on publish.
    pub newly_retired: Vec<u32>,
    pub reverse: Vec<(maps::ReverseKey, maps::Reverse)>,
    pub removed_reverse: Vec<maps::ReverseKey>,
    /// The firewall-mark prefixes and their port ranges (every entry, on every change).
    pub marks: Vec<(maps::MarkKey, maps::MarkPorts)>,
    pub removed_marks: Vec<maps::MarkKey>,
    pub config: maps::Config,
}

/// One virtual service's entries.
#[derive(Debug, Clone)]
pub struct PlannedService {
    pub key: ServiceKey,
    pub id: u32,
    /// Its entry in `rvs_services` (an address service), or what `rvs_service_info` says of a
    /// firewall-mark service (whose packets find it in `rvs_marks`).
    pub map_key: maps::ServiceKey,
    pub by_address: bool,
    /// `maps::SVC_F_*`: whether rvsd schedules each of its datagrams.
    pub flags: u32,
    /// Its real servers (and sorry server) with their slots; `flags` left 0: whether each is
    /// available (in service now) is decided on publish, from the runtime table.
    pub dests: Vec<(DestKey, u32, maps::Dest)>,
}

/// Why the packet engine refuses a model.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("the packet engine holds at most {} virtual services", maps::MAX_SERVICES)]
    TooManyServices,
    #[error(
        "the packet engine holds at most {} real servers (across services, with those still draining)",
        maps::MAX_DESTS
    )]
    TooManyDests,
    #[error(
        "real server {addr} is masqueraded behind more than {} virtual services; the packet engine \
         tells their replies apart by address, so give it another address or port",
        maps::REVERSE_SLOTS
    )]
    TooManyReverse { addr: SocketAddr },
    #[error("tunnel real server {addr}: the kernel has no route to it ({source})")]
    NoRoute { addr: SocketAddr, source: io::Error },
    #[error(
        "firewall marks: {prefix} ({protocol}) lies in more than {} port ranges of the marks' matches; the packet \
         engine holds at most that many per prefix",
        maps::MARK_RANGES
    )]
    TooManyMarkRanges { prefix: String, protocol: Protocol },
    #[error("firewall marks: more than {} prefixes", maps::MAX_MARK_PREFIXES)]
    TooManyMarkPrefixes,
}

impl LayoutError {
    /// The service at fault, when there is one.
    pub fn service(&self) -> Option<ServiceKey> {
        None
    }
}

/// What `rvs_service_info` says of a firewall-mark service: protocol 0, port 0, the mark in
/// the first word of the address.
fn mark_info(m: MarkKey) -> maps::ServiceKey {
    maps::ServiceKey {
        addr: [m.mark.get(), 0, 0, 0],
        port: 0,
        proto: 0,
        family: if m.family == Family::V4 { maps::FAMILY_V4 } else { maps::FAMILY_V6 },
    }
}

fn mark_of_info(k: &maps::ServiceKey) -> Option<ServiceKey> {
    if k.proto != 0 {
        return None;
    }
    let family = if k.family == maps::FAMILY_V6 { Family::V6 } else { Family::V4 };
    rvs_core::Mark::new(k.addr[0]).map(|mark| ServiceKey::Mark(MarkKey { mark, family }))
}

/// The `rvs_marks` entries of the firewall-mark services `served` (key, slot, flags): for
/// every prefix of a match, the port ranges of every match whose prefix contains it.
fn mark_entries(
    table: &TableModel,
    served: &[(MarkKey, u32, u32)],
) -> Result<Vec<(maps::MarkKey, maps::MarkPorts)>, LayoutError> {
    let matches: Vec<(rvs_core::MarkMatch, maps::Service)> = served
        .iter()
        .filter_map(|(k, id, flags)| table.marks.get(&k.mark).map(|d| (d, k, *id, *flags)))
        .flat_map(|(d, k, id, flags)| d.matches_of(k.family).map(move |m| (*m, maps::Service { id, flags })))
        .collect();
    let mut out: BTreeMap<maps::MarkKey, Vec<maps::MarkRange>> = BTreeMap::new();
    for (m, _) in &matches {
        let key = maps::MarkKey::new(m.dest.addr(), m.dest.prefix_len(), proto(m.protocol));
        if out.contains_key(&key) {
            continue;
        }
        let ranges: Vec<maps::MarkRange> = matches
            .iter()
            .filter(|(o, _)| {
                o.protocol == m.protocol && o.dest.contains(m.dest.addr()) && o.dest.prefix_len() <= m.dest.prefix_len()
            })
            .map(|(o, svc)| maps::MarkRange { lo: o.ports.lo(), hi: o.ports.hi(), service: *svc })
            .collect();
        out.insert(key, ranges);
    }
    if out.len() > maps::MAX_MARK_PREFIXES as usize {
        return Err(LayoutError::TooManyMarkPrefixes);
    }
    out.into_iter()
        .map(|(k, ranges)| {
            let (addr, len) = k.prefix();
            maps::MarkPorts::new(&ranges).map(|p| (k, p)).ok_or_else(|| LayoutError::TooManyMarkRanges {
                prefix: format!("{addr}/{len}"),
                protocol: Protocol::from_number(k.proto).unwrap_or(Protocol::Tcp),
            })
        })
        .collect()
}

fn proto(p: Protocol) -> u8 {
    p.number()
}

fn method(m: ForwardingMethod) -> u8 {
    match m {
        ForwardingMethod::Gate => maps::FWD_GATE,
        ForwardingMethod::Masq => maps::FWD_MASQ,
        ForwardingMethod::Tunnel => maps::FWD_TUNNEL,
        // Not a packet-engine method; such a service is never planned here.
        ForwardingMethod::FullNat => 0,
    }
}

/// Timeouts in the program's ticks (ms), per state, as IPVS sets them: `tcp`, `tcpfin` and `udp`
/// from the table; the others IPVS's defaults. Without masq real servers (`masq` false) the
/// program skips looking for masq replies; without a masq service running the FTP helper
/// (`ftp` false), for FTP data connections.
pub fn config(timeouts: &Timeouts, expire_nodest_conn: bool, masq: bool, ftp: bool) -> maps::Config {
    let s = |secs: u32| secs.saturating_mul(1000);
    let mut timeout_ms = [0u32; maps::S_COUNT];
    timeout_ms[maps::S_NONE as usize] = s(2);
    timeout_ms[maps::S_ESTABLISHED as usize] = s(timeouts.tcp_secs);
    timeout_ms[maps::S_SYN_SENT as usize] = s(120);
    timeout_ms[maps::S_SYN_RECV as usize] = s(60);
    timeout_ms[maps::S_FIN_WAIT as usize] = s(timeouts.tcpfin_secs);
    timeout_ms[maps::S_TIME_WAIT as usize] = s(timeouts.tcpfin_secs);
    timeout_ms[maps::S_CLOSE as usize] = s(10);
    timeout_ms[maps::S_CLOSE_WAIT as usize] = s(60);
    timeout_ms[maps::S_LAST_ACK as usize] = s(30);
    timeout_ms[maps::S_UDP as usize] = s(timeouts.udp_secs);
    // SCTP: IPVS's fixed table (no `--set` value moves it).
    for state in rvs_core::SctpState::ALL {
        timeout_ms[usize::from(maps::S_SCTP + state as u8)] = state.timeout_ms();
    }
    maps::Config {
        timeout_ms,
        flags: if expire_nodest_conn { maps::CFG_F_EXPIRE_NODEST_CONN } else { 0 }
            | if masq { 0 } else { maps::CFG_F_NO_MASQ }
            | if ftp { 0 } else { maps::CFG_F_NO_FTP },
        ..Default::default()
    }
}

/// Plans `table` on top of `current`. `route_source` answers which of the director's addresses
/// the kernel would send from to reach a tunnel real server.
pub fn plan(
    current: &Assignment,
    table: &TableModel,
    route_source: &dyn Fn(IpAddr) -> io::Result<IpAddr>,
) -> Result<Plan, LayoutError> {
    let mut next = current.clone();
    let wanted: BTreeMap<&ServiceKey, &ServiceModel> =
        table.services.iter().filter(|(k, m)| m.engine_for(k) == Engine::Packet).collect();
    let removed_services: Vec<ServiceKey> = next.services.keys().filter(|k| !wanted.contains_key(k)).copied().collect();
    for k in &removed_services {
        if let Some(id) = next.services.remove(k) {
            next.service_ids.give(id);
        }
    }
    // Real servers that left (with their service or alone) retire.
    let wanted_dests: BTreeSet<DestKey> = wanted
        .iter()
        .flat_map(|(key, m)| {
            m.servers.iter().map(|s| s.addr).chain(m.settings.sorry_server).map(|addr| DestKey { service: **key, addr })
        })
        .collect();
    let mut newly_retired = Vec::new();
    next.dests.retain(|k, id| {
        let keep = wanted_dests.contains(k);
        if !keep {
            newly_retired.push(*id);
            next.retired.insert(*id, *k);
        }
        keep
    });
    let mut services = Vec::new();
    let mut reverse: HashMap<maps::ReverseKey, Vec<u32>> = HashMap::new();
    let mut served_marks = Vec::new();
    let mut ftp = false;
    let mut mark_masq = false;
    for (key, m) in wanted {
        let id = match next.services.get(key) {
            Some(id) => *id,
            None => {
                let id = next.service_ids.take().ok_or(LayoutError::TooManyServices)?;
                next.services.insert(*key, id);
                id
            }
        };
        let first_method = m.servers.first().map_or(ForwardingMethod::Gate, |s| s.method);
        // The FTP helper reads masq control connections (IPVS's ip_vs_ftp); gate and tunnel
        // need none (see the README's FTP section).
        let ftp_helper = key.protocol() == Some(Protocol::Tcp) && m.settings.helper_for(key) == Helper::Ftp;
        ftp |= ftp_helper && m.servers.iter().any(|s| s.method == ForwardingMethod::Masq);
        let servers = m
            .servers
            .iter()
            .map(|s| (s.addr, s.method))
            .chain(m.settings.sorry_server.map(|addr| (addr, first_method)));
        let mut dests = Vec::new();
        for (addr, fwd) in servers {
            let dk = DestKey { service: *key, addr };
            let dest_id = match next.dests.get(&dk) {
                Some(id) => *id,
                None => {
                    // A real server that comes back while its old slot still drains takes the
                    // old slot again: its flows are its own.
                    let old = next.retired.iter().find(|(_, k)| **k == dk).map(|(id, _)| *id);
                    let id = match old {
                        Some(id) => {
                            next.retired.remove(&id);
                            newly_retired.retain(|r| *r != id);
                            id
                        }
                        None => next.dest_ids.take().ok_or(LayoutError::TooManyDests)?,
                    };
                    next.dests.insert(dk, id);
                    id
                }
            };
            // The real server's own port: masq rewrites to it; gate and tunnel keep the virtual
            // service's port whatever it says, as IPVS does (it is kept to name the server).
            // An all-port service's flows keep the client's port: its masq real servers are
            // written with port 0 (what the program reads as "keep it").
            // A firewall mark's real server keeps its own port (0: the connection's).
            let wire =
                if key.addr().is_some_and(|a| a.addr.port() == 0) { SocketAddr::new(addr.ip(), 0) } else { addr };
            let mut dest = maps::Dest::new(wire, method(fwd), id).with_available(false);
            if fwd == ForwardingMethod::Tunnel {
                let src = route_source(addr.ip()).map_err(|source| LayoutError::NoRoute { addr, source })?;
                dest = dest.with_tunnel_src(src);
            }
            if let (ForwardingMethod::Masq, Some(a)) = (fwd, key.addr()) {
                let ids = reverse.entry(maps::ReverseKey::new(wire, proto(a.protocol))).or_default();
                if !ids.contains(&id) {
                    if ids.len() >= maps::REVERSE_SLOTS {
                        return Err(LayoutError::TooManyReverse { addr });
                    }
                    ids.push(id);
                }
            }
            dests.push((dk, dest_id, dest));
        }
        let mut flags = if m.settings.schedules_each_datagram() { maps::SVC_F_EACH_PACKET } else { 0 }
            | if ftp_helper { maps::SVC_F_FTP } else { 0 };
        let map_key = match key {
            ServiceKey::Addr(a) => maps::ServiceKey::new(a.addr, proto(a.protocol)),
            ServiceKey::Mark(mk) => {
                // Its masq replies find their flows in rvs_mark_replies, not rvs_reverse.
                flags |= maps::SVC_F_MARK;
                mark_masq |= m.servers.iter().any(|s| s.method == ForwardingMethod::Masq);
                served_marks.push((*mk, id, flags));
                mark_info(*mk)
            }
        };
        services.push(PlannedService { key: *key, id, map_key, by_address: key.addr().is_some(), flags, dests });
    }
    let marks = mark_entries(table, &served_marks)?;
    let removed_marks = next.marks.iter().filter(|k| !marks.iter().any(|(m, _)| m == *k)).copied().collect();
    next.marks = marks.iter().map(|(k, _)| *k).collect();
    let removed_reverse = next.reverse.iter().filter(|k| !reverse.contains_key(k)).copied().collect();
    next.reverse = reverse.keys().copied().collect();
    let reverse = reverse.into_iter().map(|(k, ids)| (k, maps::Reverse::new(&ids))).collect();
    let masq = !next.reverse.is_empty() || mark_masq;
    let mut config = config(&table.timeouts, table.options.expire_nodest_conn, masq, ftp);
    if marks.is_empty() {
        config.flags |= maps::CFG_F_NO_MARKS;
    }
    Ok(Plan { next, services, removed_services, newly_retired, reverse, removed_reverse, marks, removed_marks, config })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::{RealServerSettings, ServiceSettings};

    fn server(addr: &str, method: ForwardingMethod) -> RealServerSettings {
        RealServerSettings { method, ..RealServerSettings::new(addr.parse().unwrap()) }
    }

    fn table(services: &[(&str, Protocol, Vec<RealServerSettings>)]) -> TableModel {
        let mut t = TableModel::default();
        for (addr, protocol, servers) in services {
            t.services.insert(
                ServiceKey::new(*protocol, addr.parse().unwrap()),
                ServiceModel { settings: ServiceSettings::default(), servers: servers.clone() },
            );
        }
        t
    }

    fn no_route(_: IpAddr) -> io::Result<IpAddr> {
        Err(io::Error::new(io::ErrorKind::NetworkUnreachable, "unreachable"))
    }

    fn local(_: IpAddr) -> io::Result<IpAddr> {
        Ok("198.18.0.1".parse().unwrap())
    }

    #[test]
    fn fullnat_services_are_the_proxys_and_packet_services_get_slots() {
        let t = table(&[
            ("198.18.1.10:80", Protocol::Tcp, vec![server("198.18.0.11:80", ForwardingMethod::Gate)]),
            ("198.18.1.11:80", Protocol::Tcp, vec![server("127.0.0.1:8080", ForwardingMethod::FullNat)]),
        ]);
        let p = plan(&Assignment::default(), &t, &no_route).unwrap();
        assert_eq!(p.services.len(), 1);
        let s = &p.services[0];
        assert_eq!((s.id, s.dests.len()), (0, 1));
        assert_eq!(s.dests[0].2.method, maps::FWD_GATE);
        assert_eq!(u16::from_be(s.dests[0].2.port), 80);
    }

    #[test]
    fn slots_stay_with_their_real_servers_and_a_leaving_one_retires_until_released() {
        let a = server("198.18.0.11:8080", ForwardingMethod::Masq);
        let b = server("198.18.0.12:8080", ForwardingMethod::Masq);
        let both = table(&[("198.18.1.10:80", Protocol::Tcp, vec![a, b])]);
        let p1 = plan(&Assignment::default(), &both, &no_route).unwrap();
        let ids: Vec<u32> = p1.services[0].dests.iter().map(|d| d.1).collect();
        assert_eq!(ids, [0, 1]);
        assert_eq!(u16::from_be(p1.services[0].dests[0].2.port), 8080, "masq goes to the real server's port");
        assert_eq!(p1.reverse.len(), 2);

        let only_b = table(&[("198.18.1.10:80", Protocol::Tcp, vec![b])]);
        let p2 = plan(&p1.next, &only_b, &no_route).unwrap();
        assert_eq!(p2.services[0].dests[0].1, 1, "b keeps its slot");
        assert_eq!(p2.newly_retired, [0]);
        assert_eq!(p2.removed_reverse.len(), 1);
        let mut next = p2.next.clone();
        assert_eq!(next.retired().count(), 1);

        // a comes back while draining: its old slot again.
        let p3 = plan(&next, &both, &no_route).unwrap();
        assert_eq!(p3.services[0].dests.iter().map(|d| d.1).collect::<Vec<_>>(), [0, 1]);
        assert!(p3.newly_retired.is_empty());

        // Released, the slot is handed out again.
        next.release(0);
        let c = server("198.18.0.13:8080", ForwardingMethod::Masq);
        let p4 = plan(&next, &table(&[("198.18.1.10:80", Protocol::Tcp, vec![b, c])]), &no_route).unwrap();
        assert_eq!(p4.services[0].dests[1].1, 0);
    }

    #[test]
    fn an_assignment_rebuilt_from_the_maps_keeps_every_slot() {
        let a = server("198.18.0.11:8080", ForwardingMethod::Masq);
        let b = server("198.18.0.12:80", ForwardingMethod::Gate);
        let t = table(&[
            ("198.18.1.10:80", Protocol::Tcp, vec![a]),
            ("[2001:db8:1::10]:53", Protocol::Udp, vec![server("[2001:db8::11]:53", ForwardingMethod::Gate)]),
            ("198.18.1.11:80", Protocol::Tcp, vec![a, b]),
        ]);
        let p = plan(&Assignment::default(), &t, &no_route).unwrap();
        // What publish writes, as the maps hold it.
        let services: Vec<(maps::ServiceKey, maps::Service)> =
            p.services.iter().map(|s| (s.map_key, maps::Service::new(s.id))).collect();
        let info: HashMap<u32, maps::ServiceInfo> =
            p.services.iter().map(|s| (s.id, maps::ServiceInfo::new(s.map_key))).collect();
        let dests: Vec<(u32, maps::Dest)> =
            p.services.iter().flat_map(|s| s.dests.iter().map(|d| (d.1, d.2))).collect();
        let reverse: Vec<maps::ReverseKey> = p.reverse.iter().map(|r| r.0).collect();
        let rebuilt = Assignment::from_maps(&services, &|id| info.get(&id).copied(), &dests, &reverse, &[]);
        for s in &p.services {
            assert_eq!(rebuilt.service_id(&s.key), Some(s.id));
            for (dk, id, _) in &s.dests {
                assert_eq!(rebuilt.dest_id(dk), Some(*id), "{dk:?}");
            }
        }
        assert_eq!(rebuilt.by_slot(), p.next.by_slot());
        // Planning the same table again changes no slot and removes nothing.
        let again = plan(&rebuilt, &t, &no_route).unwrap();
        assert!(
            again.newly_retired.is_empty() && again.removed_services.is_empty() && again.removed_reverse.is_empty()
        );
        assert_eq!(again.next.by_slot(), p.next.by_slot());
        // New slots come from the free ones.
        let c = server("198.18.0.13:80", ForwardingMethod::Gate);
        let more = table(&[("198.18.1.12:80", Protocol::Tcp, vec![c])]);
        let mut t2 = t.clone();
        t2.services.extend(more.services);
        let p2 = plan(&rebuilt, &t2, &no_route).unwrap();
        let new = p2
            .services
            .iter()
            .find(|s| {
                s.key.addr().unwrap().addr.port() == 80 && s.key.addr().unwrap().addr.ip().to_string() == "198.18.1.12"
            })
            .unwrap();
        assert!(!p.services.iter().any(|s| s.id == new.id));
        assert!(!dests.iter().any(|d| d.0 == new.dests[0].1));
    }

    #[test]
    fn a_tunnel_needs_a_route_and_takes_the_kernels_source() {
        let t = table(&[("198.18.1.10:80", Protocol::Tcp, vec![server("198.18.0.11:80", ForwardingMethod::Tunnel)])]);
        let e = plan(&Assignment::default(), &t, &no_route).unwrap_err();
        assert!(e.to_string().contains("198.18.0.11:80"), "{e}");
        let p = plan(&Assignment::default(), &t, &local).unwrap();
        assert_eq!(p.services[0].dests[0].2.tunnel_src, maps::addr_words("198.18.0.1".parse().unwrap()).0);
    }

    #[test]
    fn one_masq_address_behind_too_many_services_is_refused() {
        let s = server("198.18.0.11:8080", ForwardingMethod::Masq);
        let services: Vec<(String, Protocol, Vec<RealServerSettings>)> =
            (0..=maps::REVERSE_SLOTS).map(|i| (format!("198.18.1.{}:80", 10 + i), Protocol::Tcp, vec![s])).collect();
        let refs: Vec<(&str, Protocol, Vec<RealServerSettings>)> =
            services.iter().map(|(a, p, v)| (a.as_str(), *p, v.clone())).collect();
        let e = plan(&Assignment::default(), &table(&refs), &no_route).unwrap_err();
        assert!(matches!(e, LayoutError::TooManyReverse { .. }), "{e}");
    }

    #[test]
    fn timeouts_follow_the_table() {
        let c = config(&Timeouts { tcp_secs: 10, tcpfin_secs: 5, udp_secs: 7 }, true, true, true);
        assert_eq!(c.timeout_ms[maps::S_ESTABLISHED as usize], 10_000);
        assert_eq!(c.timeout_ms[maps::S_FIN_WAIT as usize], 5_000);
        assert_eq!(c.timeout_ms[maps::S_UDP as usize], 7_000);
        assert_eq!(c.flags, maps::CFG_F_EXPIRE_NODEST_CONN);
        let c = config(&Timeouts::default(), false, false, true);
        assert_eq!(c.flags, maps::CFG_F_NO_MASQ, "no masq real server: no reply lookups");
        // SCTP's are IPVS's fixed table, whatever --set says, and the loader's defaults.
        assert_eq!(c.timeout_ms[maps::S_SCTP_ESTABLISHED as usize], 900_000);
        assert_eq!(c.timeout_ms[maps::S_SCTP_CLOSED as usize], 61_000);
        assert_eq!(c.timeout_ms[maps::S_SCTP_INIT1 as usize], 4_000);
        assert_eq!(c.timeout_ms, maps::Config::default().timeout_ms);
    }

    #[test]
    fn an_ftp_service_on_masq_turns_the_helper_on() {
        let flags = |services: &[(&str, Protocol, Vec<RealServerSettings>)]| {
            let p = plan(&Assignment::default(), &table(services), &local).unwrap();
            let by_port: Vec<(u16, u32)> = p.services.iter().map(|s| (s.key.port(), s.flags)).collect();
            (by_port, p.config.flags & maps::CFG_F_NO_FTP)
        };
        let masq = server("198.18.0.11:21", ForwardingMethod::Masq);
        let gate = server("198.18.0.12:21", ForwardingMethod::Gate);
        // Port 21 runs the helper by default (ip_vs_ftp's ports=21); its lookups are on only
        // with a masq real server behind it.
        assert_eq!(flags(&[("198.18.1.10:21", Protocol::Tcp, vec![masq])]), (vec![(21, maps::SVC_F_FTP)], 0));
        assert_eq!(
            flags(&[("198.18.1.10:21", Protocol::Tcp, vec![gate])]),
            (vec![(21, maps::SVC_F_FTP)], maps::CFG_F_NO_FTP)
        );
        let http = server("198.18.0.11:80", ForwardingMethod::Masq);
        assert_eq!(flags(&[("198.18.1.10:80", Protocol::Tcp, vec![http])]), (vec![(80, 0)], maps::CFG_F_NO_FTP));
    }

    #[test]
    fn an_sctp_service_is_planned_with_its_protocol_number() {
        let key = ServiceKey::new(Protocol::Sctp, "198.18.1.10:80".parse().unwrap());
        let mut t = TableModel::default();
        t.apply(&rvs_core::Command::AddService { key, settings: rvs_core::ServiceSettings::default() }).unwrap();
        let p = plan(&Assignment::default(), &t, &no_route).unwrap();
        assert_eq!(p.services.len(), 1, "an SCTP service without real servers is still the packet engine's");
        assert_eq!(p.services[0].map_key, maps::ServiceKey::new(key.addr().unwrap().addr, maps::IPPROTO_SCTP));
    }
}
