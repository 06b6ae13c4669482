//! rvs-health: health checks for rvs real servers, as keepalived and ldirectord do them. It owns
//! the runtime: the prepared checks and their checkers, the rise/fall state machine with passive
//! failures, the quorum tracker, the notify queue, the event log, and the supervisor that runs
//! one concurrent check loop per real server. The specs it runs (check kinds, timing, quorum
//! settings, notify commands) are rvs-model's, re-exported here.
//!
//! How rvsd uses it:
//! 1. Prepare a [`Check`] from each real server's validated [`CheckDef`] ([`Check::prepare`]
//!    builds its TLS client; [`Check::new`] validates a [`CheckKind`] first, with a clear
//!    [`CheckError`]) and take its [`Timing`].
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
pub mod events;
pub mod fuzz;
pub mod health;
pub mod jitter;
pub mod md5;
pub mod notify;
mod process;
pub mod quorum;
pub mod result;
pub mod state;
pub mod supervisor;

pub use rvs_model::health::{escape, status, timing};

pub use check::{Check, Endpoint, PrepareError};
pub use events::{Event, EventLog, EventRecord, DEFAULT_EVENT_CAPACITY};
pub use health::{effective_weight, Health, WeightHint, MAX_WEIGHT};
pub use notify::{Notification, Notifier, NotifyKind, NotifyStats, DEFAULT_NOTIFY_TIMEOUT};
pub use quorum::{live_weight, QuorumTracker, QuorumTransition};
pub use result::CheckResult;
pub use rvs_model::health::{
    unescape, AgentCheck, CheckDef, CheckError, CheckKind, ConnectTo, DnsCheck, EscapeError, ExecCheck, ExpectCheck,
    HttpCheck, NotifyCommand, NotifyError, Pattern, PatternError, QType, QTypeError, Quorum, QuorumError, QuorumState,
    SmtpCheck, StatusError, StatusRange, Timing, TimingError, Tls, UdpCheck, ViaVip,
};
pub use state::{CheckState, Totals, Transition};
pub use supervisor::{
    Applied, HealthEvent, HealthSupervisor, RealServerKey, Reconciled, Source, SupervisorError, Target, TargetError,
    TargetKey, TargetSnapshot,
};
