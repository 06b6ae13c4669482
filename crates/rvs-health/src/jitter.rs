//! A small xorshift generator seeded from the clock, for warm-up delays and DNS query ids.
//! Not for anything that needs unpredictability.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// xorshift64*.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// Seeded from the wall clock, a process-wide sequence and `extra` (e.g. a target's hash),
    /// so generators made at the same instant differ.
    pub fn seeded(extra: u64) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self::from_seed(nanos ^ seq ^ extra.rotate_left(17) ^ u64::from(std::process::id()))
    }

    pub fn from_seed(seed: u64) -> Self {
        Self(if seed == 0 { 0x2545_F491_4F6C_DD1D } else { seed })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniformly spread duration in `[0, max)` (zero when `max` is zero).
    pub fn duration_below(&mut self, max: Duration) -> Duration {
        let nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_within_bound() {
        let mut r = XorShift::from_seed(42);
        let max = Duration::from_millis(100);
        let samples: Vec<_> = (0..1000).map(|_| r.duration_below(max)).collect();
        assert!(samples.iter().all(|d| *d < max));
        assert!(samples.iter().any(|d| *d < Duration::from_millis(10)));
        assert!(samples.iter().any(|d| *d > Duration::from_millis(90)));
        assert_eq!(r.duration_below(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(XorShift::seeded(1).next_u64(), XorShift::seeded(1).next_u64());
    }
}
