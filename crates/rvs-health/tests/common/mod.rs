//! Test servers that really answer, hang, refuse and come back, on 127.0.0.1 only, and helpers
//! to wait for health events with bounded waits.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvs_health::{HealthEvent, HealthSupervisor, TargetKey};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What a [`TestServer`] does with each connection.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Read the request head, answer with this status and body (Content-Length).
    Http { status: u16, body: String },
    /// The same, chunked.
    HttpChunked { status: u16, body: String },
    /// Alternate 200 "ok" and 500 per connection.
    HttpFlap,
    /// Accept, then never answer (keep the connection open).
    Hang,
    /// Accept, read what comes first, close (a clean FIN, no reset).
    Close,
    /// Write this and close.
    Line(String),
    /// Echo what is read, once, then close.
    Echo,
    /// A tiny SMTP server: banner, then this reply to HELO, then 221 to QUIT.
    Smtp { banner: String, helo_reply: String },
}

/// A TCP server on 127.0.0.1 whose behaviour can be switched, and that can stop listening
/// (connections are refused) and listen again on the same port.
pub struct TestServer {
    pub addr: SocketAddr,
    behavior: Arc<Mutex<Behavior>>,
    accept: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<AtomicUsize>,
    /// What clients sent (first read or request head), latest last.
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl TestServer {
    pub async fn start(behavior: Behavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = Self {
            addr,
            behavior: Arc::new(Mutex::new(behavior)),
            accept: Mutex::new(None),
            connections: Arc::new(AtomicUsize::new(0)),
            received: Arc::new(Mutex::new(Vec::new())),
        };
        s.listen(listener);
        s
    }

    fn listen(&self, listener: TcpListener) {
        let behavior = self.behavior.clone();
        let connections = self.connections.clone();
        let received = self.received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let n = connections.fetch_add(1, Ordering::SeqCst);
                let b = behavior.lock().unwrap().clone();
                tokio::spawn(serve(stream, b, n, received.clone()));
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }

    pub fn set(&self, behavior: Behavior) {
        *self.behavior.lock().unwrap() = behavior;
    }

    /// Stop listening: from now on connections are refused.
    pub async fn stop(&self) {
        let task = self.accept.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listen again on the same port.
    pub async fn restart(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebinding {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.listen(listener);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}

async fn serve(mut stream: TcpStream, behavior: Behavior, n: usize, received: Arc<Mutex<Vec<Vec<u8>>>>) {
    match behavior {
        Behavior::Http { status, body } => {
            let head = read_head(&mut stream).await;
            received.lock().unwrap().push(head);
            let resp =
                format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _ = stream.write_all(resp.as_bytes()).await;
        }
        Behavior::HttpChunked { status, body } => {
            let head = read_head(&mut stream).await;
            received.lock().unwrap().push(head);
            let (a, b) = body.split_at(body.len() / 2);
            let resp = format!(
                "HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            );
            let _ = stream.write_all(resp.as_bytes()).await;
        }
        Behavior::HttpFlap => {
            read_head(&mut stream).await;
            let (status, body) = if n & 1 == 0 { (200, "ok") } else { (500, "bad") };
            let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            let _ = stream.write_all(resp.as_bytes()).await;
        }
        Behavior::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(stream);
        }
        Behavior::Close => {
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await;
        }
        Behavior::Line(line) => {
            let _ = stream.write_all(line.as_bytes()).await;
            // Keep what the client sent (agent-send), if anything comes quickly.
            let mut buf = [0u8; 256];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
                received.lock().unwrap().push(buf[..n].to_vec());
            }
        }
        Behavior::Echo => {
            let mut buf = [0u8; 1024];
            if let Ok(n) = stream.read(&mut buf).await {
                received.lock().unwrap().push(buf[..n].to_vec());
                let _ = stream.write_all(&buf[..n]).await;
            }
        }
        Behavior::Smtp { banner, helo_reply } => {
            let mut stream = BufReader::new(stream);
            let _ = stream.get_mut().write_all(banner.as_bytes()).await;
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            received.lock().unwrap().push(line.clone().into_bytes());
            let _ = stream.get_mut().write_all(helo_reply.as_bytes()).await;
            line.clear();
            if stream.read_line(&mut line).await.unwrap_or(0) > 0 && line.starts_with("QUIT") {
                let _ = stream.get_mut().write_all(b"221 bye\r\n").await;
            }
        }
    }
}

/// An address on 127.0.0.1 where nothing listens (TCP and UDP).
pub async fn closed_port() -> SocketAddr {
    // Bound without listening, and kept so for the rest of the process: refused, and no other
    // test can be handed the same port.
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = s.local_addr().unwrap();
    std::mem::forget(s);
    addr
}

/// A UDP socket on 127.0.0.1 that never answers (kept open so no ICMP comes back).
pub async fn silent_udp() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// A UDP server that answers every datagram with `reply`.
pub async fn udp_replier(reply: &'static [u8]) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = sock.recv_from(&mut buf).await {
            let _ = sock.send_to(reply, from).await;
        }
    });
    addr
}

/// A tiny DNS server on 127.0.0.1: `ok.test` has an A record (127.0.0.1), `empty.test` has no
/// record of any type (NOERROR, no answer), everything else is NXDOMAIN.
pub async fn dns_server() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let q = &buf[..n];
            if n < 17 {
                continue;
            }
            // The question: the name (labels) then type and class.
            let mut i = 12;
            let mut labels = Vec::new();
            while i < n && q[i] != 0 {
                let len = q[i] as usize;
                labels.push(String::from_utf8_lossy(&q[i + 1..i + 1 + len]).to_string());
                i += 1 + len;
            }
            let question_end = i + 5;
            let name = labels.join(".");
            let (rcode, answers) = match name.as_str() {
                "ok.test" => (0u8, 1u16),
                "empty.test" => (0, 0),
                _ => (3, 0),
            };
            let mut r = Vec::new();
            r.extend_from_slice(&q[..2]);
            r.extend_from_slice(&[0x81, 0x80 | rcode]);
            r.extend_from_slice(&[0, 1]);
            r.extend_from_slice(&answers.to_be_bytes());
            r.extend_from_slice(&[0, 0, 0, 0]);
            r.extend_from_slice(&q[12..question_end]);
            if answers == 1 {
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
            }
            let _ = sock.send_to(&r, from).await;
        }
    });
    addr
}

/// Writes an executable shell script into `dir`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    path
}

/// The next event, or a panic naming what was awaited after `within`.
pub async fn next_event<K: TargetKey>(
    rx: &mut mpsc::Receiver<HealthEvent<K>>,
    within: Duration,
    what: &str,
) -> HealthEvent<K> {
    match tokio::time::timeout(within, rx.recv()).await {
        Ok(Some(e)) => e,
        Ok(None) => panic!("event channel closed while waiting for {what}"),
        Err(_) => panic!("no event within {within:?} while waiting for {what}"),
    }
}

/// Asserts that no event comes for `quiet`.
pub async fn no_event<K: TargetKey>(rx: &mut mpsc::Receiver<HealthEvent<K>>, quiet: Duration, what: &str) {
    if let Ok(Some(e)) = tokio::time::timeout(quiet, rx.recv()).await {
        panic!("unexpected event ({what}): {e:?}");
    }
}

/// Waits until `id` has run at least `n` checks.
pub async fn wait_checks<K: TargetKey>(sup: &HealthSupervisor<K>, id: &K, n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let checks = sup.get(id).map_or(0, |s| s.state.totals().checks);
        if checks >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{id:?} ran {checks} checks, not {n}, within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Slack for two loaded cores on top of a computed bound.
pub const SLACK: Duration = Duration::from_millis(1500);
