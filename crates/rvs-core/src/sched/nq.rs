//! nq, never queue: the first idle server (no active connections) in order takes the
//! connection; when none is idle, shortest expected delay ((active + 1) / weight) decides.

use super::{DestView, SchedRequest, Scheduler};

#[derive(Debug, Default)]
pub struct NeverQueue;

impl Scheduler for NeverQueue {
    fn schedule(&mut self, dests: &[DestView], _req: &SchedRequest) -> Option<usize> {
        // The first idle server wins at once; else shortest expected delay.
        if let Some(i) = dests.iter().position(|d| d.available() && d.active == 0) {
            return Some(i);
        }
        super::least(dests, |d| (u64::from(d.active) + 1, u64::from(d.weight)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::{dest, req};

    fn d(weight: u32, active: u32) -> DestView {
        dest(weight, active, 0)
    }

    #[test]
    fn an_idle_server_wins_even_with_a_low_weight() {
        // sed would pick index 0 ((1+1)/100); nq takes the first idle one.
        let mut dests = [d(100, 1), d(1, 0), d(1, 0)];
        dests[1].inactive = 50;
        assert_eq!(NeverQueue.schedule(&dests, &req()), Some(1));
    }

    #[test]
    fn otherwise_shortest_expected_delay() {
        let dests = [d(1, 1), d(4, 2), d(10, 4), d(10, 4)];
        assert_eq!(NeverQueue.schedule(&dests, &req()), Some(2));
    }

    #[test]
    fn idle_but_unavailable_servers_are_skipped() {
        let mut dests = [d(0, 0), d(3, 0), d(1, 2)];
        dests[1].overloaded = true;
        assert_eq!(NeverQueue.schedule(&dests, &req()), Some(2));
        dests[2].weight = 0;
        assert_eq!(NeverQueue.schedule(&dests, &req()), None);
    }
}
