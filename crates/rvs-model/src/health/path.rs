//! How the health check of a gate or tunnel real server of a packet service reaches it through
//! the virtual address, as its traffic does ([`ViaVip`]: connect to VIP:port with a socket mark
//! the packet engine routes to that real server), or why it cannot ([`CheckPath::Unavailable`]).
//! The packet engine works these out when it prepares a change; the health plane uses them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use rvs_core::ServiceKey;

/// A check connection through the VIP: to `vip` (the virtual service's address and port), from
/// `source` (the director's address the real server answers to), with socket mark `mark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViaVip {
    pub vip: SocketAddr,
    pub mark: u32,
    pub source: IpAddr,
}

/// The path of one real server's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckPath {
    Via(ViaVip),
    /// Through the VIP is not possible (why): the check goes to the real server's own address.
    Unavailable(String),
}

impl fmt::Display for ViaVip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (mark {:#x}, from {})", self.vip, self.mark, self.source)
    }
}

/// The check paths of every gate and tunnel real server of the packet services, by virtual
/// service and real server.
pub type CheckPaths = BTreeMap<(ServiceKey, SocketAddr), CheckPath>;
