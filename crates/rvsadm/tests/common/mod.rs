//! Shared by the integration tests: a real rvsd (rvs-testkit) and the rvsadm binary.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use rvs_testkit::{free_port, Backend, Rvsd};
use serde_json::Value;

/// A free port on loopback (v4 and v6) below the ephemeral range, never the same twice in
/// this process: ports the kernel hands out for `bind(0)` (the test kit's `free_port` and its
/// backends, in tests running at the same time) cannot take it between the check and rvsd's
/// bind.
pub fn port() -> u16 {
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|w| w.parse().ok()))
        .unwrap_or(32768);
    if low <= 11000 {
        return free_port();
    }
    let span = low - 10000;
    let _ =
        NEXT.compare_exchange(0, std::process::id().wrapping_mul(7919) % span + 1, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..span {
        let p = (10000 + NEXT.fetch_add(1, Ordering::SeqCst) % span) as u16;
        if TcpListener::bind(("127.0.0.1", p)).is_ok() && TcpListener::bind(("::1", p)).is_ok() {
            return p;
        }
    }
    free_port()
}

/// The rvsd binary the test kit starts (`RVSD_BIN`, or `rvsd` in this target folder). A
/// `cargo test --workspace` builds it; `cargo test -p rvsadm` alone does not, so build it
/// here when it is missing.
pub fn ensure_rvsd() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if std::env::var_os("RVSD_BIN").is_some() {
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let bin = exe.parent().and_then(Path::parent).unwrap().join("rvsd");
        if bin.exists() {
            return;
        }
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "rvsd"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build -p rvsd");
        assert!(status.success(), "cannot build rvsd for the tests");
    });
}

/// rvsd on `config` (TOML without `[api]`).
pub fn start(config: &str) -> Rvsd {
    ensure_rvsd();
    Rvsd::start(config)
}

/// rvsd with nothing configured.
pub fn empty() -> Rvsd {
    start("")
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rvsadm"))
}

/// What one run of rvsadm did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "rvsadm failed: {self:?}");
        assert_eq!(self.stderr, "", "rvsadm wrote to stderr: {self:?}");
        self.stdout
    }
}

fn command(socket: Option<&Path>, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args).env_remove("RVSADM_TOKEN").env_remove("RVSADM_API");
    if let Some(s) = socket {
        c.env("RVSADM_API", s);
    }
    c
}

/// rvsadm `args` against `rvsd` (through `RVSADM_API`).
pub fn rvsadm(rvsd: &Rvsd, args: &[&str]) -> Run {
    Run::from(command(Some(&rvsd.socket), args).stdin(Stdio::null()).output().unwrap())
}

/// rvsadm with `args` split on blanks.
pub fn run(rvsd: &Rvsd, line: &str) -> Run {
    rvsadm(rvsd, &line.split_whitespace().collect::<Vec<_>>())
}

/// rvsadm with no daemon configured (environment cleared).
pub fn rvsadm_bare(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut c = command(None, args);
    for (k, v) in envs {
        c.env(k, v);
    }
    Run::from(c.stdin(Stdio::null()).output().unwrap())
}

/// rvsadm `args` with `input` on stdin.
pub fn rvsadm_stdin(rvsd: &Rvsd, args: &[&str], input: &str) -> Run {
    let mut child = command(Some(&rvsd.socket), args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    Run::from(child.wait_with_output().unwrap())
}

/// The daemon's table (GET /v1/services), for "nothing changed" checks: without counters and
/// rates, real servers by address (their order is not part of what ipvsadm saves: `-S` sorts
/// them, as ipvsadm does).
pub fn table(rvsd: &Rvsd) -> Value {
    let mut v = rvsd.services();
    // Rates and counters move with traffic; the configuration is what matters here.
    for s in v["services"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("rates");
        s.as_object_mut().unwrap().remove("stats");
        let servers = s["real_servers"].as_array_mut().unwrap();
        for r in servers.iter_mut() {
            r.as_object_mut().unwrap().remove("rates");
            r.as_object_mut().unwrap().remove("stats");
        }
        servers.sort_by(|a, b| a["address"].as_str().cmp(&b["address"].as_str()));
    }
    v
}

/// The timeouts as the API has them.
pub fn timeouts(rvsd: &Rvsd) -> Value {
    rvsd.api("GET", "/v1/timeouts", None).1
}
