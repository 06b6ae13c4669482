//! The exec check (keepalived's `MISC_CHECK`): run a program with the real server's address,
//! kill its process group on timeout; exit 0 is up, 1 down, and in dynamic mode
//! (`misc_dynamic`) exit n ≥ 2 is up with weight n − 2.

use std::net::SocketAddr;

use tokio::process::Command;

use super::{io_reason, Deadline, Failure, Success, Verdict};
use crate::health::WeightHint;
use crate::process::{self, describe_status, RunError};
use rvs_model::health::check::ExecCheck;

pub(crate) async fn check(spec: &ExecCheck, addr: SocketAddr, dl: &Deadline) -> Verdict {
    let ip = addr.ip().to_string();
    let port = addr.port().to_string();
    let server = addr.to_string();
    let mut cmd = Command::new(&spec.program);
    cmd.args(spec.args.iter().map(|a| a.replace("{ip}", &ip).replace("{port}", &port).replace("{addr}", &server)))
        .env("RVS_REAL_IP", &ip)
        .env("RVS_REAL_PORT", &port)
        .env("RVS_REAL_SERVER", &server);
    let remaining = dl.at.saturating_duration_since(tokio::time::Instant::now());
    let program = spec.program.display();
    match process::run(cmd, remaining).await {
        Err(RunError::Spawn(e)) => Err(Failure(format!("cannot run {program}: {}", io_reason(&e)))),
        Err(RunError::Wait(e)) => Err(Failure(format!("waiting for {program}: {}", io_reason(&e)))),
        Err(RunError::TimedOut) => Err(dl.expired(&format!("running {program}; killed"))),
        Ok(status) => judge(status.code(), spec.dynamic).unwrap_or_else(|| Err(Failure(describe_status(status)))),
    }
}

/// The verdict for exit code `code`; `None` (down) when killed by a signal.
fn judge(code: Option<i32>, dynamic: bool) -> Option<Verdict> {
    let code = code?;
    Some(match code {
        0 => Ok(Success::up("exit 0")),
        n if dynamic && n >= 2 => {
            let weight = (n - 2) as u32;
            Ok(Success {
                weight: Some(WeightHint::Absolute(weight)),
                ..Success::up(format!("exit {n}: weight {weight}"))
            })
        }
        n => Err(Failure(format!("exit {n}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(judge(Some(0), false).unwrap().unwrap().reason, "exit 0");
        assert_eq!(judge(Some(1), true).unwrap().unwrap_err().0, "exit 1");
        assert_eq!(judge(Some(5), false).unwrap().unwrap_err().0, "exit 5");
        let s = judge(Some(5), true).unwrap().unwrap();
        assert_eq!((s.weight, s.reason.as_str()), (Some(WeightHint::Absolute(3)), "exit 5: weight 3"));
        assert_eq!(judge(Some(2), true).unwrap().unwrap().weight, Some(WeightHint::Absolute(0)));
        assert_eq!(judge(Some(255), true).unwrap().unwrap().weight, Some(WeightHint::Absolute(253)));
        assert!(judge(None, true).is_none());
    }
}
