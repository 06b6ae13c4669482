//! rvsd refusing to start says why once: the OS error is printed a single time, even where
//! an error's own message already holds its cause's text.

use std::process::Command;

fn start_error(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rvsd.toml");
    let socket = dir.path().join("api.sock");
    std::fs::write(&path, format!("[api]\nsocket = {:?}\n{config}", socket.display().to_string())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd")).arg("--config").arg(&path).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The last line: the report of the error that stopped rvsd, each of its parts once.
fn report(stderr: &str) -> &str {
    let line =
        stderr.lines().rev().find(|l| l.starts_with("rvsd: ")).unwrap_or_else(|| panic!("no report in:\n{stderr}"));
    let parts: Vec<&str> = line.split(": ").collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "`{p}` is said twice: {line}");
    }
    line
}

#[test]
fn a_sync_daemon_on_a_missing_interface_names_the_os_error_once() {
    let (code, stderr) = start_error("[sync]\nstate = \"master\"\nmcast_interface = \"rvsnoif0\"\n");
    assert_eq!(code, Some(1), "{stderr}");
    let line = report(&stderr);
    assert!(line.contains("connection sync"), "{line}");
    assert_eq!(line.matches("(os error").count(), 1, "{line}");
}

#[test]
fn a_listener_that_cannot_bind_names_the_os_error_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (code, stderr) = start_error(&format!(
        "[[service]]\nkind = \"http\"\naddress = \"{addr}\"\ndefault_pool = \"w\"\n  [[service.pool]]\n  name = \"w\"\n    \
         [[service.pool.real_server]]\n    address = \"127.0.0.1:9\"\n"
    ));
    assert_eq!(code, Some(1), "{stderr}");
    let line = report(&stderr);
    assert!(line.contains(&addr.to_string()), "{line}");
    assert_eq!(line.matches("Address already in use").count(), 1, "{line}");
}

#[test]
fn the_packet_engine_on_a_missing_interface_says_so_once() {
    let (code, stderr) = start_error("[packet_engine]\ninterfaces = [\"rvsnoif0\"]\n");
    assert_eq!(code, Some(1), "{stderr}");
    // Whatever stops it first (no such interface, or a kernel without BPF), it is said once.
    let line = report(&stderr);
    assert!(line.contains("packet engine"), "{line}");
}
