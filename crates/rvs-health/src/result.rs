//! The result of one check run: the outcome, an optional weight hint, a reason an operator can
//! read ("connection refused", "HTTP 500 not in 200-299", "timeout after 2s") and how long it took.

use std::fmt;
use std::time::Duration;

use crate::health::{Health, WeightHint};
pub use rvs_model::health::timing::human_duration;

/// What one run of a checker found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub outcome: Health,
    /// A weight the checker asks for (dynamic exec, agent). `None` leaves the weight unchanged.
    pub weight: Option<WeightHint>,
    /// Human-readable: why the check passed or failed.
    pub reason: String,
    pub duration: Duration,
}

impl CheckResult {
    pub fn up(reason: impl Into<String>) -> Self {
        Self { outcome: Health::Up, weight: None, reason: reason.into(), duration: Duration::ZERO }
    }

    pub fn down(reason: impl Into<String>) -> Self {
        Self { outcome: Health::Down, weight: None, reason: reason.into(), duration: Duration::ZERO }
    }

    pub fn drain(reason: impl Into<String>) -> Self {
        Self { outcome: Health::Drain, weight: None, reason: reason.into(), duration: Duration::ZERO }
    }

    pub fn with_weight(mut self, weight: WeightHint) -> Self {
        self.weight = Some(weight);
        self
    }

    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// Up or draining.
    pub fn is_alive(&self) -> bool {
        self.outcome.is_alive()
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.outcome)?;
        if let Some(w) = self.weight {
            write!(f, " weight {w}")?;
        }
        write!(f, ": {} ({})", self.reason, human_duration(self.duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        let r = CheckResult::up("exit 5").with_weight(WeightHint::Absolute(3)).with_duration(Duration::from_millis(4));
        assert_eq!(r.to_string(), "up weight 3: exit 5 (4ms)");
    }
}
