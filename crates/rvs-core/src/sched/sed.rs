//! sed, shortest expected delay: the server with the least (active + 1) / weight, compared by
//! cross-multiplication as the kernel does; inactive connections do not count; ties go earliest.

use super::{DestView, SchedRequest, Scheduler};

#[derive(Debug, Default)]
pub struct ShortestExpectedDelay;

/// The kernel's `ip_vs_sed_dest_overhead`: the expected delay counts the new connection too.
fn overhead(d: &DestView) -> u64 {
    u64::from(d.active) + 1
}

impl Scheduler for ShortestExpectedDelay {
    fn schedule(&mut self, dests: &[DestView], _req: &SchedRequest) -> Option<usize> {
        super::least(dests, |d| (overhead(d), u64::from(d.weight)))
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
    fn picks_least_expected_delay() {
        // (0+1)/1 = 1 against (2+1)/4 = 0.75 against (4+1)/10 = 0.5.
        let dests = [d(1, 0), d(4, 2), d(10, 4)];
        assert_eq!(ShortestExpectedDelay.schedule(&dests, &req()), Some(2));
        // An idle weight-1 server (delay 1) loses to a busy weight-3 one ((1+1)/3).
        let dests = [d(1, 0), d(3, 1)];
        assert_eq!(ShortestExpectedDelay.schedule(&dests, &req()), Some(1));
    }

    #[test]
    fn inactive_does_not_count_and_ties_go_earliest() {
        let mut dests = [d(2, 1), d(2, 1), d(1, 0)];
        dests[0].inactive = 1000;
        assert_eq!(ShortestExpectedDelay.schedule(&dests, &req()), Some(0));
    }

    #[test]
    fn skips_quiesced_and_overloaded() {
        let mut dests = [d(0, 0), d(5, 0), d(1, 3)];
        dests[1].overloaded = true;
        assert_eq!(ShortestExpectedDelay.schedule(&dests, &req()), Some(2));
        dests[2].overloaded = true;
        assert_eq!(ShortestExpectedDelay.schedule(&dests, &req()), None);
    }
}
