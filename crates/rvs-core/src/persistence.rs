//! Persistence: the templates that send a client (its address under a netmask) back to the
//! same real server for a timeout, expiring as IPVS expires them when their real server is
//! deleted or quiesced. Time is monotonic milliseconds passed in.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::service::ServiceError;

/// The default persistence timeout: IPVS's `IP_VS_SVC_PERSISTENT_TIMEOUT` (6 minutes), what
/// ipvsadm's `-p` without a value gives.
pub const DEFAULT_PERSISTENCE_SECS: u32 = 360;

/// A persistence netmask: a dotted IPv4 mask or an IPv6 prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Netmask {
    V4(Ipv4Addr),
    V6Prefix(u8),
}

impl Default for Netmask {
    fn default() -> Self {
        Netmask::V4(Ipv4Addr::BROADCAST)
    }
}

impl Netmask {
    /// The mask that keeps the whole address for `ip`'s family.
    pub fn host(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Netmask::V4(Ipv4Addr::BROADCAST),
            IpAddr::V6(_) => Netmask::V6Prefix(128),
        }
    }

    /// `ip` under this mask. A mask of the other family leaves the address whole.
    pub fn apply(&self, ip: IpAddr) -> IpAddr {
        match (self, ip) {
            (Netmask::V4(m), IpAddr::V4(a)) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & u32::from(*m))),
            (Netmask::V6Prefix(p), IpAddr::V6(a)) => {
                let bits = u128::from(a);
                let mask = if *p == 0 { 0 } else { u128::MAX << (128 - u32::from(*p)) };
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
            _ => ip,
        }
    }
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netmask::V4(m) => write!(f, "{m}"),
            Netmask::V6Prefix(p) => write!(f, "{p}"),
        }
    }
}

impl FromStr for Netmask {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(m) = s.parse::<Ipv4Addr>() {
            let bits = u32::from(m);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(format!("netmask {s} is not contiguous"));
            }
            return Ok(Netmask::V4(m));
        }
        let p = s.trim_start_matches('/');
        match p.parse::<u8>() {
            Ok(n) if n <= 128 => Ok(Netmask::V6Prefix(n)),
            _ => Err(format!("`{s}` is neither an IPv4 netmask nor an IPv6 prefix length 0..=128")),
        }
    }
}

/// A persistence engine (`ipvsadm --pe NAME`): what, beside the client's network, keys a
/// template. IPVS has one, `sip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PersistenceEngine {
    /// The Call-ID of each SIP datagram ([`crate::sip`]): UDP services only.
    Sip,
}

impl PersistenceEngine {
    /// As ipvsadm names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sip => "sip",
        }
    }
}

impl fmt::Display for PersistenceEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PersistenceEngine {
    type Err = ServiceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sip" => Ok(Self::Sip),
            _ => Err(ServiceError::UnknownPersistenceEngine(s.to_string())),
        }
    }
}

/// Persistence settings of a virtual service (`ipvsadm -p TIMEOUT -M NETMASK --pe NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Persistence {
    pub timeout_secs: u32,
    pub netmask: Netmask,
    pub engine: Option<PersistenceEngine>,
}

impl Persistence {
    pub fn new(timeout_secs: u32, netmask: Netmask) -> Self {
        Self { timeout_secs, netmask, engine: None }
    }

    pub fn with_engine(self, engine: Option<PersistenceEngine>) -> Self {
        Self { engine, ..self }
    }

    pub(crate) fn validate_for(&self, ip: IpAddr) -> Result<(), ServiceError> {
        if self.timeout_secs == 0 {
            return Err(ServiceError::ZeroPersistence);
        }
        let fits =
            matches!((self.netmask, ip), (Netmask::V4(_), IpAddr::V4(_)) | (Netmask::V6Prefix(_), IpAddr::V6(_)));
        if fits {
            Ok(())
        } else {
            Err(ServiceError::NetmaskFamily { mask: self.netmask.to_string(), addr: ip })
        }
    }
}

/// What a template is found by: the client's network, and with a persistence engine the
/// engine's data (a SIP Call-ID), as IPVS's `pe_data`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    pub client_net: IpAddr,
    pub pe_data: Option<Box<[u8]>>,
}

impl TemplateKey {
    pub fn net(client_net: IpAddr) -> Self {
        Self { client_net, pe_data: None }
    }
}

/// One persistence template: a client network (and the engine's data) bound to a real server.
#[derive(Debug)]
pub struct Template {
    pub client_net: IpAddr,
    pub pe_data: Option<Box<[u8]>>,
    pub dest: SocketAddr,
    expires_ms: AtomicU64,
    controlled: AtomicU32,
}

impl Template {
    /// Milliseconds until expiry at `now_ms` (0 when expired or held by connections).
    pub fn expires_in_ms(&self, now_ms: u64) -> u64 {
        self.expires_ms.load(Ordering::Relaxed).saturating_sub(now_ms)
    }

    /// Connections currently created under this template.
    pub fn controlled(&self) -> u32 {
        self.controlled.load(Ordering::Relaxed)
    }

    fn alive(&self, now_ms: u64) -> bool {
        self.controlled() > 0 || self.expires_ms.load(Ordering::Relaxed) > now_ms
    }

    /// A connection under this template ended at `now_ms`: the timeout restarts from here.
    pub fn release(&self, now_ms: u64, timeout_ms: u64) {
        self.expires_ms.store(now_ms + timeout_ms, Ordering::Relaxed);
        self.controlled.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The templates of one virtual service, keyed by client network.
#[derive(Debug, Default)]
pub struct PersistenceTable {
    templates: HashMap<TemplateKey, Arc<Template>>,
}

impl PersistenceTable {
    /// The live template for `client_net`, if any. Stale entries are dropped.
    pub fn lookup(&mut self, key: &TemplateKey, now_ms: u64) -> Option<Arc<Template>> {
        match self.templates.get(key) {
            Some(t) if t.alive(now_ms) => Some(t.clone()),
            Some(_) => {
                self.templates.remove(key);
                None
            }
            None => None,
        }
    }

    /// Takes a template for a new connection: refreshes its timer and counts the connection.
    pub fn bind(&mut self, key: &TemplateKey, dest: SocketAddr, now_ms: u64, timeout_ms: u64) -> Arc<Template> {
        let t = self
            .templates
            .entry(key.clone())
            .and_modify(|t| {
                if t.dest != dest {
                    *t = Arc::new(Template::new(key, dest));
                }
            })
            .or_insert_with(|| Arc::new(Template::new(key, dest)))
            .clone();
        t.expires_ms.store(now_ms + timeout_ms, Ordering::Relaxed);
        t.controlled.fetch_add(1, Ordering::Relaxed);
        t
    }

    /// A template learnt from elsewhere (a sync master): `client_net` bound to `dest` until
    /// `expires_ms`, with no connection of its own. A live template to another real server is
    /// replaced; one to the same real server keeps the later expiry.
    pub fn restore(&mut self, key: &TemplateKey, dest: SocketAddr, expires_ms: u64) {
        let t = self
            .templates
            .entry(key.clone())
            .and_modify(|t| {
                if t.dest != dest {
                    *t = Arc::new(Template::new(key, dest));
                }
            })
            .or_insert_with(|| Arc::new(Template::new(key, dest)));
        t.expires_ms.fetch_max(expires_ms, Ordering::Relaxed);
    }

    /// Drops the template of `key` (its real server can no longer be used).
    pub fn expire(&mut self, key: &TemplateKey) {
        self.templates.remove(key);
    }

    /// Drops every template pointing at `dest`.
    pub fn expire_dest(&mut self, dest: SocketAddr) {
        self.templates.retain(|_, t| t.dest != dest);
    }

    /// Drops expired templates; returns how many went.
    pub fn purge(&mut self, now_ms: u64) -> usize {
        let before = self.templates.len();
        self.templates.retain(|_, t| t.alive(now_ms));
        before - self.templates.len()
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Template>> {
        self.templates.values()
    }

    pub fn clear(&mut self) {
        self.templates.clear();
    }
}

impl Template {
    fn new(key: &TemplateKey, dest: SocketAddr) -> Self {
        Self {
            client_net: key.client_net,
            pe_data: key.pe_data.clone(),
            dest,
            expires_ms: AtomicU64::new(0),
            controlled: AtomicU32::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn key(s: &str) -> TemplateKey {
        TemplateKey::net(ip(s))
    }

    #[test]
    fn sip_templates_are_per_call_within_one_client_network() {
        let mut t = PersistenceTable::default();
        let (a, b): (SocketAddr, SocketAddr) =
            ("198.18.0.11:5060".parse().unwrap(), "198.18.0.12:5060".parse().unwrap());
        let call = |id: &str| TemplateKey { client_net: ip("198.18.0.2"), pe_data: Some(id.as_bytes().into()) };
        t.bind(&call("one"), a, 0, 1000).release(0, 1000);
        t.bind(&call("two"), b, 0, 1000).release(0, 1000);
        assert_eq!(t.lookup(&call("one"), 10).map(|x| x.dest), Some(a));
        assert_eq!(t.lookup(&call("two"), 10).map(|x| x.dest), Some(b));
        assert!(t.lookup(&key("198.18.0.2"), 10).is_none(), "a template without a Call-ID is another one");
        assert_eq!(t.lookup(&call("two"), 10).and_then(|x| x.pe_data.clone()).as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn a_restored_template_holds_its_client_until_it_expires_and_keeps_the_later_expiry() {
        let mut t = PersistenceTable::default();
        let rs: SocketAddr = "198.18.0.11:80".parse().unwrap();
        t.restore(&key("198.18.0.0"), rs, 5_000);
        t.restore(&key("198.18.0.0"), rs, 3_000);
        let got = t.lookup(&key("198.18.0.0"), 4_000).expect("live at 4 s");
        assert_eq!((got.dest, got.controlled(), got.expires_in_ms(4_000)), (rs, 0, 1_000));
        assert!(t.lookup(&key("198.18.0.0"), 5_001).is_none(), "expired");
    }

    #[test]
    fn netmask_applies_per_family() {
        let m: Netmask = "255.255.255.0".parse().unwrap();
        assert_eq!(m.apply(ip("10.1.2.3")), ip("10.1.2.0"));
        let m6: Netmask = "64".parse().unwrap();
        assert_eq!(m6.apply(ip("2001:db8::1:2:3:4")), ip("2001:db8::"));
        assert!("255.0.255.0".parse::<Netmask>().is_err());
        assert!("129".parse::<Netmask>().is_err());
    }

    #[test]
    fn template_lives_while_controlled_then_for_timeout() {
        let mut t = PersistenceTable::default();
        let d: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let tpl = t.bind(&key("1.2.3.0"), d, 1_000, 300_000);
        // held by a connection: alive past the timeout
        assert!(t.lookup(&key("1.2.3.0"), 1_000_000).is_some());
        tpl.release(1_000_000, 300_000);
        assert!(t.lookup(&key("1.2.3.0"), 1_299_999).is_some());
        assert!(t.lookup(&key("1.2.3.0"), 1_300_001).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn purge_and_expire_dest() {
        let mut t = PersistenceTable::default();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        t.bind(&key("1.0.0.0"), a, 0, 10).release(0, 10);
        t.bind(&key("2.0.0.0"), b, 0, 10).release(0, 10);
        t.bind(&key("3.0.0.0"), b, 0, 1000).release(0, 1000);
        t.expire_dest(a);
        assert_eq!(t.len(), 2);
        assert_eq!(t.purge(100), 1);
        assert_eq!(t.len(), 1);
    }
}
