//! Real servers: their settings (address, weight, forwarding method, connection thresholds,
//! PROXY protocol) and their live state (active and inactive connections, the OVERLOAD flag
//! with the kernel's threshold rule, counters), shared by every snapshot that holds them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use crate::forwarding::{ForwardingMethod, ProxyProtocol};
use crate::health::Health;
use crate::sched::DestView;
use crate::stats::Stats;

/// Highest weight a real server may have (ipvsadm's limit).
pub const MAX_WEIGHT: u32 = 65_535;

/// A real server's settings, validated by [`RealServerSettings::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealServerSettings {
    pub addr: SocketAddr,
    pub weight: u32,
    pub method: ForwardingMethod,
    /// Upper connection threshold; 0 means none.
    pub u_threshold: u32,
    /// Lower connection threshold; 0 means 3/4 of the upper one.
    pub l_threshold: u32,
    pub proxy_protocol: ProxyProtocol,
}

impl RealServerSettings {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            weight: 1,
            method: ForwardingMethod::FullNat,
            u_threshold: 0,
            l_threshold: 0,
            proxy_protocol: ProxyProtocol::Off,
        }
    }

    pub fn validate(&self) -> Result<(), RealServerError> {
        self.check(false)
    }

    /// As [`Self::validate`], for a real server of `service`: a firewall mark's full NAT real
    /// server may have no port (it takes the connection's, as IPVS keeps the port then).
    pub fn validate_in(&self, service: &crate::ServiceKey) -> Result<(), RealServerError> {
        self.check(service.mark().is_some())
    }

    fn check(&self, port_from_connection: bool) -> Result<(), RealServerError> {
        if self.weight > MAX_WEIGHT {
            return Err(RealServerError::Weight(self.weight));
        }
        if self.u_threshold > 0 && self.l_threshold > self.u_threshold {
            return Err(RealServerError::Thresholds { upper: self.u_threshold, lower: self.l_threshold });
        }
        // The packet engine's methods keep the client's port for port 0 (an all-port
        // service's real servers); full NAT must connect somewhere.
        if self.addr.port() == 0 && self.method == crate::forwarding::ForwardingMethod::FullNat && !port_from_connection
        {
            return Err(RealServerError::PortZero);
        }
        if self.addr.ip().is_unspecified() {
            return Err(RealServerError::Unspecified);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RealServerError {
    #[error("weight {0} is out of range 0..=65535")]
    Weight(u32),
    #[error("lower threshold {lower} is above the upper threshold {upper}")]
    Thresholds { upper: u32, lower: u32 },
    #[error("a real server needs a port (full NAT cannot forward to port 0)")]
    PortZero,
    #[error("a real server needs a specific address, not 0.0.0.0 or ::")]
    Unspecified,
}

/// A real server as the data plane uses it. Settings change in place (an edit keeps the
/// connection counts); a deleted real server lives on while its connections drain.
#[derive(Debug)]
pub struct RealServer {
    pub addr: SocketAddr,
    settings: Mutex<RealServerSettings>,
    weight: AtomicU32,
    u_threshold: AtomicU32,
    l_threshold: AtomicU32,
    active: AtomicU32,
    inactive: AtomicU32,
    overloaded: AtomicBool,
    /// False once deleted from its service.
    in_service: AtomicBool,
    connect_failures: AtomicU64,
    health: AtomicU8,
    /// A weight reported by a dynamic checker or agent; [`NO_OVERRIDE`] when none.
    weight_override: AtomicU32,
    pub stats: Stats,
}

const NO_OVERRIDE: u32 = u32::MAX;

impl RealServer {
    pub fn new(settings: RealServerSettings) -> Self {
        Self {
            addr: settings.addr,
            weight: AtomicU32::new(settings.weight),
            u_threshold: AtomicU32::new(settings.u_threshold),
            l_threshold: AtomicU32::new(settings.l_threshold),
            settings: Mutex::new(settings),
            active: AtomicU32::new(0),
            inactive: AtomicU32::new(0),
            overloaded: AtomicBool::new(false),
            in_service: AtomicBool::new(true),
            connect_failures: AtomicU64::new(0),
            health: AtomicU8::new(Health::Up as u8),
            weight_override: AtomicU32::new(NO_OVERRIDE),
            stats: Stats::default(),
        }
    }

    pub fn settings(&self) -> RealServerSettings {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies edited settings; connection counts and counters stay.
    pub fn update(&self, s: RealServerSettings) {
        debug_assert_eq!(s.addr, self.addr);
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = s;
        self.weight.store(s.weight, Ordering::Relaxed);
        self.u_threshold.store(s.u_threshold, Ordering::Relaxed);
        self.l_threshold.store(s.l_threshold, Ordering::Relaxed);
        self.recheck_overload();
    }

    /// The weight scheduling uses: 0 while down or draining, else the checker's weight when
    /// one reports it, else the configured weight.
    pub fn weight(&self) -> u32 {
        match self.health() {
            Health::Down | Health::Drain => 0,
            Health::Up => match self.weight_override.load(Ordering::Relaxed) {
                NO_OVERRIDE => self.configured_weight(),
                w => w,
            },
        }
    }

    /// The weight from the configuration (or the last API edit).
    pub fn configured_weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::Relaxed))
    }

    /// The weight a dynamic checker reported, if any.
    pub fn weight_override(&self) -> Option<u32> {
        match self.weight_override.load(Ordering::Relaxed) {
            NO_OVERRIDE => None,
            w => Some(w),
        }
    }

    /// Sets the checkers' verdict and, for dynamic checks, the weight they report.
    pub(crate) fn set_health(&self, health: Health, weight: Option<u32>) {
        self.health.store(health as u8, Ordering::Relaxed);
        self.weight_override.store(weight.map_or(NO_OVERRIDE, |w| w.min(MAX_WEIGHT)), Ordering::Relaxed);
    }
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }
    pub fn inactive(&self) -> u32 {
        self.inactive.load(Ordering::Relaxed)
    }
    pub fn overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }
    pub fn in_service(&self) -> bool {
        self.in_service.load(Ordering::Relaxed)
    }
    /// Connects to this server that were refused or timed out.
    pub fn connect_failures(&self) -> u64 {
        self.connect_failures.load(Ordering::Relaxed)
    }
    pub(crate) fn count_connect_failure(&self) {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn set_in_service(&self, v: bool) {
        self.in_service.store(v, Ordering::Relaxed);
    }

    /// What a scheduler sees of this server now.
    pub fn view(&self) -> DestView {
        DestView {
            addr: self.addr,
            weight: self.weight(),
            active: self.active(),
            inactive: self.inactive(),
            overloaded: self.overloaded(),
        }
    }

    /// A connection was bound to this server (it starts inactive, opening).
    pub(crate) fn bind_conn(&self) {
        self.inactive.fetch_add(1, Ordering::Relaxed);
        self.stats.counters.add_conn();
        let u = self.u_threshold.load(Ordering::Relaxed);
        if u > 0 && self.active() + self.inactive() >= u {
            self.overloaded.store(true, Ordering::Relaxed);
        }
    }

    /// Opening to established: inactive to active.
    pub(crate) fn established(&self) {
        self.inactive.fetch_sub(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    /// Established to closing: active to inactive.
    pub(crate) fn closing(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        self.inactive.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection ended in state `was_active`.
    pub(crate) fn unbind_conn(&self, was_active: bool) {
        if was_active {
            self.active.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.inactive.fetch_sub(1, Ordering::Relaxed);
        }
        self.recheck_overload();
    }

    /// The kernel's rule: the flag clears when the load falls below the lower threshold, or
    /// below 3/4 of the upper one when there is no lower one (or no upper one at all).
    fn recheck_overload(&self) {
        if !self.overloaded() {
            let u = self.u_threshold.load(Ordering::Relaxed);
            if u > 0 && self.active() + self.inactive() >= u {
                self.overloaded.store(true, Ordering::Relaxed);
            }
            return;
        }
        let u = self.u_threshold.load(Ordering::Relaxed);
        let l = self.l_threshold.load(Ordering::Relaxed);
        let conns = self.active() + self.inactive();
        let clear = if l > 0 {
            conns < l
        } else if u > 0 {
            conns * 4 < u * 3
        } else {
            true
        };
        if clear {
            self.overloaded.store(false, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(u: u32, l: u32) -> RealServer {
        let mut s = RealServerSettings::new("10.0.0.1:80".parse().unwrap());
        s.u_threshold = u;
        s.l_threshold = l;
        RealServer::new(s)
    }

    #[test]
    fn overload_sets_at_upper_and_clears_below_lower() {
        let r = rs(4, 2);
        for _ in 0..3 {
            r.bind_conn();
        }
        assert!(!r.overloaded());
        r.bind_conn();
        assert!(r.overloaded(), "4 conns reach u_threshold 4");
        r.unbind_conn(false);
        r.unbind_conn(false);
        assert!(r.overloaded(), "2 conns are not below l_threshold 2");
        r.unbind_conn(false);
        assert!(!r.overloaded());
    }

    #[test]
    fn overload_clears_below_three_quarters_without_lower() {
        let r = rs(8, 0);
        for _ in 0..8 {
            r.bind_conn();
        }
        assert!(r.overloaded());
        r.unbind_conn(false); // 7
        r.unbind_conn(false); // 6 = 3/4 of 8: not below
        assert!(r.overloaded());
        r.unbind_conn(false); // 5
        assert!(!r.overloaded());
    }

    #[test]
    fn validation_names_the_problem() {
        let mut s = RealServerSettings::new("10.0.0.1:80".parse().unwrap());
        s.weight = 70_000;
        assert_eq!(s.validate(), Err(RealServerError::Weight(70_000)));
        s.weight = 1;
        for m in [ForwardingMethod::Gate, ForwardingMethod::Masq, ForwardingMethod::Tunnel, ForwardingMethod::FullNat] {
            s.method = m;
            assert_eq!(s.validate(), Ok(()), "the table takes every method: {m}");
        }
    }
}
