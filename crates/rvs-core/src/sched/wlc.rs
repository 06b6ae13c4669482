//! wlc, weighted least-connection (the default): the server with the least load per unit of
//! weight, load being active·256 + inactive; ties go to the earliest server.

use super::{DestView, SchedRequest, Scheduler};

#[derive(Debug, Default)]
pub struct WeightedLeastConnection;

impl Scheduler for WeightedLeastConnection {
    fn schedule(&mut self, dests: &[DestView], _req: &SchedRequest) -> Option<usize> {
        // Compare loh/lwt > doh/dwt as loh*dwt > doh*lwt, as the kernel does.
        let mut least: Option<(usize, u64, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.available() {
                continue;
            }
            let (doh, dwt) = (d.load(), u64::from(d.weight));
            match least {
                None => least = Some((i, doh, dwt)),
                Some((_, loh, lwt)) if loh * dwt > doh * lwt => least = Some((i, doh, dwt)),
                _ => {}
            }
        }
        least.map(|(i, _, _)| i)
    }

    fn update(&mut self, _dests: &[DestView]) {}
}
