//! Changes: everything that alters what the director does, whatever its source (the file and
//! its reloads, the API and rvsadm, health checks, VRRP transitions; next the packet engine
//! and connection sync), as one type the one apply path takes in batches.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;

use rvs_config::ServiceHealth;
use rvs_core::{Command, ServiceKey};
use rvs_model::http::L7ServiceConfig;
use rvs_model::vrrp::VrrpRole;
use rvs_model::HttpChange;

#[derive(Debug, Clone)]
pub enum Change {
    /// A change to the table of TCP and UDP virtual services (and their health verdicts).
    Table(Command),
    /// The http virtual services, whole (a file load or reload).
    HttpServices(Vec<L7ServiceConfig>),
    /// A run-time change to one http service.
    Http(HttpChange),
    /// The health-check settings, whole (a file load or reload).
    HealthSettings(BTreeMap<ServiceKey, ServiceHealth>),
    /// The director's cap on client connections.
    MaxConnections(NonZeroUsize),
    /// A VRRP instance's role changed (None: the instance is gone).
    Vrrp { instance: String, role: Option<VrrpRole> },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Table(c) => write!(f, "{c}"),
            Change::HttpServices(s) => write!(f, "set the http virtual services ({})", s.len()),
            Change::Http(HttpChange::AddRule { service, rule, before }) => match before {
                Some(b) => write!(f, "add to http {}: {rule} (before {b})", service.addr),
                None => write!(f, "add to http {}: {rule}", service.addr),
            },
            Change::Http(HttpChange::DeleteRule { service, name }) => {
                write!(f, "delete rule {name} from http {}", service.addr)
            }
            Change::Http(HttpChange::AddServer { service, pool, server }) => {
                write!(
                    f,
                    "add real server {} weight {} to http {} pool {pool}",
                    server.addr, server.weight, service.addr
                )
            }
            Change::Http(HttpChange::EditServer { service, pool, server }) => {
                write!(
                    f,
                    "edit real server {} of http {} pool {pool}: weight {}",
                    server.addr, service.addr, server.weight
                )
            }
            Change::Http(HttpChange::DeleteServer { service, pool, addr }) => {
                write!(f, "delete real server {addr} from http {} pool {pool}", service.addr)
            }
            Change::Http(HttpChange::Health { server, verdict }) => {
                write!(
                    f,
                    "real server {} of http {} pool {} is {}",
                    server.server, server.service.addr, server.pool, verdict.health
                )?;
                match verdict.weight {
                    Some(w) => write!(f, " (weight {w})"),
                    None => Ok(()),
                }
            }
            Change::HealthSettings(h) => write!(f, "set the health checks of {} virtual services", h.len()),
            Change::MaxConnections(n) => write!(f, "set the client connection cap to {n}"),
            Change::Vrrp { instance, role: Some(r) } => write!(f, "vrrp instance {instance} is {}", r.as_str()),
            Change::Vrrp { instance, role: None } => write!(f, "vrrp instance {instance} stopped running"),
        }
    }
}
