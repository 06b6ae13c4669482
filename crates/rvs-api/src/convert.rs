//! Wire types ↔ core: requests into validated core commands (errors name the field), the
//! service table into views, and core commands back into wire commands for `save`.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use rvs_core::addr::parse_endpoint;
use rvs_core::persistence::DEFAULT_PERSISTENCE_SECS;
use rvs_core::sched::MH_DEFAULT_TABLE_SIZE;
use rvs_core::stats::{CounterValues, Rates};
use rvs_core::{
    Command, DirectorOptions, Family, Mark, MarkDef, MarkKey, MarkMatch, Netmask, Persistence, Protocol,
    RealServerSettings, ServiceKey, ServiceSettings, TableModel, Timeouts, VirtualService,
};

use crate::error::ApiError;
use crate::types::*;

fn parse_addr(text: &str, default_port: Option<u16>, field: &str) -> Result<SocketAddr, ApiError> {
    parse_endpoint(text, default_port).map_err(|e| ApiError::field(field, e))
}

/// The protocol names of firewall-mark services: IPv4 (`-f MARK`) and IPv6 (`-f MARK -6`).
pub const FWMARK: &str = "fwmark";
pub const FWMARK6: &str = "fwmark6";

/// The core key of a service id; `field` prefixes error fields.
pub fn service_key(id: &ServiceId, field: &str) -> Result<ServiceKey, ApiError> {
    let family = match id.protocol.as_str() {
        FWMARK => Some(Family::V4),
        FWMARK6 => Some(Family::V6),
        _ => None,
    };
    if let Some(family) = family {
        let mark = parse_mark(&id.address).map_err(|e| ApiError::field(format!("{field}.address"), e))?;
        return Ok(ServiceKey::Mark(MarkKey { mark, family }));
    }
    let protocol: Protocol = id.protocol.parse().map_err(|e| {
        ApiError::field(format!("{field}.protocol"), format!("{e}, or fwmark / fwmark6 for a firewall-mark service"))
    })?;
    let addr = parse_addr(&id.address, None, &format!("{field}.address"))?;
    Ok(ServiceKey::new(protocol, addr))
}

/// A firewall mark's number: decimal or `0x` hexadecimal (as ipvsadm reads `-f`), not 0.
pub fn parse_mark(text: &str) -> Result<Mark, String> {
    let t = text.trim();
    let n = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => t.parse(),
    }
    .map_err(|_| format!("`{text}` is not a firewall mark (a number from 1 to 4294967295)"))?;
    Mark::new(n).ok_or_else(|| rvs_core::fwmark::MarkError::Zero.to_string())
}

impl MarkSpec {
    /// The validated definition; `field` prefixes error fields.
    pub fn to_core(&self, field: &str) -> Result<MarkDef, ApiError> {
        let mark = Mark::new(self.mark)
            .ok_or_else(|| ApiError::field(format!("{field}.mark"), rvs_core::fwmark::MarkError::Zero))?;
        let mut matches = Vec::with_capacity(self.matches.len());
        for (i, m) in self.matches.iter().enumerate() {
            let f = |name: &str| format!("{field}.matches[{i}].{name}");
            matches.push(MarkMatch {
                protocol: m.protocol.parse().map_err(|e| ApiError::field(f("protocol"), e))?,
                dest: m.address.parse().map_err(|e| ApiError::field(f("address"), e))?,
                ports: m.ports.parse().map_err(|e| ApiError::field(f("ports"), e))?,
            });
        }
        let def = MarkDef { mark, matches };
        def.validate().map_err(|e| ApiError::field(format!("{field}.matches"), e))?;
        Ok(def)
    }

    pub fn from_core(def: &MarkDef) -> Self {
        MarkSpec {
            mark: def.mark.get(),
            matches: def
                .matches
                .iter()
                .map(|m| MarkMatchSpec {
                    protocol: m.protocol.name().into(),
                    address: m.dest.to_string(),
                    ports: m.ports.to_string(),
                })
                .collect(),
        }
    }
}

impl ServiceSpec {
    pub fn id(&self) -> ServiceId {
        ServiceId { protocol: self.protocol.clone(), address: self.address.clone() }
    }

    /// The key and validated settings; `field` prefixes error fields.
    pub fn to_core(&self, field: &str) -> Result<(ServiceKey, ServiceSettings), ApiError> {
        let key = service_key(&self.id(), field)?;
        let f = |name: &str| format!("{field}.{name}");
        let mut s = ServiceSettings::default();
        if let Some(name) = &self.scheduler {
            s.scheduler = name.parse().map_err(|e| ApiError::field(f("scheduler"), e))?;
        }
        for flag in &self.sched_flags {
            s.flags.set(flag).map_err(|e| ApiError::field(f("sched_flags"), e))?;
        }
        s.flags.check_for(s.scheduler).map_err(|e| ApiError::field(f("sched_flags"), e))?;
        s.mh_table_size = self.mh_table_size.unwrap_or(MH_DEFAULT_TABLE_SIZE);
        if let Some(sorry) = &self.sorry_server {
            s.sorry_server = Some(parse_addr(sorry, Some(key.port()), &f("sorry_server"))?);
        }
        if let Some(n) = self.max_connections {
            s.max_connections =
                Some(NonZeroU32::new(n).ok_or_else(|| ApiError::field(f("max_connections"), "must be above 0"))?);
        }
        if let Some(h) = &self.helper {
            s.helper = Some(h.parse().map_err(|e| ApiError::field(f("helper"), e))?);
        }
        if self.persistent.is_some() || self.netmask.is_some() {
            let netmask = match &self.netmask {
                Some(m) => m.parse::<Netmask>().map_err(|e| ApiError::field(f("netmask"), e))?,
                None => Netmask::host(key.family().unspecified()),
            };
            s.persistence = Some(Persistence::new(self.persistent.unwrap_or(DEFAULT_PERSISTENCE_SECS), netmask));
        }
        if let Some(pe) = &self.persistence_engine {
            let engine = pe.parse().map_err(|e| ApiError::field(f("persistence_engine"), e))?;
            let Some(p) = s.persistence.as_mut() else {
                return Err(ApiError::field(
                    f("persistence_engine"),
                    "a persistence engine needs persistence: set persistent",
                ));
            };
            p.engine = Some(engine);
        }
        s.one_packet = self.one_packet;
        s.validate(&key).map_err(|e| {
            use rvs_core::service::ServiceError as E;
            let name = match e {
                E::NetmaskFamily { .. } => "netmask",
                E::ZeroPersistence => "persistent",
                E::Sched(_) => "mh_table_size",
                E::SorryServer(_) => "sorry_server",
                E::MaxConnectionsUdp => "max_connections",
                E::OnePacketNotUdp => "one_packet",
                E::SipNotUdp => "persistence_engine",
                E::HelperNotTcp | E::HelperMark => "helper",
                E::PerDatagramMark if self.one_packet => "one_packet",
                E::PerDatagramMark => "persistence_engine",
                _ => "address",
            };
            ApiError::field(f(name), e)
        })?;
        Ok((key, s))
    }
}

impl RealServerSpec {
    /// Validated settings for a real server of `service`. Absent fields come from `base`
    /// (the current settings, on edit) or the defaults.
    pub fn to_core(
        &self,
        service: &ServiceKey,
        base: Option<RealServerSettings>,
        field: &str,
    ) -> Result<RealServerSettings, ApiError> {
        let f = |name: &str| format!("{field}.{name}");
        let addr = parse_addr(&self.address, Some(service.port()), &f("address"))?;
        let mut s = base.unwrap_or_else(|| RealServerSettings::new(addr));
        s.addr = addr;
        if let Some(w) = self.weight {
            s.weight = w;
        }
        if let Some(m) = &self.method {
            s.method = m.parse().map_err(|e: String| ApiError::field(f("method"), e))?;
        }
        if let Some(u) = self.u_threshold {
            s.u_threshold = u;
        }
        if let Some(l) = self.l_threshold {
            s.l_threshold = l;
        }
        if let Some(p) = &self.proxy_protocol {
            s.proxy_protocol = p.parse().map_err(|e: String| ApiError::field(f("proxy_protocol"), e))?;
        }
        s.validate_in(service).map_err(|e| {
            use rvs_core::real_server::RealServerError as E;
            let name = match e {
                E::Weight(_) => "weight",
                E::Thresholds { .. } => "l_threshold",
                _ => "address",
            };
            ApiError::field(f(name), e)
        })?;
        if s.addr.is_ipv4() != service.is_ipv4() {
            return Err(ApiError::field(
                f("address"),
                format!("real server {} and virtual service {} are of different address families", s.addr, service),
            ));
        }
        Ok(s)
    }

    pub fn from_core(s: &RealServerSettings) -> Self {
        Self {
            address: s.addr.to_string(),
            weight: Some(s.weight),
            method: Some(s.method.name().into()),
            u_threshold: Some(s.u_threshold),
            l_threshold: Some(s.l_threshold),
            proxy_protocol: Some(s.proxy_protocol.name().into()),
        }
    }
}

fn spec_from_core(key: &ServiceKey, s: &ServiceSettings) -> ServiceSpec {
    let id = id_from_core(key);
    ServiceSpec {
        protocol: id.protocol,
        address: id.address,
        scheduler: Some(s.scheduler.name().into()),
        persistent: s.persistence.map(|p| p.timeout_secs),
        netmask: s.persistence.map(|p| p.netmask.to_string()),
        sched_flags: s.flags.names().into_iter().map(String::from).collect(),
        mh_table_size: (s.mh_table_size != MH_DEFAULT_TABLE_SIZE).then_some(s.mh_table_size),
        sorry_server: s.sorry_server.map(|a| a.to_string()),
        max_connections: s.max_connections.map(NonZeroU32::get),
        persistence_engine: s.persistence.and_then(|p| p.engine).map(|e| e.name().into()),
        one_packet: s.one_packet,
        helper: s.helper.map(|h| h.name().into()),
    }
}

pub fn id_from_core(key: &ServiceKey) -> ServiceId {
    match key {
        ServiceKey::Addr(a) => ServiceId { protocol: a.protocol.name().into(), address: a.addr.to_string() },
        ServiceKey::Mark(m) => ServiceId {
            protocol: if m.family == Family::V4 { FWMARK } else { FWMARK6 }.into(),
            address: m.mark.to_string(),
        },
    }
}

impl ApiCommand {
    /// The core command; `model` supplies current settings for partial edits.
    pub fn to_core(&self, model: &TableModel) -> Result<Command, ApiError> {
        Ok(match self {
            ApiCommand::AddService { service } => {
                let (key, settings) = service.to_core("service")?;
                Command::AddService { key, settings }
            }
            ApiCommand::EditService { service } => {
                let (key, mut settings) = service.to_core("service")?;
                if service.helper.is_none() {
                    // As the PROXY protocol of a real server: kept unless given (ipvsadm's
                    // `-E` has no flag for it).
                    settings.helper = model.services.get(&key).and_then(|s| s.settings.helper);
                }
                Command::EditService { key, settings }
            }
            ApiCommand::DeleteService { service } => Command::DeleteService { key: service_key(service, "service")? },
            ApiCommand::Clear => Command::Clear,
            ApiCommand::AddServer { service, server } => {
                let key = service_key(service, "service")?;
                Command::AddServer { service: key, server: server.to_core(&key, None, "server")? }
            }
            ApiCommand::EditServer { service, server } => {
                let key = service_key(service, "service")?;
                let addr = parse_addr(&server.address, Some(key.port()), "server.address")?;
                let base = model.services.get(&key).and_then(|s| s.servers.iter().find(|r| r.addr == addr)).copied();
                Command::EditServer { service: key, server: server.to_core(&key, base, "server")? }
            }
            ApiCommand::DeleteServer { service, address } => {
                let key = service_key(service, "service")?;
                Command::DeleteServer { service: key, addr: parse_addr(address, Some(key.port()), "address")? }
            }
            ApiCommand::SetTimeouts { timeouts: t } => {
                Command::SetTimeouts(model.timeouts.merged(t.tcp, t.tcpfin, t.udp))
            }
            ApiCommand::SetOptions { options: o } => Command::SetOptions(DirectorOptions {
                expire_nodest_conn: o.expire_nodest_conn,
                expire_quiescent_template: o.expire_quiescent_template,
            }),
            ApiCommand::Zero { service } => {
                Command::Zero { service: service.as_ref().map(|s| service_key(s, "service")).transpose()? }
            }
            ApiCommand::SetHealth { service, address, health, weight } => {
                let key = service_key(service, "service")?;
                Command::SetHealth {
                    service: key,
                    addr: parse_addr(address, Some(key.port()), "address")?,
                    health: health.parse().map_err(|e: String| ApiError::field("health", e))?,
                    weight: *weight,
                }
            }
            ApiCommand::SetQuorum { service, lost } => {
                Command::SetQuorum { service: service_key(service, "service")?, lost: *lost }
            }
            ApiCommand::SetMark { mark } => Command::SetMark(mark.to_core("mark")?),
            ApiCommand::DeleteMark { mark } => Command::DeleteMark(
                Mark::new(*mark).ok_or_else(|| ApiError::field("mark", rvs_core::fwmark::MarkError::Zero))?,
            ),
        })
    }
}

/// The wire form of a core command.
pub fn command_to_api(cmd: &Command) -> ApiCommand {
    match cmd {
        Command::AddService { key, settings } => ApiCommand::AddService { service: spec_from_core(key, settings) },
        Command::EditService { key, settings } => ApiCommand::EditService { service: spec_from_core(key, settings) },
        Command::DeleteService { key } => ApiCommand::DeleteService { service: id_from_core(key) },
        Command::Clear => ApiCommand::Clear,
        Command::AddServer { service, server } => {
            ApiCommand::AddServer { service: id_from_core(service), server: RealServerSpec::from_core(server) }
        }
        Command::EditServer { service, server } => {
            ApiCommand::EditServer { service: id_from_core(service), server: RealServerSpec::from_core(server) }
        }
        Command::DeleteServer { service, addr } => {
            ApiCommand::DeleteServer { service: id_from_core(service), address: addr.to_string() }
        }
        Command::SetTimeouts(t) => ApiCommand::SetTimeouts { timeouts: timeouts_view(t) },
        Command::SetOptions(o) => ApiCommand::SetOptions {
            options: OptionsView {
                expire_nodest_conn: o.expire_nodest_conn,
                expire_quiescent_template: o.expire_quiescent_template,
            },
        },
        Command::Zero { service } => ApiCommand::Zero { service: service.as_ref().map(id_from_core) },
        Command::SetHealth { service, addr, health, weight } => ApiCommand::SetHealth {
            service: id_from_core(service),
            address: addr.to_string(),
            health: health.name().into(),
            weight: *weight,
        },
        Command::SetQuorum { service, lost } => ApiCommand::SetQuorum { service: id_from_core(service), lost: *lost },
        Command::SetMark(def) => ApiCommand::SetMark { mark: MarkSpec::from_core(def) },
        Command::DeleteMark(mark) => ApiCommand::DeleteMark { mark: mark.get() },
    }
}

/// What `save` returns: the commands that rebuild `model` from an empty table.
pub fn table_to_commands(model: &TableModel) -> Vec<ApiCommand> {
    let mut cmds = vec![ApiCommand::SetTimeouts { timeouts: timeouts_view(&model.timeouts) }];
    cmds.extend(model.commands().iter().filter(|c| !matches!(c, Command::SetTimeouts(_))).map(command_to_api));
    cmds
}

pub fn timeouts_view(t: &Timeouts) -> TimeoutsView {
    TimeoutsView { tcp: t.tcp_secs, tcpfin: t.tcpfin_secs, udp: t.udp_secs }
}

fn stats_view(c: CounterValues) -> StatsView {
    StatsView { conns: c.conns, inpkts: c.inpkts, outpkts: c.outpkts, inbytes: c.inbytes, outbytes: c.outbytes }
}

fn rates_view(r: Rates) -> RatesView {
    RatesView { cps: r.cps, inpps: r.inpps, outpps: r.outpps, inbps: r.inbps, outbps: r.outbps }
}

/// The view of one virtual service with its real servers, counters and rates.
pub fn view_service(svc: &VirtualService, now_ms: u64) -> ServiceView {
    let s = svc.settings();
    let templates = svc.templates(now_ms);
    let real_servers = svc
        .dests()
        .iter()
        .map(|d| {
            let rs = d.settings();
            RealServerView {
                address: d.addr.to_string(),
                weight: d.weight(),
                configured_weight: rs.weight,
                health: d.health().name().into(),
                method: rs.method.name().into(),
                u_threshold: rs.u_threshold,
                l_threshold: rs.l_threshold,
                proxy_protocol: rs.proxy_protocol.name().into(),
                active: d.active(),
                inactive: d.inactive(),
                overloaded: d.overloaded(),
                connect_failures: d.connect_failures(),
                persistent_conns: templates.iter().filter(|(t, _)| t.dest == d.addr).count() as u32,
                stats: stats_view(d.stats.counters.read()),
                rates: rates_view(d.stats.rates()),
                check: None,
            }
        })
        .collect();
    let id = id_from_core(&svc.key);
    ServiceView {
        protocol: id.protocol,
        address: id.address,
        scheduler: s.scheduler.name().into(),
        persistent: s.persistence.map(|p| p.timeout_secs),
        netmask: s.persistence.map(|p| p.netmask.to_string()),
        sched_flags: s.flags.names().into_iter().map(String::from).collect(),
        mh_table_size: s.mh_table_size,
        sorry_server: s.sorry_server.map(|a| a.to_string()),
        max_connections: s.max_connections.map(NonZeroU32::get),
        persistence_engine: s.persistence.and_then(|p| p.engine).map(|e| e.name().into()),
        one_packet: s.one_packet,
        pe_dropped: svc.pe_dropped(),
        helper: s.helper_for(&svc.key).name().into(),
        quorum_lost: svc.quorum_lost(),
        stats: stats_view(svc.stats.counters.read()),
        rates: rates_view(svc.stats.rates()),
        real_servers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistence_without_a_timeout_is_ipvs_default() {
        let spec: ServiceSpec =
            serde_json::from_str(r#"{"protocol":"tcp","address":"10.0.0.1:80","netmask":"255.255.255.0"}"#).unwrap();
        let (_, s) = spec.to_core("service").unwrap();
        assert_eq!(s.persistence.map(|p| p.timeout_secs), Some(360));
    }

    #[test]
    fn the_helper_is_read_checked_and_kept_on_edit() {
        use rvs_core::{Command, Helper};
        let spec = |json: &str| -> ServiceSpec { serde_json::from_str(json).unwrap() };
        let (key, s) =
            spec(r#"{"protocol":"tcp","address":"10.0.0.1:2121","helper":"ftp"}"#).to_core("service").unwrap();
        assert_eq!((s.helper, s.helper_for(&key)), (Some(Helper::Ftp), Helper::Ftp));
        let (key, s) = spec(r#"{"protocol":"tcp","address":"10.0.0.1:21"}"#).to_core("service").unwrap();
        assert_eq!((s.helper, s.helper_for(&key)), (None, Helper::Ftp));
        let e = spec(r#"{"protocol":"tcp","address":"10.0.0.1:21","helper":"tftp"}"#).to_core("service").unwrap_err();
        assert!(e.to_string().contains("service.helper"), "{e}");
        let e = spec(r#"{"protocol":"udp","address":"10.0.0.1:21","helper":"ftp"}"#).to_core("service").unwrap_err();
        assert!(e.to_string().contains("service.helper"), "{e}");
        // An edit without the field (rvsadm -E) keeps the service's own setting.
        let mut model = TableModel::default();
        let (key, s) =
            spec(r#"{"protocol":"tcp","address":"10.0.0.1:21","helper":"none"}"#).to_core("service").unwrap();
        model.apply(&Command::AddService { key, settings: s }).unwrap();
        let edit =
            ApiCommand::EditService { service: spec(r#"{"protocol":"tcp","address":"10.0.0.1:21","scheduler":"rr"}"#) };
        let Command::EditService { settings, .. } = edit.to_core(&model).unwrap() else { panic!("an edit") };
        assert_eq!(settings.helper, Some(Helper::None));
    }

    #[test]
    fn sctp_services_are_named_sctp() {
        let spec: ServiceSpec = serde_json::from_str(r#"{"protocol":"sctp","address":"198.18.1.10:80"}"#).unwrap();
        let (key, _) = spec.to_core("service").unwrap();
        assert_eq!(key.protocol(), Some(Protocol::Sctp));
        assert_eq!(id_from_core(&key).protocol, "sctp");
        let e = service_key(&ServiceId { protocol: "dccp".into(), address: "198.18.1.10:80".into() }, "service")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("service.protocol"));
    }
}
