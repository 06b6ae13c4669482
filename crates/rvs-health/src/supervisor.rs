//! The health supervisor: one tokio task per target (real server) running its check on its
//! timing, with a random warm-up, feeding its [`CheckState`], and sending a [`HealthEvent`] for
//! each transition. Targets are added, replaced and removed at run time (a reload keeps the
//! unchanged ones running with their state); passive failures are fed in without waiting; every
//! target's state can be listed.
//!
//! A target may be checked through its VIP ([`Target::with_via`]); the path is part of what
//! a reload compares.
//!
//! Exactly once: a target's task sends a transition's event and publishes the state it leads to
//! in one step, under the lock that stopping the task takes. A target restarted on reload
//! resumes from the last published state, so no transition is lost or sent twice.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use std::convert::Infallible;

use crate::check::{Check, Endpoint, PrepareError};
use crate::jitter::XorShift;
use crate::result::CheckResult;
use crate::state::{CheckState, Transition};
use crate::timing::{Timing, TimingError};
use rvs_model::health::ViaVip;

/// How many events may wait for rvsd before a target's task waits for room.
pub const EVENT_QUEUE: usize = 1024;

/// What identifies a target: any cloneable, hashable key ([`RealServerKey`] fits).
pub trait TargetKey: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static {}

impl<T: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static> TargetKey for T {}

/// A real server in a virtual service, the usual target key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RealServerKey {
    /// The virtual service, as rvsd names it (e.g. `TCP 10.0.0.1:80`).
    pub service: String,
    pub server: SocketAddr,
}

impl fmt::Display for RealServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.service, self.server)
    }
}

/// Something to check: a key, the real server's address, the check and its timing.
#[derive(Debug, Clone)]
pub struct Target<K> {
    id: K,
    addr: SocketAddr,
    check: Check,
    timing: Timing,
    prior_state: Option<CheckState>,
    via: Option<ViaVip>,
}

/// A target that cannot be made: its timing is wrong, or its check cannot be prepared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Timing(#[from] TimingError),
    #[error(transparent)]
    Check(#[from] PrepareError),
}

impl From<Infallible> for TargetError {
    fn from(never: Infallible) -> Self {
        match never {}
    }
}

impl<K> Target<K> {
    /// Validates the timing, and prepares the check when given its spec (a [`Check`] is taken as
    /// it is; a [`rvs_model::health::CheckDef`] is prepared with [`Check::prepare`]).
    pub fn new<C>(id: K, addr: SocketAddr, check: C, timing: Timing) -> Result<Self, TargetError>
    where
        C: TryInto<Check>,
        TargetError: From<C::Error>,
    {
        timing.validate()?;
        let check = check.try_into()?;
        Ok(Self { id, addr, check, timing, prior_state: None, via: None })
    }

    /// Start from this state instead of a fresh one (or, on replace, instead of the running
    /// target's state).
    pub fn with_prior_state(mut self, state: CheckState) -> Self {
        self.prior_state = Some(state);
        self
    }

    /// Check it through its VIP on this path (the packet engine's, for a gate or tunnel real
    /// server) unless its check says otherwise (see [`Check::endpoint_via`]).
    pub fn with_via(mut self, via: Option<ViaVip>) -> Self {
        self.via = via;
        self
    }

    pub fn id(&self) -> &K {
        &self.id
    }

    pub fn via(&self) -> Option<&ViaVip> {
        self.via.as_ref()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn check(&self) -> &Check {
        &self.check
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }
}

/// What produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An active check.
    Check,
    /// Passive failures fed by the data plane.
    Passive,
}

/// A transition of one target, with the result that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent<K> {
    pub id: K,
    pub addr: SocketAddr,
    pub transition: Transition,
    /// The deciding check result (for passive failures: a down result with their reason).
    pub result: CheckResult,
    pub source: Source,
}

/// A target as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSnapshot<K> {
    pub id: K,
    pub addr: SocketAddr,
    /// Displays as `HTTP GET /health`, `TCP`, ...
    pub check: Check,
    pub timing: Timing,
    pub state: CheckState,
    /// Where the check connects (through the VIP or not).
    pub endpoint: Endpoint,
}

/// What [`HealthSupervisor::replace`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It was new: started.
    Added,
    /// Same address, check and timing: left running as it was.
    Kept,
    /// Changed: restarted, carrying its state over.
    Restarted,
}

/// What [`HealthSupervisor::reconcile`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled<K> {
    pub added: Vec<K>,
    pub restarted: Vec<K>,
    pub removed: Vec<K>,
    pub kept: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    #[error("target {0} is already supervised")]
    Duplicate(String),
}

/// What a target's task shares with the handle.
struct Shared {
    published: Mutex<Published>,
    passive: AtomicU32,
    passive_reason: Mutex<String>,
    wake: Notify,
}

struct Published {
    state: CheckState,
    stopped: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Entry {
    addr: SocketAddr,
    via: Option<ViaVip>,
    check: Arc<Check>,
    timing: Timing,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Entry {
    /// Stops the task; returns the last published state.
    fn stop(self) -> CheckState {
        let state = {
            let mut p = lock(&self.shared.published);
            p.stopped = true;
            p.state.clone()
        };
        self.task.abort();
        state
    }

    fn runs(&self, t: &Target<impl TargetKey>) -> bool {
        self.addr == t.addr && self.via == t.via && *self.check == t.check && self.timing == t.timing
    }
}

struct Inner<K> {
    targets: Mutex<HashMap<K, Entry>>,
    events: mpsc::Sender<HealthEvent<K>>,
    runtime: tokio::runtime::Handle,
}

impl<K> Drop for Inner<K> {
    fn drop(&mut self) {
        for (_, e) in lock(&self.targets).drain() {
            e.task.abort();
        }
    }
}

/// Runs the checks of many targets. Cloning shares them; when the last handle is dropped
/// (or on [`HealthSupervisor::shutdown`]) every task stops.
pub struct HealthSupervisor<K: TargetKey> {
    inner: Arc<Inner<K>>,
}

impl<K: TargetKey> Clone for HealthSupervisor<K> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<K: TargetKey> fmt::Debug for HealthSupervisor<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthSupervisor").field("targets", &self.len()).finish()
    }
}

impl<K: TargetKey> HealthSupervisor<K> {
    /// Starts checking `targets` (a later duplicate key replaces an earlier one) on the
    /// current tokio runtime. Events come on the receiver, in order per target.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn spawn(targets: Vec<Target<K>>) -> (Self, mpsc::Receiver<HealthEvent<K>>) {
        let (events, rx) = mpsc::channel(EVENT_QUEUE);
        let inner = Inner { targets: Mutex::new(HashMap::new()), events, runtime: tokio::runtime::Handle::current() };
        let sup = Self { inner: Arc::new(inner) };
        for t in targets {
            sup.replace(t);
        }
        (sup, rx)
    }

    /// Starts a new target; fails if its key is taken.
    pub fn add(&self, mut target: Target<K>) -> Result<(), SupervisorError> {
        let mut map = lock(&self.inner.targets);
        if map.contains_key(&target.id) {
            return Err(SupervisorError::Duplicate(format!("{:?}", target.id)));
        }
        let state = initial_state(target.prior_state.take(), &target.timing);
        let id = target.id.clone();
        map.insert(id, self.start(target, state));
        Ok(())
    }

    /// Adds `target`, or updates the one with its key: left running when its address, check
    /// and timing are unchanged (and no prior state is given); otherwise restarted from the
    /// given prior state or the running one's state.
    pub fn replace(&self, mut target: Target<K>) -> Applied {
        let mut map = lock(&self.inner.targets);
        let prior = target.prior_state.take();
        match map.remove(&target.id) {
            Some(entry) if prior.is_none() && entry.runs(&target) => {
                map.insert(target.id.clone(), entry);
                Applied::Kept
            }
            Some(entry) => {
                let running = entry.stop();
                let state = CheckState::resume(prior.unwrap_or(running), &target.timing);
                let id = target.id.clone();
                map.insert(id, self.start(target, state));
                Applied::Restarted
            }
            None => {
                let state = initial_state(prior, &target.timing);
                let id = target.id.clone();
                map.insert(id, self.start(target, state));
                Applied::Added
            }
        }
    }

    /// Stops checking `id`; returns its last state.
    pub fn remove(&self, id: &K) -> Option<CheckState> {
        let entry = lock(&self.inner.targets).remove(id)?;
        Some(entry.stop())
    }

    /// Makes the supervised targets exactly `targets` (a reload): new ones start, changed ones
    /// restart with their state, unchanged ones keep running, missing ones stop.
    pub fn reconcile(&self, targets: Vec<Target<K>>) -> Reconciled<K> {
        let wanted: HashMap<K, Target<K>> = targets.into_iter().map(|t| (t.id.clone(), t)).collect();
        let gone: Vec<K> = lock(&self.inner.targets).keys().filter(|k| !wanted.contains_key(k)).cloned().collect();
        let mut done = Reconciled { added: Vec::new(), restarted: Vec::new(), removed: Vec::new(), kept: 0 };
        for id in gone {
            if self.remove(&id).is_some() {
                done.removed.push(id);
            }
        }
        for (id, t) in wanted {
            match self.replace(t) {
                Applied::Added => done.added.push(id),
                Applied::Restarted => done.restarted.push(id),
                Applied::Kept => done.kept += 1,
            }
        }
        done
    }

    /// Counts a connection failure the data plane saw toward taking `id` down (see
    /// [`CheckState`] for the rule). Never waits; false for an unknown target.
    pub fn passive_failure(&self, id: &K, reason: &str) -> bool {
        let shared = match lock(&self.inner.targets).get(id) {
            Some(e) => e.shared.clone(),
            None => return false,
        };
        *lock(&shared.passive_reason) = reason.to_owned();
        shared.passive.fetch_add(1, Ordering::AcqRel);
        shared.wake.notify_one();
        true
    }

    /// Every target's state, for listings.
    pub fn snapshot(&self) -> Vec<TargetSnapshot<K>> {
        lock(&self.inner.targets).iter().map(|(id, e)| snapshot_of(id, e)).collect()
    }

    /// One target's state.
    pub fn get(&self, id: &K) -> Option<TargetSnapshot<K>> {
        lock(&self.inner.targets).get(id).map(|e| snapshot_of(id, e))
    }

    pub fn len(&self) -> usize {
        lock(&self.inner.targets).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops every target.
    pub fn shutdown(&self) {
        let entries: Vec<Entry> = lock(&self.inner.targets).drain().map(|(_, e)| e).collect();
        for e in entries {
            e.stop();
        }
    }

    fn start(&self, t: Target<K>, state: CheckState) -> Entry {
        let shared = Arc::new(Shared {
            published: Mutex::new(Published { state: state.clone(), stopped: false }),
            passive: AtomicU32::new(0),
            passive_reason: Mutex::new(String::new()),
            wake: Notify::new(),
        });
        let check = Arc::new(t.check);
        let mut h = DefaultHasher::new();
        t.id.hash(&mut h);
        t.addr.hash(&mut h);
        let runner = Runner {
            id: t.id,
            addr: t.addr,
            via: t.via,
            check: check.clone(),
            timing: t.timing,
            shared: shared.clone(),
            events: self.inner.events.clone(),
        };
        let task = self.inner.runtime.spawn(runner.run(state, h.finish()));
        Entry { addr: t.addr, via: t.via, check, timing: t.timing, shared, task }
    }
}

fn initial_state(prior: Option<CheckState>, timing: &Timing) -> CheckState {
    match prior {
        Some(p) => CheckState::resume(p, timing),
        None => CheckState::new(timing, std::time::Instant::now()),
    }
}

fn snapshot_of<K: Clone>(id: &K, e: &Entry) -> TargetSnapshot<K> {
    TargetSnapshot {
        id: id.clone(),
        addr: e.addr,
        check: (*e.check).clone(),
        timing: e.timing,
        state: lock(&e.shared.published).state.clone(),
        endpoint: e.check.endpoint_via(e.addr, e.via.as_ref()),
    }
}

/// One target's task.
struct Runner<K> {
    id: K,
    addr: SocketAddr,
    via: Option<ViaVip>,
    check: Arc<Check>,
    timing: Timing,
    shared: Arc<Shared>,
    events: mpsc::Sender<HealthEvent<K>>,
}

impl<K: TargetKey> Runner<K> {
    async fn run(self, mut state: CheckState, seed: u64) {
        let mut rng = XorShift::seeded(seed);
        let mut next = Instant::now() + rng.duration_below(self.timing.warmup());
        loop {
            // Until the next check is due, take passive failures as they come.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => break,
                    _ = self.shared.wake.notified() => {
                        if !self.take_passive(&mut state).await {
                            return;
                        }
                    }
                }
            }
            let started = Instant::now();
            let run = self.check.run_via(self.addr, self.via.as_ref(), self.timing.timeout);
            tokio::pin!(run);
            let result = loop {
                tokio::select! {
                    r = &mut run => break r,
                    _ = self.shared.wake.notified() => {
                        if !self.take_passive(&mut state).await {
                            return;
                        }
                    }
                }
            };
            let transition = state.observe(&result, std::time::Instant::now());
            // Retry sooner while a failing server is still counted up; a down one waits the interval.
            let delay = if !result.is_alive() && state.health().is_alive() {
                self.timing.retry_delay()
            } else {
                self.timing.interval
            };
            if let Some(t) = &transition {
                self.trace(t, "real server health changed");
            }
            if !self.publish(&state, transition, result, Source::Check).await {
                return;
            }
            next = started + delay;
        }
    }

    fn trace(&self, t: &Transition, what: &str) {
        let (id, addr) = (&self.id, self.addr);
        tracing::debug!(target_id = ?id, %addr, from = %t.from, to = %t.to, reason = %t.reason, "{what}");
    }

    async fn take_passive(&self, state: &mut CheckState) -> bool {
        let n = self.shared.passive.swap(0, Ordering::AcqRel);
        if n == 0 {
            return true;
        }
        let reason = lock(&self.shared.passive_reason).clone();
        let transition = state.passive_failures(n, &reason, std::time::Instant::now());
        if let Some(t) = &transition {
            self.trace(t, "real server down on passive failures");
        }
        self.publish(state, transition, CheckResult::down(format!("passive: {reason}")), Source::Passive).await
    }

    /// Publishes `state` and sends the transition's event, in one step; false when stopped.
    async fn publish(
        &self,
        state: &CheckState,
        transition: Option<Transition>,
        result: CheckResult,
        source: Source,
    ) -> bool {
        // Wait for room first (rvsd may be slow), so the send below can't wait or fail.
        let permit = match &transition {
            Some(_) => self.events.reserve().await.ok(),
            None => None,
        };
        let mut p = lock(&self.shared.published);
        if p.stopped {
            return false;
        }
        p.state = state.clone();
        if let (Some(permit), Some(transition)) = (permit, transition) {
            permit.send(HealthEvent { id: self.id.clone(), addr: self.addr, transition, result, source });
        }
        true
    }
}
