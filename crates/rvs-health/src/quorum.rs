//! A virtual service's quorum as it runs: the live weight of its real servers fed in as their
//! health changes, and each gain or loss of quorum (the [`Quorum`] settings decide) emitted once,
//! so rvsd can switch to the sorry server and run `quorum_up` / `quorum_down`.

use rvs_model::health::quorum::{Quorum, QuorumState};

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
