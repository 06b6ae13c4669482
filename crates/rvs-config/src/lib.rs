//! rvs-config: the rvsd configuration file. TOML is read into raw structs that refuse unknown
//! fields, then validated into a [`Config`] whose service part is a core [`TableModel`]; every
//! error names the file, line, column and field. Reload is `TableModel::diff` of two of these.

#![forbid(unsafe_code)]

mod error;
mod fwmark;
mod health;
mod http;
mod path;
mod raw;
mod save;
mod sync;
mod validate;
mod vrrp;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use rvs_core::{ServiceKey, TableModel};

pub use error::ConfigError;
pub use rvs_model::health::{CheckSpec, ServiceHealth};
pub use save::{line_diff, rewrite, DiffLine, SaveError};
pub use sync::{SyncConfig, SyncState};

/// Where and how the control API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// The unix socket (always on).
    pub socket: PathBuf,
    /// An optional loopback TCP address; requires `token`.
    pub listen: Option<SocketAddr>,
    /// The bearer token the TCP listener requires.
    pub token: Option<String>,
    /// A second token for the TCP listener that may look but not change (GET only).
    pub read_only_token: Option<String>,
}

/// Knobs of the director itself (not of one service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectorConfig {
    pub connect_timeout: Duration,
    pub connect_retries: u32,
    /// How long SIGTERM waits for connections to finish before closing them.
    pub drain_timeout: Duration,
    /// How the L4 proxy relays established connections.
    pub relay: Relay,
    /// The cap on client connections held at once (TCP and http services together; HAProxy's
    /// `maxconn`); `None`: rvsd derives one from its open-files limit.
    pub max_connections: Option<NonZeroU32>,
}

/// Most connections `sockmap_connections` may ask for.
pub const MAX_SOCKMAP_CONNECTIONS: u32 = 1 << 20;
/// Connections the sockmap holds when `sockmap_connections` is not set.
pub const DEFAULT_SOCKMAP_CONNECTIONS: u32 = 32_768;

/// `[director] relay`: how the L4 proxy relays established connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    /// Long-lived connections go to a sockmap and the kernel moves their bytes (up to
    /// `connections` at once); splice when the kernel refuses it.
    Sockmap { connections: u32 },
    /// rvsd moves every byte itself (copy, or splice(2) for bulk).
    Splice,
}

impl Default for DirectorConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            connect_retries: 2,
            drain_timeout: Duration::from_secs(10),
            relay: Relay::Splice,
            max_connections: None,
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiConfig,
    pub director: DirectorConfig,
    /// Virtual services, real servers, timeouts and switches.
    pub table: TableModel,
    /// Health checks, quorum and failure actions, per virtual service that has any.
    pub health: BTreeMap<ServiceKey, ServiceHealth>,
    /// Layer-7 (`kind = "http"`) virtual services, in file order.
    pub http: Vec<rvs_model::http::L7ServiceConfig>,
    /// The XDP packet engine (gate, masq and tunnel real servers), when the file attaches it.
    pub packet_engine: Option<PacketEngineConfig>,
    /// `[[vrrp]]`: the VRRP instances, in file order (none: rvsd runs no VRRP).
    pub vrrp: Vec<rvs_model::vrrp::VrrpInstanceSpec>,
    /// The connection sync daemon started with rvsd (`[sync]`).
    pub sync: Option<SyncConfig>,
}

/// `[packet_engine]`: the interfaces the XDP program attaches to and its connection table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketEngineConfig {
    /// Interface names, each checked to be a valid name (1 to 15 bytes, no `/`, no space).
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpMode,
    /// Flows the connection table holds (an LRU: the least recently used goes when full).
    pub connections: u32,
    /// `pin_path`: the directory of a BPF filesystem where the engine's maps and attachments
    /// are pinned, so that its flows outlive an rvsd restart. `None`: the default, one
    /// directory per network namespace (`/sys/fs/bpf/rvs/xdp-netns-INODE`).
    pub pin_path: Option<std::path::PathBuf>,
}

/// `[packet_engine] xdp_mode`: how the program attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native (in the driver) where the driver has it, generic otherwise.
    #[default]
    Auto,
    Native,
    Generic,
}

/// Flows the packet engine's connection table holds when `connections` is not set.
pub const DEFAULT_PACKET_CONNECTIONS: u32 = 1 << 20;
/// The most `[packet_engine] connections` may ask for.
pub const MAX_PACKET_CONNECTIONS: u32 = 1 << 26;

/// The default unix socket of the control API.
pub const DEFAULT_SOCKET: &str = "/run/rvsd.sock";

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Validates `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::toml(path, text, &e))?;
        validate::validate(raw).map_err(|e| e.located(path, text))
    }
}
