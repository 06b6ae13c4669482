//! rvs-proxy: the L4 data plane. A full-NAT Layer-4 proxy for TCP and UDP: one listener (or
//! UDP socket) per virtual service, scheduling through rvs-core, a relay that hands long-lived connections to a sockmap
//! in the kernel (else splice(2)), PROXY protocol towards real servers. It is not the control
//! plane: it only reads published snapshots.

pub mod clock;
pub mod conn_limit;
pub mod conn_table;
pub mod connect_failures;
pub mod engine;
pub mod kernel_relay;
pub mod listeners;
mod plane;
pub mod proxy_protocol;
mod relay;
pub mod splice;
pub mod tcp_options;
mod udp;

pub use clock::Clock;
pub use conn_limit::{ConnLimit, ConnSlot, ConnSlots};
pub use connect_failures::{ConnectFailureObserver, FailedConnect};
pub use engine::{Engine, EngineConfig, RelayMode};
pub use kernel_relay::{KernelRelay, KernelRelayError};
pub use listeners::{bind_listener, ListenError, ListenerSet};
