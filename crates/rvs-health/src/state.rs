//! The check state of one real server: a pure state machine (no I/O, `now` passed in) fed with
//! check results and passive failures, applying `rise`/`fall` and emitting each transition once.
//!
//! Rules:
//! - A result that is alive (up or drain) counts toward `rise`; a down result counts toward
//!   `fall`. Each resets the other count.
//! - Down → alive after `rise` consecutive alive results; alive → down after `fall` consecutive
//!   down results.
//! - While alive, up ↔ drain and weight changes apply at once (they are the server's own word,
//!   as HAProxy applies agent states).
//! - A result's weight hint of `None` leaves the weight as it is. Going down forgets the hint; a
//!   server coming back takes the latest hint of its rise streak, or none (its configured weight).
//! - Passive failures (connection failures the data plane saw) add up since the last alive
//!   result; reaching `passive_fall` takes an alive server down at once, without waiting for
//!   the next check. They never bring a server up and never count toward `rise` or `fall`.

use std::time::Instant;

use crate::health::{Health, WeightHint};
use crate::result::CheckResult;
use crate::timing::Timing;

/// A change of a real server's health or weight, emitted exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: Health,
    pub to: Health,
    /// The weight hint in force after the transition (`None`: the configured weight).
    pub weight: Option<WeightHint>,
    /// Why, for logs and the event list: the deciding result's reason and the count.
    pub reason: String,
    pub at: Instant,
}

impl Transition {
    /// The health did not change, only the weight.
    pub fn is_weight_change(&self) -> bool {
        self.from == self.to
    }
}

/// The counts and results an operator sees for one real server, and the machine that turns
/// results into [`Transition`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckState {
    health: Health,
    weight: Option<WeightHint>,
    since: Instant,
    consecutive_ok: u32,
    consecutive_fail: u32,
    passive: u32,
    /// The latest weight hint seen during the current rise streak.
    streak_weight: Option<WeightHint>,
    last_result: Option<CheckResult>,
    last_check: Option<Instant>,
    checks: u64,
    failures: u64,
    passive_total: u64,
    transitions: u64,
    fall: u32,
    rise: u32,
    passive_fall: u32,
}

impl CheckState {
    /// A fresh state: down with `alpha`, otherwise up.
    pub fn new(timing: &Timing, now: Instant) -> Self {
        Self {
            health: timing.initial_health(),
            weight: None,
            since: now,
            consecutive_ok: 0,
            consecutive_fail: 0,
            passive: 0,
            streak_weight: None,
            last_result: None,
            last_check: None,
            checks: 0,
            failures: 0,
            passive_total: 0,
            transitions: 0,
            fall: timing.fall.max(1),
            rise: timing.rise.max(1),
            passive_fall: timing.passive_fall,
        }
    }

    /// Carries `prior` over to (possibly new) timing, as on a configuration reload: health,
    /// weight, results and counters stay; counts are capped below the new thresholds so that no
    /// transition happens before the next result.
    pub fn resume(prior: CheckState, timing: &Timing) -> Self {
        let mut s = prior;
        s.fall = timing.fall.max(1);
        s.rise = timing.rise.max(1);
        s.passive_fall = timing.passive_fall;
        if s.health.is_alive() {
            s.consecutive_fail = s.consecutive_fail.min(s.fall - 1);
            if s.passive_fall > 0 {
                s.passive = s.passive.min(s.passive_fall - 1);
            }
        } else {
            s.consecutive_ok = s.consecutive_ok.min(s.rise - 1);
        }
        s
    }

    /// Feeds one check result; returns the transition it causes, if any.
    pub fn observe(&mut self, result: &CheckResult, now: Instant) -> Option<Transition> {
        self.checks += 1;
        self.last_check = Some(now);
        self.last_result = Some(result.clone());
        if result.is_alive() {
            self.observe_alive(result, now)
        } else {
            self.observe_down(result, now)
        }
    }

    fn observe_alive(&mut self, result: &CheckResult, now: Instant) -> Option<Transition> {
        self.consecutive_fail = 0;
        self.passive = 0;
        self.consecutive_ok = self.consecutive_ok.saturating_add(1);
        if result.weight.is_some() {
            self.streak_weight = result.weight;
        }
        match self.health {
            Health::Down => {
                if self.consecutive_ok < self.rise {
                    return None;
                }
                let reason = format!("{} ({} consecutive successes)", result.reason, self.consecutive_ok);
                let weight = self.streak_weight;
                Some(self.transit(result.outcome, weight, reason, now))
            }
            Health::Up | Health::Drain => {
                let weight = result.weight.or(self.weight);
                if result.outcome == self.health && weight == self.weight {
                    return None;
                }
                let reason = match weight {
                    Some(w) if weight != self.weight => format!("weight {w}: {}", result.reason),
                    _ => result.reason.clone(),
                };
                Some(self.transit(result.outcome, weight, reason, now))
            }
        }
    }

    fn observe_down(&mut self, result: &CheckResult, now: Instant) -> Option<Transition> {
        self.failures += 1;
        self.consecutive_ok = 0;
        self.streak_weight = None;
        self.consecutive_fail = self.consecutive_fail.saturating_add(1);
        if self.health.is_alive() && self.consecutive_fail >= self.fall {
            let reason = format!("{} ({} consecutive failures)", result.reason, self.consecutive_fail);
            return Some(self.transit(Health::Down, None, reason, now));
        }
        None
    }

    /// Feeds `count` passive failures (the last one's reason); returns the transition to down
    /// when they reach `passive_fall` while the server is alive.
    pub fn passive_failures(&mut self, count: u32, reason: &str, now: Instant) -> Option<Transition> {
        if count == 0 || self.passive_fall == 0 {
            return None;
        }
        self.passive = self.passive.saturating_add(count);
        self.passive_total += u64::from(count);
        if self.health.is_alive() && self.passive >= self.passive_fall {
            self.consecutive_ok = 0;
            self.streak_weight = None;
            let reason = format!("{} passive failures since the last successful check: {reason}", self.passive);
            return Some(self.transit(Health::Down, None, reason, now));
        }
        None
    }

    fn transit(&mut self, to: Health, weight: Option<WeightHint>, reason: String, now: Instant) -> Transition {
        let from = self.health;
        if to != from {
            self.since = now;
        }
        self.health = to;
        self.weight = if to == Health::Down { None } else { weight };
        self.transitions += 1;
        Transition { from, to, weight: self.weight, reason, at: now }
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// The weight hint in force (`None`: the configured weight).
    pub fn weight(&self) -> Option<WeightHint> {
        self.weight
    }

    /// When the health last changed (or the state was created).
    pub fn since(&self) -> Instant {
        self.since
    }

    pub fn consecutive_successes(&self) -> u32 {
        self.consecutive_ok
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_fail
    }

    /// Passive failures since the last successful check.
    pub fn passive_failures_count(&self) -> u32 {
        self.passive
    }

    pub fn last_result(&self) -> Option<&CheckResult> {
        self.last_result.as_ref()
    }

    /// The last check's reason, or `"not checked yet"`.
    pub fn last_reason(&self) -> &str {
        self.last_result.as_ref().map_or("not checked yet", |r| r.reason.as_str())
    }

    pub fn last_check(&self) -> Option<Instant> {
        self.last_check
    }

    /// Checks run, failed checks, passive failures and transitions, since the state was made.
    pub fn totals(&self) -> Totals {
        Totals {
            checks: self.checks,
            failures: self.failures,
            passive_failures: self.passive_total,
            transitions: self.transitions,
        }
    }
}

/// Running totals of a [`CheckState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub checks: u64,
    pub failures: u64,
    pub passive_failures: u64,
    pub transitions: u64,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn timing(fall: u32, rise: u32) -> Timing {
        Timing { fall, rise, passive_fall: 2, ..Timing::default() }
    }

    fn feed(s: &mut CheckState, results: &[CheckResult], t0: Instant) -> Vec<Transition> {
        results.iter().enumerate().filter_map(|(i, r)| s.observe(r, t0 + Duration::from_secs(i as u64))).collect()
    }

    #[test]
    fn falls_after_fall_failures_and_rises_after_rise_successes() {
        let t0 = Instant::now();
        let mut s = CheckState::new(&timing(3, 2), t0);
        assert_eq!(s.health(), Health::Up);
        let down = CheckResult::down("connection refused");
        let up = CheckResult::up("connected");
        assert!(feed(&mut s, &[down.clone(), down.clone()], t0).is_empty());
        assert_eq!(s.consecutive_failures(), 2);
        // A success in between resets the count.
        assert!(s.observe(&up, t0).is_none());
        let tr = feed(&mut s, &[down.clone(), down.clone(), down.clone(), down.clone()], t0);
        assert_eq!(tr.len(), 1, "one transition only: {tr:?}");
        assert_eq!((tr[0].from, tr[0].to), (Health::Up, Health::Down));
        assert_eq!(tr[0].reason, "connection refused (3 consecutive failures)");
        assert_eq!(s.since(), t0 + Duration::from_secs(2));
        let tr = feed(&mut s, &[up.clone(), up.clone(), up.clone()], t0);
        assert_eq!(tr.len(), 1);
        assert_eq!((tr[0].from, tr[0].to), (Health::Down, Health::Up));
        assert_eq!(tr[0].reason, "connected (2 consecutive successes)");
        assert_eq!(s.totals().transitions, 2);
        assert_eq!(s.totals().failures, 6);
        assert_eq!(s.last_reason(), "connected");
    }

    #[test]
    fn alpha_starts_down() {
        let t0 = Instant::now();
        let mut s = CheckState::new(&Timing { alpha: true, ..timing(3, 1) }, t0);
        assert_eq!(s.health(), Health::Down);
        assert_eq!(s.last_reason(), "not checked yet");
        let tr = s.observe(&CheckResult::up("ok"), t0).unwrap();
        assert_eq!((tr.from, tr.to), (Health::Down, Health::Up));
    }

    #[test]
    fn dynamic_weights() {
        let t0 = Instant::now();
        let mut s = CheckState::new(&timing(1, 1), t0);
        let w3 = CheckResult::up("exit 5").with_weight(WeightHint::Absolute(3));
        let tr = s.observe(&w3, t0).unwrap();
        assert!(tr.is_weight_change());
        assert_eq!(tr.weight, Some(WeightHint::Absolute(3)));
        assert_eq!(tr.reason, "weight 3: exit 5");
        // Same weight again: nothing. No hint: unchanged.
        assert!(s.observe(&w3, t0).is_none());
        assert!(s.observe(&CheckResult::up("exit 0"), t0).is_none());
        assert_eq!(s.weight(), Some(WeightHint::Absolute(3)));
        // Down forgets the weight; coming back takes the streak's hint.
        let tr = s.observe(&CheckResult::down("exit 1"), t0).unwrap();
        assert_eq!((tr.to, tr.weight), (Health::Down, None));
        let tr = s.observe(&CheckResult::up("exit 12").with_weight(WeightHint::Absolute(10)), t0).unwrap();
        assert_eq!((tr.to, tr.weight), (Health::Up, Some(WeightHint::Absolute(10))));
    }

    #[test]
    fn rise_streak_keeps_its_latest_hint() {
        let t0 = Instant::now();
        let mut s = CheckState::new(&Timing { alpha: true, ..timing(1, 2) }, t0);
        assert!(s.observe(&CheckResult::up("50%").with_weight(WeightHint::Percent(50)), t0).is_none());
        let tr = s.observe(&CheckResult::up("up"), t0).unwrap();
        assert_eq!(tr.weight, Some(WeightHint::Percent(50)));
    }

    #[test]
    fn drain_applies_at_once_and_counts_as_alive() {
        let t0 = Instant::now();
        let mut s = CheckState::new(&timing(2, 2), t0);
        let tr = s.observe(&CheckResult::drain("agent: drain"), t0).unwrap();
        assert_eq!((tr.from, tr.to), (Health::Up, Health::Drain));
        assert!(s.observe(&CheckResult::drain("agent: drain"), t0).is_none());
        let tr = s.observe(&CheckResult::up("agent: ready"), t0).unwrap();
        assert_eq!((tr.from, tr.to), (Health::Drain, Health::Up));
        // From down, a draining server comes back as draining after rise.
        s.observe(&CheckResult::down("x"), t0);
        s.observe(&CheckResult::down("x"), t0);
        assert_eq!(s.health(), Health::Down);
        assert!(s.observe(&CheckResult::drain("agent: drain"), t0).is_none());
        let tr = s.observe(&CheckResult::drain("agent: drain"), t0).unwrap();
        assert_eq!((tr.from, tr.to), (Health::Down, Health::Drain));
    }

    #[test]
    fn passive_failures_take_down_at_once() {
        let t0 = Instant::now();
        let mut s = CheckState::new(&timing(3, 2), t0);
        assert!(s.passive_failures(1, "connection refused", t0).is_none());
        // A successful check clears them.
        assert!(s.observe(&CheckResult::up("ok"), t0).is_none());
        assert_eq!(s.passive_failures_count(), 0);
        assert!(s.passive_failures(1, "connection refused", t0).is_none());
        let tr = s.passive_failures(1, "connection refused", t0).unwrap();
        assert_eq!((tr.from, tr.to), (Health::Up, Health::Down));
        assert_eq!(tr.reason, "2 passive failures since the last successful check: connection refused");
        // While down they do nothing; successes bring it back after rise.
        assert!(s.passive_failures(5, "refused", t0).is_none());
        assert!(s.observe(&CheckResult::up("ok"), t0).is_none());
        assert_eq!(s.observe(&CheckResult::up("ok"), t0).unwrap().to, Health::Up);
        assert_eq!(s.totals().passive_failures, 8);
    }

    #[test]
    fn passive_disabled() {
        let t0 = Instant::now();
        let mut s = CheckState::new(&Timing { passive_fall: 0, ..Timing::default() }, t0);
        assert!(s.passive_failures(100, "refused", t0).is_none());
        assert_eq!(s.health(), Health::Up);
    }

    #[test]
    fn resume_keeps_state_and_caps_counts() {
        let t0 = Instant::now();
        let mut s = CheckState::new(&timing(5, 5), t0);
        for _ in 0..4 {
            assert!(s.observe(&CheckResult::down("refused"), t0).is_none());
        }
        let before = s.clone();
        let r = CheckState::resume(before.clone(), &timing(5, 5));
        assert_eq!(r, before);
        // Lower fall: capped so the next failure, not the reload, takes it down.
        let mut r = CheckState::resume(before, &timing(2, 2));
        assert_eq!(r.health(), Health::Up);
        assert_eq!(r.consecutive_failures(), 1);
        assert_eq!(r.observe(&CheckResult::down("refused"), t0).unwrap().to, Health::Down);
    }
}
