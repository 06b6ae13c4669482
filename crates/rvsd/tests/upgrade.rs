//! Binary upgrades (`rvsd --upgrade-from API`): a new rvsd takes over the running one's
//! listening sockets, the old one drains and exits, and clients see nothing: with load running
//! through an L4 TCP, a UDP and an http service (keep-alive and new connections), several
//! upgrades in a row fail no request and reset no connection, and a connection established
//! before an upgrade finishes on the old process. Bad input (nothing listening, a refusal, a
//! manifest that does not match) fails clearly and leaves the running rvsd as it was.

mod common;

use std::io::{BufRead, BufReader, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rvs_testkit::http_backend;

/// Upgrades in a row in the test (bench/upgrade.sh does a hundred).
const UPGRADES: usize = 5;
/// Every load loop ends by then whatever happens.
const LOAD_DEADLINE: Duration = Duration::from_secs(120);
/// And after this many operations.
const LOAD_MAX: u64 = 200_000;

fn udp_backend() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
        }
    });
    addr
}

fn udp_vip() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

struct Services {
    tcp: SocketAddr,
    udp: SocketAddr,
    http: SocketAddr,
    config: String,
    _backend: Backend,
}

fn services() -> Services {
    let backend = Backend::start("a");
    let (tcp, udp, http) = (vip(), udp_vip(), vip());
    let (udp_rs, web) = (udp_backend(), http_backend("web"));
    let config = format!(
        "[director]\ndrain_timeout_secs = 30\n\n{}\n\
         [[service]]\nprotocol = \"udp\"\naddress = \"{udp}\"\nscheduler = \"rr\"\n  [[service.real_server]]\n  address = \"{udp_rs}\"\n\n\
         [[service]]\nkind = \"http\"\naddress = \"{http}\"\ndefault_pool = \"web\"\n  [[service.pool]]\n  name = \"web\"\n    [[service.pool.real_server]]\n    address = \"{web}\"\n",
        service_toml(tcp, "rr", "", &[(backend.addr, "")])
    );
    Services { tcp, udp, http, config, _backend: backend }
}

/// What the load loops saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    resets: AtomicU64,
    first_failures: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, what: &str, r: std::io::Result<()>) {
        match r {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::ConnectionReset {
                    self.resets.fetch_add(1, Ordering::Relaxed);
                }
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut f = self.first_failures.lock().unwrap();
                if f.len() < 10 {
                    f.push(format!("{what}: {e}"));
                }
            }
        }
    }
}

/// Runs `step` until `stop`, the deadline or [`LOAD_MAX`].
fn load(
    stop: &Arc<AtomicBool>,
    tally: &Arc<Tally>,
    what: &'static str,
    mut step: impl FnMut() -> std::io::Result<()> + Send + 'static,
) -> thread::JoinHandle<()> {
    let (stop, tally) = (stop.clone(), tally.clone());
    thread::spawn(move || {
        let t0 = Instant::now();
        for _ in 0..LOAD_MAX {
            if stop.load(Ordering::Relaxed) || t0.elapsed() > LOAD_DEADLINE {
                break;
            }
            tally.record(what, step());
        }
    })
}

/// One HTTP/1.1 exchange on `s`; whether the server said it closes the connection.
fn http_exchange(r: &mut BufReader<TcpStream>, close: bool) -> std::io::Result<bool> {
    let conn = if close { "Connection: close\r\n" } else { "" };
    write!(r.get_mut(), "GET / HTTP/1.1\r\nHost: upgrade.test\r\n{conn}\r\n")?;
    let mut status = String::new();
    if r.read_line(&mut status)? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before the response"));
    }
    if !status.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("status line {status:?}")));
    }
    let (mut len, mut closes) = (0usize, false);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed in the response head"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
            if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
                closes = true;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    if body != b"web\n" {
        return Err(std::io::Error::other(format!("body {:?}", String::from_utf8_lossy(&body))));
    }
    Ok(closes)
}

fn http_conn(addr: SocketAddr) -> std::io::Result<BufReader<TcpStream>> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(BufReader::new(s))
}

fn pid_of_api(rvsd: &Rvsd) -> u64 {
    let (st, v) = rvsd.api("GET", "/v1/info", None);
    assert_eq!(st, 200, "{v}");
    v["pid"].as_u64().unwrap_or_else(|| panic!("no pid in /v1/info: {v}"))
}

#[test]
fn upgrades_in_a_row_under_load_fail_nothing_and_old_processes_drain_and_exit() {
    let s = services();
    let first = Rvsd::start(&s.config);
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut loops = Vec::new();
    // L4: new connections, each one echo.
    let tcp = s.tcp;
    loops.push(load(&stop, &tally, "tcp new connection", move || {
        let mut c = open(tcp)?;
        c.echo(b"ping")
    }));
    // L4: keep-alive, a new connection every 50 echoes (so old processes can drain).
    let mut held: Option<Conn> = None;
    let mut n = 0u64;
    loops.push(load(&stop, &tally, "tcp keep-alive", move || {
        n += 1;
        if n.is_multiple_of(50) {
            held = None;
        }
        let c = match held.as_mut() {
            Some(c) => c,
            None => held.insert(open(tcp)?),
        };
        let r = c.echo(b"keep-alive");
        if r.is_err() {
            held = None;
        }
        r
    }));
    // http: keep-alive (a new connection whenever the server says it closes) and
    // `Connection: close`.
    let http = s.http;
    let mut conn: Option<BufReader<TcpStream>> = None;
    loops.push(load(&stop, &tally, "http keep-alive", move || {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => conn.insert(http_conn(http)?),
        };
        match http_exchange(c, false) {
            Ok(true) => {
                conn = None;
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => {
                conn = None;
                Err(e)
            }
        }
    }));
    loops.push(load(&stop, &tally, "http Connection: close", move || {
        let mut c = http_conn(http)?;
        http_exchange(&mut c, true).map(|_| ())
    }));
    // UDP: request and answer, a new client port (a new flow) every 20.
    let udp = s.udp;
    let mut client: Option<UdpSocket> = None;
    let mut m = 0u64;
    loops.push(load(&stop, &tally, "udp", move || {
        m += 1;
        if m.is_multiple_of(20) {
            client = None;
        }
        let c = match client.as_mut() {
            Some(c) => c,
            None => {
                let c = UdpSocket::bind("127.0.0.1:0")?;
                c.set_read_timeout(Some(Duration::from_secs(3)))?;
                client.insert(c)
            }
        };
        let msg = format!("datagram {m}");
        c.send_to(msg.as_bytes(), udp)?;
        let mut buf = [0u8; 256];
        let (got, _) = c.recv_from(&mut buf)?;
        if &buf[..got] != msg.as_bytes() {
            return Err(std::io::Error::other("another datagram came back"));
        }
        Ok(())
    }));

    let mut done: Vec<Rvsd> = Vec::new();
    let mut current = first;
    for i in 0..UPGRADES {
        thread::sleep(Duration::from_millis(300));
        // A connection established before the upgrade...
        let mut long = open(s.tcp).expect("a long-lived connection");
        long.echo(b"before").unwrap();
        let old_pid = pid_of_api(&current);
        let next = current.upgrade(&[]);
        let new_pid = pid_of_api(&next);
        assert_eq!(new_pid, u64::from(next.pid()), "upgrade {i}: the API is the new rvsd's");
        assert_ne!(new_pid, old_pid);
        // ...goes on through the old process, which waits for it.
        thread::sleep(Duration::from_millis(200));
        long.echo(b"after the upgrade, through the old rvsd").unwrap_or_else(|e| panic!("upgrade {i}: {e}"));
        assert!(
            current.wait(Duration::from_millis(1)).is_none(),
            "upgrade {i}: the old rvsd left before its connection ended"
        );
        drop(long);
        let code = current.wait(Duration::from_secs(40));
        assert_eq!(code, Some(0), "upgrade {i}: the old rvsd drains and exits 0; its log:\n{}", current.log());
        assert!(current.log().contains("stopping after a binary upgrade"), "{}", current.log());
        done.push(current);
        current = next;
    }
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.join().unwrap();
    }
    let failures = tally.first_failures.lock().unwrap().clone();
    let (ok, failed, resets) =
        (tally.ok.load(Ordering::Relaxed), tally.failed.load(Ordering::Relaxed), tally.resets.load(Ordering::Relaxed));
    eprintln!("{UPGRADES} upgrades: {ok} operations, {failed} failed, {resets} reset");
    assert_eq!((failed, resets), (0, 0), "failures: {failures:#?}\nlast log:\n{}", current.log());
    assert!(ok > 100, "the load ran: {ok}");
    // The last rvsd serves everything.
    assert_eq!(name(s.tcp), "a");
    let (st, body) = rvs_testkit::http_get(&s.http.to_string(), "/", "");
    assert_eq!((st, body.as_str()), (200, "web"));
}

#[test]
fn an_upgrade_from_a_socket_nobody_listens_on_fails_clearly() {
    let s = services();
    let running = Rvsd::start(&s.config);
    let dir = tempfile::tempdir().unwrap();
    let nobody = dir.path().join("nobody.sock");
    let err = running.try_upgrade_from(&nobody, &[]).err().expect("an upgrade from nothing fails");
    assert!(err.contains("no rvsd takes upgrades at"), "{err}");
    assert_eq!(name(s.tcp), "a", "the running rvsd goes on");
}

/// Connects to the upgrade socket of `rvsd` and says hello in `version`.
fn hello(rvsd: &Rvsd, version: u32) -> String {
    let path = format!("{}.upgrade", rvsd.socket.display());
    let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None).unwrap();
    sock.connect(&socket2::SockAddr::unix(&path).unwrap()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    sock.send(format!(r#"{{"op":"hello","version":{version},"pid":1}}"#).as_bytes()).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = (&sock).read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn a_refused_upgrade_leaves_the_running_rvsd_unharmed_and_a_later_one_works() {
    let s = services();
    let running = Rvsd::start(&s.config);
    let answer = hello(&running, 99);
    assert!(answer.contains("refused") && answer.contains("version 99"), "{answer}");
    assert_eq!(name(s.tcp), "a", "the running rvsd goes on");
    let mut running = running;
    let next = running.upgrade(&[]);
    assert_eq!(running.wait(Duration::from_secs(40)), Some(0), "{}", running.log());
    assert_eq!(name(s.tcp), "a");
    drop(next);
}

#[test]
fn a_manifest_that_does_not_match_the_sockets_passed_is_refused_by_the_new_rvsd() {
    let s = services();
    let running = Rvsd::start(&s.config);
    // A fake old rvsd: its manifest says a TCP listener, it passes a UDP socket.
    let dir = tempfile::tempdir().unwrap();
    let fake_api = dir.path().join("fake.sock");
    let upgrade_path = dir.path().join("fake.sock.upgrade");
    let listener = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None).unwrap();
    listener.bind(&socket2::SockAddr::unix(&upgrade_path).unwrap()).unwrap();
    listener.listen(1).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let claimed = s.tcp;
    let fake = thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = (&conn).read(&mut buf).unwrap();
        let manifest =
            format!(r#"{{"op":"manifest","version":1,"pid":1,"sockets":[{{"kind":"tcp","address":"{claimed}"}}]}}"#);
        conn.send(manifest.as_bytes()).unwrap();
        let fds = [udp.as_fd()];
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds)));
        let msg = br#"{"op":"fds","count":1}"#;
        rustix::net::sendmsg(&conn, &[IoSlice::new(msg)], &mut control, rustix::net::SendFlags::empty()).unwrap();
        // Waits for the new rvsd to hang up.
        let _ = (&conn).read(&mut buf);
    });
    let err = running.try_upgrade_from(&fake_api, &[]).err().expect("a mismatched manifest fails the upgrade");
    assert!(err.contains("does not match"), "{err}");
    fake.join().unwrap();
    assert_eq!(name(s.tcp), "a", "the running rvsd goes on");
}
