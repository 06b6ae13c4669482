//! rvs-core: the domain of the Rust Virtual Server. Virtual services, real servers, forwarding
//! methods, the IPVS schedulers, persistence templates, connection accounting, counters and the
//! rate estimator. It does no I/O: no sockets, no files, no clocks; `now` and seeds come in.

#![forbid(unsafe_code)]

pub mod addr;
pub mod command;
pub mod conn;
pub mod forwarding;
pub mod fwmark;
pub mod health;
pub mod http_stats;
pub mod pattern;
pub mod persistence;
pub mod real_server;
pub mod sched;
pub mod sctp;
pub mod service;
pub mod sip;
pub mod stats;
pub mod table;
pub mod timeouts;
pub mod virtual_service;

pub use command::{BatchError, Command, CommandError, DirectorOptions, EngineConflict};
pub use conn::{Binding, ConnState};
pub use forwarding::{Engine, ForwardingMethod, ProxyProtocol};
pub use fwmark::{Family, Mark, MarkDef, MarkKey, MarkMatch};
pub use health::{FailureAction, Health};
pub use persistence::{Netmask, Persistence, PersistenceEngine, TemplateKey};
pub use real_server::{RealServer, RealServerSettings};
pub use sched::{SchedFlags, SchedRequest, SchedulerKind};
pub use sctp::SctpState;
pub use service::{Helper, Protocol, ServiceAddr, ServiceKey, ServiceSettings};
pub use table::{Applied, ServiceModel, ServiceTable, Snapshot, TableModel};
pub use timeouts::Timeouts;
pub use virtual_service::VirtualService;
