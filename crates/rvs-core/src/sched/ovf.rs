//! ovf, weighted overflow: the available server with the highest weight whose active
//! connections do not exceed its weight; ties go to the earliest server, else none.

use super::{DestView, SchedRequest, Scheduler};

#[derive(Debug, Default)]
pub struct WeightedOverflow;

impl Scheduler for WeightedOverflow {
    fn schedule(&mut self, dests: &[DestView], _req: &SchedRequest) -> Option<usize> {
        // As the kernel: a server is full once active > weight, so active == weight still takes
        // one more connection.
        super::heaviest(dests, |d| d.active <= d.weight)
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
    fn fills_the_heaviest_then_overflows() {
        let mut dests = [d(2, 0), d(3, 0), d(3, 0)];
        assert_eq!(WeightedOverflow.schedule(&dests, &req()), Some(1));
        dests[1].active = 3;
        assert_eq!(WeightedOverflow.schedule(&dests, &req()), Some(1));
        dests[1].active = 4;
        assert_eq!(WeightedOverflow.schedule(&dests, &req()), Some(2));
        dests[2].active = 4;
        assert_eq!(WeightedOverflow.schedule(&dests, &req()), Some(0));
        dests[0].active = 3;
        assert_eq!(WeightedOverflow.schedule(&dests, &req()), None);
    }

    #[test]
    fn skips_quiesced_and_overloaded() {
        let mut dests = [d(0, 0), d(9, 0), d(1, 0)];
        dests[1].overloaded = true;
        assert_eq!(WeightedOverflow.schedule(&dests, &req()), Some(2));
        dests[2].overloaded = true;
        assert_eq!(WeightedOverflow.schedule(&dests, &req()), None);
    }
}
