//! The director's whole configured state as plain data: the L4 table model (virtual services,
//! real servers, timeouts, switches), the http virtual services, and the health checkers'
//! verdicts on the pools' real servers. Every data plane prepares a change from the next one.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rvs_core::{Health, ServiceKey, TableModel};

use crate::http::L7ServiceConfig;

/// A real server of an http service's pool, as health checks and verdicts name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolServer {
    pub service: ServiceKey,
    pub pool: String,
    pub server: SocketAddr,
}

/// A health checker's verdict on a real server: its health, and the weight a dynamic check
/// reports (none: the configured weight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub health: Health,
    pub weight: Option<u32>,
}

/// What the director is configured to do, whole.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DirectorModel {
    /// TCP and UDP virtual services with their real servers, timeouts and switches.
    pub table: TableModel,
    /// The http (Layer-7) virtual services, in file order.
    pub http: Vec<L7ServiceConfig>,
    /// Verdicts on pools' real servers that are not plainly up (run-time state: `save` and a
    /// reload's diff ignore it; it goes when its real server goes).
    pub pool_health: BTreeMap<PoolServer, Verdict>,
}

impl DirectorModel {
    /// The http service at `key`.
    pub fn http_service(&self, key: &ServiceKey) -> Option<&L7ServiceConfig> {
        self.http.iter().find(|s| s.key == *key)
    }

    /// Forgets the verdicts on real servers no pool has any more.
    pub fn retain_pool_health(&mut self) {
        let http = &self.http;
        self.pool_health.retain(|k, _| {
            http.iter()
                .find(|s| s.key == k.service)
                .and_then(|s| s.find_pool(&k.pool))
                .is_some_and(|p| p.servers.iter().any(|r| r.addr == k.server))
        });
    }
}
