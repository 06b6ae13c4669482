//! Health of a real server as the checkers see it, and what a failure does to scheduling:
//! a server that is down or draining takes no new connections; one that is up takes them at
//! its configured weight, or at the weight a dynamic checker or agent reports.

use std::fmt;
use std::str::FromStr;

/// The checkers' verdict on a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Health {
    #[default]
    Up = 0,
    /// Failed: out of scheduling; its persistence templates expire.
    Down = 1,
    /// Healthy but asked (by an agent) to take no new connections.
    Drain = 2,
}

impl Health {
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Health::Down,
            2 => Health::Drain,
            _ => Health::Up,
        }
    }

    /// Up or draining: the server answers. A check result that is alive counts toward `rise`.
    pub fn is_alive(self) -> bool {
        !matches!(self, Health::Down)
    }

    pub fn name(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Drain => "drain",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Health {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "up" => Ok(Health::Up),
            "down" => Ok(Health::Down),
            "drain" => Ok(Health::Drain),
            _ => Err(format!("unknown health `{s}` (expected up, down or drain)")),
        }
    }
}

/// What a failed real server's entry does (keepalived's `inhibit_on_failure`, ldirectord's
/// `quiescent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FailureAction {
    /// Stays listed at weight 0; its established connections finish.
    #[default]
    Quiesce,
    /// Leaves the listing; its connections drain, or close with `expire_nodest_conn`.
    Remove,
}

impl FromStr for FailureAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "quiesce" | "inhibit" => Ok(FailureAction::Quiesce),
            "remove" => Ok(FailureAction::Remove),
            _ => Err(format!("unknown failure action `{s}` (expected quiesce or remove)")),
        }
    }
}

impl FailureAction {
    pub fn name(self) -> &'static str {
        match self {
            FailureAction::Quiesce => "quiesce",
            FailureAction::Remove => "remove",
        }
    }
}
