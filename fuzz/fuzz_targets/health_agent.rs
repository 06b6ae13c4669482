//! Arbitrary agent replies (HAProxy's agent-check grammar) through the agent check's parser:
//! nothing panics, a reply that keeps the server in is up or draining (drain when it says so or
//! `0%`), a reason always names the reply, and only the first line counts.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_health::fuzz::agent_reply;
use rvs_health::health::{Health, WeightHint};

fuzz_target!(|data: &[u8]| {
    let verdict = agent_reply(data);
    match &verdict {
        Ok(a) => {
            assert!(matches!(a.outcome, Health::Up | Health::Drain), "{:?}", a.outcome);
            if a.weight == Some(WeightHint::Percent(0)) {
                assert_eq!(a.outcome, Health::Drain);
            }
            assert!(a.reason.starts_with("agent: "));
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
    if let Some(nl) = data.iter().position(|b| *b == b'\n') {
        assert_eq!(agent_reply(&data[..nl]), verdict, "what follows the first line counts");
    }
});
