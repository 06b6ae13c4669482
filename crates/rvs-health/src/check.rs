//! A check ready to run: a validated [`CheckDef`] prepared once (its TLS client, with the CA
//! file read; the `HELO` name) and run against a target address within a timeout, returning a
//! [`CheckResult`].

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::checkers::tls::TlsClient;
use crate::checkers::{self, Deadline, Verdict};
use crate::result::CheckResult;
use rvs_model::health::check::{CheckDef, CheckError, CheckKind, ConnectTo};

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
        let send = self.def.send();
        match self.def.kind() {
            CheckKind::Tcp => checkers::tcp::check(addr, dl).await,
            CheckKind::Http(h) => checkers::http::check(h, p.tls.as_ref(), addr, dl).await,
            CheckKind::Expect(e) => checkers::expect::check(send, &e.expect, addr, dl).await,
            CheckKind::Smtp(_) => checkers::smtp::check(&p.helo, addr, dl).await,
            CheckKind::Dns(d) => checkers::dns::check(self.def.qname(), &d.name, d.qtype, addr, dl).await,
            CheckKind::Udp(u) => {
                let reply_required = u.reply_required || u.expect.is_some();
                checkers::udp::check(send.unwrap_or(&[]), u.expect.as_ref(), reply_required, addr, dl).await
            }
            CheckKind::Exec(x) => checkers::exec::check(x, addr, dl).await,
            CheckKind::Agent(_) => checkers::agent::check(send, addr, dl).await,
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
}
