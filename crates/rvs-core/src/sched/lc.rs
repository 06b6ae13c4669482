//! lc, least-connection: the server with the least load (active·256 + inactive), weights only
//! deciding availability; ties go to the earliest server.

use super::{DestView, SchedRequest, Scheduler};

#[derive(Debug, Default)]
pub struct LeastConnection;

impl Scheduler for LeastConnection {
    fn schedule(&mut self, dests: &[DestView], _req: &SchedRequest) -> Option<usize> {
        // Load alone: every weight counts as 1.
        super::least(dests, |d| (d.load(), 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::{dest, req};

    fn d(weight: u32, active: u32, inactive: u32) -> DestView {
        dest(weight, active, inactive)
    }

    #[test]
    fn picks_least_load_ignoring_weight() {
        // Load 2·256+0 = 512 against 1·256+300 = 556 against 0·256+600 = 600.
        let dests = [d(1, 2, 0), d(100, 1, 300), d(5, 0, 600)];
        assert_eq!(LeastConnection.schedule(&dests, &req()), Some(0));
        let dests = [d(1, 3, 0), d(100, 1, 0), d(5, 2, 0)];
        assert_eq!(LeastConnection.schedule(&dests, &req()), Some(1));
    }

    #[test]
    fn ties_go_to_the_earliest() {
        let dests = [d(1, 4, 0), d(1, 2, 1), d(9, 2, 1)];
        assert_eq!(LeastConnection.schedule(&dests, &req()), Some(1));
    }

    #[test]
    fn skips_quiesced_and_overloaded() {
        let mut dests = [d(0, 0, 0), d(1, 0, 0), d(1, 5, 0)];
        dests[1].overloaded = true;
        assert_eq!(LeastConnection.schedule(&dests, &req()), Some(2));
        dests[2].weight = 0;
        assert_eq!(LeastConnection.schedule(&dests, &req()), None);
        assert_eq!(LeastConnection.schedule(&[], &req()), None);
    }
}
