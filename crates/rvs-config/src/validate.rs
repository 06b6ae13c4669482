//! Raw file → validated [`Config`]: each value parsed into its core type where it stands,
//! then the services built through the same command checks the API uses.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rvs_core::addr::parse_endpoint;
use rvs_core::persistence::DEFAULT_PERSISTENCE_SECS;
use rvs_core::sched::MH_DEFAULT_TABLE_SIZE;
use rvs_core::{
    Command, CommandError, DirectorOptions, Family, ForwardingMethod, Helper, MarkKey, Netmask, Persistence,
    PersistenceEngine, Protocol, ProxyProtocol, RealServerSettings, SchedulerKind, ServiceAddr, ServiceKey,
    ServiceSettings, TableModel, Timeouts,
};
use toml::Spanned;

use crate::error::Unplaced;
use crate::health::command;
use crate::raw::{RawConfig, RawRealServer, RawService};
use crate::{
    ApiConfig, Config, DirectorConfig, PacketEngineConfig, Relay, XdpMode, DEFAULT_PACKET_CONNECTIONS, DEFAULT_SOCKET,
    DEFAULT_SOCKMAP_CONNECTIONS, MAX_PACKET_CONNECTIONS, MAX_SOCKMAP_CONNECTIONS,
};
use rvs_model::health::ServiceHealth;

type Result<T> = std::result::Result<T, Unplaced>;

/// A `max_connections` (the director's or a service's): above 0 when set.
pub(crate) fn max_connections(v: &Option<Spanned<u32>>, field: String) -> Result<Option<NonZeroU32>> {
    v.as_ref()
        .map(|n| NonZeroU32::new(*n.get_ref()).ok_or_else(|| Unplaced::new(span(n), field, "must be above 0")))
        .transpose()
}

fn span<T>(s: &Spanned<T>) -> Option<Range<usize>> {
    Some(s.span())
}

/// Parses a spanned string with `FromStr`, placing the error at the value.
fn parse<T: FromStr>(v: &Spanned<String>, field: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    v.get_ref().parse::<T>().map_err(|e| Unplaced::new(span(v), field, e))
}

/// `[director] relay` and `sockmap_connections`.
fn relay(d: &crate::raw::RawDirector) -> Result<Relay> {
    let mut connections = DEFAULT_SOCKMAP_CONNECTIONS;
    if let Some(n) = &d.sockmap_connections {
        if !(1..=MAX_SOCKMAP_CONNECTIONS).contains(n.get_ref()) {
            return Err(Unplaced::new(
                span(n),
                "director.sockmap_connections",
                format!("must be between 1 and {MAX_SOCKMAP_CONNECTIONS}"),
            ));
        }
        connections = *n.get_ref();
    }
    match d.relay.as_ref().map(|r| (r, r.get_ref().as_str())) {
        Some((_, "sockmap")) => Ok(Relay::Sockmap { connections }),
        None | Some((_, "splice")) => match &d.sockmap_connections {
            Some(n) => {
                Err(Unplaced::new(span(n), "director.sockmap_connections", "only applies with relay = \"sockmap\""))
            }
            None => Ok(Relay::Splice),
        },
        Some((r, other)) => Err(Unplaced::new(
            span(r),
            "director.relay",
            format!("unknown relay {other:?}: use \"splice\" or \"sockmap\""),
        )),
    }
}

/// `[packet_engine]`.
fn packet_engine(raw: &Spanned<crate::raw::RawPacketEngine>) -> Result<PacketEngineConfig> {
    let p = raw.get_ref();
    if p.interfaces.is_empty() {
        return Err(Unplaced::new(span(raw), "packet_engine.interfaces", "name at least one interface to attach to"));
    }
    let mut interfaces: Vec<String> = Vec::new();
    for name in &p.interfaces {
        let n = name.get_ref();
        let valid = !n.is_empty() && n.len() < 16 && n != "." && n != ".." && !n.contains(['/', ' ', ':', '\0']);
        if !valid {
            return Err(Unplaced::new(
                span(name),
                "packet_engine.interfaces",
                format!("{n:?} is not an interface name (1 to 15 bytes, no '/', ':' or space)"),
            ));
        }
        if interfaces.contains(n) {
            return Err(Unplaced::new(span(name), "packet_engine.interfaces", format!("{n} is named twice")));
        }
        interfaces.push(n.clone());
    }
    let xdp_mode = match p.xdp_mode.as_ref().map(|m| (m, m.get_ref().as_str())) {
        None | Some((_, "auto")) => XdpMode::Auto,
        Some((_, "native")) => XdpMode::Native,
        Some((_, "generic")) => XdpMode::Generic,
        Some((m, other)) => {
            return Err(Unplaced::new(
                span(m),
                "packet_engine.xdp_mode",
                format!("unknown XDP mode {other:?}: use \"auto\", \"native\" or \"generic\""),
            ))
        }
    };
    let connections = match &p.connections {
        None => DEFAULT_PACKET_CONNECTIONS,
        Some(n) if (1..=MAX_PACKET_CONNECTIONS).contains(n.get_ref()) => *n.get_ref(),
        Some(n) => {
            return Err(Unplaced::new(
                span(n),
                "packet_engine.connections",
                format!("must be between 1 and {MAX_PACKET_CONNECTIONS}"),
            ))
        }
    };
    let pin_path = match &p.pin_path {
        None => None,
        Some(path) if path.get_ref().starts_with('/') && !path.get_ref().contains('\0') => {
            Some(std::path::PathBuf::from(path.get_ref()))
        }
        Some(path) => {
            return Err(Unplaced::new(
                span(path),
                "packet_engine.pin_path",
                "must be an absolute path (a directory on a BPF filesystem, such as /sys/fs/bpf/rvs/NAME)",
            ))
        }
    };
    Ok(PacketEngineConfig { interfaces, xdp_mode, connections, pin_path })
}

pub(crate) fn validate(raw: RawConfig) -> Result<Config> {
    let api = api(&raw)?;
    let d = &raw.director;
    let mut director = DirectorConfig::default();
    if let Some(ms) = &d.connect_timeout_ms {
        if *ms.get_ref() == 0 {
            return Err(Unplaced::new(span(ms), "director.connect_timeout_ms", "must be above 0"));
        }
        director.connect_timeout = Duration::from_millis(*ms.get_ref());
    }
    if let Some(r) = d.connect_retries {
        director.connect_retries = r;
    }
    if let Some(s) = d.drain_timeout_secs {
        director.drain_timeout = Duration::from_secs(s);
    }
    director.relay = relay(d)?;
    director.max_connections = max_connections(&d.max_connections, "director.max_connections".into())?;
    let mut table = TableModel {
        options: DirectorOptions {
            expire_nodest_conn: d.expire_nodest_conn,
            expire_quiescent_template: d.expire_quiescent_template,
        },
        ..TableModel::default()
    };
    let t = &raw.timeouts;
    let mut timeouts = Timeouts::default();
    for (v, slot, name) in [
        (&t.tcp, &mut timeouts.tcp_secs, "timeouts.tcp"),
        (&t.tcpfin, &mut timeouts.tcpfin_secs, "timeouts.tcpfin"),
        (&t.udp, &mut timeouts.udp_secs, "timeouts.udp"),
    ] {
        if let Some(v) = v {
            *slot = *v.get_ref();
            table
                .apply(&Command::SetTimeouts(Timeouts { tcp_secs: *slot, tcpfin_secs: *slot, udp_secs: *slot }))
                .map_err(|e| Unplaced::new(span(v), name, e))?;
        }
    }
    table.timeouts = timeouts;

    crate::fwmark::marks(&mut table, &raw.firewall_marks)?;
    let mut health = std::collections::BTreeMap::new();
    let mut http: Vec<rvs_model::http::L7ServiceConfig> = Vec::new();
    for (i, svc) in raw.services.iter().enumerate() {
        let at = format!("service[{i}]");
        let s = svc.get_ref();
        let kind = s.kind.as_ref().map_or("tcp", |k| k.get_ref().as_str());
        match kind {
            "tcp" => {
                let (key, h) = service(&mut table, i, svc)?;
                if let Some(h) = h {
                    health.insert(key, h);
                }
            }
            "http" => {
                if let Some(m) = &s.firewall_mark {
                    return Err(Unplaced::new(
                        span(m),
                        format!("{at}.firewall_mark"),
                        "an http service listens on its address: firewall marks are for kind \"tcp\" services",
                    ));
                }
                let address = required_address(svc, &at)?;
                let addr = parse_endpoint(address.get_ref(), None)
                    .map_err(|e| Unplaced::new(span(address), format!("{at}.address"), e))?;
                let key = ServiceAddr { protocol: Protocol::Tcp, addr };
                if s.protocol.as_ref().is_some_and(|p| p.get_ref() != "tcp") {
                    return Err(Unplaced::new(
                        s.protocol.as_ref().and_then(span),
                        format!("{at}.protocol"),
                        "an http service runs over tcp (an SCTP service needs the packet engine: kind \"tcp\", \
                         protocol \"sctp\", gate, masq or tunnel real servers)",
                    ));
                }
                http.push(crate::http::http_service(key, svc, &at)?);
                let pool_checks = crate::http::pool_checks(svc, &at)?;
                if !pool_checks.is_empty() {
                    health.insert(key.into(), ServiceHealth { pool_checks, ..ServiceHealth::default() });
                }
            }
            other => {
                return Err(Unplaced::new(
                    s.kind.as_ref().and_then(span),
                    format!("{at}.kind"),
                    format!("unknown service kind `{other}` (expected tcp or http)"),
                ))
            }
        }
    }
    // One listener per address: an http service may not share one with another service.
    for (i, svc) in raw.services.iter().enumerate() {
        let s = svc.get_ref();
        if s.kind.as_ref().is_none_or(|k| k.get_ref() != "http") {
            continue;
        }
        let Some(address) = &s.address else { continue };
        let Ok(addr) = parse_endpoint(address.get_ref(), None) else { continue };
        let key = ServiceAddr { protocol: Protocol::Tcp, addr };
        let twice = http.iter().filter(|h| h.key == key).count() > 1;
        if table.services.contains_key(&key.into()) || twice {
            return Err(Unplaced::new(
                span(address),
                format!("service[{i}].address"),
                format!("{addr} is already the address of another virtual service"),
            ));
        }
    }
    crate::fwmark::check_used(&table, &raw.firewall_marks)?;
    let packet_engine = raw.packet_engine.as_ref().map(packet_engine).transpose()?;
    let services: Vec<ServiceKey> =
        table.services.keys().copied().chain(http.iter().map(|h| ServiceKey::Addr(h.key))).collect();
    let vrrp = crate::vrrp::vrrp(&raw.vrrp, &services)?;
    let sync = raw.sync.as_ref().map(crate::sync::sync).transpose()?;
    Ok(Config { api, director, table, health, http, packet_engine, vrrp, sync })
}

fn api(raw: &RawConfig) -> Result<ApiConfig> {
    let a = &raw.api;
    let socket = a.socket.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let listen = match &a.listen {
        None => None,
        Some(l) => {
            let addr: SocketAddr =
                parse_endpoint(l.get_ref(), None).map_err(|e| Unplaced::new(span(l), "api.listen", e))?;
            if !addr.ip().is_loopback() {
                return Err(Unplaced::new(
                    span(l),
                    "api.listen",
                    format!("{addr} is not a loopback address; the TCP API listens on loopback only"),
                ));
            }
            Some(addr)
        }
    };
    let token = token_of(&a.token, &a.token_file, "api.token")?;
    let read_only_token = token_of(&a.read_only_token, &a.read_only_token_file, "api.read_only_token")?;
    if read_only_token.is_some() && read_only_token == token {
        let at = a.read_only_token.as_ref().map(span).or_else(|| a.read_only_token_file.as_ref().map(span)).flatten();
        return Err(Unplaced::new(at, "api.read_only_token", "must differ from api.token"));
    }
    if listen.is_some() && token.is_none() {
        return Err(Unplaced::new(
            a.listen.as_ref().and_then(span),
            "api.listen",
            "the TCP API requires a bearer token: set api.token or api.token_file",
        ));
    }
    if listen.is_none() && read_only_token.is_some() {
        let at = a.read_only_token.as_ref().map(span).or_else(|| a.read_only_token_file.as_ref().map(span)).flatten();
        return Err(Unplaced::new(at, "api.read_only_token", "applies to the TCP API: set api.listen too"));
    }
    Ok(ApiConfig { socket, listen, token, read_only_token })
}

/// A token given inline (`name`) or in a file (`name_file`), at least 16 characters.
fn token_of(inline: &Option<Spanned<String>>, file: &Option<Spanned<PathBuf>>, name: &str) -> Result<Option<String>> {
    let token = match (inline, file) {
        (Some(_), Some(f)) => {
            return Err(Unplaced::new(
                span(f),
                format!("{name}_file"),
                format!("give either {name} or {name}_file, not both"),
            ))
        }
        (Some(t), None) => Some(t.get_ref().clone()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f.get_ref())
                .map_err(|e| {
                    Unplaced::new(
                        span(f),
                        format!("{name}_file"),
                        format!("cannot read {}: {e}", f.get_ref().display()),
                    )
                })?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    if let Some(t) = &token {
        if t.len() < 16 {
            let at = inline.as_ref().map(span).or_else(|| file.as_ref().map(span)).flatten();
            return Err(Unplaced::new(at, name, "the token must be at least 16 characters"));
        }
    }
    Ok(token)
}

/// A service's `address`, which it must have (an http service; a tcp one without a mark).
fn required_address<'a>(svc: &'a Spanned<RawService>, at: &str) -> Result<&'a Spanned<String>> {
    svc.get_ref().address.as_ref().ok_or_else(|| {
        Unplaced::new(
            span(svc),
            format!("{at}.address"),
            "missing: a service needs an address (or, kind \"tcp\", a firewall_mark)",
        )
    })
}

/// What identifies a tcp-kind service: its protocol and address, or its firewall mark.
fn service_key(svc: &Spanned<RawService>, at: &str) -> Result<ServiceKey> {
    let field = |f: &str| format!("{at}.{f}");
    let s = svc.get_ref();
    let Some(m) = &s.firewall_mark else {
        if let Some(f) = &s.family {
            return Err(Unplaced::new(
                span(f),
                field("family"),
                "family is for firewall-mark services: an address has its own",
            ));
        }
        let protocol = match &s.protocol {
            Some(p) => parse::<Protocol>(p, &field("protocol"))?,
            None => Protocol::Tcp,
        };
        let address = required_address(svc, at)?;
        let addr =
            parse_endpoint(address.get_ref(), None).map_err(|e| Unplaced::new(span(address), field("address"), e))?;
        return Ok(ServiceKey::new(protocol, addr));
    };
    if let Some(a) = &s.address {
        return Err(Unplaced::new(span(a), field("address"), "a service has an address or a firewall_mark, not both"));
    }
    if let Some(p) = &s.protocol {
        return Err(Unplaced::new(
            span(p),
            field("protocol"),
            "a firewall-mark service has the protocols of its mark's matches: set them in [[firewall_mark]]",
        ));
    }
    let mark = rvs_core::Mark::new(*m.get_ref())
        .ok_or_else(|| Unplaced::new(span(m), field("firewall_mark"), rvs_core::fwmark::MarkError::Zero))?;
    let family = match s.family.as_ref().map(|f| (f, f.get_ref().as_str())) {
        None | Some((_, "ipv4")) => Family::V4,
        Some((_, "ipv6")) => Family::V6,
        Some((f, other)) => {
            return Err(Unplaced::new(
                span(f),
                field("family"),
                format!("unknown family {other:?}: use \"ipv4\" or \"ipv6\""),
            ))
        }
    };
    Ok(ServiceKey::Mark(MarkKey { mark, family }))
}

fn service(table: &mut TableModel, i: usize, svc: &Spanned<RawService>) -> Result<(ServiceKey, Option<ServiceHealth>)> {
    let at = format!("service[{i}]");
    let field = |f: &str| format!("{at}.{f}");
    let s = svc.get_ref();
    let key = service_key(svc, &at)?;
    // Where an error about the key points: the address, else the mark.
    let key_span = s.address.as_ref().and_then(span).or_else(|| s.firewall_mark.as_ref().and_then(span));
    let key_field = if s.address.is_some() { field("address") } else { field("firewall_mark") };
    let mut settings = ServiceSettings::default();
    if let Some(sch) = &s.scheduler {
        settings.scheduler = parse::<SchedulerKind>(sch, &field("scheduler"))?;
    }
    for f in &s.sched_flags {
        settings.flags.set(f.get_ref()).map_err(|e| Unplaced::new(span(f), field("sched_flags"), e))?;
    }
    if let Err(e) = settings.flags.check_for(settings.scheduler) {
        let at = s.sched_flags.first().and_then(span);
        return Err(Unplaced::new(at, field("sched_flags"), e));
    }
    settings.mh_table_size = s.mh_table_size.as_ref().map_or(MH_DEFAULT_TABLE_SIZE, |v| *v.get_ref());
    if let Some(sorry) = &s.sorry_server {
        settings.sorry_server = Some(
            parse_endpoint(sorry.get_ref(), Some(key.port()))
                .map_err(|e| Unplaced::new(span(sorry), field("sorry_server"), e))?,
        );
    }
    settings.max_connections = max_connections(&s.max_connections, field("max_connections"))?;
    if let Some(h) = &s.helper {
        settings.helper = Some(parse::<Helper>(h, &field("helper"))?);
    }
    if s.persistent.is_some() || s.netmask.is_some() {
        let timeout = s.persistent.as_ref().map_or(DEFAULT_PERSISTENCE_SECS, |v| *v.get_ref());
        let netmask = match &s.netmask {
            Some(m) => parse::<Netmask>(m, &field("netmask"))?,
            None => Netmask::host(key.family().unspecified()),
        };
        settings.persistence = Some(Persistence::new(timeout, netmask));
    }
    if let Some(pe) = &s.persistence_engine {
        let engine = parse::<PersistenceEngine>(pe, &field("persistence_engine"))?;
        let Some(p) = settings.persistence.as_mut() else {
            return Err(Unplaced::new(
                span(pe),
                field("persistence_engine"),
                "a persistence engine needs persistence: set persistent = SECONDS",
            ));
        };
        p.engine = Some(engine);
    }
    settings.one_packet = s.one_packet.as_ref().is_some_and(|v| *v.get_ref());
    let place = |e: CommandError| {
        let (sp, f) = match &e {
            CommandError::Service { source: rvs_core::service::ServiceError::NetmaskFamily { .. }, .. } => {
                (s.netmask.as_ref().and_then(span), field("netmask"))
            }
            CommandError::Service { source: rvs_core::service::ServiceError::ZeroPersistence, .. } => {
                (s.persistent.as_ref().and_then(span), field("persistent"))
            }
            CommandError::Service { source: rvs_core::service::ServiceError::SorryServer(_), .. } => {
                (s.sorry_server.as_ref().and_then(span), field("sorry_server"))
            }
            CommandError::Service { source: rvs_core::service::ServiceError::MaxConnectionsUdp, .. } => {
                (s.max_connections.as_ref().and_then(span), field("max_connections"))
            }
            CommandError::Service { source: rvs_core::service::ServiceError::OnePacketNotUdp, .. } => {
                (s.one_packet.as_ref().and_then(span), field("one_packet"))
            }
            CommandError::Service { source: rvs_core::service::ServiceError::SipNotUdp, .. } => {
                (s.persistence_engine.as_ref().and_then(span), field("persistence_engine"))
            }
            CommandError::Service {
                source: rvs_core::service::ServiceError::HelperNotTcp | rvs_core::service::ServiceError::HelperMark,
                ..
            } => (s.helper.as_ref().and_then(span), field("helper")),
            CommandError::Service { source: rvs_core::service::ServiceError::PerDatagramMark, .. } => {
                match &s.one_packet {
                    Some(o) if *o.get_ref() => (span(o), field("one_packet")),
                    _ => (s.persistence_engine.as_ref().and_then(span), field("persistence_engine")),
                }
            }
            CommandError::Service { source: rvs_core::service::ServiceError::Sched(_), .. } => {
                (s.mh_table_size.as_ref().and_then(span).or_else(|| span(svc)), field("mh_table_size"))
            }
            _ => (key_span.clone(), key_field.clone()),
        };
        Unplaced::new(sp, f, e)
    };
    table.apply(&Command::AddService { key, settings }).map_err(place)?;
    let mut health = ServiceHealth {
        default_check: s.check.as_ref().map(|c| c.get_ref().validate(&field("check"), c.span())).transpose()?,
        quorum_up: command(&s.quorum_up, &field("quorum_up"))?,
        quorum_down: command(&s.quorum_down, &field("quorum_down"))?,
        ..ServiceHealth::default()
    };
    if let Some(a) = &s.on_failure {
        health.on_failure = parse(a, &field("on_failure"))?;
    }
    if let Some(q) = &s.quorum {
        health.quorum = Some(
            rvs_model::health::Quorum::new(*q.get_ref(), s.hysteresis.unwrap_or(0))
                .map_err(|e| Unplaced::new(span(q), field("quorum"), e))?,
        );
    } else if s.hysteresis.is_some() || s.quorum_up.is_some() || s.quorum_down.is_some() {
        let at = s.quorum_up.as_ref().or(s.quorum_down.as_ref()).map_or_else(|| span(svc), span);
        return Err(Unplaced::new(at, field("quorum"), "hysteresis, quorum_up and quorum_down need a quorum"));
    }
    for (j, rs) in s.real_servers.iter().enumerate() {
        let at = format!("{at}.real_server[{j}]");
        let addr = real_server(table, key, &at, rs)?;
        if let Some(c) = &rs.get_ref().check {
            health.server_checks.insert(addr, c.get_ref().validate(&format!("{at}.check"), c.span())?);
        }
    }
    let any = health.default_check.is_some() || !health.server_checks.is_empty() || health.quorum.is_some();
    Ok((key, any.then_some(health)))
}

fn real_server(
    table: &mut TableModel,
    service: ServiceKey,
    at: &str,
    rs: &Spanned<RawRealServer>,
) -> Result<SocketAddr> {
    let server = real_server_settings(rs, service.port(), at)?;
    table.apply(&Command::AddServer { service, server }).map_err(|e| place_server_error(rs, at, e))?;
    Ok(server.addr)
}

/// A real server's settings as written, not yet checked; `port` is the default port (the
/// service's).
pub(crate) fn real_server_settings(rs: &Spanned<RawRealServer>, port: u16, at: &str) -> Result<RealServerSettings> {
    let field = |f: &str| format!("{at}.{f}");
    let r = rs.get_ref();
    let addr = parse_endpoint(r.address.get_ref(), Some(port))
        .map_err(|e| Unplaced::new(span(&r.address), field("address"), e))?;
    let mut server = RealServerSettings::new(addr);
    if let Some(w) = &r.weight {
        server.weight = *w.get_ref();
    }
    if let Some(m) = &r.method {
        server.method = parse::<ForwardingMethod>(m, &field("method"))?;
    }
    if let Some(u) = &r.u_threshold {
        server.u_threshold = *u.get_ref();
    }
    if let Some(l) = &r.l_threshold {
        server.l_threshold = *l.get_ref();
    }
    if let Some(p) = &r.proxy_protocol {
        server.proxy_protocol = parse::<ProxyProtocol>(p, &field("proxy_protocol"))?;
    }
    Ok(server)
}

/// Places a refused real server at the value at fault.
pub(crate) fn place_server_error(rs: &Spanned<RawRealServer>, at: &str, e: CommandError) -> Unplaced {
    use rvs_core::real_server::RealServerError as E;
    let field = |f: &str| format!("{at}.{f}");
    let r = rs.get_ref();
    let (sp, f) = match &e {
        CommandError::Server { source: E::Weight(_), .. } => (r.weight.as_ref().and_then(span), field("weight")),
        CommandError::Server { source: E::Thresholds { .. }, .. } => {
            (r.l_threshold.as_ref().and_then(span), field("l_threshold"))
        }
        CommandError::MixedEngines(_) | CommandError::SctpNeedsPacketEngine { .. } => {
            (r.method.as_ref().and_then(span), field("method"))
        }
        _ => (span(&r.address), field("address")),
    };
    Unplaced::new(sp.or_else(|| span(rs)), f, e)
}
