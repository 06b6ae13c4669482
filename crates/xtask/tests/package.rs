//! The Debian package, end to end on this machine: built from the workspace's binaries with
//! dpkg-deb, installed with `dpkg -i`, checked (the configuration passes `rvsd
//! --check-config`, the unit passes `systemd-analyze verify` where it exists, the man pages
//! render, the completions parse), and purged again. It needs root and dpkg; without them it
//! says why and passes. It leaves a machine where rvsd is already installed alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The binaries of this build: `target/debug` (or release) beside the test's `deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// Purges the package when the test ends, passed or not.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "rvsd"]).output();
    }
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "rvsd"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("ok installed"))
}

#[test]
fn the_package_installs_checks_and_purges() {
    if !have("dpkg") || !have("dpkg-deb") {
        eprintln!("skipped: dpkg is not on this machine (the package test needs a Debian system)");
        return;
    }
    if !is_root() {
        eprintln!("skipped: dpkg -i needs root");
        return;
    }
    if installed() || Path::new("/usr/sbin/rvsd").exists() {
        eprintln!("skipped: rvsd is already installed on this machine; the test does not touch it");
        return;
    }
    let bins = bin_dir();
    if !bins.join("rvsd").is_file() || !bins.join("rvsadm").is_file() {
        eprintln!(
            "skipped: {} has no rvsd and rvsadm binaries: build them first (cargo build -p rvsd -p rvsadm; \
             cargo test --workspace does)",
            bins.display()
        );
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let deb = xtask::deb(&bins, out.path(), xtask::Compression::Fast).expect("the package builds");
    let info = text(&run(Command::new("dpkg-deb").arg("--info").arg(&deb)));
    assert!(info.contains("Package: rvsd") && info.contains("Depends: libc6"), "{info}");
    assert!(info.contains(" md5sums "), "{info}");

    // rvsadm's default socket, which the package links to rvsd.service's (unless it exists).
    let socket_link_was_there = Path::new(LINK).symlink_metadata().is_ok();
    let _purge = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(installed());
    // Every installed file is as the package's md5sums say.
    run(Command::new("dpkg").args(["--verify", "rvsd"]));
    for f in [
        "/usr/sbin/rvsd",
        "/usr/sbin/rvsadm",
        "/etc/rvs/rvsd.toml",
        "/lib/systemd/system/rvsd.service",
        "/usr/lib/tmpfiles.d/rvsd.conf",
        "/usr/share/man/man8/rvsd.8.gz",
        "/usr/share/man/man8/rvsd-real-server.8.gz",
        "/usr/share/man/man8/rvsadm.8.gz",
        "/usr/share/man/man5/rvsd.toml.5.gz",
        "/usr/share/bash-completion/completions/rvsd",
        "/usr/share/bash-completion/completions/rvsadm",
        "/usr/share/zsh/vendor-completions/_rvsd",
        "/usr/share/zsh/vendor-completions/_rvsadm",
        "/usr/share/fish/vendor_completions.d/rvsd.fish",
        "/usr/share/fish/vendor_completions.d/rvsadm.fish",
        "/usr/share/doc/rvsd/copyright",
    ] {
        assert!(Path::new(f).is_file(), "{f} is not installed");
    }
    // The configuration is a conffile: dpkg keeps an operator's edits across upgrades.
    let conffiles = text(&run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "rvsd"])));
    assert!(conffiles.contains("/etc/rvs/rvsd.toml"), "{conffiles}");

    let check = run(Command::new("/usr/sbin/rvsd").args(["--check-config", "/etc/rvs/rvsd.toml"]));
    assert!(text(&check).contains("configuration OK"), "{}", text(&check));
    let version = text(&run(Command::new("/usr/sbin/rvsadm").arg("--version")));
    assert!(version.starts_with("rvsadm v"), "{version}");

    let unit = std::fs::read_to_string("/lib/systemd/system/rvsd.service").unwrap();
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_BPF",
        "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_BPF",
        "ProtectSystem=strict",
        "RuntimeDirectory=rvs",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    if have("systemd-analyze") {
        let out =
            Command::new("systemd-analyze").args(["verify", "/lib/systemd/system/rvsd.service"]).output().unwrap();
        let errors = String::from_utf8_lossy(&out.stderr);
        // Only what concerns the unit itself: a container without systemd running reports
        // other units it cannot reach.
        let about_rvsd: Vec<&str> = errors.lines().filter(|l| l.contains("rvsd")).collect();
        assert!(out.status.success() || about_rvsd.is_empty(), "systemd-analyze verify:\n{errors}");
        assert!(about_rvsd.is_empty(), "systemd-analyze verify:\n{errors}");
    } else {
        eprintln!("note: no systemd-analyze here; the unit is not verified");
    }

    if have("man") {
        for (page, expect) in [
            ("/usr/share/man/man8/rvsd.8.gz", "--check-config"),
            ("/usr/share/man/man8/rvsadm.8.gz", "--add-service"),
            ("/usr/share/man/man5/rvsd.toml.5.gz", "drain_timeout_secs"),
        ] {
            let out = run(Command::new("man").args(["-P", "cat", "-l", page]).env("MANWIDTH", "100"));
            let rendered = text(&out);
            assert!(rendered.contains(expect), "{page} does not show {expect}:\n{rendered}");
        }
    } else {
        eprintln!("note: no man here; the pages are installed but not rendered");
    }
    if have("bash") {
        for c in ["rvsd", "rvsadm"] {
            run(Command::new("bash").arg("-n").arg(format!("/usr/share/bash-completion/completions/{c}")));
        }
    }
    run_the_packaged_setup(socket_link_was_there);

    run(Command::new("dpkg").args(["--purge", "rvsd"]));
    assert!(!installed());
    if !socket_link_was_there {
        assert!(Path::new(LINK).symlink_metadata().is_err(), "the purge leaves {LINK}");
    }
    for f in ["/usr/sbin/rvsd", "/etc/rvs/rvsd.toml", "/lib/systemd/system/rvsd.service"] {
        assert!(!Path::new(f).exists(), "{f} is left after the purge");
    }
}

const LINK: &str = "/run/rvsd.sock";

/// rvsd on the packaged configuration as rvsd.service runs it, in a network namespace of its
/// own (the example's ports stay free on this machine): it reports READY=1 on
/// `$NOTIFY_SOCKET`, rvsadm finds it through its default socket (the tmpfiles.d link to
/// /run/rvs/rvsd.sock), and SIGTERM brings STOPPING=1 and exit 0.
fn run_the_packaged_setup(socket_link_was_there: bool) {
    use std::os::unix::net::UnixDatagram;
    if !have("unshare") || !have("ip") {
        eprintln!("note: no unshare or ip here; the packaged configuration is checked, not run");
        return;
    }
    let linked = std::fs::read_link(LINK).is_ok_and(|t| t == Path::new("/run/rvs/rvsd.sock"));
    if !socket_link_was_there && have("systemd-tmpfiles") {
        assert!(linked, "postinst (systemd-tmpfiles) did not link {LINK} to /run/rvs/rvsd.sock");
    }
    // What RuntimeDirectory=rvs makes.
    let made_runtime_dir = !Path::new("/run/rvs").exists();
    std::fs::create_dir_all("/run/rvs").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    /// Stops rvsd if the test fails before it does.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            if self.0.try_wait().ok().flatten().is_none() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
    let child = Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && exec /usr/sbin/rvsd --config /etc/rvs/rvsd.toml"])
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("rvsd.log")).unwrap())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let log = || std::fs::read_to_string(dir.path().join("rvsd.log")).unwrap_or_default();
    let mut buf = [0u8; 256];
    let next = |buf: &mut [u8]| -> String {
        let n = notify.recv(buf).unwrap_or_else(|e| panic!("no notification ({e}); log:\n{}", log()));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next(&mut buf);
    assert!(ready.starts_with("READY=1"), "{ready}");
    if linked {
        let listing = text(&run(Command::new("/usr/sbin/rvsadm").args(["-L", "-n"])));
        assert!(listing.contains("127.0.0.1:8080"), "rvsadm through {LINK}:\n{listing}");
    }
    // The pid is rvsd's: unshare and sh exec it.
    run(Command::new("kill").arg("-TERM").arg(child.0.id().to_string()));
    let stopping = next(&mut buf);
    assert!(stopping.starts_with("STOPPING=1"), "{stopping}");
    let status = child.0.wait().unwrap();
    assert!(status.success(), "rvsd exited with {status}; log:\n{}", log());
    if made_runtime_dir {
        let _ = std::fs::remove_dir("/run/rvs");
    }
}

/// Whether this process runs as root (the effective uid, from /proc: no libc call needed).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            .is_some_and(|uid| uid == "0")
    })
}
