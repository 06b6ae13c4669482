//! SIP for the tests: Debian's SIPp (`sip-tester`) as real servers (its built-in `uas`
//! scenario, logging every message) and as the client (its `uac` scenario: INVITE, ACK, BYE
//! per call, all calls from one source port). Each is started from a `Command` for `sipp` the
//! caller makes, so it can run in a network namespace (`Netns::nsenter("sipp")`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Whether sipp is there (the SIP tests say so and pass when not).
pub fn sipp_installed() -> bool {
    Command::new("sipp").arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// A SIPp real server; stopped when dropped.
pub struct SippServer(Child);

impl SippServer {
    /// `sipp -sn uas` on `ip:port`, every message it receives and sends logged to `log`.
    pub fn start(mut sipp: Command, ip: &str, port: u16, log: &Path) -> SippServer {
        let child = sipp
            .args(["-sn", "uas", "-i", ip, "-p", &port.to_string(), "-nostdin", "-trace_msg", "-message_file"])
            .arg(log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp as a real server");
        SippServer(child)
    }
}

impl Drop for SippServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Call-IDs of the requests a real server's message log shows it received.
pub fn calls_received(log: &Path) -> HashSet<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut calls = HashSet::new();
    let mut received = false;
    for line in text.lines() {
        if line.contains("UDP message received") {
            received = true;
        } else if line.contains("UDP message sent") {
            received = false;
        } else if received {
            if let Some(id) = line.strip_prefix("Call-ID:").or_else(|| line.strip_prefix("i:")) {
                calls.insert(id.trim().to_string());
            }
        }
    }
    calls
}

/// Runs `sipp -sn uac` from `ip:port` to `target`: `calls` calls, 100 per second, 20 at a
/// time, the whole run bounded to 60 s; its working files go to `dir`. The exit status is 0
/// only if every call succeeded.
pub fn sipp_calls(mut sipp: Command, target: SocketAddr, ip: &str, port: u16, calls: u32, dir: &Path) -> Output {
    sipp.args(["-sn", "uac", &target.to_string(), "-i", ip, "-p", &port.to_string()])
        .args(["-m", &calls.to_string(), "-r", "100", "-l", "20", "-nostdin", "-timeout", "60s", "-timeout_error"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run sipp as the client")
}
