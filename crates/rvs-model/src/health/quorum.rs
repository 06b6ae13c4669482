//! Quorum of a virtual service, pure: its settings (`quorum`, `hysteresis`) and, from the live
//! weights of its real servers, whether it has quorum (keepalived semantics).
//!
//! As keepalived.conf(5) and its checker do it: quorum is gained when the sum of live weights
//! reaches `quorum + hysteresis`, and lost when it falls below `quorum - hysteresis` or to 0.
//! In between, the state stays as it was (the hysteresis is a flap dampener).

use std::fmt;

/// Whether a virtual service has quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuorumState {
    /// Enough live weight: serve from the real servers (`quorum_up` ran on the way here).
    Up,
    /// Not enough: the sorry server takes the traffic (`quorum_down` ran on the way here).
    Down,
}

impl QuorumState {
    pub fn as_str(self) -> &'static str {
        match self {
            QuorumState::Up => "up",
            QuorumState::Down => "down",
        }
    }
}

impl fmt::Display for QuorumState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    #[error("quorum must be at least 1")]
    ZeroQuorum,
    #[error("hysteresis {hysteresis} must be below quorum {quorum}")]
    Hysteresis { quorum: u64, hysteresis: u64 },
}

/// A service's quorum settings: keepalived's `quorum` (default 1) and `hysteresis` (default 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quorum {
    quorum: u64,
    hysteresis: u64,
}

impl Default for Quorum {
    fn default() -> Self {
        Self { quorum: 1, hysteresis: 0 }
    }
}

impl Quorum {
    pub fn new(quorum: u64, hysteresis: u64) -> Result<Self, QuorumError> {
        if quorum == 0 {
            return Err(QuorumError::ZeroQuorum);
        }
        if hysteresis >= quorum {
            return Err(QuorumError::Hysteresis { quorum, hysteresis });
        }
        Ok(Self { quorum, hysteresis })
    }

    pub fn quorum(&self) -> u64 {
        self.quorum
    }

    pub fn hysteresis(&self) -> u64 {
        self.hysteresis
    }

    /// The state when nothing was known before (start-up): up when the live weight reaches
    /// the quorum.
    pub fn initial(&self, live_weight: u64) -> QuorumState {
        if live_weight >= self.quorum && live_weight > 0 {
            QuorumState::Up
        } else {
            QuorumState::Down
        }
    }

    /// The state after `current` given `live_weight`.
    pub fn decide(&self, current: QuorumState, live_weight: u64) -> QuorumState {
        match current {
            QuorumState::Down if live_weight >= self.quorum + self.hysteresis => QuorumState::Up,
            QuorumState::Up if live_weight == 0 || live_weight < self.quorum - self.hysteresis => QuorumState::Down,
            s => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert_eq!(Quorum::new(0, 0), Err(QuorumError::ZeroQuorum));
        assert_eq!(Quorum::new(3, 3), Err(QuorumError::Hysteresis { quorum: 3, hysteresis: 3 }));
        assert!(Quorum::new(3, 2).is_ok());
        assert_eq!(Quorum::default(), Quorum::new(1, 0).unwrap());
    }

    #[test]
    fn default_quorum_is_any_live_server() {
        let q = Quorum::default();
        assert_eq!(q.initial(0), QuorumState::Down);
        assert_eq!(q.initial(1), QuorumState::Up);
        assert_eq!(q.decide(QuorumState::Up, 0), QuorumState::Down);
        assert_eq!(q.decide(QuorumState::Down, 1), QuorumState::Up);
    }
}
