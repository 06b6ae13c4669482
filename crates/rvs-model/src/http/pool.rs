//! A pool of real servers as configured: its scheduler (any IPVS scheduler, through rvs-core),
//! its real servers, PROXY protocol towards them, and how requests stick to a real server:
//! not at all, by client address (core persistence), by an inserted cookie, or by consistent
//! hashing (mh) of a regex capture of the URI or a header field.

use rvs_core::sched::MH_DEFAULT_TABLE_SIZE;
use rvs_core::{
    ForwardingMethod, Persistence, ProxyProtocol, RealServerSettings, SchedFlags, SchedulerKind, ServiceSettings,
};

use super::error::ConfigError;
use super::matcher::is_tchar;
use super::rule::check_ident;
use rvs_core::pattern::Pattern;

/// How requests of one client stick to a real server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PoolPersistence {
    #[default]
    None,
    /// rvs-core persistence on the client address under a netmask, as `ipvsadm -p -M`.
    Source(Persistence),
    /// The proxy sets a cookie naming the real server and honours it while that server is up
    /// with a weight above zero.
    Cookie(CookieInsert),
    /// Consistent hashing (the pool's scheduler must be mh) of a regex capture.
    Hash(HashOn),
}

/// The cookie of cookie-inserted persistence: `NAME=<opaque id>; Path=/; HttpOnly`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieInsert {
    pub name: String,
    /// `Max-Age`; none makes it a session cookie.
    pub max_age_secs: Option<u32>,
    /// Adds `Secure` (set it for services that terminate TLS).
    pub secure: bool,
}

impl CookieInsert {
    pub const DEFAULT_NAME: &'static str = "RVSID";

    pub fn new(name: &str) -> Result<Self, ConfigError> {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(ConfigError::Name { name: name.to_string(), what: "cookie" });
        }
        Ok(Self { name: name.to_string(), max_age_secs: None, secure: false })
    }
}

impl Default for CookieInsert {
    fn default() -> Self {
        Self { name: Self::DEFAULT_NAME.to_string(), max_age_secs: None, secure: false }
    }
}

/// What the hash is taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashSource {
    /// The request target (path and query) as received.
    Uri,
    /// The first field of this name (lowercase).
    Header(String),
}

/// Hashing on the capture of `pattern` (group 1 if it has one, else the whole match) in the
/// source. A request where it does not match is hashed on the client address instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashOn {
    pub source: HashSource,
    pub pattern: Pattern,
}

impl HashOn {
    pub fn uri(pattern: &str) -> Result<Self, ConfigError> {
        Ok(Self { source: HashSource::Uri, pattern: Pattern::new(pattern)? })
    }

    pub fn header(name: &str, pattern: &str) -> Result<Self, ConfigError> {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(ConfigError::Name { name: name.to_string(), what: "header field" });
        }
        Ok(Self { source: HashSource::Header(name.to_ascii_lowercase()), pattern: Pattern::new(pattern)? })
    }
}

/// A pool of real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub name: String,
    pub scheduler: SchedulerKind,
    pub flags: SchedFlags,
    pub mh_table_size: u32,
    pub persistence: PoolPersistence,
    /// PROXY protocol towards every real server of the pool whose own setting is off.
    pub proxy_protocol: ProxyProtocol,
    pub servers: Vec<RealServerSettings>,
    /// Takes the pool's requests while none of its real servers is available (all down,
    /// weight 0 or overloaded): keepalived's sorry server, HAProxy's backup server.
    pub sorry_server: Option<std::net::SocketAddr>,
}

impl PoolConfig {
    pub fn new(name: impl Into<String>, scheduler: SchedulerKind) -> Result<Self, ConfigError> {
        let name = name.into();
        check_ident(&name, "pool")?;
        Ok(Self {
            name,
            scheduler,
            flags: SchedFlags::default(),
            mh_table_size: MH_DEFAULT_TABLE_SIZE,
            persistence: PoolPersistence::None,
            proxy_protocol: ProxyProtocol::Off,
            servers: Vec::new(),
            sorry_server: None,
        })
    }

    /// A pool hashing on `on` with mh and mh-fallback (a key whose real server is down goes
    /// to another one instead of failing).
    pub fn hashed(name: impl Into<String>, on: HashOn) -> Result<Self, ConfigError> {
        let mut p = Self::new(name, SchedulerKind::Mh)?;
        p.flags.mh_fallback = true;
        p.persistence = PoolPersistence::Hash(on);
        Ok(p)
    }

    /// Adds a real server with weight 1 (builder style, for tests and tools).
    pub fn server(mut self, addr: std::net::SocketAddr) -> Self {
        self.servers.push(RealServerSettings::new(addr));
        self
    }

    pub fn with_persistence(mut self, p: PoolPersistence) -> Self {
        self.persistence = p;
        self
    }

    /// Checks what can be checked without the service table: name, address families,
    /// persistence against the scheduler, each real server's settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_ident(&self.name, "pool")?;
        let bad = |reason: &str| ConfigError::Pool { pool: self.name.clone(), reason: reason.to_string() };
        if let Some(first) = self.servers.first() {
            if let Some(s) = self.servers.iter().find(|s| s.addr.is_ipv4() != first.addr.is_ipv4()) {
                return Err(ConfigError::MixedFamily { pool: self.name.clone(), addr: s.addr });
            }
        }
        if let Some(s) = self.servers.iter().find(|s| s.method != ForwardingMethod::FullNat) {
            return Err(bad(&format!(
                "real server {} is {}: an http pool's real servers are fullnat (the proxy engine forwards HTTP)",
                s.addr, s.method
            )));
        }
        for (i, s) in self.servers.iter().enumerate() {
            if self.servers[..i].iter().any(|o| o.addr == s.addr) {
                return Err(bad(&format!("real server {} is listed twice", s.addr)));
            }
        }
        if let Some(sorry) = self.sorry_server {
            if sorry.port() == 0 || sorry.ip().is_unspecified() {
                return Err(bad(&format!("sorry server {sorry} needs a specific address and port")));
            }
            if self.servers.first().is_some_and(|s| s.addr.is_ipv4() != sorry.is_ipv4()) {
                return Err(ConfigError::MixedFamily { pool: self.name.clone(), addr: sorry });
            }
        }
        match &self.persistence {
            PoolPersistence::Hash(_) if self.scheduler != SchedulerKind::Mh => {
                return Err(bad("hash persistence needs the mh scheduler"));
            }
            PoolPersistence::Cookie(_)
                if matches!(self.scheduler, SchedulerKind::Sh | SchedulerKind::Dh | SchedulerKind::Mh) =>
            {
                return Err(bad(
                    "cookie persistence needs a scheduler that can pick any real server (not sh, dh or mh)",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// The IPv4-ness of the pool's real servers (an empty pool counts as IPv4).
    pub fn is_ipv4(&self) -> bool {
        self.servers.first().is_none_or(|s| s.addr.is_ipv4())
    }

    /// The rvs-core settings of the virtual service that carries this pool.
    pub fn service_settings(&self) -> ServiceSettings {
        ServiceSettings {
            scheduler: self.scheduler,
            flags: self.flags,
            persistence: match &self.persistence {
                PoolPersistence::Source(p) => Some(*p),
                _ => None,
            },
            mh_table_size: self.mh_table_size,
            sorry_server: self.sorry_server,
            // A pool's scheduling service accepts nothing itself: the http service's cap holds.
            max_connections: None,
            one_packet: false,
            // Its connections are HTTP requests of the L7 engine, whatever its port.
            helper: Some(rvs_core::Helper::None),
        }
    }

    /// The PROXY protocol version towards `server`: its own, else the pool's.
    pub fn proxy_protocol_for(&self, server: &RealServerSettings) -> ProxyProtocol {
        match server.proxy_protocol {
            ProxyProtocol::Off => self.proxy_protocol,
            v => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let p = PoolConfig::new("p", SchedulerKind::Rr).unwrap().server("10.0.0.1:80".parse().unwrap());
        assert!(p.validate().is_ok());
        let mixed = p.clone().server("[::1]:80".parse().unwrap());
        assert!(matches!(mixed.validate(), Err(ConfigError::MixedFamily { .. })));
        let mut gate = p.clone();
        gate.servers[0].method = ForwardingMethod::Gate;
        assert!(gate.validate().unwrap_err().to_string().contains("fullnat"));
        let dup = p.clone().server("10.0.0.1:80".parse().unwrap());
        assert!(dup.validate().is_err());
        let hash = p.clone().with_persistence(PoolPersistence::Hash(HashOn::uri("x").unwrap()));
        assert!(hash.validate().is_err());
        assert!(PoolConfig::hashed("h", HashOn::header("X-User", "(.*)").unwrap()).unwrap().validate().is_ok());
        let mut cookie = p.with_persistence(PoolPersistence::Cookie(CookieInsert::default()));
        assert!(cookie.validate().is_ok());
        cookie.scheduler = SchedulerKind::Sh;
        assert!(cookie.validate().is_err());
        assert!(PoolConfig::new("a b", SchedulerKind::Rr).is_err());
    }
}
