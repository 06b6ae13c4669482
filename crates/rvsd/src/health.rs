//! The health plane of the director: runs the configured checks on every real server that
//! has one, turns their transitions into `SetHealth` / `SetQuorum` commands through the one
//! apply path, logs them as events, runs notify commands in order, and counts the data
//! plane's connect failures as passive checks.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, UNIX_EPOCH};

use rvs_api::{CheckView, EventList, EventView};
use rvs_config::ServiceHealth;
use rvs_core::{Command, FailureAction, Health, ServiceKey};
use rvs_dataplane::Publication;
use rvs_health::{
    live_weight, Event, EventLog, HealthEvent, HealthSupervisor, Notification, Notifier, NotifyKind, QuorumState,
    QuorumTracker, Target, DEFAULT_EVENT_CAPACITY, DEFAULT_NOTIFY_TIMEOUT,
};
use rvs_model::health::{CheckPath, CheckPaths, ViaVip};
use rvs_model::{DirectorModel, HttpChange, PoolServer, Verdict};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::change::Change;
use crate::director::Director;

/// A checked real server: its service, its pool (http services) and its address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HealthKey {
    pub service: ServiceKey,
    pub pool: Option<String>,
    pub server: SocketAddr,
}

/// A real server's check that cannot run (its timing is refused).
#[derive(Debug, thiserror::Error)]
#[error("virtual service {service}{}, real server {server}: health check: {source}", pool.as_ref().map(|p| format!(" pool {p}")).unwrap_or_default())]
pub struct HealthSetupError {
    pub service: ServiceKey,
    pub pool: Option<String>,
    pub server: SocketAddr,
    #[source]
    pub source: Box<rvs_health::TargetError>,
}

pub struct HealthPlane {
    supervisor: HealthSupervisor<HealthKey>,
    config: Mutex<BTreeMap<ServiceKey, ServiceHealth>>,
    events: Mutex<EventLog>,
    /// The reloads of the configuration file, a log of their own (the health events' sequence
    /// numbers count health transitions only).
    reloads: Mutex<EventLog>,
    notifier: Notifier,
    quorum: Mutex<HashMap<ServiceKey, QuorumTracker>>,
    /// Real servers whose check could not go through the VIP, with why, as last logged (said
    /// once, and again only when the reason changes).
    own_address: Mutex<HashMap<HealthKey, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HealthPlane {
    /// Starts an empty plane; the events come on the receiver, for [`run`].
    pub fn start() -> (Arc<Self>, mpsc::Receiver<HealthEvent<HealthKey>>) {
        let (supervisor, rx) = HealthSupervisor::spawn(Vec::new());
        let plane = Arc::new(Self {
            supervisor,
            config: Mutex::default(),
            events: Mutex::new(EventLog::new(DEFAULT_EVENT_CAPACITY)),
            reloads: Mutex::new(EventLog::new(RELOAD_EVENT_CAPACITY)),
            notifier: Notifier::spawn(DEFAULT_NOTIFY_TIMEOUT),
            quorum: Mutex::default(),
            own_address: Mutex::default(),
        });
        (plane, rx)
    }

    /// The check of every real server that has one in `model` under `settings`: what
    /// [`Self::publish`] starts. A gate or tunnel real server with a path through its VIP in
    /// `paths` (the packet engine's) is checked through it, unless its check says otherwise.
    /// Refuses a check it could not run, changing nothing.
    pub fn prepare(
        &self,
        model: &DirectorModel,
        settings: &BTreeMap<ServiceKey, ServiceHealth>,
        paths: &CheckPaths,
    ) -> Result<Vec<Target<HealthKey>>, HealthSetupError> {
        let mut targets = Vec::new();
        let mut target = |key: HealthKey, spec: &rvs_config::CheckSpec, via: Option<ViaVip>| {
            let t = Target::new(key.clone(), key.server, spec.check.clone(), spec.timing).map_err(|source| {
                HealthSetupError {
                    service: key.service,
                    pool: key.pool.clone(),
                    server: key.server,
                    source: Box::new(source),
                }
            })?;
            targets.push(t.with_via(via));
            Ok::<_, HealthSetupError>(())
        };
        for (key, svc) in &model.table.services {
            let Some(h) = settings.get(key) else { continue };
            for rs in &svc.servers {
                if let Some(spec) = h.check_for(rs.addr) {
                    let hk = HealthKey { service: *key, pool: None, server: rs.addr };
                    let via = self.via(&hk, spec, paths.get(&(*key, rs.addr)));
                    target(hk, spec, via)?;
                }
            }
        }
        for svc in &model.http {
            let Some(h) = settings.get(&svc.key.into()) else { continue };
            for pool in &svc.pools {
                let Some(spec) = h.pool_checks.get(&pool.name) else { continue };
                for rs in &pool.servers {
                    let hk = HealthKey { service: svc.key.into(), pool: Some(pool.name.clone()), server: rs.addr };
                    target(hk, spec, None)?;
                }
            }
        }
        Ok(targets)
    }

    /// The path through the VIP a real server's check takes, if any; says once in the log when
    /// one that should go through the VIP cannot, and why.
    fn via(&self, key: &HealthKey, spec: &rvs_config::CheckSpec, path: Option<&CheckPath>) -> Option<ViaVip> {
        let to = spec.check.connect_to();
        if !to.through_vip || to.ip.is_some() {
            return None;
        }
        match path? {
            CheckPath::Via(v) => {
                lock(&self.own_address).remove(key);
                Some(*v)
            }
            CheckPath::Unavailable(why) => {
                let mut noted = lock(&self.own_address);
                if noted.get(key) != Some(why) {
                    warn!(
                        service = %key.service,
                        server = %key.server,
                        "health check through the VIP not possible ({why}): checking the real server's own address"
                    );
                    noted.insert(key.clone(), why.clone());
                }
                None
            }
        }
    }

    /// Makes the running checks the prepared ones, with `settings` in force: unchanged checks
    /// keep running with their state (no flapping on reload); quorum is tracked for the
    /// services that have one, from the published real servers' weights.
    pub fn publish(
        &self,
        targets: Vec<Target<HealthKey>>,
        settings: &BTreeMap<ServiceKey, ServiceHealth>,
        next: &Publication,
    ) {
        *lock(&self.config) = settings.clone();
        let done = self.supervisor.reconcile(targets);
        if !done.added.is_empty() || !done.removed.is_empty() || !done.restarted.is_empty() {
            info!(
                added = done.added.len(),
                restarted = done.restarted.len(),
                removed = done.removed.len(),
                kept = done.kept,
                "health checks updated"
            );
        }
        let mut quorum = lock(&self.quorum);
        quorum.retain(|k, _| settings.get(k).is_some_and(|h| h.quorum.is_some()));
        for (key, h) in settings.iter() {
            let (Some(q), Some(svc)) = (h.quorum, next.services.services.get(key)) else { continue };
            quorum.entry(*key).or_insert_with(|| {
                let live = live_weight(svc.dests().iter().map(|d| d.weight()));
                QuorumTracker::new(q, q.initial(live), live)
            });
        }
    }

    /// A connect failure a data plane saw (counts toward taking the server down): to a real
    /// server of an L4 service (`pool` None) or of an http service's pool.
    pub fn passive_failure(&self, service: ServiceKey, pool: Option<&str>, server: SocketAddr, reason: &str) {
        self.supervisor.passive_failure(&HealthKey { service, pool: pool.map(str::to_string), server }, reason);
    }

    /// The check state of every checked real server, for listings.
    pub fn check_views(&self) -> HashMap<HealthKey, CheckView> {
        let now = Instant::now();
        self.supervisor
            .snapshot()
            .into_iter()
            .map(|t| {
                let s = &t.state;
                let view = CheckView {
                    check: t.check.to_string(),
                    address: t.endpoint.addr.to_string(),
                    via_vip: t.endpoint.via_vip(),
                    health: s.health().name().into(),
                    since_ms: now.saturating_duration_since(s.since()).as_millis() as u64,
                    last_result: s.last_result().map(|r| r.outcome.name().to_string()),
                    last_reason: s.last_reason().to_string(),
                    consecutive_successes: s.consecutive_successes(),
                    consecutive_failures: s.consecutive_failures(),
                };
                (t.id, view)
            })
            .collect()
    }

    /// Logs a VRRP instance's transition as an event and queues its notify command, in order
    /// with every other notification.
    pub fn vrrp_transition(
        &self,
        instance: &str,
        from: &'static str,
        to: &'static str,
        notify: Option<(NotifyKind, rvs_model::health::notify::NotifyCommand)>,
    ) {
        lock(&self.events).push(Event::Vrrp { instance: instance.to_owned(), from, to });
        if let Some((kind, cmd)) = notify {
            self.notifier.notify(Notification::vrrp(kind, cmd, instance, to));
        }
    }

    /// Logs a reload of the configuration file: what it changed, or why it was refused.
    pub fn reload_event(&self, via: &'static str, changes: Vec<String>, refused: Option<String>) {
        lock(&self.reloads).push(Event::Reload { via, changes, refused });
    }

    /// Health events after `since` (all kept ones when 0).
    pub fn events(&self, since: u64) -> EventList {
        render(&lock(&self.events), since)
    }

    /// Reloads after `since` (all kept ones when 0).
    pub fn reload_events(&self, since: u64) -> EventList {
        render(&lock(&self.reloads), since)
    }

    pub fn shutdown(&self) {
        self.supervisor.shutdown();
    }

    /// Waits until every notify command queued so far has run (a stopping rvsd's last ones,
    /// VRRP's `notify_stop`).
    pub async fn flush_notifications(&self) {
        self.notifier.flush().await;
    }
}

/// Applies the checkers' transitions until the plane stops.
pub async fn run(director: Weak<Director>, plane: Arc<HealthPlane>, mut rx: mpsc::Receiver<HealthEvent<HealthKey>>) {
    while let Some(ev) = rx.recv().await {
        let Some(director) = director.upgrade() else { return };
        on_event(&director, &plane, ev);
    }
}

fn on_event(director: &Director, plane: &HealthPlane, ev: HealthEvent<HealthKey>) {
    let HealthKey { service, pool, server } = ev.id.clone();
    let t = &ev.transition;
    let Some(pool) = pool else {
        let Some(dest) = director.table().service(&service).and_then(|s| s.dest(server)) else { return };
        let weight = t.weight.map(|h| h.apply(dest.configured_weight()));
        let change = Change::Table(Command::SetHealth { service, addr: server, health: t.to, weight });
        if let Err(e) = director.apply(&[change]) {
            warn!(%service, %server, "health transition not applied: {e}");
            return;
        }
        return on_l4_transition(director, plane, service, server, &dest, t, weight);
    };
    let Some(service) = service.addr() else { return };
    let key = PoolServer { service, pool, server };
    let Some(configured) = director.model().pool_server(&key).copied() else { return };
    let weight = t.weight.map(|h| h.apply(configured.weight));
    let verdict = Verdict { health: t.to, weight };
    let change = Change::Http(HttpChange::Health { server: key.clone(), verdict });
    if let Err(e) = director.apply(&[change]) {
        warn!(%service, %server, "health transition not applied: {e}");
        return;
    }
    let p = key.pool;
    if t.to == Health::Down {
        warn!(%service, pool = %p, %server, from = %t.from, to = %t.to, weight = ?weight, reason = %t.reason, "real server health");
    } else {
        info!(%service, pool = %p, %server, from = %t.from, to = %t.to, weight = ?weight, reason = %t.reason, "real server health");
    }
    let svc_name = format!("{service} pool {p}");
    let spec = lock(&plane.config).get(&service.into()).and_then(|h| h.pool_checks.get(&p)).cloned();
    plane.record(svc_name, server, verdict.weight_for(configured.weight), t, spec.as_ref());
}

impl HealthPlane {
    /// Logs a real server's transition as an event and queues its notify command.
    fn record(
        &self,
        svc_name: String,
        server: SocketAddr,
        weight_now: u32,
        t: &rvs_health::Transition,
        spec: Option<&rvs_config::CheckSpec>,
    ) {
        lock(&self.events).push(Event::RealServer {
            service: svc_name.clone(),
            server,
            from: t.from,
            to: t.to,
            weight: t.weight,
            reason: t.reason.clone(),
        });
        let notify = NotifyKind::for_transition(t).and_then(|kind| {
            let cmd = match kind {
                NotifyKind::NotifyUp => spec.and_then(|s| s.notify_up.clone()),
                NotifyKind::NotifyDown => spec.and_then(|s| s.notify_down.clone()),
                _ => None,
            };
            cmd.map(|c| (kind, c))
        });
        if let Some((kind, cmd)) = notify {
            self.notifier.notify(Notification::real_server(kind, cmd, svc_name, server, t.to, weight_now));
        }
    }
}

/// What an L4 real server's transition does beyond its weight: connections closed when removed
/// with `expire_nodest_conn`, the event and notification, and the service's quorum.
fn on_l4_transition(
    director: &Director,
    plane: &HealthPlane,
    service: ServiceKey,
    server: SocketAddr,
    dest: &Arc<rvs_core::RealServer>,
    t: &rvs_health::Transition,
    weight: Option<u32>,
) {
    let (on_failure, spec, quorum_cmds) = {
        let config = lock(&plane.config);
        let h = config.get(&service);
        (
            h.map(|h| h.on_failure).unwrap_or_default(),
            h.and_then(|h| h.check_for(server)).cloned(),
            h.map(|h| (h.quorum_up.clone(), h.quorum_down.clone())),
        )
    };
    if t.to == Health::Down
        && on_failure == FailureAction::Remove
        && director.table().model().options.expire_nodest_conn
    {
        let n = director.close_connections_to(dest);
        info!(%service, %server, closed = n, "removed on failure with expire_nodest_conn: connections closed");
    }
    if t.to == Health::Down {
        warn!(%service, %server, from = %t.from, to = %t.to, weight = ?weight, reason = %t.reason, "real server health");
    } else {
        info!(%service, %server, from = %t.from, to = %t.to, weight = ?weight, reason = %t.reason, "real server health");
    }
    let svc_name = service.to_string();
    plane.record(svc_name.clone(), server, dest.weight(), t, spec.as_ref());
    // Quorum: the live weight of the service after this transition.
    let live = director.table().service(&service).map(|s| live_weight(s.dests().iter().map(|d| d.weight())));
    let qt = match (live, lock(&plane.quorum).get_mut(&service)) {
        (Some(live), Some(tracker)) => tracker.update(live),
        _ => None,
    };
    if let Some(qt) = qt {
        let lost = qt.to == QuorumState::Down;
        if let Err(e) = director.apply(&[Change::Table(Command::SetQuorum { service, lost })]) {
            warn!(%service, "quorum change not applied: {e}");
        }
        warn!(%service, from = %qt.from, to = %qt.to, live_weight = qt.live_weight, "quorum");
        lock(&plane.events).push(Event::Quorum {
            service: svc_name.clone(),
            from: qt.from,
            to: qt.to,
            live_weight: qt.live_weight,
        });
        let cmd = quorum_cmds.and_then(|(up, down)| if lost { down } else { up });
        if let Some(cmd) = cmd {
            plane.notifier.notify(Notification::quorum(cmd, svc_name, qt.to));
        }
    }
}

/// Reloads the reload log keeps.
const RELOAD_EVENT_CAPACITY: usize = 200;

/// The API's view of the events of `log` after `since`.
fn render(log: &EventLog, since: u64) -> EventList {
    let events = log
        .since(since)
        .map(|r| {
            let at_unix_ms = r.at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as u64;
            match &r.event {
                Event::RealServer { service, server, from, to, weight, reason } => EventView {
                    seq: r.seq,
                    at_unix_ms,
                    kind: "real_server".into(),
                    service: service.clone(),
                    real_server: Some(server.to_string()),
                    from: from.name().into(),
                    to: to.name().into(),
                    weight: weight.map(|w| w.to_string()),
                    reason: reason.clone(),
                },
                Event::Quorum { service, from, to, live_weight } => EventView {
                    seq: r.seq,
                    at_unix_ms,
                    kind: "quorum".into(),
                    service: service.clone(),
                    real_server: None,
                    from: from.as_str().into(),
                    to: to.as_str().into(),
                    weight: None,
                    reason: format!("live weight {live_weight}"),
                },
                Event::Reload { via, changes, refused } => EventView {
                    seq: r.seq,
                    at_unix_ms,
                    kind: "reload".into(),
                    service: String::new(),
                    real_server: None,
                    from: (*via).into(),
                    to: if refused.is_some() { "refused" } else { "applied" }.into(),
                    weight: None,
                    reason: match refused {
                        Some(e) => e.clone(),
                        None if changes.is_empty() => "no change".into(),
                        None => changes.join("; "),
                    },
                },
                Event::Vrrp { instance, from, to } => EventView {
                    seq: r.seq,
                    at_unix_ms,
                    kind: "vrrp".into(),
                    service: instance.clone(),
                    real_server: None,
                    from: (*from).into(),
                    to: (*to).into(),
                    weight: None,
                    reason: String::new(),
                },
            }
        })
        .collect();
    EventList { events, dropped: log.dropped(), next_seq: log.next_seq() }
}
