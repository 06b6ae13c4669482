//! One proxied TCP connection, a state machine its event loop drives: the connect to a real
//! server (scheduled, with a timeout, retried on another real server), the PROXY header, then
//! the relay both ways. Small messages are copied through the loop's buffer; once a read fills
//! it (a bulk flow) the direction splices socket → pipe → socket so payload stays in the kernel.
//! A FIN is passed on as a half-close once every byte before it is out. A connection that
//! proves long-lived (a second request, or a bulk burst) is linked into the kernel relay, when
//! there is one, at a moment when both its sockets are drained; the kernel then moves its bytes.
//! A related connection (an FTP data connection) comes with both sides up and starts relaying.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::io::Errno;
use rustix::net::Shutdown;
use rustix::pipe::{splice, SpliceFlags};
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tracing::debug;

use rvs_bpf::socket::bytes_written;
use rvs_bpf::sockmap::{KernelRelay, KernelRelayError, Link};
use rvs_core::sched::SchedRequest;
use rvs_core::{Binding, ConnState, ServiceAddr, VirtualService};
use rvs_dataplane::splice::{give_pipe, take_pipe, Pipe};
use rvs_dataplane::{proxy_protocol, tcp_options, ConnSlots};

use crate::conn_table::ConnEntry;
use crate::engine::Engine;

/// The client's socket, and the way that reads it (client to real server, "in" for IPVS).
pub(crate) const CLIENT: usize = 0;
/// The real server's socket, and the way that reads it ("out").
pub(crate) const SERVER: usize = 1;
/// The client messages after which a connection counts as long-lived and is linked.
const LINK_AFTER_MESSAGES: u32 = 2;
/// Reads or writes one way makes per turn before the other connections get theirs.
const BUDGET: usize = 16;

/// What the event loop passes to a connection it drives.
pub(crate) struct Cx<'a> {
    pub engine: &'a Engine,
    pub now_ms: u64,
    pub epoll: BorrowedFd<'a>,
    /// The connection's key in its loop (part of its epoll tokens).
    pub index: usize,
    /// The loop's copy buffer.
    pub scratch: &'a mut [u8],
}

/// What the loop must do with a connection after driving it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Next {
    /// It is over: close it.
    pub close: bool,
    /// A way stopped at its budget with work left: drive it again next turn.
    pub again: bool,
    /// A way reached end of stream: pass it on at the end of this turn (see [`TcpConn::end_of_turn`]).
    pub defer: bool,
    /// A way waits for the kernel relay to deliver what it holds before its FIN.
    pub wait: bool,
}

impl Next {
    const CLOSE: Next = Next { close: true, again: false, defer: false, wait: false };
}

/// The epoll token of one of a connection's sockets: its key, the socket, and for the real
/// server's socket the connect attempt (a closed attempt's late events are recognised).
pub(crate) fn token(index: usize, side: usize, attempt: u8) -> u64 {
    ((index as u64) << 10) | (u64::from(attempt) << 2) | side as u64
}

/// Registers a connection's socket: edge-triggered, readable and writable, once for its life.
pub(crate) fn register(epoll: BorrowedFd<'_>, sock: &impl AsFd, token: u64) -> io::Result<()> {
    let flags = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
    epoll::add(epoll, sock, EventData::new_u64(token), flags).map_err(io::Error::from)
}

/// What the loop knows of one socket's readiness (edge-triggered: kept until a call says
/// EAGAIN, or a short read shows the receive queue drained).
#[derive(Debug, Default)]
struct Ready {
    readable: bool,
    writable: bool,
    /// The peer's FIN has arrived.
    rdhup: bool,
}

/// One way of the relay.
#[derive(Debug)]
struct Way {
    /// Its source reached end of stream.
    eof: bool,
    /// End of stream passed on (or the connection closes with both ways done).
    done: bool,
    /// Bytes read but not yet taken by the destination.
    pending: Vec<u8>,
    /// The pipe of a bulk burst, and how many bytes it holds for the destination.
    pipe: Option<Pipe>,
    in_pipe: usize,
    /// Splicing now (a read filled the buffer).
    bulk: bool,
    /// The socket can be spliced (false after EINVAL).
    splice_ok: bool,
    /// The last read emptied the source's receive queue (for the kernel relay's link).
    drained: bool,
    /// Bytes rvsd wrote to the destination (PROXY header included), for the kernel relay.
    written: u64,
}

impl Default for Way {
    fn default() -> Self {
        Self {
            eof: false,
            done: false,
            pending: Vec::new(),
            pipe: None,
            in_pipe: 0,
            bulk: false,
            splice_ok: true,
            drained: true,
            written: 0,
        }
    }
}

impl Way {
    fn flushed(&self) -> bool {
        self.pending.is_empty() && self.in_pipe == 0
    }
}

/// A connection in the kernel relay.
struct Linked {
    link: Link,
    /// Per way, what the destination socket's byte count holds beyond the bytes rvsd wrote to
    /// it (1 for the SYN of the socket rvsd connected), taken when the link was made.
    offset: [u64; 2],
}

pub(crate) struct TcpConn {
    pub entry: Arc<ConnEntry>,
    /// Its places under the caps (a related connection, an FTP data connection, takes none:
    /// its control connection holds them).
    _places: Option<ConnSlots>,
    /// The connection this one is related to (an FTP data connection's control connection),
    /// kept from idling out while this one moves bytes.
    related: Option<Arc<ConnEntry>>,
    key: ServiceAddr,
    service: Arc<VirtualService>,
    client: TcpStream,
    server: Option<TcpStream>,
    binding: Option<Binding>,
    relaying: bool,
    /// Real servers whose connect failed, not to be scheduled again for this connection.
    tried: Vec<SocketAddr>,
    /// The connect attempt, in the real server socket's token.
    pub attempt: u8,
    /// When the connect in progress times out.
    pub deadline_ms: u64,
    /// Whether the loop lists this connection among those connecting.
    pub listed_connecting: bool,
    ready: [Ready; 2],
    ways: [Way; 2],
    messages_in: u32,
    bulk_seen: bool,
    link: Option<Linked>,
    link_tried: bool,
    /// The kernel relay, when the engine has one.
    kernel: Option<Arc<KernelRelay>>,
}

impl TcpConn {
    pub fn new(
        entry: Arc<ConnEntry>,
        places: ConnSlots,
        key: ServiceAddr,
        service: Arc<VirtualService>,
        client: TcpStream,
        kernel: Option<Arc<KernelRelay>>,
    ) -> Self {
        Self {
            entry,
            _places: Some(places),
            related: None,
            key,
            service,
            client,
            server: None,
            binding: None,
            relaying: false,
            tried: Vec::new(),
            attempt: 0,
            deadline_ms: 0,
            listed_connecting: false,
            // A fresh socket's send buffer is empty.
            ready: [Ready { writable: true, ..Ready::default() }, Ready::default()],
            ways: Default::default(),
            messages_in: 0,
            bulk_seen: false,
            link: None,
            link_tried: false,
            kernel,
        }
    }

    /// A related connection whose two sides are up already (an FTP data connection, accounted
    /// by `binding`): relayed from the start, never scheduled.
    pub fn related(
        key: ServiceAddr,
        entry: Arc<ConnEntry>,
        control: Arc<ConnEntry>,
        client: TcpStream,
        server: TcpStream,
        binding: Binding,
        kernel: Option<Arc<KernelRelay>>,
    ) -> Self {
        let service = binding.service.clone();
        Self {
            entry,
            _places: None,
            related: Some(control),
            key,
            service,
            client,
            server: Some(server),
            binding: Some(binding),
            relaying: true,
            tried: Vec::new(),
            attempt: 0,
            deadline_ms: 0,
            listed_connecting: false,
            // Both sockets may hold bytes or room already: the first drive finds out.
            ready: [
                Ready { readable: true, writable: true, rdhup: false },
                Ready { readable: true, writable: true, rdhup: false },
            ],
            ways: Default::default(),
            messages_in: 0,
            bulk_seen: false,
            link: None,
            link_tried: false,
            kernel,
        }
    }

    pub fn connecting(&self) -> bool {
        !self.relaying && self.server.is_some()
    }

    pub fn linked(&self) -> bool {
        self.link.is_some()
    }

    /// Schedules a real server and starts connecting to it; on to the next one when a connect
    /// fails at once. Closes when none is left.
    pub fn connect_next(&mut self, cx: &mut Cx<'_>) -> Next {
        loop {
            let req = SchedRequest { client: self.entry.client, destination: self.key.addr, now_ms: cx.now_ms };
            let eqt = cx.engine.snapshot_ref().options.expire_quiescent_template;
            let Some(binding) = self.service.schedule(&req, &self.tried, eqt) else {
                debug!(service = %self.key, client = %self.entry.client, "no real server available");
                return Next::CLOSE;
            };
            self.entry.set_dest(Some(binding.dest.clone()));
            let addr = binding.target(self.key.addr);
            self.attempt = self.attempt.wrapping_add(1);
            match start_connect(addr, cx.epoll, token(cx.index, SERVER, self.attempt)) {
                Ok(sock) => {
                    self.server = Some(sock);
                    self.binding = Some(binding);
                    self.ready[SERVER] = Ready::default();
                    self.deadline_ms = cx.now_ms + cx.engine.connect_timeout().as_millis() as u64;
                    return Next::default();
                }
                Err(e) => {
                    if !self.connect_failed(binding, format!("connect failed: {e}"), cx) {
                        return Next::CLOSE;
                    }
                }
            }
        }
    }

    /// Counts a failed connect (passive health checking, the real server's counters); whether
    /// another real server may be tried.
    fn connect_failed(&mut self, binding: Binding, reason: String, cx: &Cx<'_>) -> bool {
        let addr = binding.dest.addr;
        debug!(service = %self.key, dest = %addr, "{reason}");
        cx.engine.connect_failed(self.key, addr, &reason);
        binding.connect_failed(cx.now_ms);
        self.server = None;
        self.tried.push(addr);
        self.tried.len() <= cx.engine.connect_retries() as usize
    }

    /// The connect in progress ran out of time.
    pub fn connect_timed_out(&mut self, cx: &mut Cx<'_>) -> Next {
        let Some(binding) = self.binding.take() else { return Next::CLOSE };
        let reason = format!("connect timed out after {:?}", cx.engine.connect_timeout());
        if self.connect_failed(binding, reason, cx) {
            self.connect_next(cx)
        } else {
            Next::CLOSE
        }
    }

    /// An epoll event on one of the sockets.
    pub fn on_event(&mut self, side: usize, attempt: u8, flags: EventFlags, cx: &mut Cx<'_>) -> Next {
        if side == SERVER && attempt != self.attempt {
            return Next::default(); // the socket of an attempt that failed
        }
        let r = &mut self.ready[side];
        r.readable |= flags.intersects(EventFlags::IN | EventFlags::RDHUP | EventFlags::HUP | EventFlags::ERR);
        r.rdhup |= flags.intersects(EventFlags::RDHUP | EventFlags::HUP);
        r.writable |= flags.intersects(EventFlags::OUT | EventFlags::HUP | EventFlags::ERR);
        if !self.relaying {
            if side == SERVER && self.ready[SERVER].writable {
                return self.connected(flags.intersects(EventFlags::ERR | EventFlags::HUP), cx);
            }
            return Next::default(); // the client's bytes wait for the real server
        }
        self.drive(cx)
    }

    /// The real server's socket became writable: connected, or failed.
    /// `failed`: the event said error or hang-up (else writable alone means connected, and
    /// no `getsockopt(SO_ERROR)` is needed).
    fn connected(&mut self, failed: bool, cx: &mut Cx<'_>) -> Next {
        let Some(server) = &self.server else { return Next::default() };
        let error = failed.then(|| match server.take_error() {
            Ok(Some(e)) | Err(e) => e,
            Ok(None) => io::ErrorKind::ConnectionRefused.into(),
        });
        if let Some(e) = error {
            let Some(binding) = self.binding.take() else { return Next::CLOSE };
            return if self.connect_failed(binding, format!("connect failed: {e}"), cx) {
                self.connect_next(cx)
            } else {
                Next::CLOSE
            };
        }
        let Some(binding) = &self.binding else { return Next::CLOSE };
        binding.established();
        self.entry.set_state(ConnState::Established);
        self.entry.touch(cx.now_ms);
        let _ = tcp_options::apply(server);
        let pp = binding.dest.settings().proxy_protocol;
        if let Some(h) = proxy_protocol::header(pp, self.entry.client, self.key.addr) {
            self.ways[CLIENT].written += h.len() as u64;
            self.ways[CLIENT].pending = h;
        }
        self.relaying = true;
        self.drive(cx)
    }

    fn socket(&self, side: usize) -> &TcpStream {
        match side {
            CLIENT => &self.client,
            _ => self.server.as_ref().expect("a relaying connection has its real server socket"),
        }
    }

    /// Moves what can be moved both ways, and sees whether a way reached its end.
    pub fn drive(&mut self, cx: &mut Cx<'_>) -> Next {
        if !self.relaying {
            return Next::default();
        }
        let mut next = Next::default();
        for way in [CLIENT, SERVER] {
            match self.pump(way, cx) {
                Ok(finished) => next.again |= !finished,
                Err(e) => {
                    debug!(service = %self.key, client = %self.entry.client, error = %e, "connection ended with an error");
                    return Next::CLOSE;
                }
            }
        }
        for way in [CLIENT, SERVER] {
            let w = &self.ways[way];
            if w.eof && !w.done && w.flushed() {
                match self.caught_up(way) {
                    Ok(true) => next.defer = true,
                    Ok(false) => next.wait = true,
                    Err(_) => return Next::CLOSE,
                }
            }
        }
        next
    }

    /// The end of the loop's turn, for a connection that reached end of stream one way: when
    /// the other way is done too (a client that hangs up on the response as the real server
    /// does), both sockets close at once, which sends the FINs without a shutdown; otherwise
    /// the half-close is passed on. Waiting for the turn's end keeps the TIME_WAIT on the
    /// peers' sockets rather than rvsd's.
    pub fn end_of_turn(&mut self, cx: &Cx<'_>) -> Next {
        let mut ended = [false; 2];
        for way in [CLIENT, SERVER] {
            let w = &self.ways[way];
            if w.done || !(w.eof && w.flushed()) || !matches!(self.caught_up(way), Ok(true)) {
                continue;
            }
            if let Some(b) = &self.binding {
                b.closing(cx.now_ms);
                self.entry.set_state(b.state());
            }
            self.ways[way].done = true;
            ended[way] = true;
        }
        if self.ways.iter().all(|w| w.done) {
            return Next::CLOSE;
        }
        for way in [CLIENT, SERVER] {
            if ended[way] {
                match rustix::net::shutdown(self.socket(1 - way), Shutdown::Write) {
                    Ok(()) | Err(Errno::NOTCONN) => {}
                    Err(_) => return Next::CLOSE,
                }
            }
        }
        Next::default()
    }

    /// Whether the kernel relay has delivered to `way`'s destination everything it took, so
    /// the FIN may follow. Always, for a connection that is not linked.
    fn caught_up(&self, way: usize) -> io::Result<bool> {
        let Some(Linked { link, offset }) = &self.link else { return Ok(true) };
        let expected = self.ways[way].written + link.moved(way == CLIENT).bytes;
        Ok(bytes_written(self.socket(1 - way).as_fd())?.wrapping_sub(offset[way]) >= expected)
    }

    /// Moves bytes one way until its source or destination would block, or the budget is
    /// spent (then `false`).
    fn pump(&mut self, way: usize, cx: &mut Cx<'_>) -> io::Result<bool> {
        let from = way;
        for _ in 0..BUDGET {
            // What the destination has not taken yet goes first.
            match self.flush(way)? {
                Some(true) => return Ok(true),
                Some(false) => continue,
                None => {}
            }
            if self.ways[way].eof || !self.ready[from].readable {
                return Ok(true);
            }
            if self.link.is_some() {
                // Between bursts the pipe is empty: it goes back. What still reaches this
                // socket (bytes held back while the link was made, then EOF) is copied.
                if let Some(p) = self.ways[way].pipe.take() {
                    give_pipe(p);
                }
                (self.ways[way].bulk, self.ways[way].splice_ok) = (false, false);
            }
            if self.ways[way].bulk {
                self.splice_in(way, cx.now_ms)?;
            } else {
                self.copy(way, cx)?;
            }
        }
        Ok(false)
    }

    /// One write of what `way`'s destination has not taken yet (a pipe's bytes, or the rest of
    /// a copy): `None` when it holds nothing, else whether the destination would block.
    fn flush(&mut self, way: usize) -> io::Result<Option<bool>> {
        let to = 1 - way;
        let w = &self.ways[way];
        if w.in_pipe == 0 && w.pending.is_empty() {
            return Ok(None);
        }
        if !self.ready[to].writable {
            return Ok(Some(true));
        }
        let sent = match &w.pipe {
            Some(p) if w.in_pipe > 0 => {
                splice(&p.r, None, self.socket(to), None, w.in_pipe, SpliceFlags::MOVE | SpliceFlags::NONBLOCK)
            }
            _ => rustix::io::write(self.socket(to), &w.pending),
        };
        match sent {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let w = &mut self.ways[way];
                if w.in_pipe > 0 {
                    w.in_pipe -= n;
                } else {
                    w.pending.drain(..n);
                    if w.pending.is_empty() {
                        w.pending = Vec::new();
                        self.maybe_link();
                    }
                }
                Ok(Some(false))
            }
            Err(Errno::AGAIN) => {
                self.ready[to].writable = false;
                Ok(Some(true))
            }
            Err(Errno::INTR) => Ok(Some(false)),
            Err(e) => Err(e.into()),
        }
    }

    /// One read into the loop's buffer and a write of what the destination takes now.
    fn copy(&mut self, way: usize, cx: &mut Cx<'_>) -> io::Result<()> {
        let (from, to) = (way, 1 - way);
        let len = cx.scratch.len();
        let n = match rustix::io::read(self.socket(from), &mut *cx.scratch) {
            Ok(0) => {
                self.ways[way].eof = true;
                return Ok(());
            }
            Ok(n) => n,
            Err(Errno::AGAIN) => {
                self.ready[from].readable = false;
                return Ok(());
            }
            Err(Errno::INTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.count(way, n, cx.now_ms);
        let full = n == len;
        let written = if self.ready[to].writable {
            match rustix::io::write(self.socket(to), &cx.scratch[..n]) {
                Ok(m) => m,
                Err(Errno::AGAIN) => 0,
                Err(e) => return Err(e.into()),
            }
        } else {
            0
        };
        if written < n {
            self.ready[to].writable = false;
            self.ways[way].pending.extend_from_slice(&cx.scratch[written..n]);
        }
        if !full {
            // A short read took all the socket held. If the peer's FIN had arrived before it,
            // this is the end of the stream, without a read that would only return 0.
            self.ready[from].readable = false;
            if self.ready[from].rdhup {
                self.ways[way].eof = true;
            }
        }
        self.note_copied(way, n, full);
        self.ways[way].bulk = full && self.ways[way].splice_ok && self.link.is_none();
        Ok(())
    }

    /// One splice from the source into the way's pipe (which the next step empties).
    fn splice_in(&mut self, way: usize, now_ms: u64) -> io::Result<()> {
        let p = match self.ways[way].pipe.take().map_or_else(take_pipe, Ok) {
            Ok(p) => p,
            Err(e) => {
                debug!(error = %e, "no pipe for splice: copying");
                (self.ways[way].bulk, self.ways[way].splice_ok) = (false, false);
                return Ok(());
            }
        };
        match splice(self.socket(way), None, &p.w, None, p.size, SpliceFlags::MOVE | SpliceFlags::NONBLOCK) {
            Ok(0) => {
                give_pipe(p);
                self.ways[way].eof = true;
            }
            Ok(n) => {
                self.count(way, n, now_ms);
                let w = &mut self.ways[way];
                w.in_pipe = n;
                w.pipe = Some(p);
                if self.kernel.is_some() {
                    w.written += n as u64;
                    w.drained = false;
                }
            }
            Err(Errno::AGAIN) => {
                // The burst is over: the pipe goes back, small messages are copied.
                give_pipe(p);
                self.ways[way].bulk = false;
                self.ready[way].readable = false;
                self.note_drained(way);
            }
            Err(Errno::INVAL) => {
                // This socket cannot be spliced: copy through the buffer from now on.
                give_pipe(p);
                (self.ways[way].bulk, self.ways[way].splice_ok) = (false, false);
            }
            Err(Errno::INTR) => self.ways[way].pipe = Some(p),
            // On error the pipe may hold bytes: it is dropped, not pooled.
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    fn count(&self, way: usize, n: usize, now_ms: u64) {
        self.entry.touch(now_ms);
        if let Some(r) = &self.related {
            r.touch(now_ms);
        }
        if let Some(b) = &self.binding {
            match way {
                CLIENT => b.count_in(n as u64),
                _ => b.count_out(n as u64),
            }
        }
    }

    /// After rvsd copied `n` bytes one way (`full`: the read filled the buffer, so the socket
    /// may hold more): the kernel relay's bookkeeping, and the link when the moment is right.
    fn note_copied(&mut self, way: usize, n: usize, full: bool) {
        if self.kernel.is_none() {
            return;
        }
        self.ways[way].written += n as u64;
        if way == CLIENT {
            self.messages_in += 1;
        }
        if full {
            self.ways[way].drained = false;
            self.bulk_seen = true;
        } else {
            self.note_drained(way);
        }
    }

    /// A read emptied one way's socket: the moment to try the link.
    fn note_drained(&mut self, way: usize) {
        if self.kernel.is_some() {
            self.ways[way].drained = true;
            self.maybe_link();
        }
    }

    /// Links the connection into the kernel relay when it has shown it is long-lived, nothing
    /// waits to be written either way, and neither socket holds a partly read message. Tried
    /// once per connection.
    fn maybe_link(&mut self) {
        let Some(kernel) = self.kernel.clone() else { return };
        if !(self.bulk_seen || self.messages_in >= LINK_AFTER_MESSAGES)
            || !self.ways.iter().all(|w| w.flushed() && w.drained && !w.eof)
            || self.link_tried
        {
            return;
        }
        self.link_tried = true;
        match self.link_into(&kernel) {
            Ok(linked) => {
                debug!(client = %self.entry.client, "linked in the kernel relay");
                self.link = Some(linked);
            }
            Err(e) => debug!(error = %e, "not linked in the kernel relay: rvsd relays this connection"),
        }
    }

    fn link_into(&self, kernel: &Arc<KernelRelay>) -> Result<Linked, KernelRelayError> {
        // What each destination socket counts beyond what rvsd wrote to it (its SYN).
        let offset =
            |way: usize| bytes_written(self.socket(1 - way).as_fd()).map(|n| n.wrapping_sub(self.ways[way].written));
        let offset = [offset(CLIENT)?, offset(SERVER)?];
        Ok(Linked { link: kernel.link(self.client.as_fd(), self.socket(SERVER).as_fd())?, offset })
    }

    /// Adds what the kernel relayed since the last call to the statistics (the idle timer
    /// restarts when it moved something).
    pub fn sync_kernel_counts(&self, now_ms: u64) {
        let (Some(Linked { link, .. }), Some(b)) = (&self.link, &self.binding) else { return };
        let (i, o) = (link.take_new(true), link.take_new(false));
        if i.packets + o.packets > 0 {
            self.entry.touch(now_ms);
        }
        b.count_in_packets(i.packets, i.bytes);
        b.count_out_packets(o.packets, o.bytes);
    }

    /// The connection ends: its last kernel counts, its binding, its entry in the table; the
    /// sockets close with it.
    pub fn close(mut self, engine: &Engine, now_ms: u64) {
        self.sync_kernel_counts(now_ms);
        self.link = None;
        if let Some(b) = self.binding.take() {
            b.finish(now_ms);
        }
        engine.conns.remove(self.entry.id);
    }
}

/// A non-blocking connect to `addr` started, its socket registered under `token`.
fn start_connect(addr: SocketAddr, epoll: BorrowedFd<'_>, token: u64) -> io::Result<TcpStream> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking().cloexec(), Some(SockProtocol::TCP))?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(Errno::INPROGRESS.raw_os_error()) => {}
        Err(e) => return Err(e),
    }
    let sock: TcpStream = sock.into();
    register(epoll, &sock, token)?;
    Ok(sock)
}
