//! Commands: every change to the service table, whatever its source (config file, reload,
//! API, rvsadm, health checks), and the typed errors a command can be refused with.

use std::fmt;
use std::net::SocketAddr;

use crate::forwarding::ForwardingMethod;
use crate::fwmark::{Mark, MarkDef, MarkError};
use crate::health::Health;
use crate::real_server::{RealServerError, RealServerSettings};
use crate::service::{ServiceError, ServiceKey, ServiceSettings};
use crate::timeouts::Timeouts;

/// Director-wide switches, named after the IPVS sysctls they mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectorOptions {
    /// Close the connections of a deleted real server instead of letting them drain.
    pub expire_nodest_conn: bool,
    /// Expire persistence templates of a real server quiesced to weight 0.
    pub expire_quiescent_template: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    AddService {
        key: ServiceKey,
        settings: ServiceSettings,
    },
    EditService {
        key: ServiceKey,
        settings: ServiceSettings,
    },
    DeleteService {
        key: ServiceKey,
    },
    /// Deletes every virtual service (`ipvsadm -C`); firewall marks stay defined.
    Clear,
    /// Defines a firewall mark, or replaces its matches.
    SetMark(MarkDef),
    /// Deletes a firewall mark no service uses.
    DeleteMark(Mark),
    AddServer {
        service: ServiceKey,
        server: RealServerSettings,
    },
    EditServer {
        service: ServiceKey,
        server: RealServerSettings,
    },
    DeleteServer {
        service: ServiceKey,
        addr: SocketAddr,
    },
    SetTimeouts(Timeouts),
    SetOptions(DirectorOptions),
    /// Zeroes the counters of one service (and its real servers), or of all.
    Zero {
        service: Option<ServiceKey>,
    },
    /// The health checkers' verdict on a real server, with the weight a dynamic checker
    /// reports. Run-time state: the configured settings (and `save`) do not change.
    SetHealth {
        service: ServiceKey,
        addr: SocketAddr,
        health: Health,
        weight: Option<u32>,
    },
    /// Quorum of a service lost (the sorry server takes new connections) or regained.
    SetQuorum {
        service: ServiceKey,
        lost: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("virtual service {0} already exists")]
    ServiceExists(ServiceKey),
    #[error("no such virtual service {0}")]
    NoService(ServiceKey),
    #[error("real server {addr} already exists in virtual service {service}")]
    ServerExists { service: ServiceKey, addr: SocketAddr },
    #[error("no such real server {addr} in virtual service {service}")]
    NoServer { service: ServiceKey, addr: SocketAddr },
    /// A real server at the virtual service's own address and port: what is sent to it
    /// would come back to the service.
    #[error(
        "real server {addr} is virtual service {service}'s own address: its traffic would loop back to the service"
    )]
    OwnAddress { service: ServiceKey, addr: SocketAddr },
    #[error("real server {addr} and virtual service {service} are of different address families")]
    MixedFamily { service: ServiceKey, addr: SocketAddr },
    #[error("virtual service {key}: {source}")]
    Service { key: ServiceKey, source: ServiceError },
    #[error("real server {addr}: {source}")]
    Server { addr: SocketAddr, source: RealServerError },
    /// A real server whose method's engine differs from the others' in its service.
    #[error(transparent)]
    MixedEngines(Box<EngineConflict>),
    /// A full NAT real server in an SCTP service: only the packet engine serves SCTP.
    #[error(
        "virtual service {service}: real server {addr} is fullnat, but SCTP services need the packet engine \
         (gate, masq or tunnel): the proxy engines (full NAT, L7) relay TCP and UDP sockets and have no SCTP"
    )]
    SctpNeedsPacketEngine { service: ServiceKey, addr: SocketAddr },
    #[error(transparent)]
    Mark(#[from] MarkError),
    #[error("timeouts must be from 1 to 31536000 seconds (one year)")]
    Timeout,
    #[error("{0}")]
    Unsupported(String),
}

/// A real server that cannot join its service: its method is served by the other engine than
/// that of `other`, a real server already there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "virtual service {service}: real server {addr} ({method}) cannot join real server {other} ({other_method}): \
     a virtual service's real servers are either all fullnat (the proxy engine) or all gate, masq or tunnel \
     (the packet engine)"
)]
pub struct EngineConflict {
    pub service: ServiceKey,
    pub addr: SocketAddr,
    pub method: ForwardingMethod,
    pub other: SocketAddr,
    pub other_method: ForwardingMethod,
}

/// A refused command inside a batch: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("command {index}: {error}")]
pub struct BatchError {
    pub index: usize,
    pub error: CommandError,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server = |s: &RealServerSettings| {
            format!(
                "{} weight {} {} thresholds {}/{} proxy-protocol {}",
                s.addr,
                s.weight,
                s.method,
                s.u_threshold,
                s.l_threshold,
                s.proxy_protocol.name()
            )
        };
        let service = |s: &ServiceSettings| {
            let mut t = format!("scheduler {}", s.scheduler);
            if let Some(p) = s.persistence {
                t += &format!(" persistent {} mask {}", p.timeout_secs, p.netmask);
            }
            if !s.flags.is_empty() {
                t += &format!(" flags {}", s.flags.names().join(","));
            }
            if let Some(n) = s.max_connections {
                t += &format!(" max-connections {n}");
            }
            if let Some(h) = s.helper {
                t += &format!(" helper {h}");
            }
            t
        };
        match self {
            Command::AddService { key, settings } => write!(f, "add virtual service {key}: {}", service(settings)),
            Command::EditService { key, settings } => write!(f, "edit virtual service {key}: {}", service(settings)),
            Command::DeleteService { key } => write!(f, "delete virtual service {key}"),
            Command::Clear => write!(f, "delete every virtual service"),
            Command::SetMark(def) => {
                let m: Vec<String> = def.matches.iter().map(|m| m.to_string()).collect();
                write!(f, "set firewall mark {}: {}", def.mark, m.join(", "))
            }
            Command::DeleteMark(mark) => write!(f, "delete firewall mark {mark}"),
            Command::AddServer { service, server: s } => write!(f, "add real server to {service}: {}", server(s)),
            Command::EditServer { service, server: s } => write!(f, "edit real server of {service}: {}", server(s)),
            Command::DeleteServer { service, addr } => write!(f, "delete real server {addr} from {service}"),
            Command::SetTimeouts(t) => {
                write!(f, "set timeouts tcp {} tcpfin {} udp {}", t.tcp_secs, t.tcpfin_secs, t.udp_secs)
            }
            Command::SetOptions(o) => write!(
                f,
                "set expire_nodest_conn {} expire_quiescent_template {}",
                o.expire_nodest_conn, o.expire_quiescent_template
            ),
            Command::Zero { service: Some(k) } => write!(f, "zero counters of {k}"),
            Command::Zero { service: None } => write!(f, "zero all counters"),
            Command::SetHealth { service, addr, health, weight } => {
                write!(f, "real server {addr} of {service} is {health}")?;
                match weight {
                    Some(w) => write!(f, " (weight {w})"),
                    None => Ok(()),
                }
            }
            Command::SetQuorum { service, lost: true } => write!(f, "{service} lost its quorum: sorry server on"),
            Command::SetQuorum { service, lost: false } => write!(f, "{service} regained its quorum: sorry server off"),
        }
    }
}
