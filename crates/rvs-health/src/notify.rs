//! Notify commands (`notify_up`, `notify_down`, `quorum_up`, `quorum_down`): one queue task runs
//! them one at a time, in the order they were queued, each exactly once and with a timeout, so
//! checks never wait on them.
//!
//! A real server's command gets, after its own arguments: the server (`ip:port`), the service
//! and the new state (`up`, `down` or `drain`). A service's quorum command gets the service and
//! the new quorum state (`up` or `down`). Both also get `RVS_NOTIFY` (`notify_up`, ...),
//! `RVS_SERVICE`, `RVS_STATE`, and for real servers `RVS_REAL_SERVER` and `RVS_WEIGHT`, in their
//! environment. A command that fails or times out is logged, never run again.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

use crate::health::Health;
use crate::process::{self, describe_status, RunError};
use crate::state::Transition;
use rvs_model::health::notify::NotifyCommand;
use rvs_model::health::quorum::QuorumState;

/// The default time a notify command may run before it is killed.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which notify command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyKind {
    NotifyUp,
    NotifyDown,
    QuorumUp,
    QuorumDown,
    /// A VRRP instance's `notify.master` and the others.
    VrrpMaster,
    VrrpBackup,
    VrrpFault,
    VrrpStop,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::NotifyUp => "notify_up",
            NotifyKind::NotifyDown => "notify_down",
            NotifyKind::QuorumUp => "quorum_up",
            NotifyKind::QuorumDown => "quorum_down",
            NotifyKind::VrrpMaster => "notify_master",
            NotifyKind::VrrpBackup => "notify_backup",
            NotifyKind::VrrpFault => "notify_fault",
            NotifyKind::VrrpStop => "notify_stop",
        }
    }

    /// The real-server command a transition calls for: `notify_down` when the server goes down,
    /// `notify_up` when it comes back from down (up or drain); none for up ↔ drain and weight
    /// changes.
    pub fn for_transition(t: &Transition) -> Option<NotifyKind> {
        match (t.from, t.to) {
            (from, Health::Down) if from != Health::Down => Some(NotifyKind::NotifyDown),
            (Health::Down, to) if to != Health::Down => Some(NotifyKind::NotifyUp),
            _ => None,
        }
    }

    pub fn for_quorum(to: QuorumState) -> NotifyKind {
        match to {
            QuorumState::Up => NotifyKind::QuorumUp,
            QuorumState::Down => NotifyKind::QuorumDown,
        }
    }
}

impl fmt::Display for NotifyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub kind: NotifyKind,
    pub command: NotifyCommand,
    pub service: String,
    /// The real server, for `notify_up` / `notify_down`.
    pub server: Option<SocketAddr>,
    /// `up`, `down`, `drain`.
    pub state: String,
    /// The real server's weight after the transition.
    pub weight: Option<u32>,
}

impl Notification {
    /// `notify_up` / `notify_down` of `server` in `service`, now `state` with `weight`.
    pub fn real_server(
        kind: NotifyKind,
        command: NotifyCommand,
        service: impl Into<String>,
        server: SocketAddr,
        state: Health,
        weight: u32,
    ) -> Self {
        Self {
            kind,
            command,
            service: service.into(),
            server: Some(server),
            state: state.name().to_owned(),
            weight: Some(weight),
        }
    }

    /// `quorum_up` / `quorum_down` of `service`.
    pub fn quorum(command: NotifyCommand, service: impl Into<String>, to: QuorumState) -> Self {
        Self {
            kind: NotifyKind::for_quorum(to),
            command,
            service: service.into(),
            server: None,
            state: to.as_str().to_owned(),
            weight: None,
        }
    }

    /// A VRRP instance's notify command on entering `state` (`RVS_SERVICE`: the instance).
    pub fn vrrp(kind: NotifyKind, command: NotifyCommand, instance: impl Into<String>, state: &str) -> Self {
        Self { kind, command, service: instance.into(), server: None, state: state.to_owned(), weight: None }
    }

    /// The arguments after the command's own.
    pub fn extra_args(&self) -> Vec<String> {
        match self.server {
            Some(server) => vec![server.to_string(), self.service.clone(), self.state.clone()],
            None => vec![self.service.clone(), self.state.clone()],
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.command.program);
        cmd.args(&self.command.args)
            .args(self.extra_args())
            .env("RVS_NOTIFY", self.kind.as_str())
            .env("RVS_SERVICE", &self.service)
            .env("RVS_STATE", &self.state);
        if let Some(server) = self.server {
            cmd.env("RVS_REAL_SERVER", server.to_string());
        }
        if let Some(w) = self.weight {
            cmd.env("RVS_WEIGHT", w.to_string());
        }
        cmd
    }
}

/// Counts of what the notifier did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NotifyStats {
    pub queued: u64,
    /// Ran and exited 0.
    pub succeeded: u64,
    /// Could not start, exited non-zero, or timed out.
    pub failed: u64,
    pub timed_out: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
}

enum Msg {
    Run(Box<Notification>),
    Flush(oneshot::Sender<()>),
}

/// The handle to the notify queue. Cloning shares the queue; the queue task ends when every
/// handle is gone and the queue is empty.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::UnboundedSender<Msg>,
    counters: Arc<Counters>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier").field("stats", &self.stats()).finish()
    }
}

impl Notifier {
    /// Starts the queue task on the current tokio runtime; each command may run `timeout`.
    pub fn spawn(timeout: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        tokio::spawn(run_queue(rx, timeout, counters.clone()));
        Self { tx, counters }
    }

    /// Queues `n`; never waits. False when the queue task is gone (runtime shut down).
    pub fn notify(&self, n: Notification) -> bool {
        let ok = self.tx.send(Msg::Run(Box::new(n))).is_ok();
        if ok {
            self.counters.queued.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Waits until every notification queued before this call has run.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    pub fn stats(&self) -> NotifyStats {
        let c = &self.counters;
        NotifyStats {
            queued: c.queued.load(Ordering::Relaxed),
            succeeded: c.succeeded.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
        }
    }
}

async fn run_queue(mut rx: mpsc::UnboundedReceiver<Msg>, timeout: Duration, counters: Arc<Counters>) {
    while let Some(msg) = rx.recv().await {
        let n = match msg {
            Msg::Run(n) => n,
            Msg::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let what = format!("{} {}", n.kind, n.command);
        match process::run(n.command(), timeout).await {
            Ok(status) if status.success() => {
                counters.succeeded.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(command = %what, service = %n.service, state = %n.state, "notify command ran");
            }
            Ok(status) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(command = %what, status = %describe_status(status), "notify command failed");
            }
            Err(RunError::TimedOut) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                counters.timed_out.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(command = %what, ?timeout, "notify command timed out and was killed");
            }
            Err(RunError::Spawn(e) | RunError::Wait(e)) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(command = %what, error = %e, "notify command could not run");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn kinds_for_transitions() {
        let t = |from, to| Transition { from, to, weight: None, reason: String::new(), at: Instant::now() };
        assert_eq!(NotifyKind::for_transition(&t(Health::Up, Health::Down)), Some(NotifyKind::NotifyDown));
        assert_eq!(NotifyKind::for_transition(&t(Health::Drain, Health::Down)), Some(NotifyKind::NotifyDown));
        assert_eq!(NotifyKind::for_transition(&t(Health::Down, Health::Up)), Some(NotifyKind::NotifyUp));
        assert_eq!(NotifyKind::for_transition(&t(Health::Down, Health::Drain)), Some(NotifyKind::NotifyUp));
        assert_eq!(NotifyKind::for_transition(&t(Health::Up, Health::Drain)), None);
        assert_eq!(NotifyKind::for_transition(&t(Health::Up, Health::Up)), None);
    }

    #[test]
    fn arguments() {
        let cmd = NotifyCommand::new("/bin/n", ["x"]);
        let n = Notification::real_server(
            NotifyKind::NotifyDown,
            cmd.clone(),
            "TCP 10.0.0.1:80",
            "10.0.0.2:80".parse().unwrap(),
            Health::Down,
            0,
        );
        assert_eq!(n.extra_args(), ["10.0.0.2:80", "TCP 10.0.0.1:80", "down"]);
        let q = Notification::quorum(cmd, "TCP 10.0.0.1:80", QuorumState::Down);
        assert_eq!((q.kind, q.extra_args()), (NotifyKind::QuorumDown, vec!["TCP 10.0.0.1:80".into(), "down".into()]));
    }
}
