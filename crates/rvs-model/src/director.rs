//! The director's whole configured state as plain data: the L4 table model (virtual services,
//! real servers, timeouts, switches), the http virtual services, and the health checkers'
//! verdicts on the pools' real servers. Every data plane prepares a change from the next one.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rvs_core::{Health, RealServerSettings, ServiceAddr, TableModel};

use crate::http::{L7ServiceConfig, PoolConfig, Rule};

/// A real server of an http service's pool, as health checks and verdicts name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolServer {
    pub service: ServiceAddr,
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

impl Verdict {
    /// The weight scheduling uses under this verdict, for a real server configured with
    /// `configured`: 0 while down or draining (as [`rvs_core::RealServer::weight`]).
    pub fn weight_for(&self, configured: u32) -> u32 {
        match self.health {
            Health::Down | Health::Drain => 0,
            Health::Up => self.weight.unwrap_or(configured),
        }
    }
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
    /// Each running VRRP instance's role by name (run-time state, like `pool_health`).
    pub vrrp: BTreeMap<String, crate::vrrp::VrrpRole>,
}

impl DirectorModel {
    /// The http service at `key`.
    pub fn http_service(&self, key: &ServiceAddr) -> Option<&L7ServiceConfig> {
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

/// A run-time change to one http service (API, rvsadm, health checks); a file load replaces
/// the services whole instead.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpChange {
    /// A rule, before the rule named `before` (or last).
    AddRule {
        service: ServiceAddr,
        rule: Rule,
        before: Option<String>,
    },
    DeleteRule {
        service: ServiceAddr,
        name: String,
    },
    AddServer {
        service: ServiceAddr,
        pool: String,
        server: RealServerSettings,
    },
    /// The real server of `pool` at `server.addr` takes these settings.
    EditServer {
        service: ServiceAddr,
        pool: String,
        server: RealServerSettings,
    },
    DeleteServer {
        service: ServiceAddr,
        pool: String,
        addr: SocketAddr,
    },
    /// A health checker's verdict on a pool's real server.
    Health {
        server: PoolServer,
        verdict: Verdict,
    },
}

/// Why a run-time change to an http service was refused; the model is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpChangeError {
    #[error("no such http virtual service {}", .0.addr)]
    NoService(ServiceAddr),
    #[error("rule `{0}` already exists")]
    RuleExists(String),
    /// The rule a new one was to go before.
    #[error("no rule `{0}`")]
    NoRuleBefore(String),
    #[error("no rule `{0}`")]
    NoRule(String),
    #[error("no pool `{pool}` in {}", .service.addr)]
    NoPool { service: ServiceAddr, pool: String },
    #[error("real server {0} already exists")]
    ServerExists(SocketAddr),
    #[error("no real server {addr} in pool `{pool}`")]
    NoServer { pool: String, addr: SocketAddr },
}

impl DirectorModel {
    fn http_mut(&mut self, service: &ServiceAddr) -> Result<&mut L7ServiceConfig, HttpChangeError> {
        self.http.iter_mut().find(|s| s.key == *service).ok_or(HttpChangeError::NoService(*service))
    }

    fn pool_mut(&mut self, service: &ServiceAddr, pool: &str) -> Result<&mut PoolConfig, HttpChangeError> {
        let svc = self.http_mut(service)?;
        svc.pools
            .iter_mut()
            .find(|p| p.name == pool)
            .ok_or_else(|| HttpChangeError::NoPool { service: *service, pool: pool.to_string() })
    }

    /// Applies one run-time change to the http services. The services' own checks (pools
    /// named by rules exist, address families agree, ...) are the data plane's, in `prepare`.
    pub fn apply_http(&mut self, change: &HttpChange) -> Result<(), HttpChangeError> {
        match change {
            HttpChange::AddRule { service, rule, before } => {
                let svc = self.http_mut(service)?;
                if svc.rules.iter().any(|r| r.name == rule.name) {
                    return Err(HttpChangeError::RuleExists(rule.name.clone()));
                }
                let at = match before {
                    None => svc.rules.len(),
                    Some(b) => svc
                        .rules
                        .iter()
                        .position(|r| &r.name == b)
                        .ok_or_else(|| HttpChangeError::NoRuleBefore(b.clone()))?,
                };
                svc.rules.insert(at, rule.clone());
            }
            HttpChange::DeleteRule { service, name } => {
                let svc = self.http_mut(service)?;
                let before = svc.rules.len();
                svc.rules.retain(|r| &r.name != name);
                if svc.rules.len() == before {
                    return Err(HttpChangeError::NoRule(name.clone()));
                }
            }
            HttpChange::AddServer { service, pool, server } => {
                let p = self.pool_mut(service, pool)?;
                if p.servers.iter().any(|s| s.addr == server.addr) {
                    return Err(HttpChangeError::ServerExists(server.addr));
                }
                p.servers.push(*server);
            }
            HttpChange::EditServer { service, pool, server } => {
                let p = self.pool_mut(service, pool)?;
                let slot = p
                    .servers
                    .iter_mut()
                    .find(|s| s.addr == server.addr)
                    .ok_or_else(|| HttpChangeError::NoServer { pool: pool.clone(), addr: server.addr })?;
                *slot = *server;
            }
            HttpChange::DeleteServer { service, pool, addr } => {
                let p = self.pool_mut(service, pool)?;
                let before = p.servers.len();
                p.servers.retain(|s| s.addr != *addr);
                if p.servers.len() == before {
                    return Err(HttpChangeError::NoServer { pool: pool.clone(), addr: *addr });
                }
                self.retain_pool_health();
            }
            HttpChange::Health { server, verdict } => {
                let p = self.pool_mut(&server.service, &server.pool)?;
                if !p.servers.iter().any(|s| s.addr == server.server) {
                    return Err(HttpChangeError::NoServer { pool: server.pool.clone(), addr: server.server });
                }
                self.pool_health.insert(server.clone(), *verdict);
            }
        }
        Ok(())
    }

    /// The configured settings of a pool's real server.
    pub fn pool_server(&self, server: &PoolServer) -> Option<&RealServerSettings> {
        self.http_service(&server.service)?.find_pool(&server.pool)?.servers.iter().find(|s| s.addr == server.server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::SchedulerKind;

    fn model() -> (DirectorModel, ServiceAddr) {
        let key = ServiceAddr::tcp("127.0.0.1:80".parse().unwrap());
        let pool = PoolConfig::new("web", SchedulerKind::Rr).unwrap().server("127.0.0.2:80".parse().unwrap());
        let svc = L7ServiceConfig::new(key).pool(pool).rule(Rule::parse("a", &["path^=/a"], "web").unwrap());
        (DirectorModel { http: vec![svc], ..Default::default() }, key)
    }

    #[test]
    fn rules_go_in_order_and_refusals_change_nothing() {
        let (mut m, service) = model();
        let rule = |n: &str| Rule::parse(n, &["path^=/b"], "web").unwrap();
        m.apply_http(&HttpChange::AddRule { service, rule: rule("b"), before: Some("a".into()) }).unwrap();
        let names: Vec<_> = m.http[0].rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        let before = m.clone();
        assert_eq!(
            m.apply_http(&HttpChange::AddRule { service, rule: rule("b"), before: None }),
            Err(HttpChangeError::RuleExists("b".into()))
        );
        assert_eq!(
            m.apply_http(&HttpChange::AddRule { service, rule: rule("c"), before: Some("x".into()) }),
            Err(HttpChangeError::NoRuleBefore("x".into()))
        );
        assert_eq!(
            m.apply_http(&HttpChange::DeleteRule { service, name: "x".into() }),
            Err(HttpChangeError::NoRule("x".into()))
        );
        assert_eq!(m, before);
    }

    #[test]
    fn a_verdict_goes_with_its_real_server() {
        let (mut m, service) = model();
        let addr: SocketAddr = "127.0.0.2:80".parse().unwrap();
        let server = PoolServer { service, pool: "web".into(), server: addr };
        let verdict = Verdict { health: Health::Down, weight: None };
        m.apply_http(&HttpChange::Health { server: server.clone(), verdict }).unwrap();
        assert_eq!(m.pool_health.get(&server), Some(&verdict));
        m.apply_http(&HttpChange::DeleteServer { service, pool: "web".into(), addr }).unwrap();
        assert!(m.pool_health.is_empty());
        let missing = HttpChange::Health { server, verdict };
        assert!(matches!(m.apply_http(&missing), Err(HttpChangeError::NoServer { .. })));
    }
}
