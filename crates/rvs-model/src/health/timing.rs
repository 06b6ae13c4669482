//! Check timing: how often a real server is checked, how long a check may take, how many
//! failures take it down (`fall`) and successes bring it back (`rise`), the retry delay, the
//! random warm-up, `alpha` (start down) and the passive-failure threshold; and durations as
//! listings and reasons show them (`2s`, `150ms`).

use std::time::Duration;

use rvs_core::Health;

/// When and how often a real server is checked, and how results turn into state.
///
/// `retry_delay` and `warmup` default to `interval` when `None`; use [`Timing::retry_delay`]
/// and [`Timing::warmup`] for the effective values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timing {
    /// Delay from the start of one check to the start of the next (keepalived's `delay_loop`).
    pub interval: Duration,
    /// How long one check may take (`connect_timeout`, `misc_timeout`).
    pub timeout: Duration,
    /// Consecutive failed checks before an up server goes down.
    pub fall: u32,
    /// Consecutive successful checks before a down server comes back.
    pub rise: u32,
    /// Delay before re-checking after a failure while the server is still up
    /// (`delay_before_retry`); `None` means `interval`.
    pub retry_delay: Option<Duration>,
    /// Largest random delay before a target's first check, so checks don't fire in lockstep;
    /// `None` means `interval`.
    pub warmup: Option<Duration>,
    /// Start down and wait for `rise` successes (keepalived's `alpha`); otherwise start up.
    pub alpha: bool,
    /// Passive failures (connection failures the data plane saw) since the last successful
    /// check that take an up server down at once; 0 ignores passive failures.
    pub passive_fall: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(3),
            fall: 3,
            rise: 2,
            retry_delay: None,
            warmup: None,
            alpha: false,
            passive_fall: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error("check interval must be above zero")]
    ZeroInterval,
    #[error("check timeout must be above zero")]
    ZeroTimeout,
    #[error("fall (failures before down) must be at least 1")]
    ZeroFall,
    #[error("rise (successes before up) must be at least 1")]
    ZeroRise,
    #[error("retry delay must be above zero")]
    ZeroRetryDelay,
}

impl Timing {
    /// Defaults, with this interval.
    pub fn with_interval(interval: Duration) -> Self {
        Self { interval, ..Self::default() }
    }

    pub fn validate(&self) -> Result<(), TimingError> {
        if self.interval.is_zero() {
            return Err(TimingError::ZeroInterval);
        }
        if self.timeout.is_zero() {
            return Err(TimingError::ZeroTimeout);
        }
        if self.fall == 0 {
            return Err(TimingError::ZeroFall);
        }
        if self.rise == 0 {
            return Err(TimingError::ZeroRise);
        }
        if self.retry_delay.is_some_and(|d| d.is_zero()) {
            return Err(TimingError::ZeroRetryDelay);
        }
        Ok(())
    }

    /// The effective delay before a retry after a failure.
    pub fn retry_delay(&self) -> Duration {
        self.retry_delay.unwrap_or(self.interval)
    }

    /// The effective largest warm-up delay.
    pub fn warmup(&self) -> Duration {
        self.warmup.unwrap_or(self.interval)
    }

    /// The state a server starts in without prior state.
    pub fn initial_health(&self) -> Health {
        if self.alpha {
            Health::Down
        } else {
            Health::Up
        }
    }

    /// The longest an up server that stops answering stays up, given checks that each fail
    /// within `timeout`: the wait for the next check plus `fall` failed checks spaced by the
    /// retry delay. (Passive failures can take it down sooner.)
    pub fn detection_bound(&self) -> Duration {
        let spacing = self.retry_delay().max(self.timeout);
        self.interval + spacing * self.fall.saturating_sub(1) + self.timeout
    }

    /// `interval 5s timeout 3s fall 3 rise 2`, for listings.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "interval {} timeout {} fall {} rise {}",
            human_duration(self.interval),
            human_duration(self.timeout),
            self.fall,
            self.rise
        );
        if let Some(d) = self.retry_delay {
            s.push_str(&format!(" retry {}", human_duration(d)));
        }
        if self.alpha {
            s.push_str(" alpha");
        }
        s
    }
}

/// `2s`, `150ms`, `1.5s`, `12µs`: short, for reasons and listings.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return format!("{}µs", d.as_micros());
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if d.subsec_millis() == 0 {
        return format!("{}s", ms / 1000);
    }
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_interval() {
        let t = Timing::with_interval(Duration::from_secs(2));
        assert_eq!(t.retry_delay(), Duration::from_secs(2));
        assert_eq!(t.warmup(), Duration::from_secs(2));
        assert_eq!(t.initial_health(), Health::Up);
        assert_eq!(Timing { alpha: true, ..t }.initial_health(), Health::Down);
        assert!(t.validate().is_ok());
        assert_eq!(t.describe(), "interval 2s timeout 3s fall 3 rise 2");
    }

    #[test]
    fn rejects_zeroes() {
        let t = Timing::default();
        assert_eq!(Timing { interval: Duration::ZERO, ..t }.validate(), Err(TimingError::ZeroInterval));
        assert_eq!(Timing { timeout: Duration::ZERO, ..t }.validate(), Err(TimingError::ZeroTimeout));
        assert_eq!(Timing { fall: 0, ..t }.validate(), Err(TimingError::ZeroFall));
        assert_eq!(Timing { rise: 0, ..t }.validate(), Err(TimingError::ZeroRise));
        assert_eq!(Timing { retry_delay: Some(Duration::ZERO), ..t }.validate(), Err(TimingError::ZeroRetryDelay));
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_secs(2)), "2s");
        assert_eq!(human_duration(Duration::from_millis(150)), "150ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_micros(12)), "12µs");
    }

    #[test]
    fn bound() {
        let t = Timing {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(50),
            fall: 3,
            ..Timing::default()
        };
        assert_eq!(t.detection_bound(), Duration::from_millis(100 + 200 + 50));
    }
}
