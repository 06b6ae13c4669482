//! 2,000 client connections held open at once through one rvsd, every one echoing its own
//! bytes back correctly, and all of them accounted and released.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const N: usize = 2000;

/// Each held connection is two sockets here (client, backend side) and two sockets plus pipes
/// in rvsd; make sure this process may open them all.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    let want = 3 * N as u64 + 1024;
    if lim.current.is_some_and(|c| c < want) {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
}

fn payload(i: usize) -> Vec<u8> {
    (0..1000).map(|k| ((i * 7919 + k * 31) % 251) as u8).chain(format!("#{i}\n").into_bytes()).collect()
}

#[test]
fn two_thousand_concurrent_connections_all_echo() {
    raise_nofile();
    let started = Instant::now();
    let a = Backend::start("a");
    let b = Backend::start("b");
    let vip = vip();
    let rvsd = Rvsd::start(&service_toml(vip, "rr", "", &[(a.addr, ""), (b.addr, "")]));

    // Open them in waves (so no listen queue overflows), keeping every one open.
    let mut conns: Vec<(TcpStream, String)> = Vec::with_capacity(N);
    for wave in 0..N / 250 {
        let mut fresh = Vec::with_capacity(250);
        for i in 0..250 {
            let s = TcpStream::connect_timeout(&vip, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connection {}: {e}", wave * 250 + i));
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
            fresh.push(s);
        }
        for (i, mut s) in fresh.into_iter().enumerate() {
            let n = read_line(&mut s).unwrap_or_else(|e| panic!("name line of connection {}: {e}", wave * 250 + i));
            conns.push((s, n));
        }
    }
    assert_eq!(conns.len(), N);

    // All held at once: the director sees every one, established.
    let (_, info) = rvsd.api("GET", "/v1/info", None);
    assert_eq!(info["connections"], N, "{info}");
    let v = service_view(&rvsd, vip);
    let active: u64 = v["real_servers"].as_array().unwrap().iter().map(|r| r["active"].as_u64().unwrap()).sum();
    assert_eq!(active, N as u64, "{v}");
    let on_a = conns.iter().filter(|(_, n)| n == "a").count();
    assert_eq!((on_a, N - on_a), (N / 2, N / 2), "rr splits evenly");

    // Every connection sends its own bytes; then every one reads them back.
    for (i, (s, _)) in conns.iter_mut().enumerate() {
        s.write_all(&payload(i)).unwrap_or_else(|e| panic!("write on connection {i}: {e}"));
    }
    for (i, (s, _)) in conns.iter_mut().enumerate() {
        let want = payload(i);
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap_or_else(|e| panic!("echo on connection {i}: {e}"));
        assert!(got == want, "connection {i} got another connection's bytes");
    }
    assert_eq!(a.accepted() + b.accepted(), N);

    drop(conns);
    wait_until(Duration::from_secs(30), "all 2,000 connections to be released", || {
        rvsd.api("GET", "/v1/info", None).1["connections"] == 0
    });
    let v = service_view(&rvsd, vip);
    for r in v["real_servers"].as_array().unwrap() {
        assert_eq!((r["active"].as_u64(), r["inactive"].as_u64()), (Some(0), Some(0)), "{r}");
    }
    assert_eq!(v["stats"]["conns"], N);
    assert!(started.elapsed() < Duration::from_secs(120), "took {:?}", started.elapsed());
}
