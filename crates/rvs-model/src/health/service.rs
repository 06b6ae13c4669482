//! A virtual service's validated health settings: the check of each real server (the service's
//! default or its own) and of each pool, with timing and notify commands, the quorum and its
//! commands, and what a failed real server's entry does.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rvs_core::FailureAction;

use super::check::CheckDef;
use super::notify::NotifyCommand;
use super::quorum::Quorum;
use super::timing::Timing;

/// One real server's check: what to run, when, and what to tell on transitions.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub check: CheckDef,
    pub timing: Timing,
    pub notify_up: Option<NotifyCommand>,
    pub notify_down: Option<NotifyCommand>,
}

/// A virtual service's health settings.
#[derive(Debug, Clone, Default)]
pub struct ServiceHealth {
    /// What a failed real server's entry does.
    pub on_failure: FailureAction,
    /// The check every real server gets unless it has its own.
    pub default_check: Option<CheckSpec>,
    /// Real servers with their own check.
    pub server_checks: BTreeMap<SocketAddr, CheckSpec>,
    pub quorum: Option<Quorum>,
    pub quorum_up: Option<NotifyCommand>,
    pub quorum_down: Option<NotifyCommand>,
    /// An http service's pools with a check, by pool name.
    pub pool_checks: BTreeMap<String, CheckSpec>,
}

impl ServiceHealth {
    /// The check of real server `addr`: its own, else the service's default.
    pub fn check_for(&self, addr: SocketAddr) -> Option<&CheckSpec> {
        self.server_checks.get(&addr).or(self.default_check.as_ref())
    }
}
