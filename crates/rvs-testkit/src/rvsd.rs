//! A real rvsd process on a temporary configuration, with a blocking API client over its
//! unix socket. Dropping it stops the process.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The rvsd binary: `RVSD_BIN`, or `rvsd` beside the test executable's `deps/` folder.
fn rvsd_bin() -> PathBuf {
    if let Ok(p) = std::env::var("RVSD_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("rvsd")
}

pub struct RvsdBuilder {
    body: String,
    api_extra: String,
    env: Vec<(String, String)>,
    netns: Option<(String, Enter)>,
}

/// How rvsd gets into a network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enter {
    /// `ip netns exec`: a private /sys, so what rvsd pins in /sys/fs/bpf goes with it.
    IpNetnsExec,
    /// `nsenter --net`: the host's /sys, so its pins outlive it (for restarts).
    Nsenter,
}

impl RvsdBuilder {
    /// Extra lines for the `[api]` table (the socket is set by the kit).
    pub fn api(mut self, lines: &str) -> Self {
        self.api_extra = lines.to_string();
        self
    }

    /// An environment variable for the rvsd process (`RVSD_THREADS`, ...).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs rvsd inside a network namespace (`ip netns exec NAME rvsd ...`).
    pub fn netns(mut self, name: &str) -> Self {
        self.netns = Some((name.to_string(), Enter::IpNetnsExec));
        self
    }

    /// Runs rvsd in a network namespace's network only (`nsenter --net=/var/run/netns/NAME
    /// rvsd ...`): unlike [`RvsdBuilder::netns`] it keeps the host's /sys, so what rvsd pins in
    /// the BPF filesystem outlives the process (a test of restarts; it must remove the pins).
    pub fn nsenter(mut self, name: &str) -> Self {
        self.netns = Some((name.to_string(), Enter::Nsenter));
        self
    }

    pub fn start(self) -> Rvsd {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("api.sock");
        let config = dir.path().join("rvsd.toml");
        let rvsd = Rvsd { dir, socket, config, child: None, api_extra: self.api_extra, netns: self.netns };
        rvsd.write_config(&self.body);
        rvsd.spawn(&self.env)
    }
}

pub struct Rvsd {
    dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
    api_extra: String,
    /// The network namespace it runs in, and how it got there (an upgrade goes there too).
    netns: Option<(String, Enter)>,
}

impl Rvsd {
    /// A builder for rvsd with `body` as the configuration (without an `[api]` table).
    pub fn builder(body: &str) -> RvsdBuilder {
        RvsdBuilder { body: body.to_string(), api_extra: String::new(), env: Vec::new(), netns: None }
    }

    /// Starts rvsd with `body` as its configuration and waits until its API answers.
    pub fn start(body: &str) -> Rvsd {
        Self::builder(body).start()
    }

    /// Replaces the configuration file (the `[api]` table is kept).
    pub fn write_config(&self, body: &str) {
        let text = format!("[api]\nsocket = {:?}\n{}\n\n{body}\n", self.socket.display().to_string(), self.api_extra);
        std::fs::write(&self.config, text).expect("write config");
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("rvsd.log")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A binary upgrade: a new rvsd on the same configuration and API socket, started with
    /// `--upgrade-from` this one's socket; returns once it says the upgrade is done (this one
    /// then drains and exits: [`Rvsd::wait`] for it, and keep it until the end of the test, as
    /// the API socket lives in its directory).
    pub fn upgrade(&self, env: &[(&str, &str)]) -> Rvsd {
        self.try_upgrade(env).unwrap_or_else(|log| panic!("the upgrade failed; new rvsd's log:\n{log}"))
    }

    /// [`Rvsd::upgrade`], or the new rvsd's log when it exits without upgrading.
    pub fn try_upgrade(&self, env: &[(&str, &str)]) -> Result<Rvsd, String> {
        self.try_upgrade_from(&self.socket, env)
    }

    /// [`Rvsd::try_upgrade`] naming `from` as the running rvsd's API socket.
    pub fn try_upgrade_from(&self, from: &Path, env: &[(&str, &str)]) -> Result<Rvsd, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("rvsd.toml");
        std::fs::copy(&self.config, &config).expect("copy the configuration");
        let next = Rvsd {
            dir,
            socket: self.socket.clone(),
            config,
            child: None,
            api_extra: self.api_extra.clone(),
            netns: self.netns.clone(),
        };
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        next.spawn_with(&env, Some(from))
    }

    fn spawn(self, env: &[(String, String)]) -> Rvsd {
        self.spawn_with(env, None).unwrap_or_else(|log| panic!("rvsd exited while starting; log:\n{log}"))
    }

    fn spawn_with(mut self, env: &[(String, String)], upgrade_from: Option<&Path>) -> Result<Rvsd, String> {
        let netns = self.netns.clone();
        let log = std::fs::File::create(self.log_path()).expect("log file");
        // Both exec: the pid is rvsd's own, so signals reach it.
        let mut command = match netns.as_ref().map(|(n, e)| (n.as_str(), *e)) {
            None => Command::new(rvsd_bin()),
            Some((ns, Enter::IpNetnsExec)) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(rvsd_bin());
                c
            }
            Some((ns, Enter::Nsenter)) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/var/run/netns/{ns}")).arg(rvsd_bin());
                c
            }
        };
        if let Some(from) = upgrade_from {
            command.arg("--upgrade-from").arg(from);
        }
        let child = command
            .arg("--config")
            .arg(&self.config)
            .env("RVSD_LOG", "debug")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", rvsd_bin().display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("exited with {status}\n{}", self.log()));
            }
            let ready = match upgrade_from {
                None => self.try_api("GET", "/v1/info", None).is_ok(),
                Some(_) => self.log().contains("binary upgrade done"),
            };
            if ready {
                return Ok(self);
            }
            assert!(Instant::now() < deadline, "rvsd did not answer within 15 s; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Sends a signal (`HUP`, `TERM`, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().map(|s| s.success());
        assert!(matches!(ok, Ok(true)), "kill -{name} failed");
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Some(s) = child.try_wait().ok().flatten() {
                // Reaped: nothing is left for Drop to signal.
                self.child = None;
                return s.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An API call: `(status, JSON body)`. Panics when the daemon does not answer.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.try_api(method, path, body).unwrap_or_else(|e| panic!("API {method} {path}: {e}; log:\n{}", self.log()))
    }

    /// An API call that may fail to connect.
    pub fn try_api(&self, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, Value)> {
        let mut s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: rvsd\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let (status, text) = read_response(&mut s)?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    /// Services as the API lists them.
    pub fn services(&self) -> Value {
        let (st, v) = self.api("GET", "/v1/services", None);
        assert_eq!(st, 200, "{v}");
        v
    }
}

fn read_response(s: &mut UnixStream) -> std::io::Result<(u16, String)> {
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line)?;
    let status = status_line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut len = None;
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = Vec::new();
    match len {
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        }
        None => {
            r.read_to_end(&mut body)?;
        }
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
