//! Health-check specs as pure validated data: what to check on a real server and where
//! ([`CheckDef`]), its [`Timing`], notify commands, a service's [`Quorum`] and its
//! [`ServiceHealth`]. rvs-health prepares and runs them; nothing here opens a socket or a file.

pub mod check;
pub mod dns;
pub mod escape;
pub mod notify;
pub mod path;
pub mod quorum;
pub mod service;
pub mod status;
pub mod timing;

pub use check::{
    AgentCheck, CheckDef, CheckError, CheckKind, ConnectTo, DnsCheck, ExecCheck, ExpectCheck, HttpCheck, SmtpCheck,
    Tls, UdpCheck,
};
pub use dns::{QType, QTypeError};
pub use escape::{unescape, EscapeError};
pub use notify::{NotifyCommand, NotifyError};
pub use path::{CheckPath, CheckPaths, ViaVip};
pub use quorum::{Quorum, QuorumError, QuorumState};
pub use rvs_core::pattern::{Pattern, PatternError};
pub use service::{CheckSpec, ServiceHealth};
pub use status::{StatusError, StatusRange};
pub use timing::{human_duration, Timing, TimingError};
