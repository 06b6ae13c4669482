//! The Layer-7 part of the file: a virtual service of `kind = "http"` with its pools of real
//! servers, its rules (first match wins) and default pool, forwarded headers, limits,
//! timeouts and TLS certificates, validated into rvs-l7's service configuration.

use std::path::PathBuf;
use std::time::Duration;

use rvs_core::persistence::DEFAULT_PERSISTENCE_SECS;
use rvs_core::{Netmask, Persistence, ProxyProtocol, SchedulerKind, ServiceAddr};
use rvs_model::http::{
    CookieInsert, HashOn, L7ServiceConfig, PoolConfig, PoolPersistence, Rule, TlsCertificate, TlsConfig,
};
use serde::Deserialize;
use toml::Spanned;

use crate::error::Unplaced;
use crate::raw::{RawRealServer, RawService};
use crate::validate::{place_server_error, real_server_settings};

type Result<T> = std::result::Result<T, Unplaced>;

/// A `[[service.pool]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    name: Spanned<String>,
    scheduler: Option<Spanned<String>>,
    #[serde(default)]
    sched_flags: Vec<Spanned<String>>,
    mh_table_size: Option<u32>,
    /// none, source, cookie or hash.
    persistence: Option<Spanned<String>>,
    /// source: timeout in seconds and netmask.
    persistent: Option<u32>,
    netmask: Option<Spanned<String>>,
    /// cookie: its name, Max-Age, Secure.
    cookie: Option<Spanned<String>>,
    cookie_max_age: Option<u32>,
    #[serde(default)]
    cookie_secure: bool,
    /// hash: `uri` or `header:NAME`, and the regex whose capture is hashed.
    hash_on: Option<Spanned<String>>,
    hash_regex: Option<Spanned<String>>,
    proxy_protocol: Option<Spanned<String>>,
    /// The health check of the pool's real servers.
    check: Option<Spanned<crate::health::RawCheck>>,
    /// Takes the pool's requests while none of its real servers is available.
    sorry_server: Option<Spanned<String>>,
    #[serde(default, rename = "real_server")]
    real_servers: Vec<Spanned<RawRealServer>>,
}

/// A `[[service.rule]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    name: Spanned<String>,
    /// Conditions, all of which must hold: `host=`, `path=`, `path^=`, `path~=`, `method=`,
    /// `header:NAME[=V|~=RE]`, `query:NAME[...]`, `cookie:NAME[...]`.
    #[serde(rename = "match")]
    matches: Spanned<Vec<String>>,
    pool: Spanned<String>,
}

/// `[service.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    #[serde(rename = "certificate")]
    certificates: Vec<Spanned<RawCertificate>>,
    tls12: Option<bool>,
    tls13: Option<bool>,
    /// Offer HTTP/2 by ALPN `h2` (default true).
    http2: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertificate {
    /// SNI names it serves (`*.example.com` allowed); the first certificate is the default.
    names: Vec<String>,
    cert: PathBuf,
    key: PathBuf,
}

fn secs(v: Option<f64>, at: &str, span: std::ops::Range<usize>) -> Result<Option<Duration>> {
    match v {
        None => Ok(None),
        Some(x) if x.is_finite() && x > 0.0 && x <= 86_400.0 => Ok(Some(Duration::from_secs_f64(x))),
        Some(x) => Err(Unplaced::new(Some(span), at, format!("{x} is not a duration from 0 to 86400 seconds"))),
    }
}

/// The health checks of an http service's pools, by pool name.
pub(crate) fn pool_checks(
    s: &Spanned<RawService>,
    at: &str,
) -> Result<std::collections::BTreeMap<String, crate::health::CheckSpec>> {
    let mut checks = std::collections::BTreeMap::new();
    for (i, p) in s.get_ref().pools.iter().enumerate() {
        if let Some(c) = &p.get_ref().check {
            let spec = c.get_ref().validate(&format!("{at}.pool[{i}].check"), c.span())?;
            checks.insert(p.get_ref().name.get_ref().clone(), spec);
        }
    }
    Ok(checks)
}

/// Validates an `http` virtual service.
pub(crate) fn http_service(key: ServiceAddr, s: &Spanned<RawService>, at: &str) -> Result<L7ServiceConfig> {
    let f = |name: &str| format!("{at}.{name}");
    let whole = s.span();
    let raw = s.get_ref();
    let l4_only = [
        ("scheduler", raw.scheduler.is_some()),
        ("persistent", raw.persistent.is_some()),
        ("netmask", raw.netmask.is_some()),
        ("sched_flags", !raw.sched_flags.is_empty()),
        ("real_server", !raw.real_servers.is_empty()),
        ("check", raw.check.is_some()),
        ("sorry_server", raw.sorry_server.is_some()),
        ("quorum", raw.quorum.is_some()),
        ("helper", raw.helper.is_some()),
    ];
    if let Some((name, _)) = l4_only.iter().find(|(_, set)| *set) {
        return Err(Unplaced::new(
            Some(whole),
            f(name),
            format!("`{name}` belongs to a tcp service; an http service has pools (`[[service.pool]]`) and rules"),
        ));
    }
    let mut svc = L7ServiceConfig::new(key);
    for (i, p) in raw.pools.iter().enumerate() {
        svc.pools.push(pool(key, p, &format!("{at}.pool[{i}]"))?);
    }
    for (i, r) in raw.rules.iter().enumerate() {
        let rat = format!("{at}.rule[{i}]");
        let r0 = r.get_ref();
        let matches: Vec<&str> = r0.matches.get_ref().iter().map(String::as_str).collect();
        let rule = Rule::parse(r0.name.get_ref().clone(), &matches, r0.pool.get_ref().clone())
            .map_err(|e| Unplaced::new(Some(r0.matches.span()), format!("{rat}.match"), e))?;
        svc.rules.push(rule);
    }
    svc.default_pool = raw.default_pool.as_ref().map(|p| p.get_ref().clone());
    svc.max_connections = crate::validate::max_connections(&raw.max_connections, f("max_connections"))?;
    if let Some(v) = raw.x_forwarded_for {
        svc.forwarded.x_forwarded_for = v;
    }
    if let Some(v) = raw.x_forwarded_proto {
        svc.forwarded.x_forwarded_proto = v;
    }
    if let Some(v) = raw.forwarded {
        svc.forwarded.forwarded = v;
    }
    if let Some(v) = raw.max_header_bytes {
        svc.limits.max_header_bytes = v;
    }
    if raw.max_body_bytes.is_some() {
        svc.limits.max_body_bytes = raw.max_body_bytes;
    }
    let t = &mut svc.timeouts;
    for (v, slot, name) in [
        (raw.header_timeout, &mut t.header_read, "header_timeout"),
        (raw.keep_alive_timeout, &mut t.keep_alive, "keep_alive_timeout"),
        (raw.server_timeout, &mut t.server, "server_timeout"),
        (raw.connect_timeout, &mut t.connect, "connect_timeout"),
    ] {
        if let Some(d) = secs(v, &f(name), whole.clone())? {
            *slot = d;
        }
    }
    if let Some(tls) = &raw.tls {
        let t = tls.get_ref();
        let mut certs = Vec::new();
        for (i, c) in t.certificates.iter().enumerate() {
            let c0 = c.get_ref();
            let cert = TlsCertificate::from_pem_files(c0.names.clone(), &c0.cert, &c0.key)
                .map_err(|e| Unplaced::new(Some(c.span()), format!("{at}.tls.certificate[{i}]"), e))?;
            certs.push(cert);
        }
        let mut cfg = TlsConfig::new(certs);
        cfg.tls12 = t.tls12.unwrap_or(true);
        cfg.tls13 = t.tls13.unwrap_or(true);
        cfg.http2 = t.http2.unwrap_or(true);
        svc.tls = Some(cfg);
    }
    svc.validate().map_err(|e| {
        let place = match &e {
            rvs_model::http::ConfigError::UnknownDefaultPool(_) => {
                raw.default_pool.as_ref().map(|p| (p.span(), f("default_pool")))
            }
            rvs_model::http::ConfigError::UnknownPool { rule, .. }
            | rvs_model::http::ConfigError::DuplicateRule(rule) => raw
                .rules
                .iter()
                .position(|r| r.get_ref().name.get_ref() == rule)
                .map(|i| (raw.rules[i].span(), format!("{at}.rule[{i}]"))),
            rvs_model::http::ConfigError::DuplicatePool(p) | rvs_model::http::ConfigError::Pool { pool: p, .. } => raw
                .pools
                .iter()
                .rposition(|r| r.get_ref().name.get_ref() == p)
                .map(|i| (raw.pools[i].span(), format!("{at}.pool[{i}]"))),
            _ => None,
        };
        let (sp, field) = place.unwrap_or((whole.clone(), at.to_string()));
        Unplaced::new(Some(sp), field, e)
    })?;
    Ok(svc)
}

fn pool(key: ServiceAddr, p: &Spanned<RawPool>, at: &str) -> Result<PoolConfig> {
    let f = |name: &str| format!("{at}.{name}");
    let raw = p.get_ref();
    let name = raw.name.get_ref().clone();
    let named = |e: rvs_model::http::ConfigError| Unplaced::new(Some(raw.name.span()), f("name"), e);
    let scheduler = match &raw.scheduler {
        Some(s) => {
            s.get_ref().parse::<SchedulerKind>().map_err(|e| Unplaced::new(Some(s.span()), f("scheduler"), e))?
        }
        None => SchedulerKind::Wlc,
    };
    let kind = raw.persistence.as_ref().map_or("none", |s| s.get_ref().as_str());
    let mut pool = match kind {
        "hash" => {
            let on = raw.hash_on.as_ref().map_or("uri", |h| h.get_ref().as_str());
            let re = raw.hash_regex.as_ref().map_or("(.*)", |r| r.get_ref().as_str());
            let at_hash = raw.hash_regex.as_ref().or(raw.hash_on.as_ref()).map(|v| v.span());
            let hash = match on.strip_prefix("header:") {
                Some(h) => HashOn::header(h, re),
                None if on == "uri" => HashOn::uri(re),
                None => {
                    return Err(Unplaced::new(at_hash, f("hash_on"), format!("`{on}`: expected uri or header:NAME")))
                }
            }
            .map_err(|e| Unplaced::new(at_hash, f("hash_regex"), e))?;
            PoolConfig::hashed(name, hash).map_err(named)?
        }
        _ => PoolConfig::new(name, scheduler).map_err(named)?,
    };
    pool.persistence = match kind {
        "none" => PoolPersistence::None,
        "hash" => pool.persistence,
        "source" => {
            let netmask = match &raw.netmask {
                Some(m) => {
                    m.get_ref().parse::<Netmask>().map_err(|e| Unplaced::new(Some(m.span()), f("netmask"), e))?
                }
                None => Netmask::host(key.addr.ip()),
            };
            PoolPersistence::Source(Persistence::new(raw.persistent.unwrap_or(DEFAULT_PERSISTENCE_SECS), netmask))
        }
        "cookie" => {
            let mut c = match &raw.cookie {
                Some(n) => CookieInsert::new(n.get_ref()).map_err(|e| Unplaced::new(Some(n.span()), f("cookie"), e))?,
                None => CookieInsert::default(),
            };
            c.max_age_secs = raw.cookie_max_age;
            c.secure = raw.cookie_secure;
            PoolPersistence::Cookie(c)
        }
        other => {
            let sp = raw.persistence.as_ref().map(|s| s.span());
            return Err(Unplaced::new(
                sp,
                f("persistence"),
                format!("`{other}`: expected none, source, cookie or hash"),
            ));
        }
    };
    for fl in &raw.sched_flags {
        pool.flags.set(fl.get_ref()).map_err(|e| Unplaced::new(Some(fl.span()), f("sched_flags"), e))?;
    }
    if let Some(n) = raw.mh_table_size {
        pool.mh_table_size = n;
    }
    if let Some(pp) = &raw.proxy_protocol {
        pool.proxy_protocol = pp
            .get_ref()
            .parse::<ProxyProtocol>()
            .map_err(|e| Unplaced::new(Some(pp.span()), f("proxy_protocol"), e))?;
    }
    for (j, rs) in raw.real_servers.iter().enumerate() {
        let rat = format!("{at}.real_server[{j}]");
        let server = real_server_settings(rs, key.addr.port(), &rat)?;
        server.validate().map_err(|e| {
            place_server_error(rs, &rat, rvs_core::CommandError::Server { addr: server.addr, source: e })
        })?;
        pool.servers.push(server);
    }
    if let Some(sorry) = &raw.sorry_server {
        pool.sorry_server = Some(
            rvs_core::addr::parse_endpoint(sorry.get_ref(), Some(key.addr.port()))
                .map_err(|e| Unplaced::new(Some(sorry.span()), f("sorry_server"), e))?,
        );
    }
    pool.validate().map_err(|e| Unplaced::new(Some(p.span()), at, e))?;
    Ok(pool)
}
