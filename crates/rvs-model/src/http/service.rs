//! An L7 virtual service as configured: its address, rules, pools and default pool, which
//! forwarding headers it adds, its limits and timeouts, and TLS termination. `validate` checks
//! the whole of it (names unique, every pool a rule names exists, limits sane).

use std::time::Duration;

use rvs_core::ServiceAddr;

use super::error::ConfigError;
use super::pool::PoolConfig;
use super::rule::Rule;
use super::tls::TlsConfig;

/// Which forwarding headers go to the real servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedHeaders {
    /// `X-Forwarded-For`: the client address appended to what the client sent.
    pub x_forwarded_for: bool,
    /// `X-Forwarded-Proto: http|https`, replacing what the client sent.
    pub x_forwarded_proto: bool,
    /// RFC 7239 `Forwarded: for=...;proto=...;host=...`, appended.
    pub forwarded: bool,
}

impl Default for ForwardedHeaders {
    fn default() -> Self {
        Self { x_forwarded_for: true, x_forwarded_proto: true, forwarded: false }
    }
}

/// Size limits on what clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Request line plus header fields; above it: 431.
    pub max_header_bytes: usize,
    /// Header fields per request; above it: 431.
    pub max_headers: usize,
    /// Request body; above it: 413. None: no limit.
    pub max_body_bytes: Option<u64>,
}

/// Most header fields a request may carry (the parser's fixed table).
pub const MAX_HEADERS: usize = 128;

impl Default for Limits {
    fn default() -> Self {
        Self { max_header_bytes: 16 * 1024, max_headers: 100, max_body_bytes: None }
    }
}

/// Timeouts of the HTTP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// From the first byte of a request head (or the accept, or the TLS handshake's start) to
    /// its end: the slowloris guard; 408 when it fires.
    pub header_read: Duration,
    /// An idle client connection between requests is closed after this.
    pub keep_alive: Duration,
    /// A connect to a real server; another real server is tried after it.
    pub connect: Duration,
    /// Waiting for the real server's response head, and for each read of a body; 504 when the
    /// head does not come in time.
    pub server: Duration,
    /// Waiting for each read of a request body from the client.
    pub client_body: Duration,
    /// An Upgrade tunnel (WebSocket) with no traffic either way is closed after this.
    pub tunnel_idle: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            keep_alive: Duration::from_secs(60),
            connect: Duration::from_secs(3),
            server: Duration::from_secs(60),
            client_body: Duration::from_secs(30),
            tunnel_idle: Duration::from_secs(3600),
        }
    }
}

/// One L7 virtual service.
#[derive(Debug, Clone, PartialEq)]
pub struct L7ServiceConfig {
    /// The address it listens on (TCP).
    pub key: ServiceAddr,
    pub rules: Vec<Rule>,
    pub pools: Vec<PoolConfig>,
    /// Takes requests no rule matches; without one they get 503.
    pub default_pool: Option<String>,
    pub forwarded: ForwardedHeaders,
    pub limits: Limits,
    pub timeouts: HttpTimeouts,
    /// TLS termination; none serves plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Connect attempts to other real servers after one fails.
    pub connect_retries: u32,
    /// The most client connections the service holds at once; at it, its listener stops
    /// accepting. None: only the director's cap.
    pub max_connections: Option<std::num::NonZeroU32>,
}

impl L7ServiceConfig {
    pub fn new(key: ServiceAddr) -> Self {
        Self {
            key,
            rules: Vec::new(),
            pools: Vec::new(),
            default_pool: None,
            forwarded: ForwardedHeaders::default(),
            limits: Limits::default(),
            timeouts: HttpTimeouts::default(),
            tls: None,
            connect_retries: 2,
            max_connections: None,
        }
    }

    /// Adds a pool (builder style).
    pub fn pool(mut self, pool: PoolConfig) -> Self {
        self.pools.push(pool);
        self
    }

    /// Adds a rule at the end (builder style).
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    pub fn default_pool(mut self, name: impl Into<String>) -> Self {
        self.default_pool = Some(name.into());
        self
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, p) in self.pools.iter().enumerate() {
            p.validate()?;
            if self.pools[..i].iter().any(|o| o.name == p.name) {
                return Err(ConfigError::DuplicatePool(p.name.clone()));
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            if self.rules[..i].iter().any(|o| o.name == r.name) {
                return Err(ConfigError::DuplicateRule(r.name.clone()));
            }
            if r.matches.is_empty() {
                return Err(ConfigError::EmptyRule(r.name.clone()));
            }
            if !self.pools.iter().any(|p| p.name == r.pool) {
                return Err(ConfigError::UnknownPool { rule: r.name.clone(), pool: r.pool.clone() });
            }
        }
        if let Some(d) = &self.default_pool {
            if !self.pools.iter().any(|p| &p.name == d) {
                return Err(ConfigError::UnknownDefaultPool(d.clone()));
            }
        }
        let l = &self.limits;
        if !(256..=1024 * 1024).contains(&l.max_header_bytes) {
            return Err(ConfigError::Limit("max_header_bytes must be within 256..=1048576".into()));
        }
        if !(1..=MAX_HEADERS).contains(&l.max_headers) {
            return Err(ConfigError::Limit(format!("max_headers must be within 1..={MAX_HEADERS}")));
        }
        let t = &self.timeouts;
        for (name, d) in [
            ("header_read", t.header_read),
            ("keep_alive", t.keep_alive),
            ("connect", t.connect),
            ("server", t.server),
            ("client_body", t.client_body),
            ("tunnel_idle", t.tunnel_idle),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Limit(format!("timeout {name} must be above zero")));
            }
        }
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        Ok(())
    }

    /// The pool named `name`.
    pub fn find_pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|p| p.name == name)
    }
}
