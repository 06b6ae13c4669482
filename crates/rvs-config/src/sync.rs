//! `[sync]`: a connection sync daemon started with rvsd, as `rvsadm --start-daemon` starts one
//! (state master or backup, syncid, multicast interface, unicast peer, port).

use std::net::IpAddr;

use serde::Deserialize;
use toml::Spanned;

use crate::error::Unplaced;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub state: Spanned<String>,
    pub syncid: Option<Spanned<u32>>,
    pub mcast_interface: Option<String>,
    pub peer: Option<Spanned<String>>,
    pub port: Option<Spanned<u32>>,
}

/// Master or backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    Master,
    Backup,
}

/// The sync daemon of `[sync]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    pub state: SyncState,
    pub syncid: u8,
    pub mcast_interface: Option<String>,
    pub peer: Option<IpAddr>,
    /// Default 8848.
    pub port: Option<u16>,
}

pub(crate) fn sync(raw: &Spanned<RawSync>) -> Result<SyncConfig, Unplaced> {
    let s = raw.get_ref();
    let at = |span: std::ops::Range<usize>, field: &str, msg: String| Unplaced::new(Some(span), field, msg);
    let state = match s.state.get_ref().as_str() {
        "master" => SyncState::Master,
        "backup" => SyncState::Backup,
        other => return Err(at(s.state.span(), "sync.state", format!("{other:?}: use \"master\" or \"backup\""))),
    };
    let syncid = match &s.syncid {
        None => 0,
        Some(n) => u8::try_from(*n.get_ref()).map_err(|_| at(n.span(), "sync.syncid", "must be 0 to 255".into()))?,
    };
    let peer = match &s.peer {
        None => None,
        Some(p) => Some(
            p.get_ref()
                .parse()
                .map_err(|_| at(p.span(), "sync.peer", format!("{:?} is not an IP address", p.get_ref())))?,
        ),
    };
    let port = match &s.port {
        None => None,
        Some(p) => Some(
            u16::try_from(*p.get_ref())
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| at(p.span(), "sync.port", "must be 1 to 65535".into()))?,
        ),
    };
    if state == SyncState::Master && peer.is_none() && s.mcast_interface.is_none() {
        return Err(at(raw.span(), "sync.mcast_interface", "a master needs mcast_interface or peer".into()));
    }
    Ok(SyncConfig { state, syncid, mcast_interface: s.mcast_interface.clone(), peer, port })
}
