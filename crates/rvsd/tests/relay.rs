//! The relay: after bulk bursts, idle connections hold their two sockets and no pipe (pipes go
//! back to a small per-thread pool when a burst ends); on several event loops, readers that
//! hold back still get every byte in order, and a half-close arrives after the last of them.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use common::*;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn idle_connections_hold_no_pipes_after_bulk_bursts() {
    let a = Backend::start("a");
    let vip = vip();
    let rvsd = Rvsd::builder(&service_toml(vip, "rr", "", &[(a.addr, "")])).env("RVSD_THREADS", "1").start();
    let base = open_fds(rvsd.pid());
    let payload: Vec<u8> = (0..512 * 1024u32).map(|i| (i % 253) as u8).collect();
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut c = open(vip).unwrap();
        // A bulk burst each way (the echo comes back in full), then the connection idles.
        let writer = {
            let mut s = c.stream.try_clone().unwrap();
            let p = payload.clone();
            std::thread::spawn(move || s.write_all(&p))
        };
        let mut got = vec![0u8; payload.len()];
        c.stream.read_exact(&mut got).unwrap();
        writer.join().unwrap().unwrap();
        assert!(got == payload, "bulk echo is byte-exact");
        held.push(c);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let fds = open_fds(rvsd.pid());
    // 2 sockets per connection, plus at most a few pooled pipes (2 fds each).
    assert!(fds <= base + 2 * held.len() + 8, "{fds} fds for {} idle connections (base {base})", held.len());
    assert!(fds >= base + 2 * held.len(), "{fds} fds: every connection is still proxied");
}

/// The names of rvsd's threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn readers_that_hold_back_get_every_byte_then_the_half_close_on_two_event_loops() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let vip = vip();
    let rvsd =
        Rvsd::builder(&service_toml(vip, "rr", "", &[(a.addr, ""), (b.addr, "")])).env("RVSD_THREADS", "2").start();
    let names = thread_names(rvsd.pid());
    for n in ["rvs-tcp-0", "rvs-tcp-1"] {
        assert!(names.iter().any(|t| t == n), "no event loop {n} among {names:?}");
    }
    // Each client sends 3 MiB and its FIN while reading nothing for a while: the echo backs up
    // through both of rvsd's sockets (writes that take part, then none), until the reader starts.
    let clients: Vec<_> = (0..8u32)
        .map(|k| {
            std::thread::spawn(move || {
                let payload: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| ((i * 7 + k) % 251) as u8).collect();
                let mut c = open(vip).unwrap();
                let writer = {
                    let mut s = c.stream.try_clone().unwrap();
                    let p = payload.clone();
                    std::thread::spawn(move || {
                        s.write_all(&p)?;
                        s.shutdown(Shutdown::Write)
                    })
                };
                std::thread::sleep(Duration::from_millis(400));
                let mut got = Vec::with_capacity(payload.len());
                let mut buf = [0u8; 1000]; // small reads: the relay's sends keep meeting a full buffer
                loop {
                    match c.stream.read(&mut buf).unwrap() {
                        0 => break,
                        n => got.extend_from_slice(&buf[..n]),
                    }
                }
                writer.join().unwrap().unwrap();
                assert_eq!(got.len(), payload.len(), "client {k}: every byte before the FIN");
                assert!(got == payload, "client {k}: the echo is byte-exact and in order");
                c.name
            })
        })
        .collect();
    let served: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(served.iter().any(|n| n == "a") && served.iter().any(|n| n == "b"), "rr over both: {served:?}");
}
