//! The service table: the director's one authoritative state. A plain-data model (what
//! `save` prints and what a reload diffs against) checks every command before the runtime
//! objects the data planes share are touched; batches are all-or-nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::command::{BatchError, Command, CommandError, DirectorOptions, EngineConflict};
use crate::forwarding::{Engine, ForwardingMethod};
use crate::fwmark::{Mark, MarkDef, MarkError};
use crate::health::Health;
use crate::real_server::{RealServer, RealServerSettings};
use crate::service::{ServiceKey, ServiceSettings};
use crate::timeouts::{Timeouts, MAX_TIMEOUT_SECS};
use crate::virtual_service::VirtualService;

/// One virtual service in the model: settings and real servers in the order added.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceModel {
    pub settings: ServiceSettings,
    pub servers: Vec<RealServerSettings>,
}

impl ServiceModel {
    /// The engine that serves this service, decided by its real servers' methods (see
    /// [`Engine::of`]: the proxy engine while it has none). An SCTP service is the packet
    /// engine's, real servers or not: the data planes also ask [`crate::Protocol::proxied`].
    pub fn engine(&self) -> Engine {
        Engine::of(self.servers.iter().map(|s| s.method))
    }

    /// The engine of this service at `key`: an all-port service (port 0) and an SCTP service
    /// are the packet engine's whatever their real servers (the proxy engines refuse full NAT
    /// on them).
    pub fn engine_for(&self, key: &ServiceKey) -> Engine {
        if key.packet_engine_only() {
            Engine::Packet
        } else {
            self.engine()
        }
    }

    /// Refuses `server` when its method's engine is not that of the service's other real
    /// servers (the one with its address, being edited, does not count).
    fn check_engine(&self, service: &ServiceKey, server: &RealServerSettings) -> Result<(), CommandError> {
        let other = self.servers.iter().find(|s| s.addr != server.addr && s.method.engine() != server.method.engine());
        match other {
            Some(o) => Err(CommandError::MixedEngines(Box::new(EngineConflict {
                service: *service,
                addr: server.addr,
                method: server.method,
                other: o.addr,
                other_method: o.method,
            }))),
            None => Ok(()),
        }
    }
}

/// The whole configuration as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableModel {
    pub services: BTreeMap<ServiceKey, ServiceModel>,
    /// The firewall marks defined, by number (what `-f MARK` services serve).
    pub marks: BTreeMap<Mark, MarkDef>,
    pub timeouts: Timeouts,
    pub options: DirectorOptions,
}

impl TableModel {
    /// Checks and applies one command to the model.
    pub fn apply(&mut self, cmd: &Command) -> Result<(), CommandError> {
        match cmd {
            Command::AddService { key, settings } => {
                if self.services.contains_key(key) {
                    return Err(CommandError::ServiceExists(*key));
                }
                check_service(key, settings)?;
                self.check_mark_of(key)?;
                self.services.insert(*key, ServiceModel { settings: settings.clone(), servers: vec![] });
            }
            Command::EditService { key, settings } => {
                check_service(key, settings)?;
                self.service_mut(key)?.settings = settings.clone();
            }
            Command::DeleteService { key } => {
                self.services.remove(key).ok_or(CommandError::NoService(*key))?;
            }
            Command::Clear => self.services.clear(),
            Command::SetMark(def) => {
                def.validate()?;
                for other in self.marks.values().filter(|o| o.mark != def.mark) {
                    for a in &other.matches {
                        if let Some(b) = def.matches.iter().find(|b| a.overlaps(b)) {
                            return Err(
                                MarkError::Overlap { a: *a, mark_a: other.mark, b: *b, mark_b: def.mark }.into()
                            );
                        }
                    }
                }
                let old = self.marks.insert(def.mark, def.clone());
                let unserved = self
                    .services
                    .keys()
                    .filter_map(|k| k.mark())
                    .find(|m| m.mark == def.mark && def.matches_of(m.family).next().is_none());
                if let Some(m) = unserved {
                    match old {
                        Some(o) => self.marks.insert(def.mark, o),
                        None => self.marks.remove(&def.mark),
                    };
                    return Err(MarkError::NoMatchOfFamily { mark: m.mark, family: m.family.name() }.into());
                }
            }
            Command::DeleteMark(mark) => {
                if let Some(service) = self.services.keys().filter_map(|k| k.mark()).find(|m| m.mark == *mark) {
                    return Err(MarkError::InUse { mark: *mark, service }.into());
                }
                self.marks.remove(mark).ok_or(MarkError::Undefined(*mark))?;
            }
            Command::AddServer { service, server } => {
                check_server(service, server)?;
                let svc = self.service_mut(service)?;
                check_own_address(service, server)?;
                if svc.servers.iter().any(|s| s.addr == server.addr) {
                    return Err(CommandError::ServerExists { service: *service, addr: server.addr });
                }
                svc.check_engine(service, server)?;
                svc.servers.push(*server);
            }
            Command::EditServer { service, server } => {
                check_server(service, server)?;
                let svc = self.service_mut(service)?;
                // (No real server is at the service's own address: adding one is refused.)
                let slot = svc
                    .servers
                    .iter()
                    .position(|s| s.addr == server.addr)
                    .ok_or(CommandError::NoServer { service: *service, addr: server.addr })?;
                svc.check_engine(service, server)?;
                svc.servers[slot] = *server;
            }
            Command::DeleteServer { service, addr } => {
                let svc = self.service_mut(service)?;
                let before = svc.servers.len();
                svc.servers.retain(|s| s.addr != *addr);
                if svc.servers.len() == before {
                    return Err(CommandError::NoServer { service: *service, addr: *addr });
                }
            }
            Command::SetTimeouts(t) => {
                if [t.tcp_secs, t.tcpfin_secs, t.udp_secs].iter().any(|v| *v > MAX_TIMEOUT_SECS || *v == 0) {
                    return Err(CommandError::Timeout);
                }
                self.timeouts = *t;
            }
            Command::SetOptions(o) => self.options = *o,
            Command::Zero { service } => {
                if let Some(k) = service {
                    self.service_mut(k)?;
                }
            }
            Command::SetHealth { service, addr, .. } => {
                if !self.service_mut(service)?.servers.iter().any(|s| s.addr == *addr) {
                    return Err(CommandError::NoServer { service: *service, addr: *addr });
                }
            }
            Command::SetQuorum { service, .. } => {
                self.service_mut(service)?;
            }
        }
        Ok(())
    }

    /// The service a packet of `protocol` to `dest` is for (see [`crate::fwmark::classify`]).
    pub fn service_for(&self, protocol: crate::Protocol, dest: std::net::SocketAddr) -> Option<ServiceKey> {
        crate::fwmark::classify(&self.marks, protocol, dest, |k| self.services.contains_key(k))
    }

    /// Where a packet to the service at `key` goes, as a message with room for one address
    /// names it (see [`MarkDef::representative`]).
    pub fn wire_address(&self, key: &ServiceKey) -> Option<(crate::Protocol, std::net::SocketAddr)> {
        match key {
            ServiceKey::Addr(a) => Some((a.protocol, a.addr)),
            ServiceKey::Mark(m) => self.marks.get(&m.mark).and_then(|d| d.representative(m.family)),
        }
    }

    /// A firewall-mark service needs its mark defined, with matches of its family.
    fn check_mark_of(&self, key: &ServiceKey) -> Result<(), CommandError> {
        let Some(m) = key.mark() else { return Ok(()) };
        let def = self.marks.get(&m.mark).ok_or(MarkError::Undefined(m.mark))?;
        if def.matches_of(m.family).next().is_none() {
            return Err(MarkError::NoMatchOfFamily { mark: m.mark, family: m.family.name() }.into());
        }
        Ok(())
    }

    fn service_mut(&mut self, key: &ServiceKey) -> Result<&mut ServiceModel, CommandError> {
        self.services.get_mut(key).ok_or(CommandError::NoService(*key))
    }

    /// The commands that turn `self` into `new`, fewest first: deletions, then additions and
    /// edits. Unchanged services and real servers produce nothing, so their connections and
    /// counters are untouched by a reload.
    pub fn diff(&self, new: &TableModel) -> Vec<Command> {
        let mut cmds = Vec::new();
        if self.timeouts != new.timeouts {
            cmds.push(Command::SetTimeouts(new.timeouts));
        }
        if self.options != new.options {
            cmds.push(Command::SetOptions(new.options));
        }
        for key in self.services.keys().filter(|k| !new.services.contains_key(k)) {
            cmds.push(Command::DeleteService { key: *key });
        }
        // Marks after the services that leave them, before the services that come to them.
        for mark in self.marks.keys().filter(|m| !new.marks.contains_key(m)) {
            cmds.push(Command::DeleteMark(*mark));
        }
        for (mark, def) in &new.marks {
            if self.marks.get(mark) != Some(def) {
                cmds.push(Command::SetMark(def.clone()));
            }
        }
        for (key, nsvc) in &new.services {
            match self.services.get(key) {
                None => {
                    cmds.push(Command::AddService { key: *key, settings: nsvc.settings.clone() });
                    cmds.extend(nsvc.servers.iter().map(|s| Command::AddServer { service: *key, server: *s }));
                }
                Some(osvc) => {
                    if osvc.settings != nsvc.settings {
                        cmds.push(Command::EditService { key: *key, settings: nsvc.settings.clone() });
                    }
                    for o in &osvc.servers {
                        if !nsvc.servers.iter().any(|n| n.addr == o.addr) {
                            cmds.push(Command::DeleteServer { service: *key, addr: o.addr });
                        }
                    }
                    for n in &nsvc.servers {
                        match osvc.servers.iter().find(|o| o.addr == n.addr) {
                            None => cmds.push(Command::AddServer { service: *key, server: *n }),
                            Some(o) if o != n => cmds.push(Command::EditServer { service: *key, server: *n }),
                            Some(_) => {}
                        }
                    }
                }
            }
        }
        cmds
    }

    /// The commands that build this model from an empty table (what `save` prints).
    pub fn commands(&self) -> Vec<Command> {
        TableModel { timeouts: self.timeouts, options: self.options, ..Default::default() }.diff(self)
    }
}

fn check_service(key: &ServiceKey, settings: &ServiceSettings) -> Result<(), CommandError> {
    settings.validate(key).map_err(|source| CommandError::Service { key: *key, source })
}

fn check_server(service: &ServiceKey, server: &RealServerSettings) -> Result<(), CommandError> {
    server.validate_in(service).map_err(|source| CommandError::Server { addr: server.addr, source })?;
    if service.addr().is_some_and(|a| a.addr.port() == 0) && server.method == ForwardingMethod::FullNat {
        return Err(CommandError::Unsupported(format!(
            "virtual service {service}: an all-port service (port 0) is served by the packet engine only: \
             give real server {} the gate, masq or tunnel method, not fullnat (the proxy engines listen on one port)",
            server.addr
        )));
    }
    if server.addr.is_ipv4() != service.is_ipv4() {
        return Err(CommandError::MixedFamily { service: *service, addr: server.addr });
    }
    if service.protocol().is_some_and(|p| !p.proxied()) && server.method.engine() == Engine::Proxy {
        return Err(CommandError::SctpNeedsPacketEngine { service: *service, addr: server.addr });
    }
    Ok(())
}

/// A real server at its service's own address and port (a port left out takes the service's)
/// would be sent the service's own traffic again, whatever the method.
fn check_own_address(service: &ServiceKey, server: &RealServerSettings) -> Result<(), CommandError> {
    if service.addr().is_some_and(|a| a.addr == server.addr) {
        return Err(CommandError::OwnAddress { service: *service, addr: server.addr });
    }
    Ok(())
}

/// What the data planes read: the services by key, the timeouts and switches. Immutable;
/// the control side publishes a new one on every change.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub services: HashMap<ServiceKey, Arc<VirtualService>>,
    /// The firewall marks the `-f` services serve.
    pub marks: BTreeMap<Mark, MarkDef>,
    pub timeouts: Timeouts,
    pub options: DirectorOptions,
}

/// What applying a batch did that the data planes must act on.
#[derive(Debug, Default)]
pub struct Applied {
    /// Real servers that left their service (their connections drain, or are closed when
    /// `expire_nodest_conn` is set).
    pub removed_servers: Vec<Arc<RealServer>>,
    /// Services deleted (their listeners close; their connections drain).
    pub removed_services: Vec<ServiceKey>,
}

/// The model plus the runtime objects shared with the data planes.
#[derive(Debug, Default)]
pub struct ServiceTable {
    model: TableModel,
    runtime: BTreeMap<ServiceKey, Arc<VirtualService>>,
    seed: u64,
}

impl ServiceTable {
    /// An empty table; `seed` makes hashing schedulers differ per director.
    pub fn new(seed: u64) -> Self {
        Self { seed, ..Default::default() }
    }

    pub fn model(&self) -> &TableModel {
        &self.model
    }

    pub fn service(&self, key: &ServiceKey) -> Option<&Arc<VirtualService>> {
        self.runtime.get(key)
    }

    pub fn services(&self) -> impl Iterator<Item = &Arc<VirtualService>> {
        self.runtime.values()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            services: self.runtime.iter().map(|(k, v)| (*k, v.clone())).collect(),
            marks: self.model.marks.clone(),
            timeouts: self.model.timeouts,
            options: self.model.options,
        }
    }

    /// Applies a batch all-or-nothing: every command is checked against a copy of the model
    /// first; only when all pass does the runtime change.
    pub fn apply_batch(&mut self, cmds: &[Command]) -> Result<Applied, BatchError> {
        let model = self.check_batch(cmds)?;
        let mut applied = Applied::default();
        for cmd in cmds {
            self.apply_runtime(cmd, &mut applied);
        }
        self.model = model;
        Ok(applied)
    }

    /// The model as it would be after `cmds`, or the first command refused. Changes nothing.
    pub fn check_batch(&self, cmds: &[Command]) -> Result<TableModel, BatchError> {
        let mut model = self.model.clone();
        for (index, cmd) in cmds.iter().enumerate() {
            model.apply(cmd).map_err(|error| BatchError { index, error })?;
        }
        Ok(model)
    }

    /// Applies one command.
    pub fn apply(&mut self, cmd: Command) -> Result<Applied, CommandError> {
        self.apply_batch(std::slice::from_ref(&cmd)).map_err(|e| e.error)
    }

    fn apply_runtime(&mut self, cmd: &Command, applied: &mut Applied) {
        match cmd {
            Command::AddService { key, settings } => {
                self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let svc = Arc::new(VirtualService::new(*key, settings.clone(), self.seed));
                self.runtime.insert(*key, svc);
            }
            Command::EditService { key, settings } => {
                if let Some(svc) = self.runtime.get(key) {
                    svc.set_settings(settings.clone());
                }
            }
            Command::DeleteService { key } => {
                if let Some(svc) = self.runtime.remove(key) {
                    retire_service(&svc, applied);
                }
            }
            Command::Clear => {
                for (_, svc) in std::mem::take(&mut self.runtime) {
                    retire_service(&svc, applied);
                }
            }
            Command::AddServer { service, server } => {
                if let Some(svc) = self.runtime.get(service) {
                    let mut dests = (*svc.dests()).clone();
                    dests.push(Arc::new(RealServer::new(*server)));
                    svc.set_dests(dests);
                }
            }
            Command::EditServer { service, server } => {
                if let Some(svc) = self.runtime.get(service) {
                    if let Some(d) = svc.dest(server.addr) {
                        d.update(*server);
                        if server.weight == 0 && self.model.options.expire_quiescent_template {
                            svc.expire_templates_of(server.addr);
                        }
                        svc.refresh_scheduler();
                    }
                }
            }
            Command::DeleteServer { service, addr } => {
                if let Some(svc) = self.runtime.get(service) {
                    let mut dests = (*svc.dests()).clone();
                    if let Some(pos) = dests.iter().position(|d| d.addr == *addr) {
                        let gone = dests.remove(pos);
                        gone.set_in_service(false);
                        svc.set_dests(dests);
                        svc.expire_templates_of(*addr);
                        applied.removed_servers.push(gone);
                    }
                }
            }
            Command::SetTimeouts(_) | Command::SetOptions(_) | Command::SetMark(_) | Command::DeleteMark(_) => {}
            Command::SetHealth { service, addr, health, weight } => {
                if let Some(svc) = self.runtime.get(service) {
                    if let Some(d) = svc.dest(*addr) {
                        d.set_health(*health, *weight);
                        if *health != Health::Up {
                            svc.expire_templates_of(*addr);
                        }
                        svc.refresh_scheduler();
                    }
                }
            }
            Command::SetQuorum { service, lost } => {
                if let Some(svc) = self.runtime.get(service) {
                    svc.set_quorum_lost(*lost);
                }
            }
            Command::Zero { service } => {
                let zero = |svc: &Arc<VirtualService>| {
                    svc.stats.zero();
                    svc.dests().iter().for_each(|d| d.stats.zero());
                };
                match service {
                    Some(k) => self.runtime.get(k).into_iter().for_each(zero),
                    None => self.runtime.values().for_each(zero),
                }
            }
        }
    }

    /// Samples every rate estimator (call every 2 s) and purges expired templates.
    pub fn tick(&self, now_ms: u64) {
        for svc in self.runtime.values() {
            svc.stats.sample();
            svc.dests().iter().for_each(|d| d.stats.sample());
            svc.purge_templates(now_ms);
        }
    }
}

fn retire_service(svc: &Arc<VirtualService>, applied: &mut Applied) {
    applied.removed_services.push(svc.key);
    for d in svc.dests().iter() {
        d.set_in_service(false);
    }
}
