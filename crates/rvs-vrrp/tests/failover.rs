//! Virtual routers wired together in simulated time: every advertisement goes through the
//! codec to the other directors, timers run to the millisecond, directors die, come back,
//! are cut off from each other, track interfaces and move in sync groups. No sleeps.

use std::collections::{BTreeSet, VecDeque};
use std::net::IpAddr;

use rvs_model::vrrp::{Announcements, Preempt, VrrpVersion};
use rvs_vrrp::packet::{decode, encode, Family, MULTICAST_V4};
use rvs_vrrp::{Action, MemberId, Millis, Router, RouterConfig, State, SyncGroup, TrackKey, Tracking};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// RFC 5798's Master_Down_Interval, written out again here: 3 * interval + (256 - p) * interval / 256.
fn mdi(priority: u64, interval_ms: u64) -> u64 {
    3 * interval_ms + skew(priority, interval_ms)
}

fn skew(priority: u64, interval_ms: u64) -> u64 {
    (256 - priority) * interval_ms / 256
}

#[derive(Clone, Copy)]
struct Spec {
    vrid: u8,
    priority: u8,
    interval_ms: u16,
    preempt: Preempt,
    version: VrrpVersion,
}

fn spec(vrid: u8, priority: u8) -> Spec {
    Spec { vrid, priority, interval_ms: 1000, preempt: Preempt::default(), version: VrrpVersion::V3 }
}

fn router(s: Spec, primary: IpAddr) -> Router {
    Router::new(RouterConfig {
        vrid: s.vrid,
        version: s.version,
        priority: s.priority,
        advert_interval_cs: s.interval_ms / 10,
        preempt: s.preempt,
        addresses: vec![IpAddr::from([198, 18, 1, s.vrid])],
        primary,
        announcements: Announcements { repeat: 3, delay_ms: Some(5000), refresh_ms: None },
    })
}

/// A director: a sync group (or a lone instance) on one address.
struct Node {
    group: SyncGroup,
    addr: IpAddr,
    alive: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Event {
    at: Millis,
    node: usize,
    member: MemberId,
    action: Action,
}

#[derive(Default)]
struct Net {
    nodes: Vec<Node>,
    specs: Vec<Vec<Spec>>,
    now: Millis,
    log: Vec<Event>,
    /// (from, to) pairs whose advertisements are lost.
    blocked: BTreeSet<(usize, usize)>,
}

impl Net {
    /// A director with these instances; a sync group when there are several.
    fn add(&mut self, specs: &[Spec]) -> usize {
        let n = self.nodes.len();
        let addr = IpAddr::from([198, 18, 0, n as u8 + 1]);
        self.nodes.push(Node { group: Self::group(specs, addr, |s| Tracking::new(s.priority)), addr, alive: false });
        self.specs.push(specs.to_vec());
        n
    }

    fn group(specs: &[Spec], addr: IpAddr, tracking: impl Fn(&Spec) -> Tracking) -> SyncGroup {
        let mut g = SyncGroup::new((specs.len() > 1).then(|| "G".to_string()));
        for (i, s) in specs.iter().enumerate() {
            g.add(format!("VI_{i}"), router(*s, addr), tracking(s));
        }
        g
    }

    fn start(&mut self, n: usize) {
        self.nodes[n].alive = true;
        let acts = self.nodes[n].group.start(self.now);
        self.carry_out(n, acts);
    }

    /// SIGKILL: nothing more is sent, received or timed.
    fn kill(&mut self, n: usize) {
        self.nodes[n].alive = false;
    }

    /// A restart: a fresh group, started now.
    fn restart(&mut self, n: usize) {
        let specs = self.specs[n].clone();
        let addr = self.nodes[n].addr;
        self.nodes[n].group = Self::group(&specs, addr, |s| Tracking::new(s.priority));
        self.start(n);
    }

    fn with(&mut self, n: usize, f: impl FnOnce(&mut SyncGroup, Millis) -> Vec<(MemberId, Action)>) {
        let now = self.now;
        let acts = f(&mut self.nodes[n].group, now);
        self.carry_out(n, acts);
    }

    fn carry_out(&mut self, n: usize, acts: Vec<(MemberId, Action)>) {
        let mut queue: VecDeque<(usize, MemberId, Action)> = acts.into_iter().map(|(m, a)| (n, m, a)).collect();
        while let Some((from, member, action)) = queue.pop_front() {
            self.log.push(Event { at: self.now, node: from, member, action: action.clone() });
            let Action::SendAdvertisement(adv) = action else { continue };
            let src = self.nodes[from].addr;
            let bytes = encode(&adv, src, IpAddr::V4(MULTICAST_V4)).unwrap();
            for to in 0..self.nodes.len() {
                if to == from || !self.nodes[to].alive || self.blocked.contains(&(from, to)) {
                    continue;
                }
                let got = decode(&bytes, Family::V4, src, IpAddr::V4(MULTICAST_V4), 255).unwrap();
                let g = &mut self.nodes[to].group;
                let Some(m) = g.member_of(got.vrid) else { continue };
                if let Ok(acts) = g.receive(m, &got, src, self.now) {
                    queue.extend(acts.into_iter().map(|(m, a)| (to, m, a)));
                }
            }
        }
    }

    /// Runs every timer due up to `until`, in order.
    fn run_until(&mut self, until: Millis) {
        loop {
            let next = self.nodes.iter().filter(|n| n.alive).filter_map(|n| n.group.deadline()).min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    for n in 0..self.nodes.len() {
                        if self.nodes[n].alive && self.nodes[n].group.deadline().is_some_and(|d| d <= self.now) {
                            let now = self.now;
                            let acts = self.nodes[n].group.poll(now);
                            self.carry_out(n, acts);
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn state(&self, n: usize, m: MemberId) -> State {
        self.nodes[n].group.router(m).state()
    }

    /// The transitions of one instance, with their times.
    fn notifies(&self, n: usize, m: MemberId) -> Vec<(Millis, State)> {
        self.log
            .iter()
            .filter(|e| e.node == n && e.member == m)
            .filter_map(|e| if let Action::Notify(s) = e.action { Some((e.at, s)) } else { None })
            .collect()
    }

    /// When the instance last entered `state`.
    fn entered(&self, n: usize, m: MemberId, state: State) -> Option<Millis> {
        self.notifies(n, m).into_iter().rev().find(|(_, s)| *s == state).map(|(t, _)| t)
    }

    /// Times the instance sent an advertisement, with its priority.
    fn adverts(&self, n: usize, m: MemberId) -> Vec<(Millis, u8)> {
        self.log
            .iter()
            .filter(|e| e.node == n && e.member == m)
            .filter_map(|e| if let Action::SendAdvertisement(a) = &e.action { Some((e.at, a.priority)) } else { None })
            .collect()
    }

    fn actions_at(&self, n: usize, m: MemberId, at: Millis) -> Vec<Action> {
        self.log.iter().filter(|e| e.node == n && e.member == m && e.at == at).map(|e| e.action.clone()).collect()
    }

    fn masters(&self, m: MemberId) -> usize {
        (0..self.nodes.len()).filter(|n| self.nodes[*n].alive && self.state(*n, m) == State::Master).count()
    }
}

/// A (priority 150) and B (priority 100) on VRID 1, 1 s advertisements, started together.
fn pair() -> (Net, usize, usize) {
    let mut net = Net::default();
    let a = net.add(&[spec(1, 150)]);
    let b = net.add(&[spec(1, 100)]);
    net.start(a);
    net.start(b);
    (net, a, b)
}

#[test]
fn the_address_owner_is_master_at_once_and_others_start_as_backup() {
    let mut net = Net::default();
    let owner = net.add(&[spec(1, 255)]);
    let other = net.add(&[spec(1, 100)]);
    net.now = 42;
    net.start(owner);
    net.start(other);
    assert_eq!(net.notifies(owner, 0), vec![(42, State::Master)]);
    assert_eq!(
        net.actions_at(owner, 0, 42)[1..],
        [Action::AddAddresses, Action::Announce { repeat: 3 }, Action::Notify(State::Master)]
    );
    assert_eq!(net.notifies(other, 0), vec![(42, State::Backup)]);
    net.run_until(60_000);
    assert_eq!(net.notifies(other, 0), vec![(42, State::Backup)], "the owner's adverts hold it in backup");
}

#[test]
fn the_backup_takes_over_master_down_interval_after_the_last_advertisement() {
    let (mut net, a, b) = pair();
    net.run_until(10_000);
    // A's own Master_Down_Timer ran out first: no master was heard.
    assert_eq!(net.entered(a, 0, State::Master), Some(mdi(150, 1000)));
    assert_eq!(net.state(b, 0), State::Backup);
    net.kill(a);
    let last = net.adverts(a, 0).last().unwrap().0;
    net.run_until(30_000);
    let took_over = net.entered(b, 0, State::Master).unwrap();
    assert_eq!(took_over, last + mdi(100, 1000), "3609 ms after A's last advertisement");
    assert_eq!(mdi(100, 1000), 3609);
    assert_eq!(
        net.actions_at(b, 0, took_over),
        vec![
            Action::SendAdvertisement(rvs_vrrp::Advertisement {
                version: VrrpVersion::V3,
                vrid: 1,
                priority: 100,
                interval_cs: 100,
                addresses: vec![ip("198.18.1.1")],
            }),
            Action::AddAddresses,
            Action::Announce { repeat: 3 },
            Action::Notify(State::Master),
        ]
    );
    // The second burst of announcements comes 5 s later.
    assert!(net.actions_at(b, 0, took_over + 5000).contains(&Action::Announce { repeat: 3 }));
    assert!(!net.actions_at(b, 0, took_over + 10_000).contains(&Action::Announce { repeat: 3 }), "no refresh set");
    assert_eq!(net.notifies(b, 0), vec![(0, State::Backup), (took_over, State::Master)], "each transition once");
}

#[test]
fn a_returning_master_of_higher_priority_preempts() {
    let (mut net, a, b) = pair();
    net.run_until(5_000);
    net.kill(a);
    net.run_until(20_000);
    assert_eq!(net.state(b, 0), State::Master);
    net.restart(a);
    net.run_until(40_000);
    // A discards B's lower advertisements and its Master_Down_Timer runs out.
    let back = net.entered(a, 0, State::Master).unwrap();
    assert_eq!(back, 20_000 + mdi(150, 1000));
    assert_eq!(net.entered(b, 0, State::Backup), Some(back), "B yields on A's first advertisement");
    assert!(net.actions_at(b, 0, back).contains(&Action::RemoveAddresses));
    assert_eq!(net.masters(0), 1);
    let states: Vec<State> = net.notifies(b, 0).into_iter().map(|(_, s)| s).collect();
    assert_eq!(states, [State::Backup, State::Master, State::Backup]);
}

#[test]
fn without_preemption_the_running_master_stays() {
    let mut net = Net::default();
    let a = net.add(&[Spec { preempt: Preempt::No, ..spec(1, 150) }]);
    let b = net.add(&[spec(1, 100)]);
    net.start(b);
    net.run_until(10_000);
    assert_eq!(net.state(b, 0), State::Master);
    net.start(a);
    net.run_until(120_000);
    assert_eq!((net.state(a, 0), net.state(b, 0)), (State::Backup, State::Master));
    assert_eq!(net.nodes[a].group.router(0).master(), Some((ip("198.18.0.2"), 100)));
    // Until the master dies.
    net.kill(b);
    let last = net.adverts(b, 0).last().unwrap().0;
    net.run_until(130_000);
    assert_eq!(net.entered(a, 0, State::Master), Some(last + mdi(150, 1000)));
}

#[test]
fn preempt_delay_defers_the_takeover() {
    let mut net = Net::default();
    let a = net.add(&[Spec { preempt: Preempt::Yes { delay_ms: 5000 }, ..spec(1, 150) }]);
    let b = net.add(&[spec(1, 100)]);
    net.start(b);
    net.run_until(10_000);
    net.start(a);
    net.run_until(60_000);
    let b_adverts: Vec<Millis> = net.adverts(b, 0).into_iter().map(|(t, _)| t).filter(|t| *t >= 10_000).collect();
    // The delay runs from the first advertisement of the lower master; those before it end
    // are still taken (they reset the timer), the first after it is not.
    let first = b_adverts[0];
    let last_taken = *b_adverts.iter().rfind(|t| **t < first + 5000).unwrap();
    let took_over = net.entered(a, 0, State::Master).unwrap();
    assert_eq!(took_over, last_taken + mdi(150, 1000));
    assert!(took_over > 10_000 + mdi(150, 1000), "later than without a delay");
    assert_eq!(net.masters(0), 1);
}

#[test]
fn a_master_that_stops_sends_priority_0_and_the_backup_takes_over_after_skew_time() {
    let (mut net, a, b) = pair();
    net.run_until(7_777);
    net.with(a, |g, now| g.shutdown(now));
    let stop = net.actions_at(a, 0, 7_777);
    assert!(matches!(&stop[0], Action::SendAdvertisement(ad) if ad.priority == 0), "{stop:?}");
    assert_eq!(stop[1..], [Action::RemoveAddresses, Action::Notify(State::Stopped)]);
    net.kill(a);
    net.run_until(20_000);
    assert_eq!(net.entered(b, 0, State::Master), Some(7_777 + skew(100, 1000)));
    assert_eq!(skew(100, 1000), 609);
}

#[test]
fn a_split_brain_settles_within_one_interval_and_the_survivor_announces_again() {
    // Healing at several phases makes either master's advertisement the first to cross.
    let mut firsts = BTreeSet::new();
    for heal_offset in (0..1000).step_by(125) {
        let (mut net, a, b) = pair();
        net.run_until(10_000);
        net.blocked.extend([(a, b), (b, a)]);
        net.run_until(30_000);
        assert_eq!(net.masters(0), 2, "both are master while cut off");
        let heal = 30_000 + heal_offset;
        net.run_until(heal);
        net.blocked.clear();
        net.run_until(heal + 1000);
        assert_eq!((net.state(a, 0), net.state(b, 0)), (State::Master, State::Backup));
        let yielded = net.entered(b, 0, State::Backup).unwrap();
        assert!(yielded > heal && yielded <= heal + 1000, "settled within one interval: {yielded}");
        let first = net.log.iter().find(|e| e.at > heal && matches!(e.action, Action::SendAdvertisement(_))).unwrap();
        firsts.insert(first.node);
        // A announced its addresses again when it heard B, at the latest when B yielded.
        let reannounced: Vec<Millis> = net
            .log
            .iter()
            .filter(|e| e.node == a && e.at > heal && e.action == Action::Announce { repeat: 3 })
            .map(|e| e.at)
            .collect();
        assert_eq!(reannounced, vec![yielded], "heal at {heal}");
        net.run_until(heal + 20_000);
        assert_eq!(net.notifies(b, 0).last(), Some(&(yielded, State::Backup)), "and it stays settled");
    }
    assert_eq!(firsts.len(), 2, "both orders were tried");
}

#[test]
fn a_version_3_backup_learns_the_masters_interval() {
    let mut net = Net::default();
    let a = net.add(&[Spec { interval_ms: 100, ..spec(1, 200) }]);
    let b = net.add(&[spec(1, 100)]);
    net.start(a);
    net.start(b);
    net.run_until(5_000);
    assert_eq!(net.nodes[b].group.router(0).master_adver_interval_ms(), 100);
    net.kill(a);
    let last = net.adverts(a, 0).last().unwrap().0;
    net.run_until(10_000);
    // Under 1 s: 3 * 100 + 156 * 100 / 256 = 360 ms.
    assert_eq!(net.entered(b, 0, State::Master), Some(last + mdi(100, 100)));
}

#[test]
fn version_2_routers_fail_over_and_ignore_another_interval() {
    let v2 = |prio| Spec { version: VrrpVersion::V2, ..spec(9, prio) };
    let mut net = Net::default();
    let a = net.add(&[v2(150)]);
    let b = net.add(&[v2(100)]);
    net.start(a);
    net.start(b);
    net.run_until(10_000);
    assert_eq!(net.state(a, 0), State::Master);
    net.kill(a);
    let last = net.adverts(a, 0).last().unwrap().0;
    net.run_until(20_000);
    assert_eq!(net.entered(b, 0, State::Master), Some(last + mdi(100, 1000)));

    let mut r = router(Spec { interval_ms: 2000, ..v2(100) }, ip("198.18.0.9"));
    r.start(0);
    let adv = rvs_vrrp::Advertisement {
        version: VrrpVersion::V2,
        vrid: 9,
        priority: 200,
        interval_cs: 100,
        addresses: vec![ip("198.18.1.9")],
    };
    assert_eq!(r.receive(&adv, ip("198.18.0.1"), 10), Err(rvs_vrrp::Ignored::Interval));
    assert_eq!(r.receive(&adv, ip("198.18.0.9"), 10), Err(rvs_vrrp::Ignored::Own));
    let v3 = rvs_vrrp::Advertisement { version: VrrpVersion::V3, ..adv };
    assert_eq!(r.receive(&v3, ip("198.18.0.1"), 10), Err(rvs_vrrp::Ignored::Version));
}

#[test]
fn a_tracked_interface_going_down_lowers_the_priority_and_moves_the_master() {
    let mut net = Net::default();
    let eth1 = TrackKey::Interface("eth1".into());
    let a = net.add(&[spec(1, 100)]);
    let b = net.add(&[spec(1, 80)]);
    // A tracks eth1 with weight -30 and a service's quorum with +10 (110 while both are up).
    let svc = TrackKey::Service(rvs_core::ServiceAddr::tcp("198.18.1.1:80".parse().unwrap()));
    let addr = net.nodes[a].addr;
    net.nodes[a].group = Net::group(&[spec(1, 100)], addr, |s| {
        Tracking::new(s.priority).track(eth1.clone(), -30).track(svc.clone(), 10)
    });
    net.start(a);
    net.start(b);
    net.run_until(10_000);
    assert_eq!(net.adverts(a, 0).last().unwrap().1, 110);
    net.run_until(10_500);
    net.with(a, |g, now| g.set_tracked(&eth1, false, now));
    // The master says so at once: 100 + 10 - 30 = 80 (a tie with B, whose address is higher
    // but which does not preempt a tie), then 70 when the service loses its quorum too.
    assert_eq!(net.adverts(a, 0).last(), Some(&(10_500, 80)));
    net.with(a, |g, now| g.set_tracked(&svc, false, now));
    assert_eq!(net.adverts(a, 0).last(), Some(&(10_500, 70)));
    let last_taken = net.adverts(a, 0).iter().rev().find(|(_, p)| *p == 80).unwrap().0;
    net.run_until(20_000);
    // B (80) preempts A (70): it discards the lower advertisements and its timer runs out.
    assert_eq!(net.entered(b, 0, State::Master), Some(last_taken + mdi(80, 1000)));
    assert_eq!(net.state(a, 0), State::Backup);
}

#[test]
fn a_sync_group_goes_to_fault_together_and_its_peers_follow_each_other_to_master() {
    let mut net = Net::default();
    let a = net.add(&[spec(1, 150), spec(2, 150)]);
    // B's second instance has a lower priority: alone, it would take over later.
    let b = net.add(&[spec(1, 100), spec(2, 50)]);
    let eth0 = TrackKey::Interface("eth0".into());
    let addr = net.nodes[a].addr;
    net.nodes[a].group = Net::group(&net.specs[a].clone(), addr, |s| {
        let t = Tracking::new(s.priority);
        if s.vrid == 1 {
            t.track(eth0.clone(), 0)
        } else {
            t
        }
    });
    net.start(a);
    net.start(b);
    net.run_until(10_000);
    assert_eq!([net.state(a, 0), net.state(a, 1)], [State::Master, State::Master]);
    assert_eq!(net.entered(a, 0, State::Master), net.entered(a, 1, State::Master), "the first took the second along");

    // eth0 (tracked by VRID 1 only, weight 0) goes down: both of A's instances go to FAULT,
    // each sending priority 0, and B's take over after their Skew_Time... together.
    net.with(a, |g, now| g.set_tracked(&eth0, false, now));
    assert_eq!([net.state(a, 0), net.state(a, 1)], [State::Fault, State::Fault]);
    assert_eq!(net.adverts(a, 1).last(), Some(&(10_000, 0)));
    net.run_until(15_000);
    assert_eq!(net.entered(b, 0, State::Master), Some(10_000 + skew(100, 1000)));
    assert_eq!(net.entered(b, 1, State::Master), Some(10_000 + skew(100, 1000)), "not at its own skew");
    assert!(skew(50, 1000) > skew(100, 1000));

    // The interface comes back: both leave FAULT for backup, and preempt as one.
    net.with(a, |g, now| g.set_tracked(&eth0, true, now));
    assert_eq!(net.notifies(a, 1).last(), Some(&(15_000, State::Backup)));
    net.run_until(30_000);
    assert_eq!([net.state(b, 0), net.state(b, 1)], [State::Backup, State::Backup]);
    let s: Vec<State> = net.notifies(a, 1).into_iter().map(|(_, s)| s).collect();
    assert_eq!(s, [State::Backup, State::Master, State::Fault, State::Backup, State::Master]);

    // A dies: B's first instance takes over at its Master_Down_Interval, and its second with it.
    net.kill(a);
    let last = net.adverts(a, 0).last().unwrap().0;
    net.run_until(40_000);
    assert_eq!(net.entered(b, 0, State::Master), Some(last + mdi(100, 1000)));
    assert_eq!(net.entered(b, 1, State::Master), Some(last + mdi(100, 1000)));
}
