//! Network namespaces for tests: created with `ip netns add`, given veth pairs and bridges,
//! and removed (with every process left in them) when dropped, even when the test fails.
//! Sockets are made inside a namespace by a thread that enters it; a socket keeps its
//! namespace afterwards, so the test can use it from any thread.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One network namespace, removed on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// Runs `ip ARGS`, panicking with its error output when it fails.
pub fn ip(args: &str) {
    sh(&format!("ip {args}"));
}

/// Runs a shell command, panicking with its error output when it fails.
pub fn sh(cmd: &str) -> Output {
    let out = Command::new("sh").arg("-c").arg(cmd).stdin(Stdio::null()).output().expect("run sh");
    assert!(out.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

impl Netns {
    /// A new namespace named after `tag`, the process and a counter, with `lo` up.
    pub fn new(tag: &str) -> Netns {
        let name = format!("rvs{}-{}-{tag}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::Relaxed));
        ip(&format!("netns add {name}"));
        let ns = Netns { name };
        ns.run("ip link set lo up");
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its file under /run/netns.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// The namespace's inode: what rvsd names the state it keeps per namespace after
    /// (`/sys/fs/bpf/rvs/*-netns-INODE`, `/run/rvs/*-netns-INODE.json`).
    pub fn ino(&self) -> u64 {
        std::fs::metadata(self.path()).map(|m| m.ino()).unwrap_or(0)
    }

    /// `ip -n NAME ARGS`: its output; panics when it fails.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(["-n", &self.name]).args(args).output().expect("run ip");
        assert!(out.status.success(), "ip -n {} {args:?}: {}", self.name, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A sysctl's value inside the namespace (`net.ipv4.conf.all.rp_filter`).
    pub fn sysctl(&self, name: &str) -> String {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        self.enter(|| std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).trim().to_string()
    }

    /// Runs a shell command inside the namespace; panics when it fails.
    pub fn run(&self, cmd: &str) -> Output {
        sh(&format!("ip netns exec {} sh -c '{}'", self.name, cmd.replace('\'', r"'\''")))
    }

    /// Runs a shell command inside the namespace and returns whether it succeeded.
    pub fn try_run(&self, cmd: &str) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", cmd])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A command to spawn inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// A command to spawn in the namespace's network only (`nsenter --net`): unlike `ip netns
    /// exec`, it keeps the host's `/sys`, so what it pins in the BPF filesystem outlives it.
    pub fn nsenter(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/var/run/netns/{}", self.name)).arg(program);
        c
    }

    /// Runs `f` on a thread inside the namespace: the sockets it makes belong to the namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                move_into_link_name_space(std::os::fd::AsFd::as_fd(&fd), Some(LinkNameSpaceType::Network))
                    .unwrap_or_else(|e| panic!("enter {path}: {e}"));
                f()
            })
            .join()
            .expect("the namespace thread panicked")
        })
    }

    /// A veth pair: `here` in this namespace with `addrs` (CIDR, IPv4 or IPv6), `there` in
    /// `peer` (left without address: a bridge port, or addressed by the caller). Both up.
    pub fn veth(&self, here: &str, peer: &Netns, there: &str, addrs: &[&str]) {
        ip(&format!("link add {here} netns {} type veth peer name {there} netns {}", self.name, peer.name));
        for a in addrs {
            let flags = if a.contains(':') { " nodad" } else { "" };
            self.run(&format!("ip addr add {a} dev {here}{flags}"));
        }
        self.run(&format!("ip link set {here} up"));
        peer.run(&format!("ip link set {there} up"));
    }

    /// The interface index of `dev`.
    pub fn ifindex(&self, dev: &str) -> u32 {
        let out = self.run(&format!("cat /sys/class/net/{dev}/ifindex"));
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("an ifindex")
    }

    /// The MAC address of `dev`.
    pub fn mac(&self, dev: &str) -> String {
        let out = self.run(&format!("cat /sys/class/net/{dev}/address"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // What rvsd keeps for this namespace outside it (pinned BPF objects, its notes of what
        // it changed) goes with it.
        let ino = self.ino();
        for dir in ["/sys/fs/bpf/rvs", "/run/rvs"] {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let stem = name.strip_suffix(".json").unwrap_or(&name);
                if ino != 0 && stem.ends_with(&format!("-netns-{ino}")) {
                    let p = entry.path();
                    let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                }
            }
            // The folder too, once nothing else is left in it.
            let _ = std::fs::remove_dir(dir);
        }
        // Processes left inside would keep it (and their sockets) alive.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("ip netns pids {0} | xargs -r kill -9; ip netns del {0}", self.name))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
