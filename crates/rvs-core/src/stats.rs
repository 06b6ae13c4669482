//! Counters and rates. Each virtual service and real server counts connections, packets and
//! bytes in (client to server) and out; a 2-second sampling estimator derives CPS, PPS and BPS
//! with the kernel's fixed-point moving average (ip_vs_est.c).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Live counters, bumped by the data plane without locks.
#[derive(Debug, Default)]
pub struct Counters {
    conns: AtomicU64,
    inpkts: AtomicU64,
    outpkts: AtomicU64,
    inbytes: AtomicU64,
    outbytes: AtomicU64,
}

/// A reading of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterValues {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl Counters {
    pub fn add_conn(&self) {
        self.conns.fetch_add(1, Ordering::Relaxed);
    }
    /// One read from the client side of `bytes`.
    pub fn add_in(&self, bytes: u64) {
        self.add_in_packets(1, bytes);
    }
    /// One read from the real server side of `bytes`.
    pub fn add_out(&self, bytes: u64) {
        self.add_out_packets(1, bytes);
    }
    /// `packets` reads (or kernel-relayed messages) from the client side, `bytes` in all.
    pub fn add_in_packets(&self, packets: u64, bytes: u64) {
        self.inpkts.fetch_add(packets, Ordering::Relaxed);
        self.inbytes.fetch_add(bytes, Ordering::Relaxed);
    }
    /// `packets` reads (or kernel-relayed messages) from the real server side, `bytes` in all.
    pub fn add_out_packets(&self, packets: u64, bytes: u64) {
        self.outpkts.fetch_add(packets, Ordering::Relaxed);
        self.outbytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn read(&self) -> CounterValues {
        CounterValues {
            conns: self.conns.load(Ordering::Relaxed),
            inpkts: self.inpkts.load(Ordering::Relaxed),
            outpkts: self.outpkts.load(Ordering::Relaxed),
            inbytes: self.inbytes.load(Ordering::Relaxed),
            outbytes: self.outbytes.load(Ordering::Relaxed),
        }
    }
    fn zero(&self) {
        for c in [&self.conns, &self.inpkts, &self.outpkts, &self.inbytes, &self.outbytes] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// Rates per second, as ipvsadm --rate shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// The kernel's estimator: sampled every [`Estimator::PERIOD_MS`], an EWMA with weight 1/4 kept
/// in fixed point (rates of events scaled by 2^10 per second, bytes by 2^5).
#[derive(Debug, Default, Clone)]
pub struct Estimator {
    last: CounterValues,
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
}

impl Estimator {
    /// The sampling period: two seconds, as in IPVS.
    pub const PERIOD_MS: u64 = 2_000;

    /// Takes one sample (call every [`Self::PERIOD_MS`]).
    pub fn sample(&mut self, now: CounterValues) {
        fn ewma(avg: &mut u64, delta: u64, shift: u32) {
            // rate over 2 s scaled: the kernel's `rate = delta << 9` (events, 2^10/s) or `<< 4` (bytes, 2^5/s)
            let rate = delta.saturating_mul(1 << shift) as i128;
            let cur = *avg as i128;
            *avg = (cur + ((rate - cur) >> 2)).max(0) as u64;
        }
        let d = |a: u64, b: u64| a.saturating_sub(b);
        ewma(&mut self.cps, d(now.conns, self.last.conns), 9);
        ewma(&mut self.inpps, d(now.inpkts, self.last.inpkts), 9);
        ewma(&mut self.outpps, d(now.outpkts, self.last.outpkts), 9);
        ewma(&mut self.inbps, d(now.inbytes, self.last.inbytes), 4);
        ewma(&mut self.outbps, d(now.outbytes, self.last.outbytes), 4);
        self.last = now;
    }

    pub fn rates(&self) -> Rates {
        Rates {
            cps: (self.cps + 0x1FF) >> 10,
            inpps: (self.inpps + 0x1FF) >> 10,
            outpps: (self.outpps + 0x1FF) >> 10,
            inbps: (self.inbps + 0xF) >> 5,
            outbps: (self.outbps + 0xF) >> 5,
        }
    }
}

/// Counters plus their estimator: what one service or real server carries.
#[derive(Debug, Default)]
pub struct Stats {
    pub counters: Counters,
    estimator: Mutex<Estimator>,
}

impl Stats {
    pub fn sample(&self) {
        let now = self.counters.read();
        self.estimator.lock().unwrap_or_else(|e| e.into_inner()).sample(now);
    }
    pub fn rates(&self) -> Rates {
        self.estimator.lock().unwrap_or_else(|e| e.into_inner()).rates()
    }
    /// `ipvsadm -Z`: counters and the estimator start again from zero.
    pub fn zero(&self) {
        let mut est = self.estimator.lock().unwrap_or_else(|e| e.into_inner());
        self.counters.zero();
        *est = Estimator::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimator_converges_to_the_true_rate() {
        let mut e = Estimator::default();
        let mut v = CounterValues::default();
        for _ in 0..40 {
            // 100 conns/s, 1000 pkts/s, 1 MB/s over 2 s
            v.conns += 200;
            v.inpkts += 2000;
            v.inbytes += 2_000_000;
            e.sample(v);
        }
        let r = e.rates();
        assert_eq!(r.cps, 100);
        assert_eq!(r.inpps, 1000);
        // The fixed-point average settles a few units under the true rate, as in the kernel.
        assert!((999_990..=1_000_000).contains(&r.inbps), "{}", r.inbps);
        assert_eq!(r.outpps, 0);
    }

    #[test]
    fn zero_resets_counters_and_rates() {
        let s = Stats::default();
        for _ in 0..10 {
            for _ in 0..100 {
                s.counters.add_conn();
            }
            s.counters.add_in(100);
            s.sample();
        }
        assert!(s.rates().cps > 0);
        s.zero();
        assert_eq!(s.counters.read(), CounterValues::default());
        assert_eq!(s.rates(), Rates::default());
    }
}
