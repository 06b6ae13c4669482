//! Forwarding methods: how a director hands a connection to a real server. The classic IPVS
//! methods (masq, gate, tunnel) belong to the packet engine; `fullnat` is the proxy engine's.

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

    /// Whether the data planes rvs has today can forward with this method.
    pub fn supported(self) -> Result<(), UnsupportedMethod> {
        match self {
            Self::FullNat => Ok(()),
            other => Err(UnsupportedMethod(other)),
        }
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

/// Refusal of a method the running data planes cannot do yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "forwarding method {0} needs the packet engine (XDP), which rvs does not have yet; \
     use fullnat (the userspace proxy engine)"
)]
pub struct UnsupportedMethod(pub ForwardingMethod);

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
