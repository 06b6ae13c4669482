//! The relay: moves bytes both ways between the client and real server sockets. Each
//! direction copies small messages through a per-thread buffer and, once a read fills it (a
//! bulk flow), splices socket → pipe → socket with splice(2) so payload stays in the kernel.
//! A connection that proves long-lived (a second request, or a bulk burst) is linked into the
//! kernel relay, when there is one, at a moment when both its sockets are drained: from then on the kernel moves its bytes, and the relay only
//! waits for EOF and errors. A FIN on one side is passed on as a half-close (after the bytes
//! before it); either direction's error ends the connection.

use std::cell::RefCell;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustix::net::Shutdown;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tracing::debug;

use rvs_bpf::socket::bytes_written;
use rvs_bpf::sockmap::{KernelRelay, KernelRelayError, Link};
use rvs_core::Binding;
use rvs_dataplane::clock::Clock;
use rvs_dataplane::splice::{give_pipe, read_clearing, splice_in, splice_out, take_pipe, write_all, Pipe};

use crate::conn_table::ConnEntry;

/// Size of the copy path's scratch buffer; a read that fills it switches to splice.
const COPY_BUF: usize = 16 * 1024;
/// How often a linked connection's kernel counters are added to the statistics (and its idle
/// timer reset when they moved).
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// The client messages after which a connection counts as long-lived and is linked.
const LINK_AFTER_MESSAGES: u32 = 2;

/// Which way a direction carries bytes, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Client to real server ("in" in IPVS terms).
    In,
    /// Real server to client ("out").
    Out,
}

impl Way {
    fn index(self) -> usize {
        self as usize
    }
}

/// What one relayed connection shares between its two directions.
pub(crate) struct Relay<'a> {
    binding: &'a Binding,
    entry: &'a ConnEntry,
    clock: Clock,
    kernel: Option<&'a Arc<KernelRelay>>,
    /// Per direction, whether its source has reached EOF.
    eof: [AtomicBool; 2],
    /// Bytes rvsd itself wrote towards the real server (PROXY header included) and the client.
    written: [AtomicU64; 2],
    /// Whether a direction is waiting to finish a write.
    busy: [AtomicBool; 2],
    /// Whether a direction's last read emptied its socket's receive queue. The kernel relay
    /// takes whole queued messages, so a link made after a partial read would repeat its bytes.
    drained: [AtomicBool; 2],
    /// Client messages forwarded by rvsd.
    messages_in: AtomicU32,
    /// Whether a read ever filled the buffer (a bulk flow).
    bulk_seen: AtomicBool,
    link: OnceLock<Linked>,
    link_tried: AtomicBool,
}

impl<'a> Relay<'a> {
    pub fn new(binding: &'a Binding, entry: &'a ConnEntry, clock: Clock, kernel: Option<&'a Arc<KernelRelay>>) -> Self {
        Self {
            binding,
            entry,
            clock,
            kernel,
            eof: Default::default(),
            written: Default::default(),
            busy: Default::default(),
            drained: [AtomicBool::new(true), AtomicBool::new(true)],
            messages_in: AtomicU32::new(0),
            bulk_seen: AtomicBool::new(false),
            link: OnceLock::new(),
            link_tried: AtomicBool::new(false),
        }
    }

    /// Writes `data` (the PROXY protocol header) to the real server before relaying.
    pub async fn send_to_server(&self, server: &TcpStream, data: &[u8]) -> io::Result<()> {
        write_all(server, data).await?;
        self.written[Way::In.index()].fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Relays until both sides have closed, or one fails.
    pub async fn run(&self, client: &TcpStream, server: &TcpStream) -> io::Result<()> {
        tokio::try_join!(self.pump(client, server, Way::In), self.pump(client, server, Way::Out))?;
        Ok(())
    }

    fn count(&self, way: Way, n: usize) {
        self.entry.touch(self.clock.now_ms());
        match way {
            Way::In => self.binding.count_in(n as u64),
            Way::Out => self.binding.count_out(n as u64),
        }
    }

    /// Adds what the kernel relayed since the last call to the statistics.
    fn sync_kernel_counts(&self) {
        let Some(Linked { link, .. }) = self.link.get() else { return };
        let (i, o) = (link.take_new(true), link.take_new(false));
        if i.packets + o.packets > 0 {
            self.entry.touch(self.clock.now_ms());
        }
        self.binding.count_in_packets(i.packets, i.bytes);
        self.binding.count_out_packets(o.packets, o.bytes);
    }

    /// After rvsd copied `n` bytes one way (`full`: the read filled the buffer, so the socket
    /// may hold more): the kernel relay's bookkeeping, and the link when the moment is right.
    /// Nothing without a kernel relay.
    fn note_copied(&self, client: &TcpStream, server: &TcpStream, way: Way, n: usize, full: bool) {
        if self.kernel.is_none() {
            return;
        }
        self.written[way.index()].fetch_add(n as u64, Ordering::Relaxed);
        if way == Way::In {
            self.messages_in.fetch_add(1, Ordering::Relaxed);
        }
        if full {
            self.drained[way.index()].store(false, Ordering::Relaxed);
            self.bulk_seen.store(true, Ordering::Relaxed);
        } else {
            self.note_drained(client, server, way);
        }
    }

    /// After rvsd spliced `n` bytes one way (the socket may hold more).
    fn note_spliced(&self, way: Way, n: usize) {
        if self.kernel.is_some() {
            self.written[way.index()].fetch_add(n as u64, Ordering::Relaxed);
            self.drained[way.index()].store(false, Ordering::Relaxed);
        }
    }

    /// A read emptied one way's socket: the moment to try the link.
    fn note_drained(&self, client: &TcpStream, server: &TcpStream, way: Way) {
        if self.kernel.is_some() {
            self.drained[way.index()].store(true, Ordering::Relaxed);
            self.maybe_link(client, server);
        }
    }

    /// Links the connection into the kernel relay when it has shown it is long-lived, nothing
    /// waits to be written either way, and neither socket holds a partly read message. Tried
    /// once per connection.
    fn maybe_link(&self, client: &TcpStream, server: &TcpStream) {
        let Some(kernel) = self.kernel else { return };
        if !(self.bulk_seen.load(Ordering::Relaxed) || self.messages_in.load(Ordering::Relaxed) >= LINK_AFTER_MESSAGES)
            || self.busy.iter().any(|b| b.load(Ordering::Relaxed))
            || !self.drained.iter().all(|d| d.load(Ordering::Relaxed))
            || self.eof.iter().any(|e| e.load(Ordering::Relaxed))
            || self.link_tried.swap(true, Ordering::Relaxed)
        {
            return;
        }
        match self.link(kernel, client, server) {
            Ok(linked) => {
                debug!(client = %self.entry.client, "linked in the kernel relay");
                let _ = self.link.set(linked);
            }
            Err(e) => debug!(error = %e, "not linked in the kernel relay: rvsd relays this connection"),
        }
    }

    fn link(
        &self,
        kernel: &Arc<KernelRelay>,
        client: &TcpStream,
        server: &TcpStream,
    ) -> Result<Linked, KernelRelayError> {
        // What each destination socket counts beyond what rvsd wrote to it (its SYN).
        let offset = |to: &TcpStream, way: Way| {
            bytes_written(to.as_fd()).map(|n| n.wrapping_sub(self.written[way.index()].load(Ordering::Relaxed)))
        };
        let offset = [offset(server, Way::In)?, offset(client, Way::Out)?];
        Ok(Linked { link: kernel.link(client.as_fd(), server.as_fd())?, offset })
    }

    /// Waits for readability; a linked connection's client side also wakes every
    /// [`SYNC_EVERY`] to bring the kernel counters into the statistics.
    async fn readable(&self, from: &TcpStream, way: Way) -> io::Result<tokio::io::Ready> {
        loop {
            if way == Way::Out || self.link.get().is_none() {
                return from.ready(Interest::READABLE).await;
            }
            match tokio::time::timeout(SYNC_EVERY, from.ready(Interest::READABLE)).await {
                Ok(r) => return r,
                Err(_) => self.sync_kernel_counts(),
            }
        }
    }

    async fn write_rest(&self, to: &TcpStream, way: Way, rest: &[u8]) -> io::Result<()> {
        self.busy[way.index()].store(true, Ordering::Relaxed);
        let r = write_all(to, rest).await;
        self.busy[way.index()].store(false, Ordering::Relaxed);
        r
    }

    async fn pump(&self, client: &TcpStream, server: &TcpStream, way: Way) -> io::Result<()> {
        let (from, to) = match way {
            Way::In => (client, server),
            Way::Out => (server, client),
        };
        // Copy until a read fills the scratch buffer (a bulk burst), then splice until the
        // socket runs dry, then copy again. Small request/response traffic never pays for a
        // pipe, and a pipe goes back to the pool as soon as its burst is over. Once the
        // connection is linked in the kernel, what still reaches this socket (bytes held back
        // while the link was made, then EOF) is copied.
        let mut bulk = false;
        let mut splice_ok = true;
        let mut pipe: Option<Pipe> = None;
        loop {
            if self.link.get().is_some() {
                // Between bursts the pipe is empty: it goes back.
                if let Some(p) = pipe.take() {
                    give_pipe(p);
                }
                (bulk, splice_ok) = (false, false);
            }
            let ready = self.readable(from, way).await?;
            let moved = if !bulk {
                match copy_step(from, to)? {
                    Step::NotReady => continue,
                    Step::Eof => 0,
                    Step::Moved { n, full, rest } => {
                        self.count(way, n);
                        if let Some(rest) = rest {
                            self.write_rest(to, way, &rest).await?;
                        }
                        self.note_copied(client, server, way, n, full);
                        bulk = full && splice_ok && self.link.get().is_none();
                        if !full && ready.is_read_closed() {
                            // The peer's FIN had arrived before this read, and the short read
                            // took all that came before it: end of stream, without a read
                            // that would only return 0.
                            self.end_of_stream(to, way).await?;
                            return Ok(());
                        }
                        n
                    }
                }
            } else {
                let p = match pipe.take().map_or_else(take_pipe, Ok) {
                    Ok(p) => p,
                    Err(e) => {
                        debug!(error = %e, "no pipe for splice: copying");
                        (bulk, splice_ok) = (false, false);
                        continue;
                    }
                };
                match splice_in(from, &p.w, p.size) {
                    Ok(Some(0)) => {
                        give_pipe(p);
                        0
                    }
                    Ok(Some(n)) => {
                        self.count(way, n);
                        // On error the pipe may hold bytes: it is dropped, not pooled.
                        self.busy[way.index()].store(true, Ordering::Relaxed);
                        let out = splice_out(&p.r, to, n).await;
                        self.busy[way.index()].store(false, Ordering::Relaxed);
                        out?;
                        self.note_spliced(way, n);
                        pipe = Some(p);
                        n
                    }
                    Ok(None) => {
                        // The burst is over: the pipe goes back, small messages are copied.
                        give_pipe(p);
                        bulk = false;
                        self.note_drained(client, server, way);
                        continue;
                    }
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                        // This socket cannot be spliced: copy through the buffer from now on.
                        give_pipe(p);
                        (bulk, splice_ok) = (false, false);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            if moved == 0 {
                self.end_of_stream(to, way).await?;
                return Ok(());
            }
        }
    }

    /// End of stream from one side: once every byte before it is in `to`'s send queue (the
    /// kernel relay may still be moving some), pass the half-close on, unless the other way
    /// is done too: then both sockets close at once, which sends the FINs without a shutdown.
    async fn end_of_stream(&self, to: &TcpStream, way: Way) -> io::Result<()> {
        self.eof[way.index()].store(true, Ordering::Release);
        self.binding.closing(self.clock.now_ms());
        self.entry.set_state(self.binding.state());
        if let Some(Linked { link, offset }) = self.link.get() {
            let mut pause = Duration::from_millis(1);
            loop {
                let expected = self.written[way.index()].load(Ordering::Relaxed) + link.moved(way == Way::In).bytes;
                if bytes_written(to.as_fd())?.wrapping_sub(offset[way.index()]) >= expected {
                    break;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
        let other_done = || self.eof[1 - way.index()].load(Ordering::Acquire);
        if !other_done() {
            // One turn of the event loop first: when the other side is closing too (a client
            // that hangs up on the response as the real server does), its FIN is seen and no
            // FIN goes out on its own. Sending ours first would leave this socket, rather
            // than the peer's, in TIME_WAIT.
            tokio::task::yield_now().await;
        }
        if other_done() {
            return Ok(());
        }
        match rustix::net::shutdown(to, Shutdown::Write) {
            Ok(()) | Err(rustix::io::Errno::NOTCONN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A connection in the kernel relay.
struct Linked {
    link: Link,
    /// Per direction, what the destination socket's byte count holds beyond the bytes rvsd
    /// wrote to it (1 for the SYN of the socket rvsd connected), taken when the link was made.
    offset: [u64; 2],
}

impl Drop for Relay<'_> {
    fn drop(&mut self) {
        // The last of what the kernel moved; the link itself goes with `self.link`.
        self.sync_kernel_counts();
    }
}

thread_local! {
    /// Each worker thread's scratch buffer for the copy path: no per-connection buffer.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; COPY_BUF].into_boxed_slice());
}

/// What one copy step did.
enum Step {
    NotReady,
    Eof,
    /// `n` bytes read (`full`: the read filled the buffer); `rest` is what the destination
    /// did not take at once.
    Moved {
        n: usize,
        full: bool,
        rest: Option<Vec<u8>>,
    },
}

/// Reads once from `from` into the thread's scratch buffer and writes what `to` takes now.
fn copy_step(from: &TcpStream, to: &TcpStream) -> io::Result<Step> {
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        let len = buf.len();
        let n = match read_clearing(from, &mut buf[..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::NotReady),
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(Step::Eof);
        }
        let written = match to.try_write(&buf[..n]) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        Ok(Step::Moved { n, full: n == len, rest: (written < n).then(|| buf[written..n].to_vec()) })
    })
}
