//! Connection sync's wire types (`/v1/sync`): a sync daemon to start, the daemons running and
//! their counters, and the line `ipvsadm -L --daemon` prints for each.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A sync daemon: `POST /v1/sync` starts it, `GET /v1/sync` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDaemonSpec {
    /// "master" or "backup".
    pub state: String,
    #[serde(default)]
    pub syncid: u8,
    /// The multicast interface (IPVS's group 224.0.0.81 on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast_interface: Option<String>,
    /// A unicast peer: a master sends there instead of the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The UDP port (default 8848).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl fmt::Display for SyncDaemonSpec {
    /// As ipvsadm prints it: `master sync daemon (mcast=eth0, syncid=1)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sync daemon (", self.state)?;
        if let Some(i) = &self.mcast_interface {
            write!(f, "mcast={i}, ")?;
        }
        if let Some(p) = &self.peer {
            write!(f, "peer={p}, ")?;
        }
        write!(f, "syncid={})", self.syncid)
    }
}

/// `GET /v1/sync`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncView {
    pub daemons: Vec<SyncDaemonSpec>,
    /// sent_datagrams, sent_entries, received_datagrams, installed_flows, installed_templates,
    /// skipped, send_errors, and rejected_REASON for each refusal reason.
    pub counters: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemons_print_as_ipvsadm_prints_them() {
        let spec = |state: &str, i: Option<&str>, p: Option<&str>| SyncDaemonSpec {
            state: state.into(),
            syncid: 1,
            mcast_interface: i.map(Into::into),
            peer: p.map(Into::into),
            port: None,
        };
        assert_eq!(spec("master", Some("eth0"), None).to_string(), "master sync daemon (mcast=eth0, syncid=1)");
        assert_eq!(spec("backup", Some("eth1"), None).to_string(), "backup sync daemon (mcast=eth1, syncid=1)");
        assert_eq!(
            spec("master", None, Some("198.18.0.3")).to_string(),
            "master sync daemon (peer=198.18.0.3, syncid=1)"
        );
    }
}
