//! The health of a real server as the checks see it (up, down, draining) and the weight hints
//! that dynamic checkers (exec in `misc_dynamic` mode, the agent) give back with it.

use std::fmt;

pub use rvs_core::real_server::MAX_WEIGHT;
pub use rvs_core::Health;

/// A weight reported by a dynamic checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightHint {
    /// Use this weight (exec `misc_dynamic`: exit n ≥ 2 means weight n − 2; agent `weight:N`).
    Absolute(u32),
    /// This percentage of the configured weight (agent `75%`).
    Percent(u32),
}

impl WeightHint {
    /// The weight to use for a server configured with `configured`, capped at [`MAX_WEIGHT`].
    /// A percentage rounds to the nearest integer, but a positive percentage of a positive weight
    /// never rounds down to 0 (that would drain the server, which only `0%` or `drain` asks for).
    pub fn apply(self, configured: u32) -> u32 {
        match self {
            WeightHint::Absolute(w) => w.min(MAX_WEIGHT),
            WeightHint::Percent(p) => {
                let w = (u64::from(configured) * u64::from(p) + 50) / 100;
                let w = if w == 0 && p > 0 && configured > 0 { 1 } else { w };
                w.min(u64::from(MAX_WEIGHT)) as u32
            }
        }
    }
}

impl fmt::Display for WeightHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightHint::Absolute(w) => write!(f, "{w}"),
            WeightHint::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// The weight a real server configured with `configured` should have in the table now: 0 when
/// down or draining, otherwise the hint applied to the configured weight (or the configured
/// weight itself without a hint). This is the "live weight" that quorum sums.
pub fn effective_weight(configured: u32, health: Health, hint: Option<WeightHint>) -> u32 {
    match health {
        Health::Down | Health::Drain => 0,
        Health::Up => hint.map_or(configured.min(MAX_WEIGHT), |h| h.apply(configured)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_and_caps() {
        assert_eq!(WeightHint::Percent(50).apply(10), 5);
        assert_eq!(WeightHint::Percent(75).apply(1), 1);
        assert_eq!(WeightHint::Percent(1).apply(10), 1);
        assert_eq!(WeightHint::Percent(0).apply(10), 0);
        assert_eq!(WeightHint::Percent(200).apply(100), 200);
        assert_eq!(WeightHint::Percent(1000).apply(MAX_WEIGHT), MAX_WEIGHT);
        assert_eq!(WeightHint::Absolute(70_000).apply(1), MAX_WEIGHT);
    }

    #[test]
    fn effective() {
        assert_eq!(effective_weight(10, Health::Up, None), 10);
        assert_eq!(effective_weight(10, Health::Up, Some(WeightHint::Absolute(3))), 3);
        assert_eq!(effective_weight(10, Health::Drain, None), 0);
        assert_eq!(effective_weight(10, Health::Down, Some(WeightHint::Absolute(3))), 0);
    }
}
