//! rvs-health: health checks for rvs real servers, as keepalived and ldirectord do them. It owns
//! the checkers, the rise/fall state machine with passive failures, quorum, notify commands, the
//! event log, and the supervisor that runs one concurrent check loop per real server.
//!
//! How rvsd uses it:
//! 1. Build a [`Check`] from each real server's checker config ([`Check::new`] validates and
//!    rejects bad specs with a clear [`CheckError`]) and a [`Timing`].
//! 2. [`HealthSupervisor::spawn`] with a [`Target`] per real server (key: e.g.
//!    [`RealServerKey`]); read [`HealthEvent`]s from the receiver. Each is one transition:
//!    apply it to the table ([`effective_weight`] of the configured weight, 0 or removal when
//!    down), log it into an [`EventLog`], queue `notify_up`/`notify_down` on a [`Notifier`]
//!    ([`NotifyKind::for_transition`]), and feed the service's live weight to its
//!    [`QuorumTracker`] (sorry server and `quorum_up`/`quorum_down` on its transitions).
//! 3. On reload, [`HealthSupervisor::reconcile`] with the new targets; unchanged ones keep their
//!    state. Feed data-plane connection failures with [`HealthSupervisor::passive_failure`], and
//!    list states with [`HealthSupervisor::snapshot`].
//!
//! A target starts in [`Timing::initial_health`] (down with `alpha`, otherwise up), or in its
//! prior state; no event is sent for the starting state.

#![forbid(unsafe_code)]

pub mod check;
mod checkers;
pub mod escape;
pub mod events;
pub mod health;
pub mod jitter;
pub mod md5;
pub mod notify;
mod process;
pub mod quorum;
pub mod result;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod timing;

pub use check::{
    AgentCheck, Check, CheckError, CheckKind, ConnectTo, DnsCheck, ExecCheck, ExpectCheck, HttpCheck, SmtpCheck, Tls,
    UdpCheck,
};
pub use checkers::dns::{QType, QTypeError};
pub use escape::{unescape, EscapeError};
pub use events::{Event, EventLog, EventRecord, DEFAULT_EVENT_CAPACITY};
pub use health::{effective_weight, Health, WeightHint, MAX_WEIGHT};
pub use notify::{Notification, Notifier, NotifyCommand, NotifyError, NotifyKind, NotifyStats, DEFAULT_NOTIFY_TIMEOUT};
pub use quorum::{live_weight, Quorum, QuorumError, QuorumState, QuorumTracker, QuorumTransition};
pub use result::CheckResult;
pub use rvs_core::pattern::{Pattern, PatternError};
pub use state::{CheckState, Totals, Transition};
pub use status::{StatusError, StatusRange};
pub use supervisor::{
    Applied, HealthEvent, HealthSupervisor, RealServerKey, Reconciled, Source, SupervisorError, Target, TargetKey,
    TargetSnapshot,
};
pub use timing::{Timing, TimingError};
