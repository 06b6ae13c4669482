//! Virtual services as the user declares them: the key (protocol, address and port, or a
//! firewall mark) and the settings (scheduler, persistence, scheduler flags). Plain validated
//! data, no runtime state.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::str::FromStr;

use crate::fwmark::{Family, MarkKey};
use crate::persistence::Persistence;
use crate::sched::{SchedConfig, SchedError, SchedFlags, SchedulerKind, MH_DEFAULT_TABLE_SIZE, MH_TABLE_SIZES};

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    /// SCTP (`ipvsadm --sctp-service`): the packet engine's only (gate, masq, tunnel).
    Sctp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The protocol of IP protocol number `n`, if a virtual service can have it.
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Whether the proxy engines (full NAT, L7) can serve it: they relay TCP and UDP sockets.
    /// An SCTP service is the packet engine's whatever its real servers.
    pub fn proxied(self) -> bool {
        self != Protocol::Sctp
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = ServiceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(ServiceError::UnknownProtocol(s.to_string())),
        }
    }
}

/// A virtual service's address: protocol, address and port (what a listener binds and a packet
/// is sent to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAddr {
    pub protocol: Protocol,
    pub addr: SocketAddr,
}

impl ServiceAddr {
    pub fn tcp(addr: SocketAddr) -> Self {
        Self { protocol: Protocol::Tcp, addr }
    }
}

impl fmt::Display for ServiceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.protocol, self.addr)
    }
}

/// What identifies a virtual service: its address (`-t`, `-u`, `--sctp-service`) or a firewall
/// mark (`-f`, with `-6` for IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    Addr(ServiceAddr),
    Mark(MarkKey),
}

impl ServiceKey {
    pub fn tcp(addr: SocketAddr) -> Self {
        Self::Addr(ServiceAddr::tcp(addr))
    }

    pub fn new(protocol: Protocol, addr: SocketAddr) -> Self {
        Self::Addr(ServiceAddr { protocol, addr })
    }

    /// The address of an address service.
    pub fn addr(&self) -> Option<ServiceAddr> {
        match self {
            ServiceKey::Addr(a) => Some(*a),
            ServiceKey::Mark(_) => None,
        }
    }

    pub fn mark(&self) -> Option<MarkKey> {
        match self {
            ServiceKey::Addr(_) => None,
            ServiceKey::Mark(m) => Some(*m),
        }
    }

    /// The protocol of an address service (a mark's service has those of its matches).
    pub fn protocol(&self) -> Option<Protocol> {
        self.addr().map(|a| a.protocol)
    }

    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr(a) => Family::of(a.addr.ip()),
            ServiceKey::Mark(m) => m.family,
        }
    }

    pub fn is_ipv4(&self) -> bool {
        self.family() == Family::V4
    }

    /// The port a real server given without one gets: the service's; 0 (the packet's own
    /// port) for a firewall mark, as ipvsadm does.
    pub fn port(&self) -> u16 {
        self.addr().map_or(0, |a| a.addr.port())
    }

    /// Whether only the packet engine can serve it whatever its real servers: an all-port
    /// service (port 0), an SCTP service.
    pub fn packet_engine_only(&self) -> bool {
        self.addr().is_some_and(|a| a.addr.port() == 0 || !a.protocol.proxied())
    }
}

impl From<ServiceAddr> for ServiceKey {
    fn from(a: ServiceAddr) -> Self {
        ServiceKey::Addr(a)
    }
}

impl From<MarkKey> for ServiceKey {
    fn from(m: MarkKey) -> Self {
        ServiceKey::Mark(m)
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr(a) => a.fmt(f),
            ServiceKey::Mark(m) => m.fmt(f),
        }
    }
}

/// The port IPVS's FTP helper watches by default (`ip_vs_ftp ports=21`).
pub const FTP_PORT: u16 = 21;

/// An application helper: what the proxy reads in a service's stream to open the related
/// connections the protocol announces (IPVS's `ip_vs_ftp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Helper {
    /// Bytes are relayed as they are.
    None,
    /// FTP: `PORT`/`EPRT` and the `227`/`229` answers are rewritten, data connections relayed.
    Ftp,
}

impl Helper {
    pub fn name(self) -> &'static str {
        match self {
            Helper::None => "none",
            Helper::Ftp => "ftp",
        }
    }
}

impl fmt::Display for Helper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Helper {
    type Err = ServiceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Helper::None),
            "ftp" => Ok(Helper::Ftp),
            _ => Err(ServiceError::UnknownHelper(s.to_string())),
        }
    }
}

/// The settings of a virtual service, validated: flags fit the scheduler, the persistence
/// netmask fits the address family, the mh table size is a supported prime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSettings {
    pub scheduler: SchedulerKind,
    pub flags: SchedFlags,
    pub persistence: Option<Persistence>,
    pub mh_table_size: u32,
    /// Takes new connections while the service has lost its quorum (keepalived's
    /// `sorry_server`).
    pub sorry_server: Option<SocketAddr>,
    /// The most client connections the service holds at once (HAProxy's frontend `maxconn`):
    /// at it, its listener stops accepting and new clients wait in the backlog. TCP only.
    pub max_connections: Option<NonZeroU32>,
    /// One-packet scheduling (`ipvsadm -o`): each datagram of a UDP service is scheduled on its
    /// own, with no flow kept (DNS-style traffic). UDP only.
    pub one_packet: bool,
    /// The application helper, when set explicitly; `None`: the default for the key (see
    /// [`ServiceSettings::helper_for`]).
    pub helper: Option<Helper>,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            scheduler: SchedulerKind::Wlc,
            flags: SchedFlags::default(),
            persistence: None,
            mh_table_size: MH_DEFAULT_TABLE_SIZE,
            sorry_server: None,
            max_connections: None,
            one_packet: false,
            helper: None,
        }
    }
}

impl ServiceSettings {
    /// Checks these settings for a service at `key`.
    pub fn validate(&self, key: &ServiceKey) -> Result<(), ServiceError> {
        self.flags.check_for(self.scheduler)?;
        if !MH_TABLE_SIZES.contains(&self.mh_table_size) {
            return Err(SchedError::BadMhTableSize(self.mh_table_size).into());
        }
        if let Some(p) = &self.persistence {
            p.validate_for(key.family().unspecified())?;
        }
        if let Some(s) = self.sorry_server {
            if s.is_ipv4() != key.is_ipv4() || s.port() == 0 || s.ip().is_unspecified() {
                return Err(ServiceError::SorryServer(s));
            }
        }
        let ServiceKey::Addr(key) = key else {
            if self.one_packet || self.persistence.and_then(|p| p.engine).is_some() {
                return Err(ServiceError::PerDatagramMark);
            }
            if self.helper == Some(Helper::Ftp) {
                return Err(ServiceError::HelperMark);
            }
            return Ok(());
        };
        if key.addr.port() == 0 && self.persistence.is_none() {
            return Err(ServiceError::PortZeroNeedsPersistence);
        }
        if key.addr.ip().is_unspecified() {
            return Err(ServiceError::UnspecifiedAddress);
        }
        if self.max_connections.is_some() && key.protocol == Protocol::Udp {
            return Err(ServiceError::MaxConnectionsUdp);
        }
        if self.one_packet && key.protocol != Protocol::Udp {
            return Err(ServiceError::OnePacketNotUdp);
        }
        if self.persistence.and_then(|p| p.engine).is_some() && key.protocol != Protocol::Udp {
            return Err(ServiceError::SipNotUdp);
        }
        if self.helper == Some(Helper::Ftp) && key.protocol != Protocol::Tcp {
            return Err(ServiceError::HelperNotTcp);
        }
        Ok(())
    }

    /// The helper the service at `key` runs: the explicit setting, else IPVS's default (its
    /// `ip_vs_ftp` module watches TCP port 21, `ports=21`). A firewall mark runs none.
    pub fn helper_for(&self, key: &ServiceKey) -> Helper {
        match key {
            ServiceKey::Mark(_) => Helper::None,
            ServiceKey::Addr(key) => {
                self.helper.unwrap_or(if key.protocol == Protocol::Tcp && key.addr.port() == FTP_PORT {
                    Helper::Ftp
                } else {
                    Helper::None
                })
            }
        }
    }

    /// Whether each datagram is scheduled on its own: one-packet scheduling, or a persistence
    /// engine (whose key is in every datagram).
    pub fn schedules_each_datagram(&self) -> bool {
        self.one_packet || self.persistence.is_some_and(|p| p.engine.is_some())
    }

    pub fn sched_config(&self, seed: u64) -> SchedConfig {
        SchedConfig { kind: self.scheduler, flags: self.flags, mh_table_size: self.mh_table_size, seed }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("unknown protocol `{0}` (expected tcp, udp or sctp)")]
    UnknownProtocol(String),
    #[error(transparent)]
    Sched(#[from] SchedError),
    #[error("unknown persistence engine `{0}` (rvs has sip)")]
    UnknownPersistenceEngine(String),
    #[error("one-packet scheduling (-o) is for UDP services only")]
    OnePacketNotUdp,
    #[error(
        "the sip persistence engine (--pe sip) is for UDP services only: SIP over TCP keeps one connection per peer"
    )]
    SipNotUdp,
    #[error("port 0 is only allowed with persistence")]
    PortZeroNeedsPersistence,
    #[error("the virtual address must be a specific address, not 0.0.0.0 or ::")]
    UnspecifiedAddress,
    #[error("persistence netmask {mask} does not fit the address family of {addr}")]
    NetmaskFamily { mask: String, addr: IpAddr },
    #[error("persistence timeout must be at least 1 second")]
    ZeroPersistence,
    #[error("sorry server {0} needs a specific address and port of the service's address family")]
    SorryServer(SocketAddr),
    #[error("max_connections applies to TCP services (a UDP service has flows, not connections)")]
    MaxConnectionsUdp,
    #[error("unknown helper `{0}` (expected ftp or none)")]
    UnknownHelper(String),
    #[error("the ftp helper applies to TCP services")]
    HelperNotTcp,
    #[error(
        "one-packet scheduling (-o) and persistence engines (--pe) need a UDP service address, not a firewall mark"
    )]
    PerDatagramMark,
    #[error("the ftp helper needs a TCP service address, not a firewall mark (for FTP through gate or tunnel a persistent mark needs no helper)")]
    HelperMark,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ftp_helper_defaults_to_tcp_port_21_as_ip_vs_ftp() {
        let key = |p: Protocol, a: &str| ServiceKey::new(p, a.parse().unwrap());
        let s = ServiceSettings::default();
        assert_eq!(s.helper_for(&key(Protocol::Tcp, "10.0.0.1:21")), Helper::Ftp);
        assert_eq!(s.helper_for(&key(Protocol::Tcp, "[::1]:21")), Helper::Ftp);
        assert_eq!(s.helper_for(&key(Protocol::Udp, "10.0.0.1:21")), Helper::None);
        assert_eq!(s.helper_for(&key(Protocol::Tcp, "10.0.0.1:2121")), Helper::None);
        let off = ServiceSettings { helper: Some(Helper::None), ..Default::default() };
        assert_eq!(off.helper_for(&key(Protocol::Tcp, "10.0.0.1:21")), Helper::None);
        let on = ServiceSettings { helper: Some(Helper::Ftp), ..Default::default() };
        assert_eq!(on.helper_for(&key(Protocol::Tcp, "10.0.0.1:2121")), Helper::Ftp);
        assert_eq!(on.validate(&key(Protocol::Udp, "10.0.0.1:21")), Err(ServiceError::HelperNotTcp));
        assert_eq!("FTP".parse::<Helper>(), Ok(Helper::Ftp));
        assert!("sip".parse::<Helper>().is_err());
    }
}
