//! Health-check specs as pure validated data: what to check on a real server and where
//! ([`CheckDef`]), its [`Timing`], notify commands and a service's [`Quorum`]. rvs-health
//! prepares and runs them; nothing here opens a socket or a file.

pub mod check;
pub mod dns;
pub mod escape;
pub mod notify;
pub mod quorum;
pub mod status;
pub mod timing;

pub use check::{
    AgentCheck, CheckDef, CheckError, CheckKind, ConnectTo, DnsCheck, ExecCheck, ExpectCheck, HttpCheck, SmtpCheck,
    Tls, UdpCheck,
};
pub use dns::{QType, QTypeError};
pub use escape::{unescape, EscapeError};
pub use notify::{NotifyCommand, NotifyError};
pub use quorum::{Quorum, QuorumError, QuorumState};
pub use rvs_core::pattern::{Pattern, PatternError};
pub use status::{StatusError, StatusRange};
pub use timing::{human_duration, Timing, TimingError};
