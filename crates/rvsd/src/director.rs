//! The director: the one place commands are applied. It owns the service table, checks each
//! batch against the model, binds new listeners before anything changes, applies, and
//! publishes the new snapshot to the proxy engine. Config load, reload, API and demo all
//! come through here.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rvs_config::Config;
use rvs_core::{Applied, BatchError, Command, ServiceTable};
use rvs_dataplane::{Clock, ListenError};
use rvs_proxy::Engine;

use crate::health::HealthPlane;

/// Why a batch was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Command(#[from] BatchError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Http(#[from] rvs_l7::L7Error),
}

/// Why a reload was refused; the running configuration is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no configuration file to reload (rvsd was started without --config)")]
    NoFile,
    #[error(transparent)]
    Config(#[from] rvs_config::ConfigError),
    #[error("{path}: {source}")]
    Apply { path: String, source: ApplyError },
}

pub struct Director {
    table: Mutex<ServiceTable>,
    pub engine: Arc<Engine>,
    pub health: Arc<HealthPlane>,
    pub l7: Arc<rvs_l7::L7Engine>,
    pub clock: Clock,
    config_path: Option<PathBuf>,
    /// The config as last loaded (for reload notes on settings that need a restart).
    loaded: Mutex<Option<Config>>,
}

impl Director {
    pub fn new(
        engine: Arc<Engine>,
        health: Arc<HealthPlane>,
        l7: Arc<rvs_l7::L7Engine>,
        clock: Clock,
        config_path: Option<PathBuf>,
        seed: u64,
    ) -> Self {
        Self {
            table: Mutex::new(ServiceTable::new(seed)),
            engine,
            health,
            l7,
            clock,
            config_path,
            loaded: Mutex::new(None),
        }
    }

    pub fn config_path(&self) -> Option<&PathBuf> {
        self.config_path.as_ref()
    }

    pub fn table(&self) -> MutexGuard<'_, ServiceTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a batch all-or-nothing and publishes it to the data plane.
    pub fn apply(&self, cmds: &[Command]) -> Result<Applied, ApplyError> {
        let mut table = self.table();
        let model = table.check_batch(cmds)?;
        self.engine.bind_new(model.services.keys().copied())?;
        let applied = table.apply_batch(cmds)?;
        // Listeners for every service were bound above, so publishing cannot fail to bind.
        self.engine.publish(table.snapshot(), &applied)?;
        self.health.sync(&table, &self.l7);
        for c in cmds {
            tracing::info!("{c}");
        }
        Ok(applied)
    }

    /// Applies a freshly loaded configuration: what differs from the running table.
    pub fn load(&self, config: Config) -> Result<Vec<Command>, ApplyError> {
        let cmds = self.table().model().diff(&config.table);
        // The L7 services are checked before anything changes, and published after the L4 ones.
        self.l7.check(&config.http)?;
        let previous = self.health.config();
        self.health.set_config(config.health.clone());
        if let Err(e) = self.apply(&cmds) {
            self.health.set_config(previous);
            return Err(e);
        }
        self.l7.publish(config.http.clone())?;
        self.health.sync(&self.table(), &self.l7);
        let cap = crate::limits::connection_cap(config.director.max_connections);
        let limit = self.engine.connection_limit();
        if limit.max() != Some(cap) {
            tracing::info!(max_connections = cap.get(), "client connection cap");
            limit.set_max(Some(cap));
        }
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(config);
        Ok(cmds)
    }

    /// Re-reads the configuration file and applies the difference. Changes made at run time
    /// through the API are replaced by what the file says.
    pub fn reload(&self) -> Result<(Vec<Command>, Vec<String>), ReloadError> {
        let path = self.config_path.as_ref().ok_or(ReloadError::NoFile)?;
        let config = Config::load(path)?;
        let mut notes = Vec::new();
        if let Some(old) = &*self.loaded.lock().unwrap_or_else(|e| e.into_inner()) {
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
        }
        let cmds =
            self.load(config).map_err(|source| ReloadError::Apply { path: path.display().to_string(), source })?;
        Ok((cmds, notes))
    }

    /// Samples rates and purges templates; called every 2 seconds.
    pub fn tick(&self) {
        self.table().tick(self.clock.now_ms());
    }
}
