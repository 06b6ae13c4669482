//! The file as written: serde structs that refuse unknown fields. Values that can be wrong
//! keep their span so validation can point at them.

use std::path::PathBuf;

use serde::Deserialize;

use crate::health::RawCheck;
use crate::http::{RawPool, RawRule, RawTls};
use crate::vrrp::RawVrrp;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub director: RawDirector,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub packet_engine: Option<Spanned<RawPacketEngine>>,
    #[serde(default)]
    pub sync: Option<Spanned<crate::sync::RawSync>>,
    #[serde(default, rename = "service")]
    pub services: Vec<Spanned<RawService>>,
    #[serde(default)]
    pub vrrp: Vec<Spanned<RawVrrp>>,
    #[serde(default, rename = "firewall_mark")]
    pub firewall_marks: Vec<Spanned<crate::fwmark::RawFirewallMark>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub socket: Option<PathBuf>,
    pub listen: Option<Spanned<String>>,
    pub token: Option<Spanned<String>>,
    pub token_file: Option<Spanned<PathBuf>>,
    pub read_only_token: Option<Spanned<String>>,
    pub read_only_token_file: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirector {
    pub connect_timeout_ms: Option<Spanned<u64>>,
    pub connect_retries: Option<u32>,
    pub drain_timeout_secs: Option<u64>,
    pub relay: Option<Spanned<String>>,
    pub sockmap_connections: Option<Spanned<u32>>,
    pub max_connections: Option<Spanned<u32>>,
    #[serde(default)]
    pub expire_nodest_conn: bool,
    #[serde(default)]
    pub expire_quiescent_template: bool,
}

/// `[packet_engine]`: where the XDP program attaches and how big its connection table is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPacketEngine {
    #[serde(default)]
    pub interfaces: Vec<Spanned<String>>,
    pub xdp_mode: Option<Spanned<String>>,
    pub connections: Option<Spanned<u32>>,
    pub pin_path: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub tcp: Option<Spanned<u32>>,
    pub tcpfin: Option<Spanned<u32>>,
    pub udp: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// `tcp` (Layer 4, the default) or `http` (Layer 7: pools and rules).
    pub kind: Option<Spanned<String>>,
    pub protocol: Option<Spanned<String>>,
    /// The virtual address; or, for a firewall-mark service, `firewall_mark` (and `family`).
    pub address: Option<Spanned<String>>,
    pub firewall_mark: Option<Spanned<u32>>,
    /// `ipv4` (the default) or `ipv6`: a firewall-mark service's family (`ipvsadm -f N -6`).
    pub family: Option<Spanned<String>>,
    pub scheduler: Option<Spanned<String>>,
    /// Persistence timeout in seconds (`ipvsadm -p`).
    pub persistent: Option<Spanned<u32>>,
    /// Persistence netmask (IPv4 dotted) or prefix length (IPv6) (`ipvsadm -M`).
    pub netmask: Option<Spanned<String>>,
    /// Persistence engine (`ipvsadm --pe`): `sip` (UDP, with `persistent`).
    pub persistence_engine: Option<Spanned<String>>,
    /// One-packet scheduling (`ipvsadm -o`): UDP only.
    pub one_packet: Option<Spanned<bool>>,
    #[serde(default)]
    pub sched_flags: Vec<Spanned<String>>,
    pub mh_table_size: Option<Spanned<u32>>,
    pub sorry_server: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<u32>>,
    /// `ftp` or `none` (IPVS's `ip_vs_ftp`); absent: `ftp` on TCP port 21.
    pub helper: Option<Spanned<String>>,
    /// The health check of every real server that has none of its own.
    pub check: Option<Spanned<RawCheck>>,
    /// `quiesce` (keepalived's inhibit_on_failure) or `remove`.
    pub on_failure: Option<Spanned<String>>,
    /// Live weight below which the sorry server takes over.
    pub quorum: Option<Spanned<u64>>,
    pub hysteresis: Option<u64>,
    pub quorum_up: Option<Spanned<String>>,
    pub quorum_down: Option<Spanned<String>>,
    #[serde(default, rename = "real_server")]
    pub real_servers: Vec<Spanned<RawRealServer>>,
    // kind = "http"
    #[serde(default, rename = "pool")]
    pub pools: Vec<Spanned<RawPool>>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RawRule>>,
    pub default_pool: Option<Spanned<String>>,
    pub x_forwarded_for: Option<bool>,
    pub x_forwarded_proto: Option<bool>,
    pub forwarded: Option<bool>,
    pub max_header_bytes: Option<usize>,
    pub max_body_bytes: Option<u64>,
    pub header_timeout: Option<f64>,
    pub keep_alive_timeout: Option<f64>,
    pub server_timeout: Option<f64>,
    pub connect_timeout: Option<f64>,
    pub tls: Option<Spanned<RawTls>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRealServer {
    pub address: Spanned<String>,
    pub weight: Option<Spanned<u32>>,
    pub method: Option<Spanned<String>>,
    pub u_threshold: Option<Spanned<u32>>,
    pub l_threshold: Option<Spanned<u32>>,
    pub proxy_protocol: Option<Spanned<String>>,
    pub check: Option<Spanned<RawCheck>>,
}
