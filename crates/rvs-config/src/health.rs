//! The health-check part of the file: a `check` table per virtual service (the default for
//! its real servers) or per real server, the service's quorum, sorry-server commands and
//! failure action, validated into rvs-model's check specs and timings.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use rvs_core::pattern::Pattern;
pub(crate) use rvs_model::health::CheckSpec;
use rvs_model::health::{
    AgentCheck, CheckDef, CheckError, CheckKind, ConnectTo, DnsCheck, ExecCheck, ExpectCheck, HttpCheck, NotifyCommand,
    SmtpCheck, StatusRange, Timing, TimingError, Tls, UdpCheck,
};
use serde::Deserialize;
use toml::Spanned;

use crate::error::Unplaced;

/// A `check` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    interval: Option<Spanned<f64>>,
    timeout: Option<Spanned<f64>>,
    fall: Option<u32>,
    rise: Option<u32>,
    retry_delay: Option<Spanned<f64>>,
    warmup: Option<Spanned<f64>>,
    #[serde(default)]
    alpha: bool,
    passive_fall: Option<u32>,
    connect_ip: Option<Spanned<String>>,
    connect_port: Option<u16>,
    #[serde(default = "yes")]
    through_vip: bool,
    // http, https
    path: Option<String>,
    method: Option<String>,
    expect_status: Option<Spanned<String>>,
    body_regex: Option<Spanned<String>>,
    body_digest: Option<String>,
    host: Option<String>,
    sni: Option<String>,
    #[serde(default)]
    verify: bool,
    ca_file: Option<PathBuf>,
    // expect, udp, agent
    send: Option<String>,
    expect: Option<Spanned<String>>,
    // smtp
    helo_name: Option<String>,
    // dns
    query_name: Option<String>,
    query_type: Option<Spanned<String>>,
    // udp
    payload: Option<String>,
    #[serde(default)]
    reply_required: bool,
    // exec
    command: Option<Spanned<String>>,
    #[serde(default)]
    dynamic: bool,
    // agent
    agent_port: Option<u16>,
    notify_up: Option<Spanned<String>>,
    notify_down: Option<Spanned<String>>,
}

/// `through_vip`'s default.
fn yes() -> bool {
    true
}

fn secs(v: &Option<Spanned<f64>>, field: &str) -> Result<Option<Duration>, Unplaced> {
    match v {
        None => Ok(None),
        Some(s) => {
            let x = *s.get_ref();
            if !(x.is_finite() && x > 0.0 && x <= 86_400.0) {
                return Err(Unplaced::new(
                    Some(s.span()),
                    field,
                    format!("{x} is not a duration from 0 to 86400 seconds"),
                ));
            }
            Ok(Some(Duration::from_secs_f64(x)))
        }
    }
}

pub(crate) fn command(v: &Option<Spanned<String>>, field: &str) -> Result<Option<NotifyCommand>, Unplaced> {
    v.as_ref()
        .map(|c| NotifyCommand::parse(c.get_ref()).map_err(|e| Unplaced::new(Some(c.span()), field, e)))
        .transpose()
}

fn pattern(v: &Option<Spanned<String>>, field: &str) -> Result<Option<Pattern>, Unplaced> {
    v.as_ref().map(|p| Pattern::new(p.get_ref()).map_err(|e| Unplaced::new(Some(p.span()), field, e))).transpose()
}

impl RawCheck {
    /// Validates this table; `at` is its field path (`service[0].check`), `span` its place.
    pub(crate) fn validate(&self, at: &str, span: std::ops::Range<usize>) -> Result<CheckSpec, Unplaced> {
        let f = |name: &str| format!("{at}.{name}");
        // An error of the table as a whole is placed at the table and named by the field it
        // concerns (`service[0].check.query_name` for a missing one).
        let field_of = |name: &str, e: &dyn std::fmt::Display| Unplaced::new(Some(span.clone()), f(name), e);
        let mut timing = Timing { alpha: self.alpha, ..Timing::default() };
        if let Some(d) = secs(&self.interval, &f("interval"))? {
            timing.interval = d;
        }
        if let Some(d) = secs(&self.timeout, &f("timeout"))? {
            timing.timeout = d;
        }
        timing.retry_delay = secs(&self.retry_delay, &f("retry_delay"))?;
        timing.warmup = secs(&self.warmup, &f("warmup"))?;
        if let Some(n) = self.fall {
            timing.fall = n;
        }
        if let Some(n) = self.rise {
            timing.rise = n;
        }
        if let Some(n) = self.passive_fall {
            timing.passive_fall = n;
        }
        timing.validate().map_err(|e| {
            let name = match e {
                TimingError::ZeroInterval => "interval",
                TimingError::ZeroTimeout => "timeout",
                TimingError::ZeroFall => "fall",
                TimingError::ZeroRise => "rise",
                TimingError::ZeroRetryDelay => "retry_delay",
            };
            field_of(name, &e)
        })?;

        let ty = self.kind.get_ref().as_str();
        let kind = match ty {
            "tcp" => CheckKind::Tcp,
            "http" | "https" => {
                let mut h = HttpCheck::default();
                if let Some(p) = &self.path {
                    h.path = p.clone();
                }
                if let Some(m) = &self.method {
                    h.method = m.clone();
                }
                if let Some(s) = &self.expect_status {
                    h.expect_status = StatusRange::parse_list(s.get_ref())
                        .map_err(|e| Unplaced::new(Some(s.span()), f("expect_status"), e))?;
                }
                h.body_regex = pattern(&self.body_regex, &f("body_regex"))?;
                h.body_digest = self.body_digest.clone();
                h.host = self.host.clone();
                if ty == "https" {
                    h.tls = Some(Tls { sni: self.sni.clone(), verify: self.verify, ca_file: self.ca_file.clone() });
                }
                CheckKind::Http(h)
            }
            "expect" => {
                let expect = pattern(&self.expect, &f("expect"))?.ok_or_else(|| {
                    field_of("expect", &"an expect check needs `expect` (a regex the reply must match)")
                })?;
                CheckKind::Expect(ExpectCheck { send: self.send.clone(), expect })
            }
            "smtp" => CheckKind::Smtp(SmtpCheck { helo_name: self.helo_name.clone() }),
            "dns" => {
                let name =
                    self.query_name.clone().ok_or_else(|| field_of("query_name", &"a dns check needs `query_name`"))?;
                let qtype = match &self.query_type {
                    Some(t) => t.get_ref().parse().map_err(|e| Unplaced::new(Some(t.span()), f("query_type"), e))?,
                    None => "A".parse().map_err(|e| field_of("query_type", &e))?,
                };
                CheckKind::Dns(DnsCheck { name, qtype })
            }
            "udp" => CheckKind::Udp(UdpCheck {
                payload: self.payload.clone().unwrap_or_default(),
                expect: pattern(&self.expect, &f("expect"))?,
                reply_required: self.reply_required,
            }),
            "exec" => {
                let c = command(&self.command, &f("command"))?
                    .ok_or_else(|| field_of("command", &"an exec check needs `command` (program and arguments)"))?;
                CheckKind::Exec(ExecCheck { program: c.program, args: c.args, dynamic: self.dynamic })
            }
            "agent" => {
                let port =
                    self.agent_port.ok_or_else(|| field_of("agent_port", &"an agent check needs `agent_port`"))?;
                CheckKind::Agent(AgentCheck { port, send: self.send.clone() })
            }
            other => {
                return Err(Unplaced::new(
                    Some(self.kind.span()),
                    f("type"),
                    format!(
                    "unknown check type `{other}` (expected tcp, http, https, expect, smtp, dns, udp, exec or agent)"
                ),
                ))
            }
        };
        let connect_ip =
            match &self.connect_ip {
                Some(ip) => Some(ip.get_ref().parse::<IpAddr>().map_err(|e| {
                    Unplaced::new(Some(ip.span()), f("connect_ip"), format!("`{}`: {e}", ip.get_ref()))
                })?),
                None => None,
            };
        let to = ConnectTo { ip: connect_ip, port: self.connect_port, through_vip: self.through_vip };
        let check = CheckDef::with_connect_to(kind, to).map_err(|e| {
            let name = match &e {
                CheckError::Path(_) => "path",
                CheckError::Method(_) => "method",
                CheckError::NoBody(_) if self.body_regex.is_some() => "body_regex",
                CheckError::NoBody(_) | CheckError::Digest(_) => "body_digest",
                CheckError::Name { field, .. } | CheckError::Escape { field, .. } => field,
                CheckError::DnsName { .. } => "query_name",
                CheckError::NoProgram => "command",
                CheckError::AgentPort => "agent_port",
                CheckError::ConnectPort => "connect_port",
                CheckError::ConnectIp => "connect_ip",
                CheckError::Pattern(_) if self.body_regex.is_some() => "body_regex",
                CheckError::Pattern(_) => "expect",
                CheckError::Status(_) => "expect_status",
            };
            // Where the value is spanned, the error points at it.
            let at_value = match name {
                "connect_ip" => self.connect_ip.as_ref().map(|v| v.span()),
                "body_regex" => self.body_regex.as_ref().map(|v| v.span()),
                "expect_status" => self.expect_status.as_ref().map(|v| v.span()),
                _ => None,
            };
            Unplaced::new(Some(at_value.unwrap_or_else(|| span.clone())), f(name), e)
        })?;
        Ok(CheckSpec {
            check,
            timing,
            notify_up: command(&self.notify_up, &f("notify_up"))?,
            notify_down: command(&self.notify_down, &f("notify_down"))?,
        })
    }
}
