//! What the end-to-end tests share on top of rvs-testkit: configuration text, connections
//! held open (optionally from another loopback source address), polling the API, and a paced
//! byte-exact echo transfer that runs in threads while a test changes things.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use rvs_testkit::{closed_port, connect_name, free_port, Backend, Rvsd};
use serde_json::Value;

/// A fresh virtual service address on 127.0.0.1.
pub fn vip() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// One `[[service]]` table: `extra` lines go into the service, each real server is an address
/// plus its own extra lines (`weight = 3`, ...).
pub fn service_toml(vip: SocketAddr, scheduler: &str, extra: &str, servers: &[(SocketAddr, &str)]) -> String {
    let mut s = format!("[[service]]\naddress = \"{vip}\"\nscheduler = \"{scheduler}\"\n{extra}\n");
    for (addr, lines) in servers {
        s.push_str(&format!("  [[service.real_server]]\n  address = \"{addr}\"\n"));
        for l in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
            s.push_str(&format!("  {l}\n"));
        }
    }
    s
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A connection through the director whose name line has been read; kept open until dropped.
pub struct Conn {
    pub stream: TcpStream,
    pub name: String,
}

impl Conn {
    /// Sends `data` and reads the same bytes back.
    pub fn echo(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(data)?;
        let mut got = vec![0u8; data.len()];
        self.stream.read_exact(&mut got)?;
        if got != data {
            return Err(std::io::Error::other("echo differs"));
        }
        Ok(())
    }
}

/// Reads one line byte by byte (so nothing after it is consumed).
pub fn read_line(s: &mut TcpStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b)? {
            0 => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before the name line")),
            _ if b[0] == b'\n' => break,
            _ => line.push(b[0]),
        }
        if line.len() > 256 {
            return Err(std::io::Error::other("name line too long"));
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn finish_open(mut stream: TcpStream) -> std::io::Result<Conn> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let name = read_line(&mut stream)?;
    Ok(Conn { stream, name })
}

/// Connects to `vip` and reads the real server's name; the connection stays open.
pub fn open(vip: SocketAddr) -> std::io::Result<Conn> {
    finish_open(TcpStream::connect_timeout(&vip, Duration::from_secs(5))?)
}

/// As [`open`], from the loopback source address `src` (any 127.x.y.z works on Linux).
pub fn open_from(src: Ipv4Addr, vip: SocketAddr) -> std::io::Result<Conn> {
    use rustix::net::{AddressFamily, SocketType};
    let SocketAddr::V4(v4) = vip else { panic!("IPv4 only") };
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)?;
    rustix::net::bind(&fd, &SocketAddrV4::new(src, 0))?;
    rustix::net::connect(&fd, &v4)?;
    finish_open(TcpStream::from(fd))
}

/// The name behind one short connection from `src`.
pub fn name_from(src: Ipv4Addr, vip: SocketAddr) -> String {
    open_from(src, vip).unwrap_or_else(|e| panic!("connect from {src} to {vip}: {e}")).name
}

/// The name behind one short connection.
pub fn name(vip: SocketAddr) -> String {
    open(vip).unwrap_or_else(|e| panic!("connect to {vip}: {e}")).name
}

/// Opens `n` connections one after the other and keeps them all open.
pub fn hold(vip: SocketAddr, n: usize) -> Vec<Conn> {
    (0..n).map(|i| open(vip).unwrap_or_else(|e| panic!("connection {i} to {vip}: {e}"))).collect()
}

pub fn names(conns: &[Conn]) -> Vec<&str> {
    conns.iter().map(|c| c.name.as_str()).collect()
}

/// `GET /v1/services/tcp/VIP`.
pub fn service_view(rvsd: &Rvsd, vip: SocketAddr) -> Value {
    let (st, v) = rvsd.api("GET", &format!("/v1/services/tcp/{vip}"), None);
    assert_eq!(st, 200, "GET service {vip}: {v}");
    v
}

/// The API view of one real server of the service at `vip`, if it has it.
pub fn server_view(rvsd: &Rvsd, vip: SocketAddr, rs: SocketAddr) -> Option<Value> {
    let v = service_view(rvsd, vip);
    v["real_servers"].as_array()?.iter().find(|r| r["address"] == rs.to_string()).cloned()
}

/// active + inactive connections of a real server as the API reports them.
pub fn server_conns(rvsd: &Rvsd, vip: SocketAddr, rs: SocketAddr) -> u64 {
    server_view(rvsd, vip, rs).map_or(0, |r| r["active"].as_u64().unwrap() + r["inactive"].as_u64().unwrap())
}

/// Waits until a real server has exactly `n` connections (active + inactive).
pub fn wait_conns(rvsd: &Rvsd, vip: SocketAddr, rs: SocketAddr, n: u64) {
    wait_until(Duration::from_secs(10), &format!("{rs} to have {n} connections"), || server_conns(rvsd, vip, rs) == n);
}

/// Waits until the director holds no proxied connection at all.
pub fn wait_no_connections(rvsd: &Rvsd) {
    wait_until(Duration::from_secs(10), "no connections left in the director", || {
        rvsd.api("GET", "/v1/info", None).1["connections"] == 0
    });
}

/// `GET /v1/save`, the table as commands.
pub fn save(rvsd: &Rvsd) -> Value {
    let (st, v) = rvsd.api("GET", "/v1/save", None);
    assert_eq!(st, 200, "{v}");
    v
}

/// The byte at offset `i` of a transfer: a pattern that no shift or repeat can fake.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i >> 20) as u8
}

/// A paced transfer of `total` bytes through an echo real server: one thread writes, one
/// reads and checks every byte. `progress()` tells how far the checked echo has come.
pub struct Transfer {
    pub name: String,
    pub total: u64,
    echoed: Arc<AtomicU64>,
    failure: Arc<std::sync::Mutex<Option<String>>>,
    writer: JoinHandle<Result<(), String>>,
    reader: JoinHandle<Result<u64, String>>,
}

impl Transfer {
    /// Starts on a fresh connection to `vip`; writes `total` bytes in 256 KiB chunks with
    /// `pause` between chunks, then half-closes.
    pub fn start(vip: SocketAddr, total: u64, pause: Duration) -> Transfer {
        let conn = open(vip).unwrap_or_else(|e| panic!("transfer connect to {vip}: {e}"));
        Self::start_on(conn, total, pause)
    }

    pub fn start_on(conn: Conn, total: u64, pause: Duration) -> Transfer {
        let Conn { stream, name } = conn;
        let mut w = stream.try_clone().expect("clone socket");
        let mut r = stream;
        let echoed = Arc::new(AtomicU64::new(0));
        let writer = std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let mut off = 0u64;
            while off < total {
                let n = (total - off).min(buf.len() as u64) as usize;
                for (k, b) in buf[..n].iter_mut().enumerate() {
                    *b = pattern(off + k as u64);
                }
                w.write_all(&buf[..n]).map_err(|e| format!("write at {off}: {e}"))?;
                off += n as u64;
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
            }
            w.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))
        });
        let seen = echoed.clone();
        let failure = Arc::new(std::sync::Mutex::new(None));
        let failed = failure.clone();
        let reader = std::thread::spawn(move || {
            let r = Self::check_echo(&mut r, total, &seen);
            if let Err(e) = &r {
                *failed.lock().unwrap() = Some(e.clone());
            }
            r
        });
        Transfer { name, total, echoed, failure, writer, reader }
    }

    /// Reads the echo and checks every byte against the pattern, counting in `seen`.
    fn check_echo(r: &mut TcpStream, total: u64, seen: &AtomicU64) -> Result<u64, String> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut off = 0u64;
        loop {
            let n = r.read(&mut buf).map_err(|e| format!("read at {off}: {e}"))?;
            if n == 0 {
                break;
            }
            for (k, b) in buf[..n].iter().enumerate() {
                let at = off + k as u64;
                if *b != pattern(at) {
                    return Err(format!("byte {at} differs"));
                }
            }
            off += n as u64;
            seen.store(off, Ordering::Relaxed);
        }
        if off == total {
            Ok(off)
        } else {
            Err(format!("EOF after {off} of {total} bytes"))
        }
    }

    /// Bytes echoed back and checked so far.
    pub fn progress(&self) -> u64 {
        self.echoed.load(Ordering::Relaxed)
    }

    pub fn is_finished(&self) -> bool {
        self.reader.is_finished()
    }

    /// Why the reader stopped, if it stopped on an error.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap().clone()
    }

    /// Waits for the end; `Ok(bytes)` when every byte came back in order.
    pub fn join(self) -> Result<u64, String> {
        let r = self.reader.join().map_err(|_| "reader panicked".to_string())?;
        let w = self.writer.join().map_err(|_| "writer panicked".to_string())?;
        let n = r?;
        w?;
        Ok(n)
    }

    /// Asserts the transfer is still under way (so what the test does next happens mid-flight).
    pub fn assert_in_flight(&self, when: &str) {
        let p = self.progress();
        assert!(
            p > 0 && p < self.total && !self.is_finished(),
            "the {} transfer is not in flight {when}: {p} of {} ({})",
            self.name,
            self.total,
            self.failure().unwrap_or_else(|| "no error".into())
        );
    }
}

/// Waits until a transfer has echoed at least `bytes`.
pub fn wait_progress(t: &Transfer, bytes: u64) {
    wait_until(Duration::from_secs(20), &format!("the {} transfer to reach {bytes} bytes", t.name), || {
        t.progress() >= bytes || t.is_finished()
    });
    if let Some(e) = t.failure() {
        panic!("the {} transfer failed before {bytes} bytes: {e}", t.name);
    }
}
