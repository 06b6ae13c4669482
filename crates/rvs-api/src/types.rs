//! Request and response bodies of the v1 API.

use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

/// Identifies a virtual service: `{"protocol": "tcp", "address": "10.0.0.1:80"}`, or a
/// firewall-mark service: `{"protocol": "fwmark", "address": "1"}` (`fwmark6` for IPv6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceId {
    #[serde(default = "default_protocol")]
    pub protocol: String,
    pub address: String,
}

fn default_protocol() -> String {
    "tcp".into()
}

/// A virtual service to add or the new settings of one (edit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    #[serde(default = "default_protocol")]
    pub protocol: String,
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    /// Persistence timeout in seconds; absent means no persistence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<u32>,
    /// Persistence netmask (IPv4) or prefix length (IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sched_flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mh_table_size: Option<u32>,
    /// Takes new connections while the service has lost its health-check quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<String>,
    /// The most client connections the service holds at once (TCP); absent: no cap of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Persistence engine (`ipvsadm --pe`): `sip`, for a persistent UDP service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_engine: Option<String>,
    /// One-packet scheduling (`ipvsadm -o`), UDP only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_packet: bool,
    /// The application helper: `ftp` or `none`; absent: `ftp` on TCP port 21 (as IPVS's
    /// `ip_vs_ftp ports=21`), else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helper: Option<String>,
}

/// A real server to add, or its new settings (edit). Absent fields take defaults on add
/// and keep their value on edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RealServerSpec {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
}

/// Counters, as ipvsadm --stats shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StatsView {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// Rates per second from the 2-second estimator, as ipvsadm --rate shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RatesView {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServerView {
    pub address: String,
    /// The weight scheduling uses now (0 while down; a dynamic checker's weight when set).
    pub weight: u32,
    /// The weight from the configuration or the last edit.
    pub configured_weight: u32,
    /// The health checkers' verdict: up, down or drain.
    pub health: String,
    pub method: String,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub proxy_protocol: String,
    pub active: u32,
    pub inactive: u32,
    pub overloaded: bool,
    pub connect_failures: u64,
    pub persistent_conns: u32,
    pub stats: StatsView,
    pub rates: RatesView,
    /// The health check's state, when the real server has a check.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub check: Option<CheckView>,
}

/// A real server's health check as the checker sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckView {
    /// What is checked, e.g. `HTTP GET /health`.
    pub check: String,
    /// The address the check connects to: the real server's own (or `connect_ip`), or with
    /// `via_vip` the virtual address, reached through the real server as its traffic is.
    #[serde(default)]
    pub address: String,
    /// The check goes through the VIP (a gate or tunnel real server of the packet engine).
    #[serde(default)]
    pub via_vip: bool,
    /// up, down or drain.
    pub health: String,
    /// Milliseconds since the health last changed.
    pub since_ms: u64,
    /// The last check's outcome (up, down, drain), absent before the first check.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_result: Option<String>,
    pub last_reason: String,
    pub consecutive_successes: u32,
    pub consecutive_failures: u32,
}

/// One health transition (`GET /v1/events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    pub seq: u64,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// `real_server` or `quorum`.
    pub kind: String,
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub real_server: Option<String>,
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub weight: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventList {
    pub events: Vec<EventView>,
    /// Events that fell out of the bounded log.
    pub dropped: u64,
    /// Pass as `?since=` to get only newer events.
    pub next_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub protocol: String,
    pub address: String,
    pub scheduler: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub persistent: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub netmask: Option<String>,
    pub sched_flags: Vec<String>,
    pub mh_table_size: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sorry_server: Option<String>,
    /// The service's own cap on client connections, when it has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_connections: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub persistence_engine: Option<String>,
    #[serde(default)]
    pub one_packet: bool,
    /// Datagrams dropped because the persistence engine found no key (Call-ID) in them.
    #[serde(default)]
    pub pe_dropped: u64,
    /// The application helper the service runs (`ftp` or `none`), whether set or by default.
    #[serde(default = "no_helper")]
    pub helper: String,
    /// True while the health-check quorum is lost and the sorry server takes new connections.
    #[serde(default)]
    pub quorum_lost: bool,
    pub stats: StatsView,
    pub rates: RatesView,
    pub real_servers: Vec<RealServerView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceList {
    pub services: Vec<ServiceView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionView {
    pub protocol: String,
    pub client: String,
    pub virtual_address: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub real_server: Option<String>,
    /// The IPVS state name (SYN_SENT, ESTABLISHED, FIN_WAIT; UDP for a UDP flow).
    pub state: String,
    pub expires_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionView>,
}

/// A persistence template (`ipvsadm -L -c --persistent-conn`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateView {
    pub protocol: String,
    pub client_net: String,
    /// The persistence engine's name and data (a SIP Call-ID), as `ipvsadm -L -c
    /// --persistent-conn` shows them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pe_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pe_data: Option<String>,
    pub virtual_address: String,
    pub real_server: String,
    pub expires_ms: u64,
    pub connections: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateList {
    pub templates: Vec<TemplateView>,
}

/// Timeouts in seconds; on PUT, 0 (or absent) leaves one unchanged, as `ipvsadm --set`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsView {
    #[serde(default)]
    pub tcp: u32,
    #[serde(default)]
    pub tcpfin: u32,
    #[serde(default)]
    pub udp: u32,
}

/// Director-wide switches (IPVS sysctls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OptionsView {
    #[serde(default)]
    pub expire_nodest_conn: bool,
    #[serde(default)]
    pub expire_quiescent_template: bool,
}

/// One change, as `save` prints and `restore` takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ApiCommand {
    AddService {
        service: ServiceSpec,
    },
    EditService {
        service: ServiceSpec,
    },
    DeleteService {
        service: ServiceId,
    },
    Clear,
    AddServer {
        service: ServiceId,
        server: RealServerSpec,
    },
    EditServer {
        service: ServiceId,
        server: RealServerSpec,
    },
    DeleteServer {
        service: ServiceId,
        address: String,
    },
    SetTimeouts {
        timeouts: TimeoutsView,
    },
    SetOptions {
        options: OptionsView,
    },
    Zero {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<ServiceId>,
    },
    /// Forces a real server's health (maintenance); checkers may change it again.
    SetHealth {
        service: ServiceId,
        address: String,
        /// up, down or drain.
        health: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<u32>,
    },
    SetQuorum {
        service: ServiceId,
        lost: bool,
    },
    /// Defines a firewall mark or replaces its matches.
    SetMark {
        mark: MarkSpec,
    },
    /// Deletes a firewall mark that no service uses.
    DeleteMark {
        mark: u32,
    },
}

/// A firewall mark: the packets a `-f MARK` service serves (`PUT /v1/marks/{mark}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkSpec {
    pub mark: u32,
    pub matches: Vec<MarkMatchSpec>,
}

/// `GET /v1/marks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkList {
    pub marks: Vec<MarkSpec>,
}

/// One match of a firewall mark: `{"protocol": "tcp", "address": "198.18.0.0/24", "ports": "80"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkMatchSpec {
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// An address or a prefix.
    pub address: String,
    /// A port or a range (`443`, `8000-8099`).
    pub ports: String,
}

/// A batch of commands applied all-or-nothing (`POST /v1/commands`; restore is a batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBatch {
    pub commands: Vec<ApiCommand>,
}

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// The apply path's sequence number of the reload's batch.
    #[serde(default)]
    pub generation: u64,
    pub changes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub notes: Vec<String>,
}

/// `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoView {
    pub version: String,
    /// The rvsd process answering (it changes with a binary upgrade).
    #[serde(default)]
    pub pid: u32,
    /// The apply path's sequence number of the last applied batch of changes.
    #[serde(default)]
    pub generation: u64,
    /// Connections every data plane holds: TCP connections and UDP flows of the L4 engine,
    /// client connections of the http services.
    pub connections: usize,
    pub services: usize,
    /// Client connections under the director's cap: TCP and http services together.
    #[serde(default)]
    pub client_connections: usize,
    /// The cap (`[director] max_connections`, or what the open-files limit allows); at it,
    /// new clients wait in the listen backlog.
    #[serde(default)]
    pub max_connections: usize,
    /// How many times accepting paused at the cap.
    #[serde(default)]
    pub max_connections_waits: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub config_file: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub draining: bool,
    /// The L4 relay: `"sockmap"` (long-lived connections relayed in the kernel) or `"splice"`.
    #[serde(default)]
    pub relay: String,
    /// The sockmap, when `relay` is `"sockmap"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sockmap: Option<SockmapView>,
    /// The XDP packet engine (gate, masq and tunnel real servers).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub packet_engine: Option<PacketEngineView>,
}

/// The packet engine in `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketEngineView {
    /// Whether the XDP program is attached to any interface. When it is not, `services` get
    /// no traffic: `[packet_engine] interfaces` names where to attach.
    pub attached: bool,
    /// Interface name to attach mode (`native` in the driver, `generic` otherwise).
    pub interfaces: std::collections::BTreeMap<String, String>,
    /// Virtual services whose real servers use gate, masq or tunnel.
    pub services: usize,
    /// Where the engine's maps and attachments are pinned, so that flows outlive rvsd.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pin_dir: Option<String>,
    /// Flows taken over at start from the previous rvsd's pinned table.
    #[serde(default)]
    pub taken_over: usize,
    /// Flows in the kernel's connection table, and how many it holds at most.
    pub flows: usize,
    pub capacity: u32,
    /// Kernel memory of the connection table in bytes, when the kernel tells it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub table_bytes: Option<u64>,
    /// First packets scheduled by rvsd, and refused for want of a real server.
    pub scheduled: u64,
    pub rejected: u64,
    /// Nanoseconds rvsd spent scheduling first packets and handing them back, in all.
    #[serde(default)]
    pub schedule_ns: u64,
    /// The XDP program's own counters (passed to the kernel, forwarded, dropped by reason).
    pub counters: std::collections::BTreeMap<String, u64>,
}

/// The kernel relay's occupancy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SockmapView {
    /// Connections it can hold at once.
    pub capacity: u32,
    /// Connections linked now.
    pub linked: u32,
    /// Connections ever linked.
    pub linked_total: u64,
}

/// Request counters of an L7 service, rule or pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpCountersView {
    pub requests: u64,
    /// Responses by class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub status_classes: [u64; 5],
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Upper bounds (µs) of the latency histogram buckets, and the count in each.
    pub latency_bounds_us: Vec<u64>,
    pub latency_counts: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_p50_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_p99_us: Option<u64>,
    /// Connections to real servers opened and reused, and the share reused. Counted per pool;
    /// a service's are the sum of its pools'; rules and the default route carry none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upstream_connects: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upstream_reuses: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reuse_ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRuleView {
    pub name: String,
    /// Its conditions in the config's text form (`path^=/api/`, `host=*.example.com`, ...).
    #[serde(rename = "match")]
    pub matches: Vec<String>,
    pub pool: String,
    pub counters: HttpCountersView,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRealServerView {
    pub address: String,
    pub weight: u32,
    pub configured_weight: u32,
    pub health: String,
    pub active: u32,
    pub inactive: u32,
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connect_failures: u64,
    pub idle_connections: usize,
    /// The health check's state, when the pool checks its real servers.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub check: Option<CheckView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpPoolView {
    pub name: String,
    pub scheduler: String,
    pub persistence: String,
    /// Takes the pool's requests while none of its real servers is available.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sorry_server: Option<String>,
    pub counters: HttpCountersView,
    pub real_servers: Vec<HttpRealServerView>,
}

/// An L7 (`kind = "http"`) virtual service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpServiceView {
    pub address: String,
    pub tls: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub default_pool: Option<String>,
    pub counters: HttpCountersView,
    pub rules: Vec<HttpRuleView>,
    /// Requests that matched no rule and went to the default pool.
    pub default_route: HttpCountersView,
    /// Requests that matched nothing and had no default pool (503).
    pub unrouted: u64,
    pub pools: Vec<HttpPoolView>,
    pub client_connections: usize,
    /// The service's own cap on client connections, when it has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_connections: Option<u32>,
    /// HTTP/2 client connections (ALPN `h2`) since the start or the last zeroing.
    #[serde(default)]
    pub http2_connections: u64,
    /// HTTP/2 streams since the start or the last zeroing (each is also a request above).
    #[serde(default)]
    pub http2_streams: u64,
    /// HTTP/2 streams refused (REFUSED_STREAM, the client may retry them): too many still
    /// running on their connection, or the director at its connection cap.
    #[serde(default)]
    pub http2_refused_streams: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpServiceList {
    pub services: Vec<HttpServiceView>,
}

/// A rule to add to an L7 service (`POST /v1/http/{address}/rules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRuleSpec {
    pub name: String,
    #[serde(rename = "match")]
    pub matches: Vec<String>,
    pub pool: String,
    /// Insert before this rule (rules are tried in order); absent: append.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub before: Option<String>,
}

fn no_helper() -> String {
    "none".into()
}
