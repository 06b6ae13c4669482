//! Arbitrary text through the L7 rule condition parser (`path^=/api/`, `header:X-Env=prod`,
//! as the config file, the API and rvsadm take them) and the rule constructor: nothing
//! panics, an accepted condition prints to a text that parses back to the same condition and
//! prints the same again, and a rule built from conditions prints its name and pool.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_model::http::{Match, Rule};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Lines: the rule's name, its pool, then one condition each.
    let mut lines = text.split('\n');
    let (Some(name), Some(pool)) = (lines.next(), lines.next()) else { return };
    let conditions: Vec<&str> = lines.collect();
    for c in &conditions {
        if let Ok(m) = c.parse::<Match>() {
            let printed = m.to_string();
            let again: Match = printed.parse().unwrap_or_else(|e| panic!("{printed:?} does not parse back: {e}"));
            assert_eq!(again, m, "{c:?} printed as {printed:?}");
            assert_eq!(again.to_string(), printed);
        }
    }
    if let Ok(rule) = Rule::parse(name, &conditions, pool) {
        assert_eq!(rule.matches.len(), conditions.len());
        let printed = rule.to_string();
        assert!(printed.starts_with(&format!("rule {name}:")) && printed.ends_with(&format!(" -> {pool}")));
    }
});
