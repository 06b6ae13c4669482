//! systemd's `Type=notify` protocol: rvsd sends READY=1 once it serves, RELOADING=1 and then
//! READY=1 around a SIGHUP reload (refused or not), and STOPPING=1 when SIGTERM arrives, each
//! as a datagram to `$NOTIFY_SOCKET` (a path or an abstract `@name`).

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;

fn next(socket: &UnixDatagram, rvsd: &Rvsd) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).unwrap_or_else(|e| panic!("no notification ({e}); log:\n{}", rvsd.log()));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A service whose real server never gets a connection: only start-up and reloads matter.
fn config() -> String {
    service_toml(vip(), "rr", "", &[(std::net::SocketAddr::from(([127, 0, 0, 1], 9)), "")])
}

#[test]
fn ready_reloading_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut rvsd = Rvsd::builder(&config()).env("NOTIFY_SOCKET", path.to_str().unwrap()).start();
    assert!(next(&socket, &rvsd).starts_with("READY=1\n"));

    rvsd.signal("HUP");
    assert!(next(&socket, &rvsd).starts_with("RELOADING=1\n"));
    assert!(next(&socket, &rvsd).starts_with("READY=1\n"));

    // A refused reload ends in READY=1 too: the old configuration goes on serving.
    std::fs::write(&rvsd.config, "this is not toml = = =").unwrap();
    rvsd.signal("HUP");
    assert!(next(&socket, &rvsd).starts_with("RELOADING=1\n"));
    assert!(next(&socket, &rvsd).starts_with("READY=1\n"));

    rvsd.signal("TERM");
    assert!(next(&socket, &rvsd).starts_with("STOPPING=1\n"));
    assert_eq!(rvsd.wait(Duration::from_secs(15)), Some(0), "log:\n{}", rvsd.log());
}

#[test]
fn an_abstract_notify_socket_is_reached_too() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("rvsd-notify-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let rvsd = Rvsd::builder(&config()).env("NOTIFY_SOCKET", &format!("@{name}")).start();
    assert!(next(&socket, &rvsd).starts_with("READY=1\n"));
}
