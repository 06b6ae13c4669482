//! `GET /v1/vrrp`'s wire types: each VRRP instance with its state, effective priority, the
//! master it hears, advertisements sent and received, refused packets by kind and transitions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /v1/vrrp`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpView {
    pub instances: Vec<VrrpInstanceView>,
}

/// One VRRP instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpInstanceView {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// `init`, `backup`, `master`, `fault` or `stop`.
    pub state: String,
    /// The effective priority (after tracking).
    pub priority: u8,
    pub configured_priority: u8,
    /// The address it sends from.
    pub primary: Option<String>,
    /// The master it hears (itself when master).
    pub master: Option<String>,
    pub virtual_addresses: Vec<String>,
    pub advertisements_sent: u64,
    pub advertisements_received: u64,
    pub ignored: u64,
    /// Refused packets by kind (`ttl`, `checksum`, `version`, ...).
    pub decode_errors: BTreeMap<String, u64>,
    pub transitions: u64,
    pub error: Option<String>,
}
