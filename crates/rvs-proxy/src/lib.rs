//! rvs-proxy: the userspace data plane. A full-NAT Layer-4 TCP proxy: one listener per
//! virtual service, scheduling through rvs-core, a splice(2) relay, PROXY protocol towards
//! real servers. It is not the control plane: it only reads published snapshots.

pub mod clock;
pub mod conn_table;
pub mod engine;
pub mod listeners;
pub mod proxy_protocol;
mod relay;
pub mod splice;

pub use clock::Clock;
pub use engine::{ConnInfo, ConnectFailureObserver, Engine, EngineConfig};
pub use listeners::{bind_listener, ListenError, ListenerSet};
