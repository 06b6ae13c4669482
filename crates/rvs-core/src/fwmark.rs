//! Firewall marks (IPVS's fwmark services, `ipvsadm -f MARK`): a mark names a group of
//! matches (protocol, address or prefix, port range) that one virtual service serves together.
//! IPVS reads the mark iptables set; rvs classifies itself, so the matches are defined here.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::service::{Protocol, ServiceKey};

/// A firewall mark's number (IPVS: any non-zero 32-bit value).
pub type Mark = NonZeroU32;

/// The address family of a firewall-mark service: `-f MARK` is IPv4, `-f MARK -6` IPv6, and
/// the two are different services of one mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// The family's unspecified address (what family checks of settings compare against).
    pub fn unspecified(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED),
        }
    }

    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// What identifies a firewall-mark virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarkKey {
    pub mark: Mark,
    pub family: Family,
}

impl MarkKey {
    /// The virtual address IPVS gives a firewall-mark service's persistence templates (and so
    /// what `ipvsadm -L -c` shows): the mark as the address's first 32 bits, port 0.
    pub fn template_vaddr(&self) -> SocketAddr {
        let ip = match self.family {
            Family::V4 => IpAddr::from(std::net::Ipv4Addr::from(self.mark.get())),
            Family::V6 => IpAddr::from(std::net::Ipv6Addr::from(u128::from(self.mark.get()) << 96)),
        };
        SocketAddr::new(ip, 0)
    }
}

impl fmt::Display for MarkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.family {
            Family::V4 => write!(f, "fwmark {}", self.mark),
            Family::V6 => write!(f, "fwmark {} ipv6", self.mark),
        }
    }
}

/// An address prefix: `addr/len` with the host bits clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// `addr/len`; the host bits of `addr` must be clear (`198.18.0.1/24` is refused: it names
    /// neither the host nor the network plainly).
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, MarkError> {
        let bits = Family::of(addr).bits();
        if len > bits {
            return Err(MarkError::PrefixLength { addr, len });
        }
        let p = Self { addr, len };
        if p.masked(addr) != bits_of(addr) {
            return Err(MarkError::HostBits { addr, len });
        }
        Ok(p)
    }

    pub fn host(addr: IpAddr) -> Self {
        Self { addr, len: Family::of(addr).bits() }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn family(&self) -> Family {
        Family::of(self.addr)
    }

    /// Whether it is one address (`/32`, `/128`).
    pub fn is_host(&self) -> bool {
        self.len == self.family().bits()
    }

    fn masked(&self, ip: IpAddr) -> u128 {
        let bits = self.family().bits();
        let v = bits_of(ip);
        if self.len == 0 {
            0
        } else {
            v & (u128::MAX << (bits - self.len)) & (u128::MAX >> (128 - bits))
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family() && self.masked(ip) == bits_of(self.addr)
    }

    /// Whether the two share an address (one contains the other).
    pub fn overlaps(&self, other: &Prefix) -> bool {
        self.family() == other.family() && (self.contains(other.addr) || other.contains(self.addr))
    }
}

fn bits_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

impl FromStr for Prefix {
    type Err = MarkError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || MarkError::BadPrefix(s.to_string());
        match s.split_once('/') {
            None => s.parse().map(Prefix::host).map_err(|_| bad()),
            Some((a, l)) => Prefix::new(a.parse().map_err(|_| bad())?, l.parse().map_err(|_| bad())?),
        }
    }
}

/// Ports `lo..=hi` (one port when they are equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    lo: u16,
    hi: u16,
}

impl PortRange {
    pub fn new(lo: u16, hi: u16) -> Result<Self, MarkError> {
        if lo == 0 || lo > hi {
            return Err(MarkError::BadPorts(format!("{lo}-{hi}")));
        }
        Ok(Self { lo, hi })
    }

    pub fn lo(&self) -> u16 {
        self.lo
    }

    pub fn hi(&self) -> u16 {
        self.hi
    }

    pub fn ports(&self) -> RangeInclusive<u16> {
        self.lo..=self.hi
    }

    /// How many ports.
    pub fn count(&self) -> u32 {
        u32::from(self.hi - self.lo) + 1
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl FromStr for PortRange {
    type Err = MarkError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || MarkError::BadPorts(s.to_string());
        let (lo, hi) = s.split_once('-').unwrap_or((s, s));
        PortRange::new(lo.trim().parse().map_err(|_| bad())?, hi.trim().parse().map_err(|_| bad())?)
    }
}

/// One match of a mark: packets of `protocol` to an address in `dest` and a port in `ports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarkMatch {
    pub protocol: Protocol,
    pub dest: Prefix,
    pub ports: PortRange,
}

impl MarkMatch {
    /// Whether a packet could match both.
    pub fn overlaps(&self, other: &MarkMatch) -> bool {
        self.protocol == other.protocol && self.dest.overlaps(&other.dest) && self.ports.overlaps(&other.ports)
    }

    pub fn matches(&self, protocol: Protocol, ip: IpAddr, port: u16) -> bool {
        self.protocol == protocol && self.dest.contains(ip) && self.ports.ports().contains(&port)
    }
}

impl fmt::Display for MarkMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} port {}", self.protocol, self.dest, self.ports)
    }
}

/// A firewall mark as defined: its matches, non-empty, none overlapping another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MarkDef {
    pub mark: Mark,
    pub matches: Vec<MarkMatch>,
}

impl MarkDef {
    /// The matches of one address family (those a `-f MARK` or `-f MARK -6` service serves).
    pub fn matches_of(&self, family: Family) -> impl Iterator<Item = &MarkMatch> {
        self.matches.iter().filter(move |m| m.dest.family() == family)
    }

    /// One address and port its `family` service serves (the first match's lowest): where a
    /// packet to the service can be said to go when a message has room for an address only
    /// (connection sync). [`classify`] finds the mark again from it.
    pub fn representative(&self, family: Family) -> Option<(Protocol, SocketAddr)> {
        self.matches_of(family).next().map(|m| (m.protocol, SocketAddr::new(m.dest.addr(), m.ports.lo())))
    }

    /// Checks the matches: at least one, no two overlapping.
    pub fn validate(&self) -> Result<(), MarkError> {
        if self.matches.is_empty() {
            return Err(MarkError::NoMatches(self.mark));
        }
        for (i, a) in self.matches.iter().enumerate() {
            if let Some(b) = self.matches[..i].iter().find(|b| a.overlaps(b)) {
                return Err(MarkError::Overlap { a: *b, mark_a: self.mark, b: *a, mark_b: self.mark });
            }
        }
        Ok(())
    }
}

/// The virtual service a packet of `protocol` to `dest` is for, among the services `has`
/// knows: a firewall mark's first (IPVS looks fwmark services up before addresses), then the
/// address and port's, then the address's all-port service (port 0).
pub fn classify(
    marks: &BTreeMap<Mark, MarkDef>,
    protocol: Protocol,
    dest: SocketAddr,
    has: impl Fn(&ServiceKey) -> bool,
) -> Option<ServiceKey> {
    let family = Family::of(dest.ip());
    let marked = marks
        .values()
        .filter(|d| d.matches_of(family).any(|m| m.matches(protocol, dest.ip(), dest.port())))
        .map(|d| ServiceKey::Mark(MarkKey { mark: d.mark, family }))
        .find(&has);
    marked.or_else(|| [dest, SocketAddr::new(dest.ip(), 0)].into_iter().map(|a| ServiceKey::new(protocol, a)).find(has))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkError {
    #[error("`{0}` is not an address or prefix (198.18.0.10, 198.18.0.0/24, 2001:db8::/64)")]
    BadPrefix(String),
    #[error("prefix length {len} is too long for {addr}")]
    PrefixLength { addr: IpAddr, len: u8 },
    #[error("{addr}/{len} has host bits set: write the network address")]
    HostBits { addr: IpAddr, len: u8 },
    #[error("`{0}` is not a port or port range (80, 8000-8099; from 1 to 65535, low to high)")]
    BadPorts(String),
    #[error("firewall mark {0} has no matches")]
    NoMatches(Mark),
    #[error(
        "firewall mark {mark_b}'s match {b} overlaps firewall mark {mark_a}'s match {a}: a packet would have two marks"
    )]
    Overlap { a: MarkMatch, mark_a: Mark, b: MarkMatch, mark_b: Mark },
    #[error(
        "firewall mark {0} is not defined: give it its matches first ([[firewall_mark]] in the file, or PUT /v1/marks/{0})"
    )]
    Undefined(Mark),
    #[error("firewall mark {mark} has no {family} match for its {family} service")]
    NoMatchOfFamily { mark: Mark, family: &'static str },
    #[error("firewall mark {mark} is used by virtual service {service}: delete the service first")]
    InUse { mark: Mark, service: MarkKey },
    #[error("firewall mark 0 is not a mark (IPVS marks are from 1 to 4294967295)")]
    Zero,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: Protocol, dest: &str, ports: &str) -> MarkMatch {
        MarkMatch { protocol: p, dest: dest.parse().unwrap(), ports: ports.parse().unwrap() }
    }

    #[test]
    fn prefixes_parse_contain_and_overlap() {
        let p: Prefix = "198.18.0.0/24".parse().unwrap();
        assert!(p.contains("198.18.0.77".parse().unwrap()));
        assert!(!p.contains("198.18.1.1".parse().unwrap()));
        assert!(!p.contains("2001:db8::1".parse().unwrap()));
        assert!(p.overlaps(&"198.18.0.5".parse().unwrap()));
        assert!(!p.overlaps(&"198.18.1.0/24".parse().unwrap()));
        assert_eq!(
            "198.18.0.1/24".parse::<Prefix>(),
            Err(MarkError::HostBits { addr: "198.18.0.1".parse().unwrap(), len: 24 })
        );
        assert!(matches!("198.18.0.0/33".parse::<Prefix>(), Err(MarkError::PrefixLength { .. })));
        assert!(matches!("nonsense".parse::<Prefix>(), Err(MarkError::BadPrefix(_))));
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let v6: Prefix = "2001:db8::/64".parse().unwrap();
        assert!(v6.contains("2001:db8::9".parse().unwrap()) && !v6.contains("2001:db8:1::9".parse().unwrap()));
        assert_eq!(p.to_string(), "198.18.0.0/24");
        assert_eq!("198.18.0.9".parse::<Prefix>().unwrap().to_string(), "198.18.0.9");
    }

    #[test]
    fn packets_find_their_mark_before_their_address() {
        let mark = Mark::new(7).unwrap();
        let def = MarkDef {
            mark,
            matches: vec![m(Protocol::Tcp, "198.18.0.10", "80"), m(Protocol::Tcp, "198.18.0.10", "443")],
        };
        let marks: BTreeMap<Mark, MarkDef> = [(mark, def.clone())].into();
        let fw = ServiceKey::Mark(MarkKey { mark, family: Family::V4 });
        let http = ServiceKey::new(Protocol::Tcp, "198.18.0.10:80".parse().unwrap());
        let all = ServiceKey::new(Protocol::Tcp, "198.18.0.10:0".parse().unwrap());
        let known = [fw, http, all];
        let has = |k: &ServiceKey| known.contains(k);
        let at = |p, a: &str| classify(&marks, p, a.parse().unwrap(), has);
        assert_eq!(at(Protocol::Tcp, "198.18.0.10:443"), Some(fw));
        assert_eq!(at(Protocol::Tcp, "198.18.0.10:80"), Some(fw), "the mark first, as IPVS");
        assert_eq!(at(Protocol::Tcp, "198.18.0.10:22"), Some(all), "then the address, then port 0");
        assert_eq!(at(Protocol::Udp, "198.18.0.10:80"), None);
        let (p, a) = def.representative(Family::V4).unwrap();
        assert_eq!(classify(&marks, p, a, has), Some(fw));
        assert_eq!(
            classify(&marks, Protocol::Tcp, "198.18.0.10:443".parse().unwrap(), |k| *k == http),
            None,
            "a mark without its service"
        );
    }

    #[test]
    fn port_ranges_parse_and_overlap() {
        let r: PortRange = "8000-8099".parse().unwrap();
        assert_eq!((r.lo(), r.hi(), r.count()), (8000, 8099, 100));
        assert!(r.overlaps(&"8099".parse().unwrap()) && !r.overlaps(&"8100-9000".parse().unwrap()));
        for bad in ["0", "90-80", "x", "70000", ""] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_mark_refuses_overlapping_matches_and_none() {
        let mark = Mark::new(1).unwrap();
        let ok = MarkDef {
            mark,
            matches: vec![m(Protocol::Tcp, "198.18.0.10", "80"), m(Protocol::Tcp, "198.18.0.10", "443")],
        };
        assert_eq!(ok.validate(), Ok(()));
        let udp_too = MarkDef {
            mark,
            matches: vec![m(Protocol::Tcp, "198.18.0.0/24", "53"), m(Protocol::Udp, "198.18.0.10", "53")],
        };
        assert_eq!(udp_too.validate(), Ok(()), "another protocol does not overlap");
        let bad = MarkDef {
            mark,
            matches: vec![m(Protocol::Tcp, "198.18.0.0/24", "1-1024"), m(Protocol::Tcp, "198.18.0.10", "443")],
        };
        assert!(matches!(bad.validate(), Err(MarkError::Overlap { .. })));
        assert_eq!(MarkDef { mark, matches: vec![] }.validate(), Err(MarkError::NoMatches(mark)));
        assert_eq!(ok.matches_of(Family::V6).count(), 0);
    }
}
