//! The kernel relay (`relay = "sockmap"`): long-lived connections are handed to the kernel and
//! stay byte-exact, in order, counted, half-closed after their last byte and idle-timed-out like
//! the others; `relay = "splice"` (the default) keeps every byte in rvsd. The tests run as root
//! (CI does): without the sockmap they fail, naming why, rather than pass on the splice path.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::thread;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn info(rvsd: &Rvsd) -> Value {
    let (st, v) = rvsd.api("GET", "/v1/info", None);
    assert_eq!(st, 200, "{v}");
    v
}

/// A config with the sockmap relay and `body`.
fn with_sockmap(body: &str) -> String {
    format!("[director]\nrelay = \"sockmap\"\n\n{body}")
}

fn sockmap(rvsd: &Rvsd) -> Value {
    let v = info(rvsd);
    assert_eq!(v["relay"], "sockmap", "the kernel relay did not load: {v}\n{}", rvsd.log());
    v["sockmap"].clone()
}

/// `n` bytes of a pattern that differs at every offset of a message and between messages.
fn message(seq: u32, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq.wrapping_mul(7)) as u8).collect()
}

fn counters(rvsd: &Rvsd, vip: SocketAddr) -> (u64, u64) {
    let s = service_view(rvsd, vip);
    let n = |k: &str| s["stats"][k].as_u64().unwrap_or_else(|| panic!("stats.{k} in {s}"));
    (n("inbytes"), n("outbytes"))
}

#[test]
fn a_long_lived_connection_is_relayed_in_the_kernel_byte_exact_and_counted() {
    let a = Backend::start("a");
    let vip = vip();
    let rvsd = Rvsd::start(&with_sockmap(&service_toml(vip, "rr", "", &[(a.addr, "")])));
    assert_eq!(sockmap(&rvsd)["linked"], 0);
    let mut c = open(vip).unwrap();
    let mut sent = 0u64;
    // Small request/response exchanges (the link comes after the second), then bulk ones.
    let sizes = [10, 200, 1, 3000, 64 * 1024, 5, 1 << 20, 17, 3 << 20, 100];
    for (i, n) in sizes.into_iter().enumerate() {
        let m = message(i as u32, n);
        let writer = {
            let mut s = c.stream.try_clone().unwrap();
            let m = m.clone();
            thread::spawn(move || s.write_all(&m))
        };
        let mut got = vec![0u8; n];
        c.stream.read_exact(&mut got).unwrap();
        writer.join().unwrap().unwrap();
        assert!(got == m, "message {i} ({n} bytes) comes back byte-exact");
        sent += n as u64;
        if i == 2 {
            let s = sockmap(&rvsd);
            assert_eq!((s["linked"].as_u64(), s["linked_total"].as_u64()), (Some(1), Some(1)), "linked: {s}");
        }
    }
    drop(c);
    wait_until(Duration::from_secs(10), "the link to go with the connection", || sockmap(&rvsd)["linked"] == 0);
    wait_no_connections(&rvsd);
    // Everything the kernel moved is in the statistics once the connection is gone.
    let name_line = a.name.len() as u64 + 1;
    assert_eq!(counters(&rvsd, vip), (sent, sent + name_line));
}

#[test]
fn a_half_close_is_passed_on_after_every_kernel_relayed_byte() {
    let a = Backend::start("a");
    let vip = vip();
    let rvsd = Rvsd::start(&with_sockmap(&service_toml(vip, "rr", "", &[(a.addr, "")])));
    for round in 0..5u32 {
        let mut c = open(vip).unwrap();
        c.echo(b"one\n").unwrap();
        c.echo(b"two\n").unwrap();
        // Then a large last message and the client's FIN right behind it: the real server must
        // see all of it before the FIN, and the client all of the echo before the server's.
        let last = message(round, 2 << 20);
        let writer = {
            let mut s = c.stream.try_clone().unwrap();
            let last = last.clone();
            thread::spawn(move || {
                s.write_all(&last)?;
                s.shutdown(Shutdown::Write)
            })
        };
        let mut got = Vec::new();
        c.stream.read_to_end(&mut got).unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(got.len(), last.len(), "round {round}: the whole echo, then EOF");
        assert!(got == last, "round {round}: byte-exact");
    }
    assert!(sockmap(&rvsd)["linked_total"].as_u64().unwrap() >= 5);
    wait_no_connections(&rvsd);
}

/// A real server that, once the client has sent two lines, streams numbered lines with short
/// pauses while the client keeps sending: bytes reach the director on both sides while the
/// connection is being linked.
fn streaming_server(lines: u32) -> (SocketAddr, thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"streamer\n").unwrap();
        let mut r = s.try_clone().unwrap();
        let reader = thread::spawn(move || {
            let mut total = 0usize;
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n,
                }
            }
        });
        let mut w = std::io::BufWriter::new(s.try_clone().unwrap());
        for i in 0..lines {
            writeln!(w, "{i:08}").unwrap();
            if i % 64 == 63 {
                w.flush().unwrap();
                thread::sleep(Duration::from_micros(300));
            }
        }
        w.flush().unwrap();
        drop(w);
        s.shutdown(Shutdown::Write).unwrap();
        let _ = reader.join();
    });
    (addr, h)
}

#[test]
fn bytes_arriving_while_a_connection_is_linked_are_neither_lost_nor_reordered() {
    for round in 0..3 {
        let (server, h) = streaming_server(20_000);
        let vip = vip();
        let rvsd = Rvsd::start(&with_sockmap(&service_toml(vip, "rr", "", &[(server, "")])));
        let mut c = open(vip).unwrap();
        let mut w = c.stream.try_clone().unwrap();
        let client_writer = thread::spawn(move || {
            for i in 0..200 {
                if w.write_all(format!("client {i}\n").as_bytes()).is_err() {
                    return;
                }
                thread::sleep(Duration::from_micros(500));
            }
            let _ = w.shutdown(Shutdown::Write);
        });
        let mut all = String::new();
        c.stream.read_to_string(&mut all).unwrap();
        let _ = client_writer.join();
        h.join().unwrap();
        for (i, line) in all.lines().enumerate() {
            assert_eq!(line, format!("{i:08}"), "round {round}: line {i} in order, none lost or repeated");
        }
        assert_eq!(all.lines().count(), 20_000, "round {round}: every line");
        assert_eq!(sockmap(&rvsd)["linked_total"], 1, "round {round}: the connection was linked");
    }
}

#[test]
fn linked_connections_stay_open_while_used_and_expire_when_idle() {
    let a = Backend::start("a");
    let vip = vip();
    let rvsd =
        Rvsd::start(&with_sockmap(&format!("[timeouts]\ntcp = 2\n\n{}", service_toml(vip, "rr", "", &[(a.addr, "")]))));
    let mut c = open(vip).unwrap();
    // 4 s of traffic, one exchange every 400 ms: the kernel moves it, the timeout must see it.
    for i in 0..10u32 {
        c.echo(&message(i, 100)).unwrap_or_else(|e| panic!("exchange {i} at {} ms: {e}", i * 400));
        thread::sleep(Duration::from_millis(400));
    }
    assert_eq!(sockmap(&rvsd)["linked"], 1);
    // Then silence: closed by the idle timeout (2 s, swept every second).
    c.stream.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let mut buf = [0u8; 16];
    let n = c.stream.read(&mut buf).expect("EOF from the idle timeout, not a read timeout");
    assert_eq!(n, 0);
    wait_until(Duration::from_secs(5), "the link to go", || sockmap(&rvsd)["linked"] == 0);
}

#[test]
fn relay_splice_keeps_every_byte_in_rvsd() {
    let a = Backend::start("a");
    let vip = vip();
    let rvsd =
        Rvsd::start(&format!("[director]\nrelay = \"splice\"\n\n{}", service_toml(vip, "rr", "", &[(a.addr, "")])));
    let v = info(&rvsd);
    assert_eq!((v["relay"].as_str(), v.get("sockmap")), (Some("splice"), None), "{v}");
    let mut c = open(vip).unwrap();
    for i in 0..5 {
        c.echo(&message(i, 70_000)).unwrap();
    }
    drop(c);
    wait_no_connections(&rvsd);
    assert_eq!(counters(&rvsd, vip), (350_000, 350_002));
}

#[test]
fn connections_beyond_the_sockmap_capacity_are_relayed_by_rvsd() {
    let a = Backend::start("a");
    let vip = vip();
    let rvsd = Rvsd::start(&format!(
        "[director]\nrelay = \"sockmap\"\nsockmap_connections = 1\n\n{}",
        service_toml(vip, "rr", "", &[(a.addr, "")])
    ));
    let mut first = open(vip).unwrap();
    let mut second = open(vip).unwrap();
    for i in 0..4 {
        first.echo(&message(i, 3000)).unwrap();
        second.echo(&message(i + 100, 3000)).unwrap();
    }
    let s = sockmap(&rvsd);
    assert_eq!((s["capacity"].as_u64(), s["linked"].as_u64()), (Some(1), Some(1)), "{s}");
    // The second keeps working through rvsd, and takes the slot once the first is gone.
    drop(first);
    wait_until(Duration::from_secs(10), "the slot to free", || sockmap(&rvsd)["linked"] == 0);
    for i in 0..4 {
        second.echo(&message(i + 200, 70_000)).unwrap();
    }
    let mut third = open(vip).unwrap();
    for i in 0..4 {
        third.echo(&message(i + 300, 100)).unwrap();
    }
    assert_eq!(
        sockmap(&rvsd)["linked"],
        1,
        "the third connection is linked: the second tried once and stays with rvsd"
    );
}
