//! The relay's resources: after bulk bursts, idle connections hold their two sockets and no
//! pipe (pipes go back to a small per-thread pool when a burst ends).

mod common;

use std::io::{Read, Write};

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
