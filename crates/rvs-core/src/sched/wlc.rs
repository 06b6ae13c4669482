//! wlc, weighted least-connection (the default): the server with the least load per unit of
//! weight, load being active·256 + inactive; ties go to the earliest server.

use super::{DestView, SchedRequest, Scheduler};

#[derive(Debug, Default)]
pub struct WeightedLeastConnection;

impl Scheduler for WeightedLeastConnection {
    fn schedule(&mut self, dests: &[DestView], _req: &SchedRequest) -> Option<usize> {
        super::least(dests, |d| (d.load(), u64::from(d.weight)))
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
    fn picks_least_load_per_weight() {
        // 512/1 against 768/4 = 192 against 1280/5 = 256.
        let dests = [d(1, 2, 0), d(4, 3, 0), d(5, 5, 0)];
        assert_eq!(WeightedLeastConnection.schedule(&dests, &req()), Some(1));
        // Inactive connections count 1/256 of an active one.
        let dests = [d(1, 1, 10), d(1, 1, 9)];
        assert_eq!(WeightedLeastConnection.schedule(&dests, &req()), Some(1));
    }

    #[test]
    fn ties_go_to_the_earliest() {
        let dests = [d(1, 3, 0), d(2, 2, 0), d(4, 4, 0)];
        assert_eq!(WeightedLeastConnection.schedule(&dests, &req()), Some(1));
    }

    #[test]
    fn skips_quiesced_and_overloaded() {
        let mut dests = [d(0, 0, 0), d(5, 0, 0), d(1, 9, 0)];
        dests[1].overloaded = true;
        assert_eq!(WeightedLeastConnection.schedule(&dests, &req()), Some(2));
        dests[2].overloaded = true;
        assert_eq!(WeightedLeastConnection.schedule(&dests, &req()), None);
    }
}
