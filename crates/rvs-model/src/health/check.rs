//! Checker specs: what to check on a real server (TCP, HTTP(S), send/expect, SMTP, DNS, UDP,
//! exec, agent) and where, validated once into a [`CheckDef`] together with what validation
//! works out (unescaped payloads, the DNS query name); rvs-health prepares and runs it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use super::dns::{encode_name, QType};
use super::escape::{unescape, EscapeError};
use super::status::{StatusError, StatusRange};
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
///
/// `through_vip` (default true): a gate or tunnel real server of a packet service is checked
/// through the virtual address, as its traffic reaches it (the packet engine sends the check's
/// packets there); false checks its own address, as ldirectord does by default. An explicit
/// `ip` wins over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectTo {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
    pub through_vip: bool,
}

impl Default for ConnectTo {
    fn default() -> Self {
        Self { ip: None, port: None, through_vip: true }
    }
}

/// A checker spec that is wrong (what the config says, before any file is read or socket opened).
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

/// A validated check spec: its kind and where it connects, with the bytes validation worked
/// out. Two are equal when their kinds and `connect_to` are.
#[derive(Debug, Clone)]
pub struct CheckDef {
    kind: CheckKind,
    connect_to: ConnectTo,
    send: Option<Arc<[u8]>>,
    qname: Vec<u8>,
}

impl CheckDef {
    /// Validates `kind`: names, escapes, DNS names, ports.
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
        let escaped = |field: &'static str, s: &str| {
            unescape(s).map(Arc::from).map_err(|source| CheckError::Escape { field, source })
        };
        let mut send = None;
        let mut qname = Vec::new();
        match &kind {
            CheckKind::Tcp => {}
            CheckKind::Http(h) => validate_http(h)?,
            CheckKind::Expect(e) => send = e.send.as_deref().map(|s| escaped("send", s)).transpose()?,
            CheckKind::Smtp(s) => {
                if let Some(name) = &s.helo_name {
                    check_name("helo_name", name)?;
                }
            }
            CheckKind::Dns(d) => {
                qname = encode_name(&d.name).map_err(|reason| CheckError::DnsName { name: d.name.clone(), reason })?;
            }
            CheckKind::Udp(u) => send = Some(escaped("payload", &u.payload)?),
            CheckKind::Exec(x) => {
                if x.program.as_os_str().is_empty() {
                    return Err(CheckError::NoProgram);
                }
            }
            CheckKind::Agent(a) => {
                if a.port == 0 {
                    return Err(CheckError::AgentPort);
                }
                send = a.send.as_deref().map(|s| escaped("send", s)).transpose()?;
            }
        }
        Ok(Self { kind, connect_to, send, qname })
    }

    pub fn kind(&self) -> &CheckKind {
        &self.kind
    }

    pub fn connect_to(&self) -> ConnectTo {
        self.connect_to
    }

    /// The bytes to send (expect and agent `send`, UDP `payload`), unescaped.
    pub fn send(&self) -> Option<&[u8]> {
        self.send.as_deref()
    }

    /// The DNS query name in wire format (empty for other kinds).
    pub fn qname(&self) -> &[u8] {
        &self.qname
    }
}

impl PartialEq for CheckDef {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.connect_to == other.connect_to
    }
}

impl Eq for CheckDef {}

/// `HTTP GET /health`, `SMTP`, `EXEC /usr/local/bin/probe (dynamic)`, ... for listings.
impl fmt::Display for CheckDef {
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
        }?;
        if !self.connect_to.through_vip && self.connect_to.ip.is_none() {
            write!(f, " (own address)")?;
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn http(f: impl FnOnce(&mut HttpCheck)) -> Result<CheckDef, CheckError> {
        let mut h = HttpCheck::default();
        f(&mut h);
        CheckDef::new(CheckKind::Http(h))
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
        let e = CheckDef::new(CheckKind::Expect(ExpectCheck {
            send: Some(r"HELO\q".into()),
            expect: Pattern::new("^2").unwrap(),
        }))
        .unwrap_err();
        assert!(e.to_string().starts_with("send: invalid escape sequence `\\q` at offset 4"), "{e}");
        let e = CheckDef::new(CheckKind::Dns(DnsCheck { name: "a..b".into(), qtype: QType::A })).unwrap_err();
        assert!(matches!(e, CheckError::DnsName { .. }), "{e}");
        assert_eq!(
            CheckDef::new(CheckKind::Exec(ExecCheck { program: "".into(), args: vec![], dynamic: false })),
            Err(CheckError::NoProgram)
        );
        assert_eq!(CheckDef::new(CheckKind::Agent(AgentCheck { port: 0, send: None })), Err(CheckError::AgentPort));
        assert_eq!(
            CheckDef::with_connect_to(CheckKind::Tcp, ConnectTo { port: Some(0), ..ConnectTo::default() }),
            Err(CheckError::ConnectPort)
        );
    }

    #[test]
    fn works_out_payloads_and_names() {
        let u = CheckDef::new(CheckKind::Udp(UdpCheck { payload: r"ping\r\n".into(), ..UdpCheck::default() })).unwrap();
        assert_eq!(u.send(), Some(&b"ping\r\n"[..]));
        let d = CheckDef::new(CheckKind::Dns(DnsCheck { name: "a.b".into(), qtype: QType::A })).unwrap();
        assert_eq!(d.qname(), b"\x01a\x01b\x00");
    }

    #[test]
    fn equality_and_display() {
        let a = http(|h| h.body_regex = Some(Pattern::new("ok").unwrap())).unwrap();
        let b = http(|h| h.body_regex = Some(Pattern::new("ok").unwrap())).unwrap();
        let c = http(|h| h.body_regex = Some(Pattern::new("OK").unwrap())).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "HTTP GET /");
        let x = CheckDef::new(CheckKind::Exec(ExecCheck { program: "/bin/probe".into(), args: vec![], dynamic: true }))
            .unwrap();
        assert_eq!(x.to_string(), "EXEC /bin/probe (dynamic)");
        let d = CheckDef::new(CheckKind::Dns(DnsCheck { name: "example.com".into(), qtype: QType::Aaaa })).unwrap();
        assert_eq!(d.to_string(), "DNS example.com AAAA");
    }
}
