//! Loopback real servers for tests: each accepted connection gets the server's name on a line,
//! then everything it sends is echoed back until it closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// An address on 127.0.0.1 where nothing listens (connections are refused). The port stays
/// bound, without listening, for the rest of the test process, so no other test can take it.
pub fn closed_port() -> SocketAddr {
    use rustix::net::{bind, getsockname, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
    bind(&fd, &SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind 127.0.0.1:0");
    let addr = SocketAddr::try_from(getsockname(&fd).expect("getsockname")).expect("an inet address");
    std::mem::forget(fd);
    addr
}

/// Connects to `addr` and returns the name line the real server behind it sends.
pub fn connect_name(addr: SocketAddr) -> std::io::Result<String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before the name line"));
    }
    Ok(line.trim_end().to_string())
}

/// A real server: name line, then echo. Dropping it closes its listener before `drop`
/// returns (connections to it are refused from then on); connections it accepted go on.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl Backend {
    /// Starts a backend on 127.0.0.1 with an ephemeral port.
    pub fn start(name: &str) -> Backend {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap())
    }

    pub fn start_on(name: &str, addr: SocketAddr) -> Backend {
        let listener = TcpListener::bind(addr).expect("backend bind");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (acc, st, nm) = (accepted.clone(), stop.clone(), name.to_string());
        let acceptor = thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        acc.fetch_add(1, Ordering::Relaxed);
                        let nm = nm.clone();
                        let _ = thread::Builder::new().stack_size(64 * 1024).spawn(move || serve(s, &nm));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Backend { name: name.to_string(), addr, accepted, stop, acceptor: Some(acceptor) }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The listener belongs to the accept thread: once it has ended, the port is closed. A
        // stop flag alone would leave it listening for a moment, and a connection completed in
        // its backlog then would be reset instead of refused.
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut s: TcpStream, name: &str) {
    let _ = s.set_nonblocking(false);
    if s.write_all(format!("{name}\n").as_bytes()).is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
    let _ = s.shutdown(Shutdown::Write);
}
