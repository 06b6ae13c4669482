//! The IPVS schedulers: one file each, with the Linux kernel's selection rules.
//! A scheduler sees the real servers of one virtual service as [`DestView`]s (weight, load,
//! overload flag) and picks one by index; it holds only its own state (positions, tables).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

mod dh;
mod fo;
mod hash;
mod lblc;
mod lblcr;
mod lc;
mod mh;
mod nq;
mod ovf;
mod rr;
mod sed;
mod sh;
mod twos;
mod wlc;
mod wrr;

pub use mh::{MH_DEFAULT_TABLE_SIZE, MH_TABLE_SIZES};

/// What a scheduler sees of one real server when it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestView {
    pub addr: SocketAddr,
    /// Configured weight, 0..=65535. Weight 0 (quiesced) takes no new connections.
    pub weight: u32,
    /// Established connections.
    pub active: u32,
    /// Opening or closing connections.
    pub inactive: u32,
    /// The OVERLOAD flag from the connection thresholds.
    pub overloaded: bool,
}

impl DestView {
    /// The kernel's `ip_vs_dest_conn_overhead`: active·256 + inactive.
    pub fn load(&self) -> u64 {
        u64::from(self.active) * 256 + u64::from(self.inactive)
    }

    /// Weight above zero and not overloaded: may take a new connection.
    pub fn available(&self) -> bool {
        self.weight > 0 && !self.overloaded
    }
}

/// The facts about the new connection a scheduler may hash on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedRequest {
    /// The client's address and port.
    pub client: SocketAddr,
    /// The address the client connected to (the virtual service address).
    pub destination: SocketAddr,
    /// Monotonic milliseconds, for schedulers that expire state (lblc, lblcr).
    pub now_ms: u64,
}

/// Scheduler flags (`ipvsadm -b`), meaningful to sh and mh only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags {
    pub sh_fallback: bool,
    pub sh_port: bool,
    pub mh_fallback: bool,
    pub mh_port: bool,
}

impl SchedFlags {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The ipvsadm names of the flags that are set, in ipvsadm's order.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.sh_fallback {
            v.push("sh-fallback");
        }
        if self.sh_port {
            v.push("sh-port");
        }
        if self.mh_fallback {
            v.push("mh-fallback");
        }
        if self.mh_port {
            v.push("mh-port");
        }
        v
    }

    /// Sets one flag by its ipvsadm name (`sh-fallback`, `sh-port`, `mh-fallback`, `mh-port`).
    pub fn set(&mut self, name: &str) -> Result<(), SchedError> {
        match name {
            "sh-fallback" => self.sh_fallback = true,
            "sh-port" => self.sh_port = true,
            "mh-fallback" => self.mh_fallback = true,
            "mh-port" => self.mh_port = true,
            other => return Err(SchedError::UnknownFlag(other.to_string())),
        }
        Ok(())
    }

    /// Checks the flags fit the scheduler: sh-* only with sh, mh-* only with mh.
    pub fn check_for(&self, kind: SchedulerKind) -> Result<(), SchedError> {
        if (self.sh_fallback || self.sh_port) && kind != SchedulerKind::Sh {
            return Err(SchedError::FlagNeedsScheduler { flag: "sh-*", scheduler: "sh", got: kind });
        }
        if (self.mh_fallback || self.mh_port) && kind != SchedulerKind::Mh {
            return Err(SchedError::FlagNeedsScheduler { flag: "mh-*", scheduler: "mh", got: kind });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedError {
    #[error(
        "unknown scheduler `{0}` (expected one of rr, wrr, lc, wlc, sed, nq, lblc, lblcr, dh, sh, fo, ovf, mh, twos)"
    )]
    UnknownScheduler(String),
    #[error("unknown scheduler flag `{0}` (expected sh-fallback, sh-port, mh-fallback or mh-port)")]
    UnknownFlag(String),
    #[error("scheduler flag {flag} needs the {scheduler} scheduler, not {got}")]
    FlagNeedsScheduler { flag: &'static str, scheduler: &'static str, got: SchedulerKind },
    #[error("mh table size {0} is not one of the supported primes {MH_TABLE_SIZES:?}")]
    BadMhTableSize(u32),
}

/// The scheduling methods, named as ipvsadm names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum SchedulerKind {
    Rr,
    Wrr,
    Lc,
    #[default]
    Wlc,
    Sed,
    Nq,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Fo,
    Ovf,
    Mh,
    Twos,
}

impl SchedulerKind {
    pub const ALL: [SchedulerKind; 14] = [
        Self::Rr,
        Self::Wrr,
        Self::Lc,
        Self::Wlc,
        Self::Sed,
        Self::Nq,
        Self::Lblc,
        Self::Lblcr,
        Self::Dh,
        Self::Sh,
        Self::Fo,
        Self::Ovf,
        Self::Mh,
        Self::Twos,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Rr => "rr",
            Self::Wrr => "wrr",
            Self::Lc => "lc",
            Self::Wlc => "wlc",
            Self::Sed => "sed",
            Self::Nq => "nq",
            Self::Lblc => "lblc",
            Self::Lblcr => "lblcr",
            Self::Dh => "dh",
            Self::Sh => "sh",
            Self::Fo => "fo",
            Self::Ovf => "ovf",
            Self::Mh => "mh",
            Self::Twos => "twos",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedulerKind {
    type Err = SchedError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| SchedError::UnknownScheduler(s.to_string()))
    }
}

/// Everything needed to build a scheduler for one virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedConfig {
    pub kind: SchedulerKind,
    pub flags: SchedFlags,
    /// Maglev lookup table size (a prime from [`MH_TABLE_SIZES`]); mh only.
    pub mh_table_size: u32,
    /// Seed for schedulers that hash or draw at random (mh, twos); fixed per service.
    pub seed: u64,
}

impl SchedConfig {
    pub fn new(kind: SchedulerKind) -> Self {
        Self { kind, flags: SchedFlags::default(), mh_table_size: MH_DEFAULT_TABLE_SIZE, seed: 0 }
    }
}

/// One scheduling method's state. `update` is called whenever the set of real servers or
/// their weights change (the kernel's `upd_dest`); `schedule` for each new connection.
pub trait Scheduler: Send + fmt::Debug {
    /// Picks the index of a real server in `dests`, or `None` when none may take it.
    fn schedule(&mut self, dests: &[DestView], req: &SchedRequest) -> Option<usize>;
    /// Rebuilds whatever the scheduler derives from the server list (tables, gcd, positions).
    /// Schedulers that derive nothing from the list (lc, wlc, sed, nq, fo, ovf, twos, and lblc and
    /// lblcr, whose tables are keyed by destination) need not implement it.
    fn update(&mut self, _dests: &[DestView]) {}
}

/// The available server with the least `overhead / weight`, as `key` gives them, compared by
/// cross-multiplication as the kernel does (no division); ties go to the earliest server.
fn least(dests: &[DestView], key: impl Fn(&DestView) -> (u64, u64)) -> Option<usize> {
    let mut least: Option<(usize, u64, u64)> = None;
    for (i, d) in dests.iter().enumerate().filter(|(_, d)| d.available()) {
        let (doh, dwt) = key(d);
        match least {
            Some((_, loh, lwt)) if loh * dwt <= doh * lwt => {}
            _ => least = Some((i, doh, dwt)),
        }
    }
    least.map(|(i, _, _)| i)
}

/// The available server with the highest weight among those `eligible`; ties go earliest.
fn heaviest(dests: &[DestView], eligible: impl Fn(&DestView) -> bool) -> Option<usize> {
    let mut highest: Option<(usize, u32)> = None;
    for (i, d) in dests.iter().enumerate().filter(|(_, d)| d.available() && eligible(d)) {
        match highest {
            Some((_, hw)) if d.weight <= hw => {}
            _ => highest = Some((i, d.weight)),
        }
    }
    highest.map(|(i, _)| i)
}

/// Builds the scheduler named by `cfg`, already updated for `dests`.
pub fn build(cfg: &SchedConfig, dests: &[DestView]) -> Box<dyn Scheduler> {
    let mut s: Box<dyn Scheduler> = match cfg.kind {
        SchedulerKind::Rr => Box::new(rr::RoundRobin::default()),
        SchedulerKind::Wrr => Box::new(wrr::WeightedRoundRobin::default()),
        SchedulerKind::Lc => Box::new(lc::LeastConnection),
        SchedulerKind::Wlc => Box::new(wlc::WeightedLeastConnection),
        SchedulerKind::Sed => Box::new(sed::ShortestExpectedDelay),
        SchedulerKind::Nq => Box::new(nq::NeverQueue),
        SchedulerKind::Lblc => Box::new(lblc::LocalityBasedLeastConnection::default()),
        SchedulerKind::Lblcr => Box::new(lblcr::LocalityBasedLeastConnectionReplication::default()),
        SchedulerKind::Dh => Box::new(dh::DestinationHashing::default()),
        SchedulerKind::Sh => Box::new(sh::SourceHashing::new(cfg.flags)),
        SchedulerKind::Fo => Box::new(fo::WeightedFailover),
        SchedulerKind::Ovf => Box::new(ovf::WeightedOverflow),
        SchedulerKind::Mh => Box::new(mh::MaglevHashing::new(cfg.flags, cfg.mh_table_size, cfg.seed)),
        SchedulerKind::Twos => Box::new(twos::PowerOfTwoChoices::new(cfg.seed)),
    };
    s.update(dests);
    s
}

/// What the schedulers' unit tests share: a real server view and a request.
#[cfg(test)]
pub(crate) mod testing {
    use super::{DestView, SchedRequest};

    /// A view of 10.0.0.1:80 with this weight and load.
    pub fn dest(weight: u32, active: u32, inactive: u32) -> DestView {
        DestView { addr: "10.0.0.1:80".parse().unwrap(), weight, active, inactive, overloaded: false }
    }

    /// A request from 192.0.2.1:1000.
    pub fn req() -> SchedRequest {
        let a = "192.0.2.1:1000".parse().unwrap();
        SchedRequest { client: a, destination: a, now_ms: 0 }
    }
}
