//! A check ready to run: a validated [`CheckDef`] prepared once (its TLS client, with the CA
//! file read; the `HELO` name) and run against a target address within a timeout, returning a
//! [`CheckResult`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::checkers::tls::TlsClient;
use crate::checkers::{self, Deadline, Verdict};
use crate::result::CheckResult;
use rvs_model::health::check::{CheckDef, CheckError, CheckKind, ConnectTo};
use rvs_model::health::ViaVip;

/// Where a check connects: an address, and for a check through the VIP the socket mark and
/// the source address that make the packet engine send it to its real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub mark: Option<u32>,
    pub source: Option<IpAddr>,
}

impl Endpoint {
    /// Whether it goes through the VIP.
    pub fn via_vip(&self) -> bool {
        self.mark.is_some()
    }
}

/// A check that cannot be prepared: its spec is wrong, or its TLS client cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Spec(#[from] CheckError),
    #[error("TLS: {0}")]
    Tls(String),
}

/// A validated check, ready to run. Two checks are equal when their specs are.
#[derive(Debug, Clone)]
pub struct Check {
    def: CheckDef,
    prepared: Prepared,
}

/// What preparing worked out once: the TLS client, the `HELO` name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prepared {
    pub tls: Option<TlsClient>,
    pub helo: String,
}

/// How much longer than its timeout a check may run before the outer guard stops it (the
/// checkers stop themselves at the timeout; this only catches a step that doesn't).
const GUARD: Duration = Duration::from_millis(500);

impl Check {
    /// Validates `kind` and prepares it (TLS configuration, CA file).
    pub fn new(kind: CheckKind) -> Result<Self, PrepareError> {
        Self::with_connect_to(kind, ConnectTo::default())
    }

    pub fn with_connect_to(kind: CheckKind, connect_to: ConnectTo) -> Result<Self, PrepareError> {
        Self::prepare(CheckDef::with_connect_to(kind, connect_to)?)
    }

    /// Prepares a validated spec: builds its TLS client (reading the CA file) and finds the
    /// `HELO` name.
    pub fn prepare(def: CheckDef) -> Result<Self, PrepareError> {
        let mut prepared = Prepared::default();
        match def.kind() {
            CheckKind::Http(h) => prepared.tls = h.tls.as_ref().map(TlsClient::new).transpose()?,
            CheckKind::Smtp(s) => prepared.helo = s.helo_name.clone().unwrap_or_else(local_hostname),
            _ => {}
        }
        Ok(Self { def, prepared })
    }

    /// The spec this check runs.
    pub fn def(&self) -> &CheckDef {
        &self.def
    }

    pub fn kind(&self) -> &CheckKind {
        self.def.kind()
    }

    pub fn connect_to(&self) -> ConnectTo {
        self.def.connect_to()
    }

    /// Where the check of real server `target` connects, given the path the packet engine offers
    /// to it through its VIP (`via`): VIP:port with its mark and source, unless the check says
    /// `through_vip = false` or names `connect_ip`, or is an exec or agent check (those are about
    /// the real server's own address); otherwise [`Check::endpoint`].
    pub fn endpoint_via(&self, target: SocketAddr, via: Option<&ViaVip>) -> Endpoint {
        let to = self.def.connect_to();
        let own = matches!(self.def.kind(), CheckKind::Exec(_) | CheckKind::Agent(_));
        match via.filter(|_| to.through_vip && to.ip.is_none() && !own) {
            Some(v) => Endpoint {
                addr: SocketAddr::new(v.vip.ip(), to.port.unwrap_or(v.vip.port())),
                mark: Some(v.mark),
                source: Some(v.source),
            },
            None => Endpoint { addr: self.endpoint(target), mark: None, source: None },
        }
    }

    /// The address checked for real server `target`.
    pub fn endpoint(&self, target: SocketAddr) -> SocketAddr {
        let ip = self.def.connect_to().ip.unwrap_or(target.ip());
        let port = match self.def.kind() {
            CheckKind::Agent(a) => a.port,
            _ => self.def.connect_to().port.unwrap_or(target.port()),
        };
        SocketAddr::new(ip, port)
    }

    /// Runs the check once against real server `target`, within `timeout`. Never fails:
    /// every error is a down result with its reason.
    pub async fn run(&self, target: SocketAddr, timeout: Duration) -> CheckResult {
        self.run_via(target, None, timeout).await
    }

    /// As [`Check::run`], through the VIP when `via` is given (see [`Check::endpoint_via`]).
    pub async fn run_via(&self, target: SocketAddr, via: Option<&ViaVip>, timeout: Duration) -> CheckResult {
        let started = tokio::time::Instant::now();
        let dl = Deadline::after(timeout);
        let to = self.endpoint_via(target, via);
        let verdict = match tokio::time::timeout(timeout + GUARD, self.verdict(target, to, &dl)).await {
            Ok(v) => v,
            Err(_) => Err(dl.expired("in total")),
        };
        let result = match verdict {
            Ok(s) => CheckResult { outcome: s.outcome, weight: s.weight, reason: s.reason, duration: Duration::ZERO },
            Err(f) => CheckResult::down(f.0),
        };
        result.with_duration(started.elapsed())
    }

    async fn verdict(&self, target: SocketAddr, to: Endpoint, dl: &Deadline) -> Verdict {
        let p = &self.prepared;
        let send = self.def.send();
        match self.def.kind() {
            CheckKind::Tcp => checkers::tcp::check(to, dl).await,
            CheckKind::Http(h) => checkers::http::check(h, p.tls.as_ref(), to, dl).await,
            CheckKind::Expect(e) => checkers::expect::check(send, &e.expect, to, dl).await,
            CheckKind::Smtp(_) => checkers::smtp::check(&p.helo, to, dl).await,
            CheckKind::Dns(d) => checkers::dns::check(self.def.qname(), &d.name, d.qtype, to, dl).await,
            CheckKind::Udp(u) => {
                let reply_required = u.reply_required || u.expect.is_some();
                checkers::udp::check(send.unwrap_or(&[]), u.expect.as_ref(), reply_required, to, dl).await
            }
            CheckKind::Exec(x) => checkers::exec::check(x, self.endpoint(target), dl).await,
            CheckKind::Agent(_) => checkers::agent::check(send, to, dl).await,
        }
    }
}

impl TryFrom<CheckDef> for Check {
    type Error = PrepareError;
    fn try_from(def: CheckDef) -> Result<Self, PrepareError> {
        Self::prepare(def)
    }
}

impl PartialEq for Check {
    fn eq(&self, other: &Self) -> bool {
        self.def == other.def
    }
}

impl Eq for Check {}

/// `HTTP GET /health`, `SMTP`, `EXEC /usr/local/bin/probe (dynamic)`, ... for listings.
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.def.fmt(f)
    }
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
    use std::net::IpAddr;

    use rvs_model::health::check::{AgentCheck, HttpCheck, Tls};

    use super::*;

    #[test]
    fn rejects_unreadable_ca_files() {
        let h = HttpCheck {
            tls: Some(Tls { verify: true, ca_file: Some("/nonexistent/ca.pem".into()), sni: None }),
            ..HttpCheck::default()
        };
        let e = Check::new(CheckKind::Http(h)).unwrap_err();
        assert!(e.to_string().starts_with("TLS: cannot read CA file /nonexistent/ca.pem"), "{e}");
        let e = Check::new(CheckKind::Agent(AgentCheck { port: 0, send: None })).unwrap_err();
        assert_eq!(e, PrepareError::Spec(CheckError::AgentPort));
    }

    #[test]
    fn endpoint_overrides() {
        let target: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let c = Check::with_connect_to(CheckKind::Tcp, ConnectTo { port: Some(8080), ..ConnectTo::default() }).unwrap();
        assert_eq!(c.endpoint(target), "10.0.0.2:8080".parse().unwrap());
        assert_eq!(c.to_string(), "TCP via port 8080");
        let a = Check::new(CheckKind::Agent(AgentCheck { port: 9999, send: None })).unwrap();
        assert_eq!(a.endpoint(target), "10.0.0.2:9999".parse().unwrap());
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let a = Check::with_connect_to(
            CheckKind::Agent(AgentCheck { port: 9999, send: None }),
            ConnectTo { ip: Some(ip), ..ConnectTo::default() },
        )
        .unwrap();
        assert_eq!(a.endpoint(target), "10.0.0.9:9999".parse().unwrap());
    }

    #[test]
    fn through_the_vip_unless_the_check_says_otherwise() {
        let target: SocketAddr = "198.18.0.11:8080".parse().unwrap();
        let via =
            ViaVip { vip: "198.18.1.10:80".parse().unwrap(), mark: 0x5256_0003, source: "198.18.0.1".parse().unwrap() };
        let tcp = Check::new(CheckKind::Tcp).unwrap();
        let e = tcp.endpoint_via(target, Some(&via));
        assert_eq!((e.addr, e.mark, e.source), (via.vip, Some(via.mark), Some(via.source)));
        assert!(e.via_vip());
        assert_eq!(tcp.endpoint_via(target, None), Endpoint { addr: target, mark: None, source: None });
        let port =
            Check::with_connect_to(CheckKind::Tcp, ConnectTo { port: Some(81), ..ConnectTo::default() }).unwrap();
        assert_eq!(port.endpoint_via(target, Some(&via)).addr, "198.18.1.10:81".parse().unwrap());
        let own =
            Check::with_connect_to(CheckKind::Tcp, ConnectTo { through_vip: false, ..ConnectTo::default() }).unwrap();
        assert_eq!(own.endpoint_via(target, Some(&via)).addr, target);
        assert_eq!(own.to_string(), "TCP (own address)");
        let ip: IpAddr = "198.18.0.99".parse().unwrap();
        let explicit =
            Check::with_connect_to(CheckKind::Tcp, ConnectTo { ip: Some(ip), ..ConnectTo::default() }).unwrap();
        assert_eq!(explicit.endpoint_via(target, Some(&via)).addr, SocketAddr::new(ip, 8080), "connect_ip wins");
        let agent = Check::new(CheckKind::Agent(AgentCheck { port: 9999, send: None })).unwrap();
        assert!(!agent.endpoint_via(target, Some(&via)).via_vip(), "an agent speaks for the real server itself");
    }

    #[tokio::test]
    async fn a_check_through_the_vip_connects_marked_from_its_source() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("note: not root (SO_MARK needs CAP_NET_ADMIN); skipped");
            return;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let vip = listener.local_addr().unwrap();
        let accepted = tokio::spawn(async move { listener.accept().await.map(|(_, peer)| peer) });
        let via = ViaVip { vip, mark: 0x5256_0001, source: "127.0.0.2".parse().unwrap() };
        // The real server's own address is never contacted.
        let target: SocketAddr = "198.18.0.11:80".parse().unwrap();
        let r = Check::new(CheckKind::Tcp).unwrap().run_via(target, Some(&via), Duration::from_secs(2)).await;
        assert!(r.is_alive(), "{r:?}");
        assert_eq!(accepted.await.unwrap().unwrap().ip(), via.source, "bound to the path's source");
    }
}
