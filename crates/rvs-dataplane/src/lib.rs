//! rvs-dataplane: what every data plane of rvs shares. The data-plane interface the director
//! publishes through ([`plane`]), and the kit the proxy engines (L4 full NAT, L7 HTTP) are
//! built from. It is not an engine itself and holds no service table.

#![forbid(unsafe_code)]

pub mod accept;
pub mod clock;
pub mod conn_limit;
pub mod connect_failures;
pub mod ftp;
pub mod handover;
pub mod hasher;
pub mod listeners;
pub mod plane;
pub mod proxy_protocol;
pub mod splice;
pub mod tcp_options;

pub use clock::Clock;
pub use conn_limit::{ConnLimit, ConnSlot, ConnSlots};
pub use connect_failures::{ConnectFailureObserver, ConnectFailures, FailedConnect};
pub use listeners::{bind_listener, bind_std_listener, ListenError, ListenerSet};
pub use plane::{
    ConnInfo, DataPlane, KernelRelayReport, PlaneError, PlaneErrorKind, PlaneReport, Prepared, Publication,
};
