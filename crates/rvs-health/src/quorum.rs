//! Quorum of a virtual service, pure: from the live weights of its real servers, `quorum` and
//! `hysteresis`, decide whether it has quorum (keepalived semantics), so rvsd can switch to the
//! sorry server and run `quorum_up` / `quorum_down`.
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

/// The sum of live weights (see [`crate::effective_weight`]).
pub fn live_weight(weights: impl IntoIterator<Item = u32>) -> u64 {
    weights.into_iter().map(u64::from).sum()
}

/// A change of a service's quorum state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumTransition {
    pub from: QuorumState,
    pub to: QuorumState,
    pub live_weight: u64,
}

/// A service's quorum state as weights change; emits each change once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumTracker {
    quorum: Quorum,
    state: QuorumState,
    live_weight: u64,
}

impl QuorumTracker {
    /// Starts from `state` (e.g. [`Quorum::initial`], or the state kept across a reload).
    pub fn new(quorum: Quorum, state: QuorumState, live_weight: u64) -> Self {
        Self { quorum, state, live_weight }
    }

    pub fn state(&self) -> QuorumState {
        self.state
    }

    pub fn live_weight(&self) -> u64 {
        self.live_weight
    }

    pub fn quorum(&self) -> Quorum {
        self.quorum
    }

    /// New settings (reload), keeping the state; the next update decides with them.
    pub fn set_quorum(&mut self, quorum: Quorum) {
        self.quorum = quorum;
    }

    /// Feeds the live weight now; returns the transition, if any.
    pub fn update(&mut self, live_weight: u64) -> Option<QuorumTransition> {
        self.live_weight = live_weight;
        let to = self.quorum.decide(self.state, live_weight);
        if to == self.state {
            return None;
        }
        let from = std::mem::replace(&mut self.state, to);
        Some(QuorumTransition { from, to, live_weight })
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

    #[test]
    fn hysteresis_dampens_flaps() {
        // quorum 10, hysteresis 2: lost below 8, regained at 12.
        let q = Quorum::new(10, 2).unwrap();
        let mut t = QuorumTracker::new(q, q.initial(15), 15);
        assert_eq!(t.state(), QuorumState::Up);
        for w in [11, 9, 8] {
            assert_eq!(t.update(w), None, "still up at {w}");
        }
        let tr = t.update(7).unwrap();
        assert_eq!((tr.from, tr.to, tr.live_weight), (QuorumState::Up, QuorumState::Down, 7));
        for w in [8, 10, 11] {
            assert_eq!(t.update(w), None, "still down at {w}");
        }
        assert_eq!(t.update(12).unwrap().to, QuorumState::Up);
        assert_eq!(t.update(12), None);
    }

    #[test]
    fn zero_weight_always_loses() {
        let q = Quorum::new(1, 0).unwrap();
        let mut t = QuorumTracker::new(q, QuorumState::Up, 1);
        assert_eq!(t.update(0).unwrap().to, QuorumState::Down);
    }

    #[test]
    fn sums() {
        assert_eq!(live_weight([1, 2, u32::MAX]), 3 + u64::from(u32::MAX));
    }
}
