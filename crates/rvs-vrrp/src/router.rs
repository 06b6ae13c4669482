//! One virtual router (RFC 5798 section 6.4): Initialize, Backup, Master, Fault and Stopped,
//! moved by method calls that take `now` (milliseconds since any epoch) and answer with the
//! [`Action`]s the shell must carry out; [`Router::deadline`] says when to call `poll` next.

use std::net::IpAddr;

use rvs_model::vrrp::{Announcements, Preempt, VrrpInstanceSpec, VrrpVersion};

use crate::packet::{Advertisement, Family};

/// Milliseconds since an epoch of the shell's choosing (rvs-dataplane's `Clock::now_ms`).
pub type Millis = u64;

/// What one virtual router is configured to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    pub vrid: u8,
    pub version: VrrpVersion,
    /// The configured priority (tracking moves the effective one, [`Router::set_priority`]).
    pub priority: u8,
    /// Advertisement_Interval in centiseconds (v2: a multiple of 100).
    pub advert_interval_cs: u16,
    pub preempt: Preempt,
    pub addresses: Vec<IpAddr>,
    /// This router's own primary address on the interface (or its unicast source): what its
    /// advertisements come from, and what breaks a tie of priorities.
    pub primary: IpAddr,
    pub announcements: Announcements,
}

impl RouterConfig {
    /// The router of a validated `[[vrrp]]` instance whose advertisements leave from `primary`.
    pub fn from_spec(spec: &VrrpInstanceSpec, primary: IpAddr) -> RouterConfig {
        RouterConfig {
            vrid: spec.vrid,
            version: spec.version,
            priority: spec.priority,
            advert_interval_cs: (spec.advert_interval_ms / 10).min(u32::from(u16::MAX)) as u16,
            preempt: spec.preempt,
            addresses: spec.virtual_addresses.clone(),
            primary: spec.unicast_source.unwrap_or(primary),
            announcements: spec.announcements,
        }
    }
}

/// The state of a virtual router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Built, not started.
    Initialize,
    Backup,
    Master,
    /// An interface or a tracked object with weight 0 is down: neither sending nor listening.
    Fault,
    /// Shut down.
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "init",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
            State::Stopped => "stop",
        }
    }
}

/// What the shell must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Encode and send this advertisement (multicast, or to each unicast peer).
    SendAdvertisement(Advertisement),
    /// Add the virtual addresses to the interface.
    AddAddresses,
    /// Remove them.
    RemoveAddresses,
    /// Announce the addresses: `repeat` gratuitous ARPs or unsolicited neighbour advertisements
    /// for each.
    Announce { repeat: u32 },
    /// The router entered this state (run its notify command, log it): once per transition.
    Notify(State),
}

/// Why an advertisement was not taken in (the shell may count these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("advertisement for another VRID")]
    Vrid,
    #[error("advertisement of another VRRP version")]
    Version,
    #[error("advertisement of another address family")]
    Family,
    #[error("version 2 advertisement with another interval")]
    Interval,
    #[error("our own advertisement")]
    Own,
    #[error("not listening in this state")]
    NotListening,
}

/// One virtual router instance.
#[derive(Debug, Clone)]
pub struct Router {
    config: RouterConfig,
    state: State,
    /// Effective priority (configured, moved by tracking).
    priority: u8,
    fault: bool,
    /// Master_Adver_Interval, centiseconds: learnt from the master in v3.
    master_adver_interval_cs: u16,
    adver_at: Option<Millis>,
    master_down_at: Option<Millis>,
    announce_at: Option<Millis>,
    /// When a split brain last made this master announce again (once per interval at most).
    reannounced_at: Option<Millis>,
    /// Preempt delay: until when a backup still defers to a master of lower priority.
    preempt_at: Option<Millis>,
    /// The master last heard (sender, priority), in Backup.
    master: Option<(IpAddr, u8)>,
    out: Vec<Action>,
}

impl Router {
    pub fn new(config: RouterConfig) -> Router {
        Router {
            priority: config.priority,
            master_adver_interval_cs: config.advert_interval_cs,
            config,
            state: State::Initialize,
            fault: false,
            adver_at: None,
            master_down_at: None,
            announce_at: None,
            reannounced_at: None,
            preempt_at: None,
            master: None,
            out: Vec::new(),
        }
    }

    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The effective priority (what advertisements carry).
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The master last heard while backup: its address and priority.
    pub fn master(&self) -> Option<(IpAddr, u8)> {
        self.master
    }

    /// Master_Adver_Interval in milliseconds.
    pub fn master_adver_interval_ms(&self) -> Millis {
        Millis::from(self.master_adver_interval_cs) * 10
    }

    /// Skew_Time in milliseconds: ((256 - Priority) * Master_Adver_Interval) / 256 in version 3
    /// (RFC 5798), (256 - Priority) / 256 seconds whatever the interval in version 2 (RFC 3768).
    pub fn skew_time_ms(&self) -> Millis {
        let unit = match self.config.version {
            VrrpVersion::V2 => 1000,
            VrrpVersion::V3 => self.master_adver_interval_ms(),
        };
        (256 - Millis::from(self.priority)) * unit / 256
    }

    /// Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time, in milliseconds.
    pub fn master_down_interval_ms(&self) -> Millis {
        3 * self.master_adver_interval_ms() + self.skew_time_ms()
    }

    /// When the shell must call [`Router::poll`] next, if ever.
    pub fn deadline(&self) -> Option<Millis> {
        [self.adver_at, self.master_down_at, self.announce_at].into_iter().flatten().min()
    }

    /// Startup: the address owner (priority 255) becomes master at once, any other backup.
    pub fn start(&mut self, now: Millis) -> Vec<Action> {
        if self.state == State::Initialize {
            self.master_adver_interval_cs = self.config.advert_interval_cs;
            self.enter_running(now);
        }
        self.take()
    }

    /// An advertisement that `decode` accepted, from `sender` (the IP source address).
    pub fn receive(&mut self, adv: &Advertisement, sender: IpAddr, now: Millis) -> Result<Vec<Action>, Ignored> {
        if adv.vrid != self.config.vrid {
            return Err(Ignored::Vrid);
        }
        if adv.version != self.config.version {
            return Err(Ignored::Version);
        }
        if Family::of(&sender) != Family::of(&self.config.primary) {
            return Err(Ignored::Family);
        }
        if sender == self.config.primary {
            return Err(Ignored::Own);
        }
        if adv.version == VrrpVersion::V2 && adv.interval_cs != self.config.advert_interval_cs {
            return Err(Ignored::Interval);
        }
        match self.state {
            State::Backup => self.backup_receives(adv, sender, now),
            State::Master => self.master_receives(adv, sender, now),
            State::Initialize | State::Fault | State::Stopped => return Err(Ignored::NotListening),
        }
        Ok(self.take())
    }

    /// Timers: the master's advertisement and announcements, the backup's Master_Down_Timer.
    pub fn poll(&mut self, now: Millis) -> Vec<Action> {
        match self.state {
            State::Master => {
                if self.adver_at.is_some_and(|t| t <= now) {
                    self.advertise(now);
                }
                if self.announce_at.is_some_and(|t| t <= now) {
                    self.out.push(Action::Announce { repeat: self.config.announcements.repeat });
                    self.announce_at = self.config.announcements.refresh_ms.map(|r| now + r);
                }
            }
            State::Backup => {
                if self.master_down_at.is_some_and(|t| t <= now) {
                    self.become_master(now);
                }
            }
            State::Initialize | State::Fault | State::Stopped => {}
        }
        self.take()
    }

    /// A new effective priority (from tracking); 0 is taken as 1 (0 means stopping on the wire).
    /// A master advertises the change at once.
    pub fn set_priority(&mut self, priority: u8, now: Millis) -> Vec<Action> {
        let priority = priority.max(1);
        if priority != self.priority {
            self.priority = priority;
            if self.state == State::Master {
                self.advertise(now);
            }
        }
        self.take()
    }

    /// Enters FAULT (`true`: an interface or a weight-0 tracked object is down) or leaves it.
    pub fn set_fault(&mut self, fault: bool, now: Millis) -> Vec<Action> {
        if fault != self.fault {
            self.fault = fault;
            match (fault, self.state) {
                (true, State::Master | State::Backup) => self.enter(State::Fault, now),
                (false, State::Fault) => {
                    self.master_adver_interval_cs = self.config.advert_interval_cs;
                    self.enter_running(now);
                }
                _ => {}
            }
        }
        self.take()
    }

    /// Shutdown: a master sends priority 0 (a backup takes over after its Skew_Time) and
    /// removes its addresses.
    pub fn shutdown(&mut self, now: Millis) -> Vec<Action> {
        match self.state {
            State::Initialize => self.state = State::Stopped,
            State::Stopped => {}
            _ => self.enter(State::Stopped, now),
        }
        self.take()
    }

    /// A sync group moves this backup to master with another member.
    pub(crate) fn force_master(&mut self, now: Millis) -> Vec<Action> {
        if self.state == State::Backup {
            self.become_master(now);
        }
        self.take()
    }

    /// A sync group moves this master to backup with another member.
    pub(crate) fn force_backup(&mut self, now: Millis) -> Vec<Action> {
        if self.state == State::Master {
            self.enter(State::Backup, now);
        }
        self.take()
    }

    fn take(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    fn advertisement(&self, priority: u8) -> Advertisement {
        Advertisement {
            version: self.config.version,
            vrid: self.config.vrid,
            priority,
            interval_cs: self.config.advert_interval_cs,
            addresses: self.config.addresses.clone(),
        }
    }

    /// Sends an advertisement now and resets the Adver_Timer.
    fn advertise(&mut self, now: Millis) {
        self.out.push(Action::SendAdvertisement(self.advertisement(self.priority)));
        self.adver_at = Some(now + Millis::from(self.config.advert_interval_cs) * 10);
    }

    fn announce(&mut self, now: Millis) {
        let a = self.config.announcements;
        self.out.push(Action::Announce { repeat: a.repeat });
        self.announce_at = a.delay_ms.or(a.refresh_ms).map(|d| now + d);
    }

    /// Out of Initialize or Fault: FAULT if it is due, the owner to master, others to backup.
    fn enter_running(&mut self, now: Millis) {
        if self.fault {
            self.enter(State::Fault, now);
        } else if self.priority == 255 {
            self.become_master(now);
        } else {
            self.enter(State::Backup, now);
        }
    }

    fn become_master(&mut self, now: Millis) {
        self.advertise(now);
        self.out.push(Action::AddAddresses);
        self.announce(now);
        self.master_down_at = None;
        self.master = None;
        self.preempt_at = None;
        self.state = State::Master;
        self.out.push(Action::Notify(State::Master));
    }

    /// Leaves the current state for Backup, Fault or Stopped.
    fn enter(&mut self, to: State, now: Millis) {
        if self.state == State::Master {
            if to != State::Backup {
                self.out.push(Action::SendAdvertisement(self.advertisement(0)));
            }
            self.out.push(Action::RemoveAddresses);
        }
        self.adver_at = None;
        self.announce_at = None;
        self.reannounced_at = None;
        self.master_down_at = (to == State::Backup).then(|| now + self.master_down_interval_ms());
        if to != State::Backup {
            self.master = None;
            self.preempt_at = None;
        }
        if self.state != to {
            self.state = to;
            self.out.push(Action::Notify(to));
        }
    }

    fn backup_receives(&mut self, adv: &Advertisement, sender: IpAddr, now: Millis) {
        if adv.priority == 0 {
            // The master is stopping: take over after Skew_Time.
            self.master_down_at = Some(now + self.skew_time_ms());
            self.master = None;
            return;
        }
        let lower = adv.priority < self.priority;
        let defer = match self.config.preempt {
            Preempt::No => true,
            Preempt::Yes { .. } if !lower => true,
            Preempt::Yes { delay_ms: 0 } => false,
            Preempt::Yes { delay_ms } => now < *self.preempt_at.get_or_insert(now + delay_ms),
        };
        if !lower {
            self.preempt_at = None;
        }
        if defer {
            if self.config.version == VrrpVersion::V3 {
                self.master_adver_interval_cs = adv.interval_cs;
            }
            self.master_down_at = Some(now + self.master_down_interval_ms());
            self.master = Some((sender, adv.priority));
        }
        // Otherwise preempting: the advertisement is discarded and Master_Down_Timer runs out.
    }

    fn master_receives(&mut self, adv: &Advertisement, sender: IpAddr, now: Millis) {
        if adv.priority == 0 {
            self.advertise(now);
            return;
        }
        let higher = adv.priority > self.priority || (adv.priority == self.priority && sender > self.config.primary);
        if higher {
            if self.config.version == VrrpVersion::V3 {
                self.master_adver_interval_cs = adv.interval_cs;
            }
            // One parting advertisement, so that the winner of a split brain hears of it and
            // announces its addresses again even when its advertisement arrived first.
            self.out.push(Action::SendAdvertisement(self.advertisement(self.priority)));
            self.enter(State::Backup, now);
            self.master = Some((sender, adv.priority));
        } else {
            // Another master of lower priority: a split brain heals. Assert mastership now and
            // announce the addresses again (the other master announced them too).
            self.advertise(now);
            let interval = Millis::from(self.config.advert_interval_cs) * 10;
            if self.reannounced_at.is_none_or(|t| now >= t + interval) {
                self.reannounced_at = Some(now);
                self.out.push(Action::Announce { repeat: self.config.announcements.repeat });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(version: VrrpVersion, priority: u8, interval_cs: u16) -> RouterConfig {
        RouterConfig {
            vrid: 1,
            version,
            priority,
            advert_interval_cs: interval_cs,
            preempt: Preempt::default(),
            addresses: vec![IpAddr::from([198, 18, 1, 1])],
            primary: IpAddr::from([198, 18, 0, 1]),
            announcements: Announcements { repeat: 2, delay_ms: None, refresh_ms: Some(10_000) },
        }
    }

    fn notifies(acts: &[Action]) -> Vec<State> {
        acts.iter().filter_map(|a| if let Action::Notify(s) = a { Some(*s) } else { None }).collect()
    }

    #[test]
    fn timers_follow_each_versions_formula() {
        // Version 3: 3 * 250 + (256 - 200) * 250 / 256 = 750 + 54.6875.
        let r = Router::new(config(VrrpVersion::V3, 200, 25));
        assert_eq!((r.skew_time_ms(), r.master_down_interval_ms()), (54, 804));
        // Version 2: the skew is (256 - 200) / 256 s whatever the interval: 218.75 ms.
        let r = Router::new(config(VrrpVersion::V2, 200, 300));
        assert_eq!((r.skew_time_ms(), r.master_down_interval_ms()), (218, 9218));
    }

    #[test]
    fn fault_takes_a_master_down_with_priority_0_and_back_through_backup() {
        let mut r = Router::new(config(VrrpVersion::V3, 100, 100));
        r.start(0);
        let acts = r.poll(r.deadline().unwrap());
        assert_eq!(notifies(&acts), [State::Master]);
        let acts = r.set_fault(true, 5000);
        assert!(matches!(&acts[0], Action::SendAdvertisement(a) if a.priority == 0));
        assert_eq!(acts[1..], [Action::RemoveAddresses, Action::Notify(State::Fault)]);
        assert_eq!(r.deadline(), None, "no timers in FAULT");
        let adv = Advertisement { priority: 200, ..r.advertisement(200) };
        assert_eq!(r.receive(&adv, IpAddr::from([198, 18, 0, 2]), 5100), Err(Ignored::NotListening));
        assert!(r.set_fault(true, 5200).is_empty(), "once per transition");
        assert_eq!(r.set_fault(false, 6000), [Action::Notify(State::Backup)]);
        assert_eq!(r.deadline(), Some(6000 + r.master_down_interval_ms()));
    }

    #[test]
    fn the_owner_leaves_fault_straight_for_master_and_refreshes_announcements() {
        let mut r = Router::new(config(VrrpVersion::V3, 255, 100));
        r.set_fault(true, 0);
        assert_eq!(notifies(&r.start(0)), [State::Fault], "a fault known at start is entered at once");
        let acts = r.set_fault(false, 100);
        assert_eq!(notifies(&acts), [State::Master]);
        assert!(acts.contains(&Action::Announce { repeat: 2 }));
        let acts = r.poll(10_100);
        assert!(acts.contains(&Action::Announce { repeat: 2 }), "refreshed every 10 s: {acts:?}");
    }

    #[test]
    fn a_master_advertises_a_new_priority_at_once() {
        let mut r = Router::new(config(VrrpVersion::V3, 255, 100));
        r.start(0);
        let acts = r.set_priority(90, 420);
        assert!(matches!(&acts[..], [Action::SendAdvertisement(a)] if a.priority == 90), "{acts:?}");
        assert_eq!(r.deadline(), Some(1420));
        assert!(r.set_priority(90, 500).is_empty());
        assert_eq!(r.set_priority(0, 600).len(), 1, "0 is taken as 1");
        assert_eq!(r.priority(), 1);
    }

    #[test]
    fn a_router_never_started_stops_silently() {
        let mut r = Router::new(config(VrrpVersion::V3, 100, 100));
        assert!(r.shutdown(0).is_empty());
        assert_eq!(r.state(), State::Stopped);
        assert!(r.start(10).is_empty(), "a stopped router does not start again");
    }
}
