//! Failover: when the chosen real server refuses (or does not answer within the connect
//! timeout), rvsd tries another, counts the failure against the first, and the client never
//! notices; retries are bounded by connect_retries.

mod common;

use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use common::*;

fn failures(rvsd: &Rvsd, vip: SocketAddr, rs: SocketAddr) -> u64 {
    server_view(rvsd, vip, rs).unwrap()["connect_failures"].as_u64().unwrap()
}

#[test]
fn a_refusing_real_server_is_skipped_and_counted() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let dead = closed_port();
    let vip = vip();
    let rvsd = Rvsd::start(&service_toml(vip, "rr", "", &[(dead, ""), (a.addr, ""), (b.addr, "")]));
    let n = 30;
    let got: Vec<String> = (0..n).map(|i| open(vip).unwrap_or_else(|e| panic!("connection {i}: {e}")).name).collect();
    assert!(got.iter().all(|g| g == "a" || g == "b"), "{got:?}");
    assert_eq!(a.accepted() + b.accepted(), n);
    let f = failures(&rvsd, vip, dead);
    // rr offers the dead server every third connection or so; each refusal is counted.
    assert!(f >= (n / 3 - 1) as u64, "only {f} connect failures counted");
    assert_eq!(failures(&rvsd, vip, a.addr), 0);
    let v = server_view(&rvsd, vip, dead).unwrap();
    assert_eq!(v["active"], 0, "{v}");
    assert_eq!(v["inactive"], 0, "{v}");
    // The same holds for connections held open at once.
    let held = hold(vip, 20);
    assert!(held.iter().all(|c| c.name != "dead"));
    wait_until(Duration::from_secs(10), "the 20 held connections to be the only ones", || {
        rvsd.api("GET", "/v1/info", None).1["connections"] == 20
    });
}

#[test]
fn when_every_real_server_refuses_the_client_is_closed_after_bounded_retries() {
    let (d1, d2, d3) = (closed_port(), closed_port(), closed_port());
    let vip = vip();
    let rvsd = Rvsd::start(&service_toml(vip, "rr", "", &[(d1, ""), (d2, ""), (d3, "")]));
    for _ in 0..4 {
        assert!(open(vip).is_err(), "no real server accepts: the client must be closed");
    }
    wait_no_connections(&rvsd);
    // connect_retries = 2 (the default): three attempts per client, never more.
    let total: u64 = [d1, d2, d3].iter().map(|d| failures(&rvsd, vip, *d)).sum();
    assert_eq!(total, 12);
}

#[test]
fn connect_retries_zero_means_one_attempt() {
    let a = Backend::start("a");
    let dead = closed_port();
    let vip = vip();
    let rvsd = Rvsd::start(&format!(
        "[director]\nconnect_retries = 0\n\n{}",
        service_toml(vip, "rr", "", &[(dead, ""), (a.addr, "")])
    ));
    assert!(open(vip).is_err(), "rr picked the dead server and no retry is allowed");
    assert_eq!(open(vip).unwrap().name, "a");
    assert!(open(vip).is_err());
    assert_eq!(failures(&rvsd, vip, dead), 2);
}

/// A listener that never accepts, with its one-slot accept queue filled: SYNs to it are
/// dropped, so connecting to it times out instead of being refused.
fn blackhole() -> (OwnedFd, TcpStream, SocketAddr) {
    use rustix::net::{AddressFamily, SocketType};
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&fd, &SocketAddrV4::new([127, 0, 0, 1].into(), 0)).unwrap();
    rustix::net::listen(&fd, 0).unwrap();
    let addr = SocketAddr::try_from(rustix::net::getsockname(&fd).unwrap()).unwrap();
    let filler = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    (fd, filler, addr)
}

#[test]
fn a_real_server_that_does_not_answer_times_out_and_fails_over() {
    let a = Backend::start("a");
    let (_listener, _filler, hole) = blackhole();
    let vip = vip();
    let rvsd = Rvsd::start(&format!(
        "[director]\nconnect_timeout_ms = 400\n\n{}",
        service_toml(vip, "rr", "", &[(hole, ""), (a.addr, "")])
    ));
    let t0 = Instant::now();
    assert_eq!(open(vip).unwrap().name, "a");
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(350), "the first attempt should have waited for the timeout: {took:?}");
    assert_eq!(failures(&rvsd, vip, hole), 1);
}
