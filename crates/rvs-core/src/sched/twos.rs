//! twos, power of two choices: two servers drawn at random in proportion to weight, the one
//! with less load per weight wins (ties: the first draw). The draws come from a seeded PRNG.

use super::{DestView, SchedRequest, Scheduler};

#[derive(Debug)]
pub struct PowerOfTwoChoices {
    /// splitmix64 state.
    state: u64,
}

impl PowerOfTwoChoices {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// splitmix64: small, fast, and good enough to pick servers.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The available server whose cumulative weight first exceeds `r`.
    fn weighted(dests: &[DestView], r: u64) -> Option<usize> {
        let mut cum = 0;
        dests.iter().enumerate().filter(|(_, d)| d.available()).find_map(|(i, d)| {
            cum += u64::from(d.weight);
            (r < cum).then_some(i)
        })
    }
}

impl Scheduler for PowerOfTwoChoices {
    fn schedule(&mut self, dests: &[DestView], _req: &SchedRequest) -> Option<usize> {
        let total: u64 = dests.iter().filter(|d| d.available()).map(|d| u64::from(d.weight)).sum();
        if total == 0 {
            return None;
        }
        let c1 = Self::weighted(dests, self.next_u64() % total)?;
        let c2 = Self::weighted(dests, self.next_u64() % total)?;
        let (d1, d2) = (&dests[c1], &dests[c2]);
        // overhead1/weight1 > overhead2/weight2, cross-multiplied.
        if u64::from(d2.weight) * d1.load() > u64::from(d1.weight) * d2.load() {
            Some(c2)
        } else {
            Some(c1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::{dest, req};

    fn d(weight: u32, active: u32) -> DestView {
        dest(weight, active, 0)
    }

    fn counts(s: &mut PowerOfTwoChoices, dests: &[DestView], n: usize) -> Vec<usize> {
        let mut c = vec![0; dests.len()];
        for _ in 0..n {
            c[s.schedule(dests, &req()).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn draws_follow_weight_when_loads_are_equal() {
        // Equal load: the first draw wins, so picks follow weight exactly in expectation.
        let dests = [d(1, 0), d(3, 0)];
        let c = counts(&mut PowerOfTwoChoices::new(7), &dests, 40_000);
        assert!(c[1].abs_diff(30_000) < 600, "{c:?}");
    }

    #[test]
    fn prefers_the_less_loaded() {
        // Server 1 is the busier per weight: it wins only when drawn twice (1/4 of the time).
        let dests = [d(1, 1), d(1, 3)];
        let c = counts(&mut PowerOfTwoChoices::new(1), &dests, 40_000);
        assert!(c[1].abs_diff(10_000) < 600, "{c:?}");
        // Load is compared per weight: 4 active over weight 8 beats 1 over weight 1.
        let dests = [d(1, 1), d(8, 4)];
        let c = counts(&mut PowerOfTwoChoices::new(1), &dests, 9_000);
        // Server 0 wins only when drawn twice: (1/9)^2.
        assert!(c[0] < 300, "{c:?}");
    }

    #[test]
    fn seeded_draws_repeat() {
        let dests = [d(1, 0), d(2, 0), d(3, 0), d(4, 0)];
        let a = counts(&mut PowerOfTwoChoices::new(42), &dests, 100);
        let b = counts(&mut PowerOfTwoChoices::new(42), &dests, 100);
        assert_eq!(a, b);
    }

    #[test]
    fn never_draws_unavailable_servers() {
        let mut dests = [d(5, 0), d(0, 0), d(5, 0), d(1, 0)];
        dests[0].overloaded = true;
        let c = counts(&mut PowerOfTwoChoices::new(3), &dests, 2_000);
        assert_eq!((c[0], c[1]), (0, 0));
        assert!(c[2] > 0 && c[3] > 0);
        dests[2].overloaded = true;
        dests[3].weight = 0;
        assert_eq!(PowerOfTwoChoices::new(3).schedule(&dests, &req()), None);
    }
}
