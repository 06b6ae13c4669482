//! Tracking (keepalived's `track_interface`, `track_script` with `weight`): tracked objects
//! that are up or down, and from them an instance's effective priority or FAULT. A weight
//! above 0 adds while up, below 0 subtracts while down, 0 forces FAULT while down.

use rvs_core::ServiceAddr;
use rvs_model::vrrp::VrrpInstanceSpec;

/// What an instance tracks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TrackKey {
    /// An interface, up or down (the instance's own interface is tracked with weight 0).
    Interface(String),
    /// A virtual service, up while it has quorum.
    Service(ServiceAddr),
}

/// What tracking makes of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    pub priority: u8,
    pub fault: bool,
}

/// The tracked objects of one instance, each with its weight and whether it is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    base: u8,
    items: Vec<(TrackKey, i32, bool)>,
}

impl Tracking {
    /// Tracking of an instance of configured priority `base` with no tracked objects.
    pub fn new(base: u8) -> Tracking {
        Tracking { base, items: Vec::new() }
    }

    /// Adds a tracked object, up until told otherwise.
    pub fn track(mut self, key: TrackKey, weight: i32) -> Tracking {
        self.items.push((key, weight, true));
        self
    }

    /// The tracking of a `[[vrrp]]` instance: its own interface (weight 0), its
    /// `track_interface` and `track_service` entries. All start up: the shell reports the
    /// real states before it starts the router.
    pub fn from_spec(spec: &VrrpInstanceSpec) -> Tracking {
        let mut t = Tracking::new(spec.priority).track(TrackKey::Interface(spec.interface.clone()), 0);
        for i in &spec.track_interfaces {
            t = t.track(TrackKey::Interface(i.interface.clone()), i.weight);
        }
        for s in &spec.track_services {
            t = t.track(TrackKey::Service(s.service), s.weight);
        }
        t
    }

    /// Whether this tracks `key`.
    pub fn tracks(&self, key: &TrackKey) -> bool {
        self.items.iter().any(|(k, _, _)| k == key)
    }

    /// Records that `key` is up or down; whether anything changed.
    pub fn set(&mut self, key: &TrackKey, up: bool) -> bool {
        let mut changed = false;
        for (k, _, state) in &mut self.items {
            if k == key && *state != up {
                *state = up;
                changed = true;
            }
        }
        changed
    }

    /// The effective priority and FAULT. The address owner (255) keeps its priority; any other
    /// stays within 1..=254.
    pub fn effect(&self) -> Effect {
        let fault = self.items.iter().any(|(_, w, up)| *w == 0 && !*up);
        if self.base == 255 {
            return Effect { priority: 255, fault };
        }
        let delta: i32 = self
            .items
            .iter()
            .map(|(_, w, up)| match (*w, *up) {
                (w, true) if w > 0 => w,
                (w, false) if w < 0 => w,
                _ => 0,
            })
            .sum();
        let priority = (i32::from(self.base) + delta).clamp(1, 254) as u8;
        Effect { priority, fault }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(n: u8) -> TrackKey {
        TrackKey::Interface(format!("eth{n}"))
    }

    #[test]
    fn weights_move_the_priority_and_zero_forces_fault() {
        let mut t = Tracking::new(100).track(eth(0), 0).track(eth(1), -30).track(eth(2), 20);
        assert_eq!(t.effect(), Effect { priority: 120, fault: false }, "a positive weight adds while up");
        assert!(t.set(&eth(1), false));
        assert!(!t.set(&eth(1), false), "no change the second time");
        assert_eq!(t.effect(), Effect { priority: 90, fault: false });
        t.set(&eth(2), false);
        assert_eq!(t.effect(), Effect { priority: 70, fault: false });
        t.set(&eth(0), false);
        assert!(t.effect().fault);
        t.set(&eth(0), true);
        t.set(&eth(1), true);
        t.set(&eth(2), true);
        assert_eq!(t.effect(), Effect { priority: 120, fault: false });
    }

    #[test]
    fn the_priority_stays_within_1_and_254_and_the_owner_keeps_255() {
        let mut low = Tracking::new(10).track(eth(1), -200);
        low.set(&eth(1), false);
        assert_eq!(low.effect().priority, 1);
        let high = Tracking::new(250).track(eth(1), 200);
        assert_eq!(high.effect().priority, 254);
        let mut owner = Tracking::new(255).track(eth(1), -50);
        owner.set(&eth(1), false);
        assert_eq!(owner.effect().priority, 255);
    }
}
