//! The data planes' monotonic clock in milliseconds, the `now` the core is driven with. One
//! clock is copied into every engine and the director, so their timestamps compare.

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self { start: Instant::now() }
    }
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// The clock at `at`, a reading taken for something else too.
    pub fn ms_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_millis() as u64
    }
}
