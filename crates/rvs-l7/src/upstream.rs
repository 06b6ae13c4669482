//! Connections to real servers: one connection with its read buffer and how many responses
//! it has carried, and the idle list per real server of a pool from which requests reuse
//! them (most recently used first; the oldest expire).

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use rvs_core::ProxyProtocol;
use tokio::net::TcpStream;

use crate::buffer::Buffer;

/// Read buffer per upstream connection; also the largest response head accepted.
pub(crate) const UPSTREAM_BUFFER: usize = 32 * 1024;

#[derive(Debug)]
pub(crate) struct UpstreamConn {
    pub stream: TcpStream,
    pub buf: Buffer,
    pub dest: SocketAddr,
    /// Responses completed on it.
    pub served: u64,
    /// The PROXY header it started with; a connection that names one client (anything but
    /// off) is never shared with another.
    pub proxy: ProxyProtocol,
    pub idle_since: Instant,
}

impl UpstreamConn {
    /// Boxed: a connection moves between the idle lists and the exchanges as a pointer.
    pub fn new(stream: TcpStream, dest: SocketAddr, proxy: ProxyProtocol) -> Box<Self> {
        Box::new(Self { stream, buf: Buffer::new(UPSTREAM_BUFFER), dest, served: 0, proxy, idle_since: Instant::now() })
    }

    /// Still fit for a request: the real server has neither closed it nor sent anything
    /// unasked. Costs no syscall while the socket was not reported readable (reads through
    /// `TcpRef` clear the readiness when they drain the socket).
    pub fn is_usable(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// Idle connections to one real server of one pool, sharded by worker thread: a request
/// takes from (and returns to) its own thread's shard first, so workers do not contend.
#[derive(Debug)]
pub(crate) struct IdleList {
    #[allow(clippy::vec_box, reason = "connections move in and out as pointers, not 150-byte copies")]
    shards: Box<[Mutex<Vec<Box<UpstreamConn>>>]>,
    /// Most connections per shard.
    max: usize,
}

impl IdleList {
    pub fn new(max: usize) -> Self {
        let shards = (0..crate::stats::SHARDS).map(|_| Mutex::new(Vec::new())).collect();
        Self { shards, max: max.div_ceil(crate::stats::SHARDS).max(1) }
    }

    #[allow(clippy::vec_box, reason = "connections move in and out as pointers, not 150-byte copies")]
    fn lock(m: &Mutex<Vec<Box<UpstreamConn>>>) -> MutexGuard<'_, Vec<Box<UpstreamConn>>> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently kept connection of this thread's shard, else of any other.
    pub fn take(&self) -> Option<Box<UpstreamConn>> {
        let home = crate::stats::shard_index();
        let n = self.shards.len();
        (0..n).find_map(|i| Self::lock(&self.shards[(home + i) % n]).pop())
    }

    /// Keeps `c` (its `idle_since` set) for reuse unless this thread's shard is full.
    pub fn put(&self, c: Box<UpstreamConn>) {
        let mut l = Self::lock(&self.shards[crate::stats::shard_index()]);
        if l.len() < self.max {
            l.push(c);
        }
    }

    /// Closes connections idle since before `cutoff`; returns how many.
    pub fn expire(&self, cutoff: Instant) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let mut l = Self::lock(s);
                let before = l.len();
                l.retain(|c| c.idle_since >= cutoff);
                before - l.len()
            })
            .sum()
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| Self::lock(s).len()).sum()
    }

    pub fn clear(&self) {
        self.shards.iter().for_each(|s| Self::lock(s).clear());
    }
}
