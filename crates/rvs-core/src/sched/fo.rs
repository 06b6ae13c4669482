//! fo, weighted failover: every connection goes to the available server with the highest
//! weight; ties go to the earliest server. Load is not looked at.

use super::{DestView, SchedRequest, Scheduler};

#[derive(Debug, Default)]
pub struct WeightedFailover;

impl Scheduler for WeightedFailover {
    fn schedule(&mut self, dests: &[DestView], _req: &SchedRequest) -> Option<usize> {
        super::heaviest(dests, |_| true)
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
    fn highest_weight_wins_regardless_of_load() {
        let dests = [d(5, 0), d(10, 1000), d(10, 0), d(1, 0)];
        assert_eq!(WeightedFailover.schedule(&dests, &req()), Some(1));
    }

    #[test]
    fn fails_over_to_the_next_highest() {
        let mut dests = [d(5, 0), d(10, 0), d(7, 0)];
        dests[1].overloaded = true;
        assert_eq!(WeightedFailover.schedule(&dests, &req()), Some(2));
        dests[2].weight = 0;
        assert_eq!(WeightedFailover.schedule(&dests, &req()), Some(0));
        dests[0].overloaded = true;
        assert_eq!(WeightedFailover.schedule(&dests, &req()), None);
    }
}
