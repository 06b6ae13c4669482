//! Sync groups (keepalived's `vrrp_sync_group`): instances that move together. One in FAULT
//! puts all in FAULT; one that becomes MASTER (its master died) takes the others along; one
//! that yields to a higher master takes the others to BACKUP. A lone instance is a group of one.

use std::net::IpAddr;

use crate::packet::Advertisement;
use crate::router::{Action, Ignored, Millis, Router, State};
use crate::tracking::{TrackKey, Tracking};

/// The index of a member in its group, in the order added.
pub type MemberId = usize;

#[derive(Debug, Clone)]
struct Member {
    name: String,
    router: Router,
    tracking: Tracking,
}

/// The instances of one sync group (or one instance alone), each with its tracking.
#[derive(Debug, Clone)]
pub struct SyncGroup {
    name: Option<String>,
    members: Vec<Member>,
}

impl SyncGroup {
    /// A sync group named `name`; `None`: a lone instance (add one member).
    pub fn new(name: Option<String>) -> SyncGroup {
        SyncGroup { name, members: Vec::new() }
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Adds an instance, before [`SyncGroup::start`].
    pub fn add(&mut self, name: impl Into<String>, router: Router, tracking: Tracking) -> MemberId {
        self.members.push(Member { name: name.into(), router, tracking });
        self.members.len() - 1
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn router(&self, id: MemberId) -> &Router {
        &self.members[id].router
    }

    pub fn member_name(&self, id: MemberId) -> &str {
        &self.members[id].name
    }

    /// The member whose VRID is `vrid` (where the shell delivers an advertisement).
    pub fn member_of(&self, vrid: u8) -> Option<MemberId> {
        self.members.iter().position(|m| m.router.config().vrid == vrid)
    }

    /// The earliest deadline of any member.
    pub fn deadline(&self) -> Option<Millis> {
        self.members.iter().filter_map(|m| m.router.deadline()).min()
    }

    /// Starts every member with its tracking applied; if one becomes master (an owner), all do.
    pub fn start(&mut self, now: Millis) -> Vec<(MemberId, Action)> {
        let mut out = Vec::new();
        let fault = self.group_fault();
        for id in 0..self.members.len() {
            let effect = self.members[id].tracking.effect();
            let m = &mut self.members[id].router;
            let mut acts = m.set_priority(effect.priority, now);
            acts.extend(m.set_fault(effect.fault || fault, now));
            acts.extend(m.start(now));
            out.extend(acts.into_iter().map(|a| (id, a)));
        }
        if let Some(leader) = self.members.iter().position(|m| m.router.state() == State::Master) {
            self.follow(leader, State::Master, now, &mut out);
        }
        out
    }

    /// An advertisement for member `id`.
    pub fn receive(
        &mut self,
        id: MemberId,
        adv: &Advertisement,
        sender: IpAddr,
        now: Millis,
    ) -> Result<Vec<(MemberId, Action)>, Ignored> {
        let acts = self.members[id].router.receive(adv, sender, now)?;
        Ok(self.settle(id, acts, now))
    }

    /// Every member's timers.
    pub fn poll(&mut self, now: Millis) -> Vec<(MemberId, Action)> {
        let mut out = Vec::new();
        for id in 0..self.members.len() {
            let acts = self.members[id].router.poll(now);
            out.extend(self.settle(id, acts, now));
        }
        out
    }

    /// A tracked object went up or down: every member tracking it moves its priority, and the
    /// group goes to FAULT (or leaves it) as one.
    pub fn set_tracked(&mut self, key: &TrackKey, up: bool, now: Millis) -> Vec<(MemberId, Action)> {
        let mut out = Vec::new();
        let mut changed = false;
        for m in &mut self.members {
            changed |= m.tracking.set(key, up);
        }
        if !changed {
            return out;
        }
        let fault = self.group_fault();
        for id in 0..self.members.len() {
            let effect = self.members[id].tracking.effect();
            let r = &mut self.members[id].router;
            let mut acts = r.set_priority(effect.priority, now);
            acts.extend(r.set_fault(fault, now));
            out.extend(self.settle(id, acts, now));
        }
        out
    }

    /// Shuts every member down (masters send priority 0).
    pub fn shutdown(&mut self, now: Millis) -> Vec<(MemberId, Action)> {
        let mut out = Vec::new();
        for (id, m) in self.members.iter_mut().enumerate() {
            out.extend(m.router.shutdown(now).into_iter().map(|a| (id, a)));
        }
        out
    }

    /// Whether a member's tracking asks for FAULT (in a named group, FAULT for all).
    fn group_fault(&self) -> bool {
        self.members.iter().any(|m| m.tracking.effect().fault)
    }

    /// Passes on member `id`'s actions, and moves the others after a transition of its own.
    fn settle(&mut self, id: MemberId, acts: Vec<Action>, now: Millis) -> Vec<(MemberId, Action)> {
        let entered: Vec<State> =
            acts.iter().filter_map(|a| if let Action::Notify(s) = a { Some(*s) } else { None }).collect();
        let mut out: Vec<(MemberId, Action)> = acts.into_iter().map(|a| (id, a)).collect();
        for state in entered {
            self.follow(id, state, now, &mut out);
        }
        out
    }

    fn follow(&mut self, leader: MemberId, state: State, now: Millis, out: &mut Vec<(MemberId, Action)>) {
        for other in (0..self.members.len()).filter(|o| *o != leader) {
            let r = &mut self.members[other].router;
            let acts = match state {
                State::Master => r.force_master(now),
                State::Backup => r.force_backup(now),
                _ => Vec::new(),
            };
            out.extend(acts.into_iter().map(|a| (other, a)));
        }
    }
}
