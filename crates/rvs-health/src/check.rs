//! Checker specs: what to check on a real server (TCP, HTTP(S), send/expect, SMTP, DNS, UDP,
//! exec, agent) and where, validated once into a [`Check`] that runs against a target address
//! within a timeout and returns a [`CheckResult`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::checkers::dns::{encode_name, QType};
use crate::checkers::tls::TlsClient;
use crate::checkers::{self, Deadline, Verdict};
use crate::escape::{unescape, EscapeError};
use crate::result::CheckResult;
use crate::status::{StatusError, StatusRange};
use rvs_core::pattern::{Pattern, PatternError};

/// What to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// Connect (keepalived `TCP_CHECK`).
    Tcp,
    /// HTTP or HTTPS request (keepalived `HTTP_GET` / `SSL_GET`).
    Http(HttpCheck),
    /// Send a string, expect a reply matching a regex (ldirectord `negotiate`, nanny
    /// send/expect): banners of SMTP, IMAP, POP, FTP and the like.
    Expect(ExpectCheck),
    /// Banner 220, `HELO` → 250, `QUIT` (keepalived `SMTP_CHECK`).
    Smtp(SmtpCheck),
    /// A DNS query over UDP that must get NOERROR with at least one answer.
    Dns(DnsCheck),
    /// A UDP datagram, with or without a required reply.
    Udp(UdpCheck),
    /// An external program (keepalived `MISC_CHECK`).
    Exec(ExecCheck),
    /// HAProxy's agent check: the server tells its state and weight on a port.
    Agent(AgentCheck),
}

/// An HTTP(S) check. Without `expect_status`, 200-299 is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub path: String,
    pub method: String,
    pub expect_status: Vec<StatusRange>,
    /// The body (its first MiB) must match.
    pub body_regex: Option<Pattern>,
    /// The MD5 of the whole body, in hex, as keepalived's genhash prints it.
    pub body_digest: Option<String>,
    /// The Host header; default: the address checked (`ip:port`).
    pub host: Option<String>,
    /// HTTPS when set.
    pub tls: Option<Tls>,
}

impl Default for HttpCheck {
    fn default() -> Self {
        Self {
            path: "/".into(),
            method: "GET".into(),
            expect_status: Vec::new(),
            body_regex: None,
            body_digest: None,
            host: None,
            tls: None,
        }
    }
}

/// TLS settings of an HTTPS check. By default the certificate is not verified (as keepalived's
/// `SSL_GET`): the check is about the server answering, not about trusting it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    /// The server name sent (SNI) and, with `verify`, checked; default: the Host name, else none.
    pub sni: Option<String>,
    /// Verify the certificate chain and name.
    pub verify: bool,
    /// PEM file of trusted CA certificates for `verify`; default: the system bundle.
    pub ca_file: Option<PathBuf>,
}

/// Send (optionally) then expect. `send` takes escapes (`\r\n`, `\xHH`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectCheck {
    pub send: Option<String>,
    /// Matched against everything received so far, after each read.
    pub expect: Pattern,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SmtpCheck {
    /// The `HELO` argument; default: this host's name.
    pub helo_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    pub name: String,
    pub qtype: QType,
}

/// A UDP check. `payload` takes escapes. A reply is needed when `reply_required` or `expect`
/// is set; otherwise only an ICMP port unreachable fails the check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UdpCheck {
    pub payload: String,
    pub expect: Option<Pattern>,
    pub reply_required: bool,
}

/// An external program: exit 0 up, 1 down; with `dynamic`, exit n ≥ 2 is up with weight n − 2
/// (keepalived's `misc_dynamic`), without it any other exit is down.
///
/// It gets `RVS_REAL_IP`, `RVS_REAL_PORT` and `RVS_REAL_SERVER` (`ip:port`) in its environment,
/// and `{ip}`, `{port}` and `{addr}` in `args` are replaced by them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCheck {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub dynamic: bool,
}

/// An agent check on `port` of the real server's address (or `connect_to` address).
/// `send` (HAProxy's `agent-send`) takes escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCheck {
    pub port: u16,
    pub send: Option<String>,
}

/// Where to check instead of the real server's own address (keepalived's `connect_ip`,
/// `connect_port`): each part overrides that part of the target address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnectTo {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
}

/// A checker spec that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("HTTP path `{0}` must start with '/' and contain no spaces or control characters")]
    Path(String),
    #[error("HTTP method `{0}` is not a method name like GET, HEAD or OPTIONS")]
    Method(String),
    #[error("HTTP {0} responses have no body: body_regex and body_digest need another method")]
    NoBody(String),
    #[error("body digest `{0}` is not an MD5 digest (32 hex digits)")]
    Digest(String),
    #[error("{field} `{value}` must not be empty or contain spaces or control characters")]
    Name { field: &'static str, value: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{field}: {source}")]
    Escape {
        field: &'static str,
        #[source]
        source: EscapeError,
    },
    #[error("DNS name `{name}`: {reason}")]
    DnsName { name: String, reason: &'static str },
    #[error("exec check needs a program")]
    NoProgram,
    #[error("agent port must not be 0")]
    AgentPort,
    #[error("connect_port must not be 0")]
    ConnectPort,
    #[error("connect_ip must not be the unspecified address")]
    ConnectIp,
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error(transparent)]
    Status(#[from] StatusError),
}

/// A validated check, ready to run. Two checks are equal when their specs are.
#[derive(Debug, Clone)]
pub struct Check {
    kind: CheckKind,
    connect_to: ConnectTo,
    prepared: Prepared,
}

/// What validation worked out once: unescaped payloads, the TLS client, names.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prepared {
    pub send: Option<Arc<[u8]>>,
    pub tls: Option<TlsClient>,
    pub helo: String,
    pub qname: Vec<u8>,
}

/// How much longer than its timeout a check may run before the outer guard stops it (the
/// checkers stop themselves at the timeout; this only catches a step that doesn't).
const GUARD: Duration = Duration::from_millis(500);

impl Check {
    /// Validates `kind` (and prepares it: escapes, TLS configuration, CA file).
    pub fn new(kind: CheckKind) -> Result<Self, CheckError> {
        Self::with_connect_to(kind, ConnectTo::default())
    }

    pub fn with_connect_to(kind: CheckKind, connect_to: ConnectTo) -> Result<Self, CheckError> {
        if connect_to.port == Some(0) {
            return Err(CheckError::ConnectPort);
        }
        if connect_to.ip.is_some_and(|ip| ip.is_unspecified()) {
            return Err(CheckError::ConnectIp);
        }
        let prepared = prepare(&kind)?;
        Ok(Self { kind, connect_to, prepared })
    }

    pub fn kind(&self) -> &CheckKind {
        &self.kind
    }

    pub fn connect_to(&self) -> ConnectTo {
        self.connect_to
    }

    /// The address checked for real server `target`.
    pub fn endpoint(&self, target: SocketAddr) -> SocketAddr {
        let ip = self.connect_to.ip.unwrap_or(target.ip());
        let port = match &self.kind {
            CheckKind::Agent(a) => a.port,
            _ => self.connect_to.port.unwrap_or(target.port()),
        };
        SocketAddr::new(ip, port)
    }

    /// Runs the check once against real server `target`, within `timeout`. Never fails:
    /// every error is a down result with its reason.
    pub async fn run(&self, target: SocketAddr, timeout: Duration) -> CheckResult {
        let started = tokio::time::Instant::now();
        let dl = Deadline::after(timeout);
        let verdict = match tokio::time::timeout(timeout + GUARD, self.verdict(target, &dl)).await {
            Ok(v) => v,
            Err(_) => Err(dl.expired("in total")),
        };
        let result = match verdict {
            Ok(s) => CheckResult { outcome: s.outcome, weight: s.weight, reason: s.reason, duration: Duration::ZERO },
            Err(f) => CheckResult::down(f.0),
        };
        result.with_duration(started.elapsed())
    }

    async fn verdict(&self, target: SocketAddr, dl: &Deadline) -> Verdict {
        let addr = self.endpoint(target);
        let p = &self.prepared;
        let send = p.send.as_deref();
        match &self.kind {
            CheckKind::Tcp => checkers::tcp::check(addr, dl).await,
            CheckKind::Http(h) => checkers::http::check(h, p.tls.as_ref(), addr, dl).await,
            CheckKind::Expect(e) => checkers::expect::check(send, &e.expect, addr, dl).await,
            CheckKind::Smtp(_) => checkers::smtp::check(&p.helo, addr, dl).await,
            CheckKind::Dns(d) => checkers::dns::check(&p.qname, &d.name, d.qtype, addr, dl).await,
            CheckKind::Udp(u) => {
                let reply_required = u.reply_required || u.expect.is_some();
                checkers::udp::check(send.unwrap_or(&[]), u.expect.as_ref(), reply_required, addr, dl).await
            }
            CheckKind::Exec(x) => checkers::exec::check(x, addr, dl).await,
            CheckKind::Agent(_) => checkers::agent::check(send, addr, dl).await,
        }
    }
}

impl PartialEq for Check {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.connect_to == other.connect_to
    }
}

impl Eq for Check {}

/// `HTTP GET /health`, `SMTP`, `EXEC /usr/local/bin/probe (dynamic)`, ... for listings.
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            CheckKind::Tcp => write!(f, "TCP")?,
            CheckKind::Http(h) => {
                let scheme = if h.tls.is_some() { "HTTPS" } else { "HTTP" };
                write!(f, "{scheme} {} {}", h.method, h.path)?;
            }
            CheckKind::Expect(e) => {
                let send = if e.send.is_some() { "SEND+" } else { "" };
                write!(f, "{send}EXPECT {}", e.expect)?;
            }
            CheckKind::Smtp(_) => write!(f, "SMTP")?,
            CheckKind::Dns(d) => write!(f, "DNS {} {}", d.name, d.qtype)?,
            CheckKind::Udp(u) => match &u.expect {
                Some(e) => write!(f, "UDP EXPECT {e}")?,
                None if u.reply_required => write!(f, "UDP REPLY")?,
                None => write!(f, "UDP")?,
            },
            CheckKind::Exec(x) => {
                write!(f, "EXEC {}", x.program.display())?;
                if x.dynamic {
                    write!(f, " (dynamic)")?;
                }
            }
            CheckKind::Agent(a) => write!(f, "AGENT port {}", a.port)?,
        }
        match (self.connect_to.ip, self.connect_to.port) {
            (Some(ip), Some(port)) => write!(f, " via {}", SocketAddr::new(ip, port)),
            (Some(ip), None) => write!(f, " via {ip}"),
            (None, Some(port)) => write!(f, " via port {port}"),
            (None, None) => Ok(()),
        }
    }
}

fn prepare(kind: &CheckKind) -> Result<Prepared, CheckError> {
    let mut p = Prepared::default();
    let escaped = |field: &'static str, s: &str| {
        unescape(s).map(Arc::from).map_err(|source| CheckError::Escape { field, source })
    };
    match kind {
        CheckKind::Tcp => {}
        CheckKind::Http(h) => {
            validate_http(h)?;
            if let Some(tls) = &h.tls {
                p.tls = Some(TlsClient::new(tls)?);
            }
        }
        CheckKind::Expect(e) => p.send = e.send.as_deref().map(|s| escaped("send", s)).transpose()?,
        CheckKind::Smtp(s) => {
            p.helo = match &s.helo_name {
                Some(name) => {
                    check_name("helo_name", name)?;
                    name.clone()
                }
                None => local_hostname(),
            };
        }
        CheckKind::Dns(d) => {
            p.qname = encode_name(&d.name).map_err(|reason| CheckError::DnsName { name: d.name.clone(), reason })?;
        }
        CheckKind::Udp(u) => p.send = Some(escaped("payload", &u.payload)?),
        CheckKind::Exec(x) => {
            if x.program.as_os_str().is_empty() {
                return Err(CheckError::NoProgram);
            }
        }
        CheckKind::Agent(a) => {
            if a.port == 0 {
                return Err(CheckError::AgentPort);
            }
            p.send = a.send.as_deref().map(|s| escaped("send", s)).transpose()?;
        }
    }
    Ok(p)
}

fn validate_http(h: &HttpCheck) -> Result<(), CheckError> {
    let visible = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() || b >= 0x80);
    if !h.path.starts_with('/') || !visible(&h.path) {
        return Err(CheckError::Path(h.path.clone()));
    }
    if h.method.is_empty() || !h.method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_') {
        return Err(CheckError::Method(h.method.clone()));
    }
    if h.method == "HEAD" && (h.body_regex.is_some() || h.body_digest.is_some()) {
        return Err(CheckError::NoBody(h.method.clone()));
    }
    if let Some(d) = &h.body_digest {
        if d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CheckError::Digest(d.clone()));
        }
    }
    if let Some(host) = &h.host {
        check_name("host", host)?;
    }
    if let Some(sni) = h.tls.as_ref().and_then(|t| t.sni.as_ref()) {
        check_name("sni", sni)?;
    }
    Ok(())
}

fn check_name(field: &'static str, value: &str) -> Result<(), CheckError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CheckError::Name { field, value: value.to_owned() });
    }
    Ok(())
}

/// This host's name, for `HELO` (keepalived uses the local name too).
fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(f: impl FnOnce(&mut HttpCheck)) -> Result<Check, CheckError> {
        let mut h = HttpCheck::default();
        f(&mut h);
        Check::new(CheckKind::Http(h))
    }

    #[test]
    fn rejects_bad_specs_with_clear_errors() {
        let e = http(|h| h.path = "health".into()).unwrap_err();
        assert_eq!(e.to_string(), "HTTP path `health` must start with '/' and contain no spaces or control characters");
        assert!(matches!(http(|h| h.path = "/a b".into()), Err(CheckError::Path(_))));
        assert!(matches!(http(|h| h.method = "get".into()), Err(CheckError::Method(_))));
        let e = http(|h| {
            h.method = "HEAD".into();
            h.body_regex = Some(Pattern::new("ok").unwrap());
        })
        .unwrap_err();
        assert!(matches!(e, CheckError::NoBody(_)));
        let e = http(|h| h.body_digest = Some("abc".into())).unwrap_err();
        assert_eq!(e.to_string(), "body digest `abc` is not an MD5 digest (32 hex digits)");
        assert!(matches!(http(|h| h.host = Some("a b".into())), Err(CheckError::Name { field: "host", .. })));
        let e = Check::new(CheckKind::Expect(ExpectCheck {
            send: Some(r"HELO\q".into()),
            expect: Pattern::new("^2").unwrap(),
        }))
        .unwrap_err();
        assert!(e.to_string().starts_with("send: invalid escape sequence `\\q` at offset 4"), "{e}");
        let e = Check::new(CheckKind::Dns(DnsCheck { name: "a..b".into(), qtype: QType::A })).unwrap_err();
        assert!(matches!(e, CheckError::DnsName { .. }), "{e}");
        assert_eq!(
            Check::new(CheckKind::Exec(ExecCheck { program: "".into(), args: vec![], dynamic: false })),
            Err(CheckError::NoProgram)
        );
        assert_eq!(Check::new(CheckKind::Agent(AgentCheck { port: 0, send: None })), Err(CheckError::AgentPort));
        assert_eq!(
            Check::with_connect_to(CheckKind::Tcp, ConnectTo { ip: None, port: Some(0) }),
            Err(CheckError::ConnectPort)
        );
        let e = http(|h| {
            h.tls = Some(Tls { verify: true, ca_file: Some("/nonexistent/ca.pem".into()), sni: None });
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("TLS: cannot read CA file /nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn endpoint_overrides() {
        let target: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let c = Check::with_connect_to(CheckKind::Tcp, ConnectTo { ip: None, port: Some(8080) }).unwrap();
        assert_eq!(c.endpoint(target), "10.0.0.2:8080".parse().unwrap());
        assert_eq!(c.to_string(), "TCP via port 8080");
        let a = Check::new(CheckKind::Agent(AgentCheck { port: 9999, send: None })).unwrap();
        assert_eq!(a.endpoint(target), "10.0.0.2:9999".parse().unwrap());
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let a = Check::with_connect_to(
            CheckKind::Agent(AgentCheck { port: 9999, send: None }),
            ConnectTo { ip: Some(ip), port: None },
        )
        .unwrap();
        assert_eq!(a.endpoint(target), "10.0.0.9:9999".parse().unwrap());
    }

    #[test]
    fn equality_and_display() {
        let a = http(|h| h.body_regex = Some(Pattern::new("ok").unwrap())).unwrap();
        let b = http(|h| h.body_regex = Some(Pattern::new("ok").unwrap())).unwrap();
        let c = http(|h| h.body_regex = Some(Pattern::new("OK").unwrap())).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "HTTP GET /");
        let x = Check::new(CheckKind::Exec(ExecCheck { program: "/bin/probe".into(), args: vec![], dynamic: true }))
            .unwrap();
        assert_eq!(x.to_string(), "EXEC /bin/probe (dynamic)");
        let d = Check::new(CheckKind::Dns(DnsCheck { name: "example.com".into(), qtype: QType::Aaaa })).unwrap();
        assert_eq!(d.to_string(), "DNS example.com AAAA");
    }
}
