//! Running an external command with a timeout (exec checks, notify commands): in its own
//! process group, killed as a group (SIGKILL) when the timeout passes or the caller goes away.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::process::Command;

/// How running a command went wrong.
#[derive(Debug)]
pub(crate) enum RunError {
    /// It could not be started (not found, not executable, ...).
    Spawn(io::Error),
    /// Waiting for it failed.
    Wait(io::Error),
    /// It ran past the timeout and was killed.
    TimedOut,
}

/// Kills the process group it holds when dropped, unless disarmed.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            // The group may be gone already; nothing to do then.
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` (stdin, stdout and stderr to /dev/null) and waits at most `timeout` for it.
pub(crate) async fn run(mut cmd: Command, timeout: Duration) -> Result<ExitStatus, RunError> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    let mut guard = GroupGuard(child.id().and_then(|id| Pid::from_raw(id as i32)));
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            // Exited: leave whatever it left running in the background alone.
            guard.0 = None;
            Ok(status)
        }
        Ok(Err(e)) => Err(RunError::Wait(e)),
        Err(_) => {
            guard.kill();
            let _ = child.kill().await;
            Err(RunError::TimedOut)
        }
    }
}

/// `exit 3` or `killed by signal 9`.
pub(crate) fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "ended without status".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn exit_codes_and_timeout() {
        let mut c = Command::new("sh");
        c.args(["-c", "exit 7"]);
        let status = run(c, Duration::from_secs(5)).await.unwrap();
        assert_eq!(describe_status(status), "exit 7");

        // A child of the shell holds on; the whole group goes.
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 30; exit 0"]);
        let t = Instant::now();
        assert!(matches!(run(c, Duration::from_millis(200)).await, Err(RunError::TimedOut)));
        assert!(t.elapsed() < Duration::from_secs(5));

        let c = Command::new("/nonexistent/program");
        assert!(matches!(run(c, Duration::from_secs(1)).await, Err(RunError::Spawn(_))));
    }
}
