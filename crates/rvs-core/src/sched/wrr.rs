//! wrr, weighted round robin: the kernel's classic algorithm, passing over the servers with a
//! current weight that steps down by the gcd of the weights from the maximum weight.

use super::{DestView, SchedRequest, Scheduler};

/// The kernel's `ip_vs_wrr_mark`. Over one cycle (`max weight / gcd` passes) each available
/// server is picked `weight / gcd` times.
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    /// Index of the last pick; `None` is the list head (before the first server).
    cl: Option<usize>,
    /// Current weight: a pass picks the servers whose weight is at least `cw`.
    cw: i64,
    /// Maximum weight, less `di - 1` so that the last pass runs with `cw == 1`.
    mw: i64,
    /// Decreasing interval: the gcd of the positive weights.
    di: i64,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Scheduler for WeightedRoundRobin {
    fn schedule(&mut self, dests: &[DestView], _req: &SchedRequest) -> Option<usize> {
        if self.mw <= 0 {
            return None;
        }
        let n = dests.len();
        let last = self.cl.filter(|&i| i < n);
        let mut pos = last;
        let mut stop = None;
        let (mut last_pass, mut restarted) = (false, false);
        // Stop only after every server was checked for weight >= 1 (the last pass).
        loop {
            for (i, d) in dests.iter().enumerate().skip(pos.map_or(0, |p| p + 1)) {
                if !d.overloaded && i64::from(d.weight) >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            pos = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // Either the last pass already started from the head, or it started after
                // `last` and has since covered everything.
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The first traversal for weight >= 1 began after `last`; finish at it.
                stop = last;
            }
        }
    }

    fn update(&mut self, dests: &[DestView]) {
        let di = dests.iter().map(|d| i64::from(d.weight)).filter(|&w| w > 0).fold(0, gcd);
        self.di = di.max(1);
        let max = dests.iter().map(|d| i64::from(d.weight)).max().unwrap_or(0);
        self.mw = max - (self.di - 1);
        self.cl = None;
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::req;

    fn d(weight: u32) -> DestView {
        DestView { addr: "10.0.0.1:80".parse().unwrap(), weight, active: 0, inactive: 0, overloaded: false }
    }

    fn run(dests: &[DestView], n: usize) -> Vec<Option<usize>> {
        let mut s = WeightedRoundRobin::default();
        s.update(dests);
        (0..n).map(|_| s.schedule(dests, &req())).collect()
    }

    #[test]
    fn kernel_order_for_4_3_2() {
        // cw = 4: a; cw = 3: a b; cw = 2: a b c; cw = 1: a b c; then again.
        let p = run(&[d(4), d(3), d(2)], 18);
        let cycle = [0, 0, 1, 0, 1, 2, 0, 1, 2];
        let want: Vec<_> = cycle.iter().chain(cycle.iter()).map(|&i| Some(i)).collect();
        assert_eq!(p, want);
    }

    #[test]
    fn steps_by_the_gcd() {
        // gcd 2, mw = 6 - 1 = 5: passes with cw 5, 3, 1.
        let p = run(&[d(6), d(4), d(2)], 6);
        assert_eq!(p, [0, 0, 1, 0, 1, 2].map(Some));
    }

    #[test]
    fn skips_quiesced_and_overloaded() {
        let mut dests = [d(3), d(0), d(2), d(1)];
        dests[3].overloaded = true;
        // Cycle: cw 3: a; cw 2: a c; cw 1: a c (d overloaded, b quiesced).
        assert_eq!(run(&dests, 5), [0, 0, 2, 0, 2].map(Some));
        let mut s = WeightedRoundRobin::default();
        s.update(&dests);
        assert_eq!(s.schedule(&dests, &req()), Some(0));
        dests[0].overloaded = true;
        dests[2].overloaded = true;
        assert_eq!(s.schedule(&dests, &req()), None);
        assert_eq!(s.schedule(&dests, &req()), None);
        dests[3].overloaded = false;
        assert_eq!(s.schedule(&dests, &req()), Some(3));
    }

    #[test]
    fn all_zero_weights_or_no_servers_give_none() {
        assert_eq!(run(&[d(0), d(0)], 2), [None, None]);
        assert_eq!(run(&[], 1), [None]);
    }

    #[test]
    fn update_restarts_from_the_head() {
        let dests = [d(2), d(2)];
        let mut s = WeightedRoundRobin::default();
        s.update(&dests);
        assert_eq!(s.schedule(&dests, &req()), Some(0));
        let grown = [d(2), d(2), d(4)];
        s.update(&grown);
        // mw is now 3; cw (1, the last pass) is kept and the pass restarts from the head.
        assert_eq!(s.schedule(&grown, &req()), Some(0));
        assert_eq!(s.schedule(&grown, &req()), Some(1));
        assert_eq!(s.schedule(&grown, &req()), Some(2));
    }
}
