//! The data-plane interface: all the director knows of an engine. A change is first prepared
//! by every data plane from the next model (checked, and what it needs acquired: listeners
//! bound, programs loaded) while nothing is applied; then each publishes the new snapshot.
//! Counters, connections and connect failures come back through it.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rvs_core::http_stats::L7ServiceStats;
use rvs_core::{Applied, ConnState, Protocol, RealServer, SctpState, ServiceKey, Snapshot};
use rvs_model::health::CheckPaths;
use rvs_model::DirectorModel;

use crate::connect_failures::ConnectFailureObserver;

/// What a data plane is told when a change is published. Immutable; the next change
/// publishes a new one.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The apply path's sequence number of the batch that made it.
    pub generation: u64,
    /// The model as it now is (what `prepare` saw).
    pub model: Arc<DirectorModel>,
    /// The TCP and UDP virtual services' runtime objects (schedulers, real servers, counters).
    pub services: Arc<Snapshot>,
    /// What the batch took away (real servers whose connections drain or close).
    pub removed: Arc<Applied>,
}

/// Why a data plane refused a change; nothing was applied anywhere.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct PlaneError {
    pub kind: PlaneErrorKind,
    /// The virtual service at fault, when there is one.
    pub service: Option<ServiceKey>,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// What kind of refusal a [`PlaneError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaneErrorKind {
    /// The model asks for something this data plane cannot do (bad rule, TLS key that does not
    /// fit its certificate, a forwarding method it lacks).
    Invalid,
    /// A virtual service's address could not be bound.
    Listen,
    /// The kernel refused a program or map.
    Load,
}

impl PlaneError {
    pub fn new(
        kind: PlaneErrorKind,
        service: Option<ServiceKey>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self { kind, service, source: source.into() }
    }
}

/// What a data plane acquired for one change, held until it is published (or dropped, which
/// releases it: bound listeners close, loaded programs unload), and what it tells the health
/// plane of that change: how the checks of its real servers reach them ([`CheckPaths`]).
pub struct Prepared(Box<dyn Any + Send>, Option<CheckPaths>);

impl Prepared {
    pub fn new<T: Any + Send>(what: T) -> Self {
        Self(Box::new(what), None)
    }

    /// With the check paths of the real servers this data plane forwards to (the packet
    /// engine's gate and tunnel real servers): the director hands them to the health plane.
    pub fn with_check_paths(mut self, paths: CheckPaths) -> Self {
        self.1 = Some(paths);
        self
    }

    pub fn check_paths(&self) -> Option<&CheckPaths> {
        self.1.as_ref()
    }

    /// What the data plane put in; `None` if this came from another data plane (a bug the
    /// caller logs rather than crashes on).
    pub fn take<T: Any>(self) -> Option<T> {
        self.0.downcast().ok().map(|b| *b)
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prepared")
    }
}

/// One connection as `ipvsadm -L -c` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub protocol: Protocol,
    pub client: SocketAddr,
    pub virtual_addr: SocketAddr,
    pub dest: Option<SocketAddr>,
    pub state: ConnState,
    /// An SCTP flow's association state (the packet engine's), which `state` only classes.
    pub sctp_state: Option<SctpState>,
    /// Milliseconds until the idle timeout closes it.
    pub expires_ms: u64,
}

impl ConnInfo {
    /// The state as `ipvsadm -L -c` prints it: IPVS's TCP or SCTP state names, `UDP` for UDP.
    pub fn ipvs_state(&self) -> &'static str {
        match (self.protocol, self.sctp_state) {
            (Protocol::Udp, _) => "UDP",
            (Protocol::Sctp, Some(s)) => s.ipvs_name(),
            _ => self.state.ipvs_name(),
        }
    }
}

/// What a data plane reports of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaneReport {
    /// Client connections (or flows) it holds now.
    pub connections: usize,
    /// The kernel relay of an L4 proxy, when it has one loaded.
    pub kernel_relay: Option<KernelRelayReport>,
    /// Whether it is draining for a shutdown.
    pub draining: bool,
    /// The counters of the http services it runs.
    pub http: Vec<L7ServiceStats>,
    /// The packet engine's state, from the packet engine.
    pub packet: Option<PacketReport>,
}

/// What the packet engine reports: where it is attached, its flows and its counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacketReport {
    /// Virtual services with gate, masq or tunnel real servers in the table.
    pub services: usize,
    /// Where its maps and attachments are pinned (they outlive rvsd), when they are.
    pub pin_dir: Option<String>,
    /// Flows taken over at start from the previous rvsd's pinned table.
    pub taken_over: usize,
    /// Interfaces and how the program is attached to each (`native`, `generic`); empty when the
    /// engine is not attached, and then those services get no traffic.
    pub interfaces: Vec<(String, &'static str)>,
    /// Flows rvsd scheduled that the kernel table still holds.
    pub flows: usize,
    /// Flows the kernel table holds at most.
    pub capacity: u32,
    /// Kernel memory of the connection table, when the kernel says.
    pub table_bytes: Option<u64>,
    /// First packets scheduled and handed back; refused for want of a real server.
    pub scheduled: u64,
    pub rejected: u64,
    /// Time spent scheduling first packets, in all.
    pub schedule_ns: u64,
    /// The program's own counters by name (passed, forwarded, dropped, ...).
    pub stats: Vec<(&'static str, u64)>,
}

/// The sockmap relay's occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelRelayReport {
    pub capacity: u32,
    pub linked: u32,
    pub linked_total: u64,
}

/// A future a data plane's shutdown returns: how many connections were closed at the deadline.
pub type Drained<'a> = Pin<Box<dyn Future<Output = usize> + Send + 'a>>;

/// An engine the director publishes to: the L4 proxy, the L7 HTTP engine, the packet engine.
pub trait DataPlane: Send + Sync {
    /// Names it in logs and errors (`proxy`, `http`, `xdp`).
    fn name(&self) -> &'static str;

    /// Checks `next` and acquires what publishing it needs, changing nothing anyone sees.
    fn prepare(&self, next: &DirectorModel) -> Result<Prepared, PlaneError>;

    /// Makes a prepared change live. Cannot fail: whatever could fail happened in `prepare`.
    fn publish(self: Arc<Self>, prepared: Prepared, next: &Publication);

    /// Connection counts and the like.
    fn report(&self) -> PlaneReport;

    /// The connections it holds now.
    fn connections(&self) -> Vec<ConnInfo> {
        Vec::new()
    }

    /// Closes every connection to `dest` now (`expire_nodest_conn`); how many.
    fn close_connections_to(&self, _dest: &Arc<RealServer>) -> usize {
        0
    }

    /// Sets who is told of each failed connect to a real server (passive health checking);
    /// once, later calls are ignored.
    fn observe_connect_failures(&self, observer: ConnectFailureObserver);

    /// Zeroes the counters it keeps itself, of one virtual service or of all (the core's
    /// counters are zeroed by the apply path).
    fn zero_counters(&self, _service: Option<&ServiceKey>) {}

    /// Stops accepting, lets connections finish for up to `deadline`, closes the rest.
    fn shutdown(&self, deadline: Duration) -> Drained<'_>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_named_as_ipvsadm_names_them() {
        let conn = |protocol, state, sctp_state| ConnInfo {
            protocol,
            client: "198.18.0.2:40000".parse().unwrap(),
            virtual_addr: "198.18.1.10:80".parse().unwrap(),
            dest: None,
            state,
            sctp_state,
            expires_ms: 0,
        };
        assert_eq!(conn(Protocol::Tcp, ConnState::Closing, None).ipvs_state(), "FIN_WAIT");
        assert_eq!(conn(Protocol::Udp, ConnState::Opening, None).ipvs_state(), "UDP");
        let s = conn(Protocol::Sctp, ConnState::Closing, Some(SctpState::ShutdownAckSent));
        assert_eq!(s.ipvs_state(), "S-ACK-SENT");
    }
}
