//! SIGTERM: rvsd stops accepting at once, lets connections in flight finish within
//! drain_timeout_secs, closes what is left at the deadline, and exits 0.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const MIB: u64 = 1 << 20;

fn refused(vip: std::net::SocketAddr) -> bool {
    TcpStream::connect_timeout(&vip, Duration::from_secs(2)).is_err()
}

#[test]
fn sigterm_stops_accepting_and_drains_a_transfer_in_flight() {
    let a = Backend::start("a");
    let vip = vip();
    let mut rvsd = Rvsd::start(&format!(
        "[director]\ndrain_timeout_secs = 30\n\n{}",
        service_toml(vip, "rr", "", &[(a.addr, "")])
    ));
    let t = Transfer::start(vip, 30 * MIB, Duration::from_millis(12));
    wait_progress(&t, 2 * MIB);
    rvsd.signal("TERM");
    wait_until(Duration::from_secs(5), "the listener to close", || refused(vip));
    t.assert_in_flight("after SIGTERM");
    let total = t.total;
    assert_eq!(t.join(), Ok(total), "the connection in flight drains to its end");
    let code = rvsd.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0), "log:\n{}", rvsd.log());
    assert!(rvsd.log().contains("draining"), "{}", rvsd.log());
}

#[test]
fn sigterm_closes_what_is_left_at_the_drain_deadline() {
    let a = Backend::start("a");
    let vip = vip();
    let mut rvsd =
        Rvsd::start(&format!("[director]\ndrain_timeout_secs = 1\n\n{}", service_toml(vip, "rr", "", &[(a.addr, "")])));
    let mut idle = open(vip).unwrap();
    idle.echo(b"hello").unwrap();
    let t0 = Instant::now();
    rvsd.signal("TERM");
    let code = rvsd.wait(Duration::from_secs(15));
    let took = t0.elapsed();
    assert_eq!(code, Some(0), "log:\n{}", rvsd.log());
    assert!(took >= Duration::from_millis(800), "exited before the drain deadline: {took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    // The idle connection was closed by the director.
    idle.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    match idle.stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the held connection should be closed: {other:?}"),
    }
    assert!(refused(vip));
}
