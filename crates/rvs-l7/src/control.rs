//! The runtime of one L7 virtual service, derived from the director's model: one rvs-core
//! virtual service per pool (so scheduling, persistence, thresholds and health verdicts are the
//! core's own), stable keys and counters per pool and rule across changes, and the immutable
//! runtime the data plane reads. It holds no configuration of its own: each publication's
//! model is planned (checked) when the change is prepared and committed when it is published.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;

use rvs_dataplane::ConnLimit;
use std::sync::Arc;

use rvs_core::{Command, Health, ServiceKey, ServiceModel, ServiceTable, TableModel};

use crate::http2::Http2Counters;
use crate::runtime::{cookie_id, DestRuntime, PoolRuntime, RuleRuntime, ServiceRuntime, Sticky};
use crate::stats::{Counters, L7ServiceStats, PoolStats, RealServerStats, RuleStats};
use crate::upstream::IdleList;
use rvs_model::http::{ConfigError, L7ServiceConfig, PoolPersistence};
use rvs_model::Verdict;

/// Engine-wide knobs the runtime needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuildParams {
    pub seed: u64,
    pub max_idle_per_server: usize,
    pub splice_threshold: u64,
}

/// What a publish will do to one service's table, checked.
#[derive(Debug)]
pub(crate) struct Plan {
    keys: HashMap<String, ServiceKey>,
    next_port: u16,
    cmds: Vec<Command>,
}

#[derive(Debug)]
pub(crate) struct ServiceControl {
    table: ServiceTable,
    keys: HashMap<String, ServiceKey>,
    next_port: u16,
    counters: Arc<Counters>,
    default_counters: Arc<Counters>,
    unrouted: Arc<Counters>,
    rule_counters: HashMap<String, Arc<Counters>>,
    pool_counters: HashMap<String, Arc<Counters>>,
    idle: HashMap<(String, SocketAddr), Arc<IdleList>>,
    /// The service's own cap on client connections; its count is the client connections
    /// open now.
    cap: Arc<ConnLimit>,
    http2: Arc<Http2Counters>,
    pub config: Option<L7ServiceConfig>,
}

impl ServiceControl {
    pub fn new(seed: u64) -> Self {
        Self {
            table: ServiceTable::new(seed),
            keys: HashMap::new(),
            next_port: 1,
            counters: Arc::default(),
            default_counters: Arc::default(),
            unrouted: Arc::default(),
            rule_counters: HashMap::new(),
            pool_counters: HashMap::new(),
            idle: HashMap::new(),
            cap: Arc::default(),
            http2: Arc::default(),
            config: None,
        }
    }

    /// The table commands that turn the current pools into `cfg`'s, with the health checkers'
    /// verdicts on their real servers (`verdict`), checked by the table.
    pub fn plan(
        &self,
        cfg: &L7ServiceConfig,
        verdict: impl Fn(&str, SocketAddr) -> Option<Verdict>,
    ) -> Result<Plan, ConfigError> {
        cfg.validate()?;
        let mut keys = HashMap::new();
        let mut next_port = self.next_port;
        let mut used: Vec<ServiceKey> = Vec::new();
        for p in &cfg.pools {
            let family_ok = |k: &ServiceKey| k.is_ipv4() == p.is_ipv4();
            let key = match self.keys.get(&p.name).filter(|k| family_ok(k)) {
                Some(k) => *k,
                None => loop {
                    let ip =
                        if p.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) };
                    let k = ServiceKey::tcp(SocketAddr::new(ip, next_port));
                    next_port = next_port.checked_add(1).unwrap_or(1);
                    if !self.keys.values().any(|o| *o == k) && !used.contains(&k) {
                        break k;
                    }
                },
            };
            used.push(key);
            keys.insert(p.name.clone(), key);
        }
        let current = self.table.model();
        let new = TableModel {
            services: cfg
                .pools
                .iter()
                .map(|p| (keys[&p.name], ServiceModel { settings: p.service_settings(), servers: p.servers.clone() }))
                .collect::<BTreeMap<_, _>>(),
            timeouts: current.timeouts,
            options: current.options,
            marks: Default::default(),
        };
        let mut cmds = current.diff(&new);
        for p in &cfg.pools {
            let service = keys[&p.name];
            for s in &p.servers {
                let want = verdict(&p.name, s.addr).unwrap_or(Verdict { health: Health::Up, weight: None });
                let now = self.table.service(&service).and_then(|vs| vs.dest(s.addr));
                let now = now.map_or((Health::Up, None), |d| (d.health(), d.weight_override()));
                if now != (want.health, want.weight) {
                    cmds.push(Command::SetHealth { service, addr: s.addr, health: want.health, weight: want.weight });
                }
            }
        }
        self.table.check_batch(&cmds).map_err(|e| {
            let key = command_key(&cmds[e.index]);
            let pool = keys.iter().find(|(_, k)| Some(**k) == key).map_or_else(String::new, |(n, _)| n.clone());
            ConfigError::PoolCommand { pool, source: e.error }
        })?;
        Ok(Plan { keys, next_port, cmds })
    }

    /// Applies a plan made from `cfg` and builds the runtime the data plane will read.
    pub fn commit(
        &mut self,
        plan: Plan,
        cfg: L7ServiceConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
        params: BuildParams,
    ) -> ServiceRuntime {
        if let Err(e) = self.table.apply_batch(&plan.cmds) {
            // The plan was checked against this very table; nothing else changes it meanwhile.
            tracing::error!(service = %cfg.key, error = %e, "L7 pool table refused a checked plan");
        }
        self.keys = plan.keys;
        self.next_port = plan.next_port;
        self.rule_counters.retain(|n, _| cfg.rules.iter().any(|r| &r.name == n));
        self.pool_counters.retain(|n, _| cfg.pools.iter().any(|p| &p.name == n));
        self.idle.retain(|(pool, addr), list| {
            let keep = cfg.find_pool(pool).is_some_and(|p| p.servers.iter().any(|s| s.addr == *addr));
            if !keep {
                list.clear();
            }
            keep
        });

        let mut pools = Vec::with_capacity(cfg.pools.len());
        for p in &cfg.pools {
            let vs = self.table.service(&self.keys[&p.name]).expect("pool service exists after commit").clone();
            let sticky = match &p.persistence {
                PoolPersistence::None | PoolPersistence::Source(_) => Sticky::None,
                PoolPersistence::Cookie(c) => Sticky::Cookie {
                    name: c.name.clone(),
                    by_id: p.servers.iter().map(|s| (cookie_id(params.seed, &p.name, s.addr), s.addr)).collect(),
                },
                PoolPersistence::Hash(h) => Sticky::Hash(h.clone()),
            };
            let dests = p
                .servers
                .iter()
                .map(|s| {
                    let idle = self
                        .idle
                        .entry((p.name.clone(), s.addr))
                        .or_insert_with(|| Arc::new(IdleList::new(params.max_idle_per_server)))
                        .clone();
                    let set_cookie = match &p.persistence {
                        PoolPersistence::Cookie(c) => {
                            let mut v = format!(
                                "{}={:016x}; Path=/; HttpOnly",
                                c.name,
                                cookie_id(params.seed, &p.name, s.addr)
                            );
                            if let Some(age) = c.max_age_secs {
                                v.push_str(&format!("; Max-Age={age}"));
                            }
                            if c.secure {
                                v.push_str("; Secure");
                            }
                            Some(v.into_bytes().into_boxed_slice())
                        }
                        _ => None,
                    };
                    (s.addr, DestRuntime { idle, proxy_protocol: p.proxy_protocol_for(s), set_cookie })
                })
                .collect();
            let counters = self.pool_counters.entry(p.name.clone()).or_default().clone();
            pools.push(Arc::new(PoolRuntime { name: p.name.clone(), vs, sticky, dests, counters }));
        }
        let index = |name: &str| cfg.pools.iter().position(|p| p.name == name);
        let rules = cfg
            .rules
            .iter()
            .map(|r| RuleRuntime {
                rule: r.clone(),
                pool: index(&r.pool).expect("validated"),
                counters: self.rule_counters.entry(r.name.clone()).or_default().clone(),
            })
            .collect();
        let max = rvs_dataplane::conn_limit::cap(cfg.max_connections);
        if self.cap.max() != max {
            self.cap.set_max(max);
        }
        let rt = ServiceRuntime {
            key: cfg.key,
            rules,
            pools,
            default_pool: cfg.default_pool.as_deref().and_then(index),
            default_counters: self.default_counters.clone(),
            unrouted: self.unrouted.clone(),
            counters: self.counters.clone(),
            forwarded: cfg.forwarded,
            limits: cfg.limits,
            timeouts: cfg.timeouts,
            connect_retries: cfg.connect_retries,
            tls,
            splice_threshold: params.splice_threshold,
            cap: self.cap.clone(),
            http2: self.http2.clone(),
        };
        self.config = Some(cfg);
        rt
    }

    /// The rvs-core virtual service carrying `pool`.
    pub fn pool_service(&self, pool: &str) -> Option<Arc<rvs_core::VirtualService>> {
        self.keys.get(pool).and_then(|k| self.table.service(k)).cloned()
    }

    pub fn zero(&self) {
        let all = [&self.counters, &self.default_counters, &self.unrouted];
        for c in all.into_iter().chain(self.rule_counters.values()).chain(self.pool_counters.values()) {
            c.zero();
        }
        self.http2.zero();
        for svc in self.table.services() {
            svc.stats.zero();
            svc.dests().iter().for_each(|d| d.stats.zero());
        }
    }

    /// Rate estimators and persistence templates (every 2 s).
    pub fn tick(&self, now_ms: u64) {
        self.table.tick(now_ms);
    }

    pub fn stats(&self, rt: &ServiceRuntime) -> L7ServiceStats {
        let client_connections = self.cap.current();
        let cfg = self.config.as_ref();
        L7ServiceStats {
            key: rt.key,
            counters: rt.counters.read(),
            rules: rt
                .rules
                .iter()
                .map(|r| RuleStats {
                    name: r.rule.name.clone(),
                    pool: r.rule.pool.clone(),
                    counters: r.counters.read(),
                })
                .collect(),
            default_route: rt.default_counters.read(),
            unrouted: rt.unrouted.read().requests,
            pools: rt
                .pools
                .iter()
                .map(|p| PoolStats {
                    name: p.name.clone(),
                    scheduler: cfg.and_then(|c| c.find_pool(&p.name)).map(|c| c.scheduler).unwrap_or_default(),
                    counters: p.counters.read(),
                    servers: p
                        .vs
                        .dests()
                        .iter()
                        .map(|d| {
                            let c = d.stats.counters.read();
                            RealServerStats {
                                addr: d.addr,
                                weight: d.weight(),
                                configured_weight: d.configured_weight(),
                                health: d.health(),
                                active: d.active(),
                                inactive: d.inactive(),
                                requests: c.conns,
                                bytes_in: c.inbytes,
                                bytes_out: c.outbytes,
                                connect_failures: d.connect_failures(),
                                idle_connections: p.dests.get(&d.addr).map_or(0, |x| x.idle.len()),
                            }
                        })
                        .collect(),
                })
                .collect(),
            client_connections,
            max_connections: cfg.and_then(|c| c.max_connections),
            http2_connections: self.http2.connections.load(Ordering::Relaxed),
            http2_streams: self.http2.streams.load(Ordering::Relaxed),
            http2_refused_streams: self.http2.refused.load(Ordering::Relaxed),
        }
    }

    /// Closes idle upstream connections idle since before `cutoff`.
    pub fn expire_idle(&self, cutoff: std::time::Instant) -> usize {
        self.idle.values().map(|l| l.expire(cutoff)).sum()
    }

    /// Drops every idle upstream connection (shutdown, service removed).
    pub fn clear_idle(&self) {
        self.idle.values().for_each(|l| l.clear());
    }
}

fn command_key(cmd: &Command) -> Option<ServiceKey> {
    match cmd {
        Command::AddService { key, .. } | Command::EditService { key, .. } | Command::DeleteService { key } => {
            Some(*key)
        }
        Command::AddServer { service, .. }
        | Command::EditServer { service, .. }
        | Command::DeleteServer { service, .. }
        | Command::SetHealth { service, .. }
        | Command::SetQuorum { service, .. } => Some(*service),
        Command::Zero { service } => *service,
        Command::Clear
        | Command::SetTimeouts(_)
        | Command::SetOptions(_)
        | Command::SetMark(_)
        | Command::DeleteMark(_) => None,
    }
}
