//! Idle timeouts set at run time (PUT /v1/timeouts, as `ipvsadm --set`) apply to connections
//! that already exist: an idle established one closes after `tcp` seconds, a half-closed one
//! after `tcpfin`; a busy one lives on. The sweeper runs once a second.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Waits for the director to close `s`: EOF or a reset. Returns how long after `t0` it was.
fn time_to_close(s: &mut TcpStream, t0: Instant, max: Duration) -> Duration {
    s.set_read_timeout(Some(max)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return t0.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return t0.elapsed(),
            Err(e) => panic!("not closed within {max:?}: {e}"),
        }
    }
}

#[test]
fn a_shorter_tcp_timeout_closes_idle_connections_only() {
    let a = Backend::start("a");
    let vip = vip();
    let rvsd = Rvsd::start(&service_toml(vip, "rr", "", &[(a.addr, "")]));
    let (_, t) = rvsd.api("GET", "/v1/timeouts", None);
    assert_eq!((t["tcp"].as_u64(), t["tcpfin"].as_u64(), t["udp"].as_u64()), (Some(900), Some(120), Some(300)));

    let mut idle = open(vip).unwrap();
    let idle_since = Instant::now();
    let mut busy = open(vip).unwrap();
    let (st, v) = rvsd.api("PUT", "/v1/timeouts", Some(r#"{"tcp": 2}"#));
    assert_eq!(st, 200, "{v}");
    let (_, t) = rvsd.api("GET", "/v1/timeouts", None);
    assert_eq!((t["tcp"].as_u64(), t["tcpfin"].as_u64(), t["udp"].as_u64()), (Some(2), Some(120), Some(300)));
    let (_, c) = rvsd.api("GET", "/v1/connections", None);
    let conns = c["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2, "{c}");
    assert!(conns.iter().all(|c| c["expires_ms"].as_u64().unwrap() <= 2000 && c["state"] == "ESTABLISHED"), "{c}");

    // The busy one talks every 300 ms in a thread while the idle one waits for its end.
    let stop = Arc::new(Mutex::new(false));
    let st2 = stop.clone();
    let talker = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut rounds = 0;
        while !*st2.lock().unwrap() && t0.elapsed() < Duration::from_secs(15) {
            busy.echo(format!("ping {rounds}\n").as_bytes()).map_err(|e| format!("round {rounds}: {e}"))?;
            rounds += 1;
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok::<_, String>((busy, rounds))
    });
    let took = time_to_close(&mut idle.stream, idle_since, Duration::from_secs(10));
    // Idle since it opened: 2 s, plus up to 1 s for the sweeper.
    assert!(took >= Duration::from_millis(1500), "closed too early: {took:?}");
    assert!(took <= Duration::from_secs(6), "closed too late: {took:?}");
    // The busy one outlives the timeout by well over its 2 s.
    std::thread::sleep(Duration::from_secs(2));
    *stop.lock().unwrap() = true;
    let (mut busy, rounds) = talker.join().unwrap().unwrap();
    assert!(rounds >= 8, "{rounds}");
    busy.echo(b"still open\n").unwrap();
    let (_, info) = rvsd.api("GET", "/v1/info", None);
    assert_eq!(info["connections"], 1, "{info}");
}

/// A real server that sends its name and then neither reads nor closes.
fn silent_backend() -> (SocketAddr, Arc<Mutex<Vec<TcpStream>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let kept = Arc::new(Mutex::new(Vec::new()));
    let k = kept.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(b"silent\n");
            k.lock().unwrap().push(s);
        }
    });
    (addr, kept)
}

#[test]
fn a_half_closed_connection_expires_after_tcpfin() {
    let (addr, _kept) = silent_backend();
    let vip = vip();
    let rvsd = Rvsd::start(&format!("[timeouts]\ntcpfin = 2\n\n{}", service_toml(vip, "rr", "", &[(addr, "")])));
    let mut c = open(vip).unwrap();
    assert_eq!(c.name, "silent");
    c.stream.shutdown(Shutdown::Write).unwrap();
    wait_until(Duration::from_secs(5), "the connection to be half-closed", || {
        let (_, v) = rvsd.api("GET", "/v1/connections", None);
        v["connections"][0]["state"] == "FIN_WAIT"
    });
    let took = time_to_close(&mut c.stream, Instant::now(), Duration::from_secs(10));
    assert!(took <= Duration::from_secs(6), "{took:?}");
    wait_no_connections(&rvsd);
}
