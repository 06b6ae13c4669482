//! Forwarding methods: how a director hands a connection to a real server. The classic IPVS
//! methods (masq, gate, tunnel) belong to the packet engine; `fullnat` is the proxy engine's.
//! The table accepts every method whether or not a packet engine runs, as IPVS accepts rules
//! before traffic arrives; which engine serves a service is [`Engine`], from its real servers.

use std::fmt;
use std::str::FromStr;

/// The forwarding method of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ForwardingMethod {
    /// NAT (`-m`, "Masq"): the packet engine rewrites the destination.
    Masq,
    /// Direct routing (`-g`, "Route"): the packet engine rewrites the MAC only.
    Gate,
    /// IP-in-IP tunnelling (`-i`, "Tunnel").
    Tunnel,
    /// Full NAT through the userspace proxy engine: both addresses rewritten ("FullNat").
    #[default]
    FullNat,
}

impl ForwardingMethod {
    /// The config and API name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Masq => "masq",
            Self::Gate => "gate",
            Self::Tunnel => "tunnel",
            Self::FullNat => "fullnat",
        }
    }

    /// The word `ipvsadm -L` prints in the Forward column.
    pub fn ipvsadm_word(self) -> &'static str {
        match self {
            Self::Masq => "Masq",
            Self::Gate => "Route",
            Self::Tunnel => "Tunnel",
            Self::FullNat => "FullNat",
        }
    }

    /// The engine that forwards with this method.
    pub fn engine(self) -> Engine {
        match self {
            Self::FullNat => Engine::Proxy,
            Self::Masq | Self::Gate | Self::Tunnel => Engine::Packet,
        }
    }
}

/// The engine that serves a virtual service: the userspace proxy (full NAT) or the packet
/// engine (XDP: gate, masq and tunnel, which may be mixed in one service as in IPVS). A
/// service's real servers are all of one engine (the table refuses a mix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    Proxy,
    Packet,
}

impl Engine {
    /// The engine of a service whose real servers have these methods, in the order added: its
    /// first real server's. A service with no real servers yet is the proxy engine's (fullnat
    /// is the config file's and the API's default method); its first real server decides.
    pub fn of(mut methods: impl Iterator<Item = ForwardingMethod>) -> Engine {
        methods.next().map_or(Engine::Proxy, ForwardingMethod::engine)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Packet => "packet",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for ForwardingMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ForwardingMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "masq" | "masquerading" | "nat" => Ok(Self::Masq),
            "gate" | "gatewaying" | "route" | "dr" => Ok(Self::Gate),
            "tunnel" | "ipip" => Ok(Self::Tunnel),
            "fullnat" | "full-nat" => Ok(Self::FullNat),
            _ => Err(format!("unknown forwarding method `{s}` (expected fullnat, masq, gate or tunnel)")),
        }
    }
}

/// PROXY protocol header sent to a real server before the client's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProxyProtocol {
    #[default]
    Off,
    V1,
    V2,
}

impl ProxyProtocol {
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

impl FromStr for ProxyProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" | "none" => Ok(Self::Off),
            "v1" | "1" => Ok(Self::V1),
            "v2" | "2" => Ok(Self::V2),
            _ => Err(format!("unknown PROXY protocol version `{s}` (expected off, v1 or v2)")),
        }
    }
}
