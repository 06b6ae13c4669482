//! The director: the one apply path. It owns the service table, the model of everything
//! configured and the health settings under one lock; each batch of changes is checked whole,
//! prepared by every data plane and the health plane, applied, then published to each of them
//! as one immutable snapshot. File load and reload, the API, rvsadm, health transitions and the
//! demo all come through [`Director::apply`]; nothing else writes.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use arc_swap::ArcSwap;
use std::time::Duration;

use rvs_config::{Config, ServiceHealth};
use rvs_core::{BatchError, Command, RealServer, ServiceKey, ServiceTable};
use rvs_dataplane::plane::Drained;
use rvs_dataplane::{Clock, ConnLimit};
use rvs_dataplane::{ConnInfo, DataPlane, PlaneError, PlaneReport, Publication};
use rvs_model::{DirectorModel, HttpChangeError};

use crate::change::Change;
use crate::health::{HealthPlane, HealthSetupError};

/// Why a batch was refused; nothing changed anywhere.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A change to the service table, refused by the table (`index`: the change's place in the
    /// batch).
    #[error(transparent)]
    Command(BatchError),
    #[error("{error}")]
    Http { index: usize, error: HttpChangeError },
    /// A data plane could not take the change (an address in use, a bad rule or certificate).
    #[error("{error}")]
    Plane { plane: &'static str, error: PlaneError },
    #[error(transparent)]
    Health(#[from] HealthSetupError),
}

/// Why a reload was refused; the running configuration is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no configuration file to reload (rvsd was started without --config)")]
    NoFile,
    #[error(transparent)]
    Config(#[from] rvs_config::ConfigError),
    #[error("{path}: {source}")]
    Apply { path: String, source: Box<ApplyError> },
}

/// What an applied batch did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The batch's sequence number: one per applied batch, strictly increasing.
    pub generation: u64,
    /// What it changed, one line each.
    pub changes: Vec<String>,
}

/// What the one lock guards.
struct State {
    table: ServiceTable,
    health: BTreeMap<ServiceKey, ServiceHealth>,
    /// The config as last loaded (for reload notes on settings that need a restart).
    loaded: Option<Config>,
    generation: u64,
}

pub struct Director {
    state: Mutex<State>,
    /// The model as last published: written under `state`'s lock by the apply path only, read
    /// without any lock (so a reader holding the table never waits on itself).
    model: ArcSwap<DirectorModel>,
    planes: Vec<Arc<dyn DataPlane>>,
    pub health: Arc<HealthPlane>,
    /// Connection sync's daemons (they read and write the packet engine's flows).
    pub sync: Arc<crate::sync::SyncDaemon>,
    /// The VRRP instances running (their transitions come back through `apply`).
    pub vrrp: crate::vrrp::VrrpPlane,
    limit: Arc<ConnLimit>,
    pub clock: Clock,
    config_path: Option<PathBuf>,
}

/// The service table, read under the director's lock (hold it briefly: every change waits).
pub struct TableRef<'a>(MutexGuard<'a, State>);

impl Deref for TableRef<'_> {
    type Target = ServiceTable;
    fn deref(&self) -> &ServiceTable {
        &self.0.table
    }
}

impl Director {
    pub fn new(
        planes: Vec<Arc<dyn DataPlane>>,
        health: Arc<HealthPlane>,
        sync: Arc<crate::sync::SyncDaemon>,
        limit: Arc<ConnLimit>,
        clock: Clock,
        config_path: Option<PathBuf>,
        seed: u64,
    ) -> Self {
        let state = State { table: ServiceTable::new(seed), health: BTreeMap::new(), loaded: None, generation: 0 };
        // Every data plane's failed connects are passive health checks.
        for plane in &planes {
            let health = health.clone();
            plane.observe_connect_failures(Box::new(move |f| {
                health.passive_failure(f.service, f.pool, f.server, f.reason)
            }));
        }
        Self {
            state: Mutex::new(state),
            model: ArcSwap::default(),
            planes,
            health,
            sync,
            vrrp: crate::vrrp::VrrpPlane::default(),
            limit,
            clock,
            config_path,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config_path(&self) -> Option<&PathBuf> {
        self.config_path.as_ref()
    }

    pub fn table(&self) -> TableRef<'_> {
        TableRef(self.state())
    }

    /// Everything configured, as of the last applied batch.
    pub fn model(&self) -> Arc<DirectorModel> {
        self.model.load_full()
    }

    /// The sequence number of the last applied batch.
    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    /// The director's cap on client connections.
    pub fn connection_limit(&self) -> &Arc<ConnLimit> {
        &self.limit
    }

    /// Applies a batch all or nothing and publishes it to every data plane. The one writer.
    pub fn apply(&self, changes: &[Change]) -> Result<Outcome, ApplyError> {
        self.apply_locked(&mut self.state(), changes)
    }

    fn apply_locked(&self, st: &mut State, changes: &[Change]) -> Result<Outcome, ApplyError> {
        // 1. The next model, every change checked on a copy.
        let mut next = (*self.model.load_full()).clone();
        let mut cmds = Vec::new();
        let mut cmd_index = Vec::new();
        let mut health = None;
        let mut cap = None;
        for (index, change) in changes.iter().enumerate() {
            match change {
                Change::Table(c) => {
                    cmds.push(c.clone());
                    cmd_index.push(index);
                }
                Change::HttpServices(s) => {
                    next.http = s.clone();
                    next.retain_pool_health();
                }
                Change::Http(c) => next.apply_http(c).map_err(|error| ApplyError::Http { index, error })?,
                Change::HealthSettings(h) => health = Some(h),
                Change::MaxConnections(n) => cap = Some(*n),
                Change::Vrrp { instance, role: Some(r) } => {
                    next.vrrp.insert(instance.clone(), *r);
                }
                Change::Vrrp { instance, role: None } => {
                    next.vrrp.remove(instance);
                }
            }
        }
        next.table = st
            .table
            .check_batch(&cmds)
            .map_err(|e| ApplyError::Command(BatchError { index: cmd_index[e.index], error: e.error }))?;
        // 2. Every data plane and the health plane prepare it; a refusal drops what the others
        //    acquired (their new listeners close) and changes nothing.
        let mut prepared = Vec::with_capacity(self.planes.len());
        for plane in &self.planes {
            let p = plane.prepare(&next).map_err(|error| ApplyError::Plane { plane: plane.name(), error })?;
            prepared.push(p);
        }
        // The packet engine's check paths (gate and tunnel real servers through their VIP)
        // come with its prepared change.
        let paths = prepared.iter().find_map(|p| p.check_paths()).cloned().unwrap_or_default();
        let targets = self.health.prepare(&next, health.unwrap_or(&st.health), &paths)?;
        // 3. Apply (the table's batch was checked above and is all or nothing itself), then
        //    publish.
        let removed = st
            .table
            .apply_batch(&cmds)
            .map_err(|e| ApplyError::Command(BatchError { index: cmd_index[e.index], error: e.error }))?;
        st.generation += 1;
        let publication = Publication {
            generation: st.generation,
            model: Arc::new(next),
            services: Arc::new(st.table.snapshot()),
            removed: Arc::new(removed),
        };
        for (plane, p) in self.planes.iter().zip(prepared) {
            plane.clone().publish(p, &publication);
        }
        for c in &cmds {
            if let Command::Zero { service } = c {
                self.planes.iter().for_each(|p| p.zero_counters(service.as_ref()));
            }
        }
        if let Some(h) = health {
            st.health = h.clone();
        }
        self.health.publish(targets, &st.health, &publication);
        if let Some(cap) = cap {
            if self.limit.max() != Some(cap) {
                tracing::info!(max_connections = cap.get(), "client connection cap");
                self.limit.set_max(Some(cap));
            }
        }
        debug_assert_eq!(&publication.model.table, st.table.model(), "the model's table is the table's own");
        self.model.store(publication.model);
        let changes: Vec<String> = changes
            .iter()
            .filter(|c| !matches!(c, Change::HealthSettings(_) | Change::MaxConnections(_)))
            .map(|c| c.to_string())
            .collect();
        for c in &changes {
            tracing::info!(generation = st.generation, "{c}");
        }
        Ok(Outcome { generation: st.generation, changes })
    }

    /// Applies a freshly loaded configuration: what differs from what runs, as one batch.
    pub fn load(&self, config: Config) -> Result<Outcome, ApplyError> {
        // The difference is taken under the lock the batch is applied under: what the file
        // says is what runs after, whatever came in meanwhile.
        let mut st = self.state();
        let model = self.model.load_full();
        let mut changes: Vec<Change> = model.table.diff(&config.table).into_iter().map(Change::Table).collect();
        if model.http != config.http {
            changes.push(Change::HttpServices(config.http.clone()));
        }
        changes.push(Change::HealthSettings(config.health.clone()));
        changes.push(Change::MaxConnections(crate::limits::connection_cap(config.director.max_connections)));
        let outcome = self.apply_locked(&mut st, &changes)?;
        st.loaded = Some(config);
        Ok(outcome)
    }

    /// The `[[vrrp]]` instances of the configuration as last loaded.
    pub fn vrrp_specs(&self) -> Vec<rvs_model::vrrp::VrrpInstanceSpec> {
        self.state().loaded.as_ref().map(|c| c.vrrp.clone()).unwrap_or_default()
    }

    /// [`Director::reload`], logged the same way whoever asked (`via`: SIGHUP or the API): the
    /// changes applied and the notes at INFO/WARN, a refusal at ERROR.
    pub fn reload_logged(&self, via: &'static str) -> Result<(Outcome, Vec<String>), ReloadError> {
        let result = self.reload();
        match &result {
            Ok((outcome, notes)) => {
                tracing::info!(
                    via,
                    changes = outcome.changes.len(),
                    generation = outcome.generation,
                    "configuration reloaded"
                );
                for n in notes {
                    tracing::warn!(via, "{n}");
                }
            }
            Err(e) => tracing::error!(via, "reload refused, the running configuration is unchanged: {e}"),
        }
        match &result {
            Ok((outcome, _)) => self.health.reload_event(via, outcome.changes.clone(), None),
            Err(e) => self.health.reload_event(via, Vec::new(), Some(e.to_string())),
        }
        result
    }

    /// Re-reads the configuration file and applies the difference. Changes made at run time
    /// through the API are replaced by what the file says.
    pub fn reload(&self) -> Result<(Outcome, Vec<String>), ReloadError> {
        let path = self.config_path.as_ref().ok_or(ReloadError::NoFile)?;
        let config = Config::load(path)?;
        let mut notes = Vec::new();
        if let Some(old) = &self.state().loaded {
            if old.api != config.api {
                notes.push("[api] changed: API listeners change at restart only".to_string());
            }
            // max_connections applies at once (`load`); the rest waits for a restart.
            let live = rvs_config::DirectorConfig { max_connections: config.director.max_connections, ..old.director };
            if live != config.director {
                notes.push(
                    "[director] connect_timeout_ms, connect_retries, drain_timeout_secs, relay, sockmap_connections change at restart only"
                        .to_string(),
                );
            }
            if old.packet_engine != config.packet_engine {
                notes.push("[packet_engine] changes at restart only".to_string());
            }
        }
        let outcome = self
            .load(config)
            .map_err(|source| ReloadError::Apply { path: path.display().to_string(), source: Box::new(source) })?;
        self.vrrp.reconcile(self.vrrp_specs());
        Ok((outcome, notes))
    }

    /// What the data planes report, together.
    pub fn report(&self) -> PlaneReport {
        let mut all = PlaneReport::default();
        for r in self.planes.iter().map(|p| p.report()) {
            all.connections += r.connections;
            all.kernel_relay = all.kernel_relay.or(r.kernel_relay);
            all.draining |= r.draining;
            all.http.extend(r.http);
            all.packet = all.packet.or(r.packet);
        }
        all
    }

    /// Every connection of every data plane.
    pub fn connections(&self) -> Vec<ConnInfo> {
        self.planes.iter().flat_map(|p| p.connections()).collect()
    }

    /// Closes every connection to `dest` now; how many.
    pub fn close_connections_to(&self, dest: &Arc<RealServer>) -> usize {
        self.planes.iter().map(|p| p.close_connections_to(dest)).sum()
    }

    /// Stops every data plane: no new connections, a drain of up to `deadline`, then the rest
    /// closed. How many were closed at the deadline.
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        // All at once: the deadline is one for every data plane.
        let mut drains: Vec<Option<Drained<'_>>> = self.planes.iter().map(|p| Some(p.shutdown(deadline))).collect();
        let mut closed = 0;
        std::future::poll_fn(|cx| {
            for slot in drains.iter_mut() {
                if let Some(Poll::Ready(n)) = slot.as_mut().map(|d| d.as_mut().poll(cx)) {
                    closed += n;
                    *slot = None;
                }
            }
            if drains.iter().all(Option::is_none) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        closed
    }

    /// Samples rates and purges templates; called every 2 seconds.
    pub fn tick(&self) {
        self.table().tick(self.clock.now_ms());
    }
}
