//! The proxy engine's TCP event loops: each a thread on its own epoll, as pen and HAProxy run,
//! with no async runtime on the connection path. A loop accepts on every TCP virtual service
//! (listeners shared by the loops, woken one at a time with `EPOLLEXCLUSIVE`), drives its
//! connections ([`TcpConn`]), keeps their connect deadlines, and closes those the engine
//! cancels (idle timeout, `expire_nodest_conn`, shutdown). A service whose helper is FTP has
//! its connections handed to their own task instead (see `ftp_session`).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Weak};
use std::task::{Wake, Waker};
use std::time::Duration;

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};
use rustix::event::{eventfd, EventfdFlags, Timespec};
use rustix::io::Errno;
use rustix::net::SocketFlags;
use slab::Slab;
use tracing::{debug, warn};

use rvs_core::{Binding, Helper, Protocol, ServiceAddr};
use rvs_dataplane::accept::ACCEPT_BACKOFF;
use rvs_dataplane::conn_limit::try_places;
use rvs_dataplane::ConnLimit;

use crate::conn_table::ConnEntry;
use crate::engine::Engine;
use crate::ftp_session::FtpStart;
use crate::tcp_conn::{register, token, Cx, Next, TcpConn, CLIENT, SERVER};

/// Size of a loop's copy buffer; a read that fills it switches its way to splice.
const COPY_BUF: usize = 16 * 1024;
/// Events taken per `epoll_wait`.
const EVENTS: usize = 256;
/// Connections accepted per listener event before the loop turns to its other work.
const ACCEPT_BATCH: usize = 16;
/// How often a paused listener looks again for a place under the caps.
const CAP_RETRY: Duration = Duration::from_millis(10);
/// How often the kernel relay's counters of linked connections are added to the statistics.
const SYNC_EVERY_MS: u64 = 1000;
/// How soon a connection waiting for the kernel relay to deliver before its FIN looks again.
const LINK_WAIT: Duration = Duration::from_millis(2);

const KIND_LISTENER: u64 = 2;
const KIND_WAKE: u64 = 3;

/// What the engine tells a loop.
pub(crate) enum Cmd {
    /// Accept on a TCP virtual service's listener (shared by every loop) under its cap.
    Listen { key: ServiceAddr, listener: Arc<TcpListener>, cap: Arc<ConnLimit> },
    /// Stop accepting on a service (its listener closes when the last loop lets it go).
    Unlisten { key: ServiceAddr },
    /// Relay a related connection whose two sides are up (an FTP data connection).
    Relate(Box<Related>),
}

/// A related connection handed to a loop: its entry in the table, its control connection's,
/// its two sockets and its accounting.
pub(crate) struct Related {
    /// The listening address of its control connection.
    pub key: ServiceAddr,
    pub entry: Arc<ConnEntry>,
    pub control: Arc<ConnEntry>,
    pub client: TcpStream,
    pub server: TcpStream,
    pub binding: Binding,
}

/// A loop's doorbell: an eventfd that wakes its `epoll_wait`, and the flag that says some of
/// its connections were cancelled. Its [`Waker`] is what each connection's closer rings.
struct Doorbell {
    fd: OwnedFd,
    closes: AtomicBool,
    stop: AtomicBool,
}

impl Doorbell {
    fn ring(&self) {
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }
}

impl Wake for Doorbell {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.closes.store(true, Ordering::SeqCst);
        self.ring();
    }
}

/// The engine's side of one loop.
pub(crate) struct LoopHandle {
    tx: Sender<Cmd>,
    bell: Arc<Doorbell>,
}

impl LoopHandle {
    /// Whether the loop took it (it has stopped otherwise).
    pub fn send(&self, cmd: Cmd) -> bool {
        let sent = self.tx.send(cmd).is_ok();
        if sent {
            self.bell.ring();
        }
        sent
    }
}

impl Drop for LoopHandle {
    fn drop(&mut self) {
        self.bell.stop.store(true, Ordering::SeqCst);
        self.bell.ring();
    }
}

/// Starts loop `n` of `engine` on its own thread.
pub(crate) fn spawn(engine: Weak<Engine>, n: usize) -> io::Result<LoopHandle> {
    let epoll = epoll::create(CreateFlags::CLOEXEC)?;
    let bell = Arc::new(Doorbell {
        fd: eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?,
        closes: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    epoll::add(&epoll, &bell.fd, EventData::new_u64(KIND_WAKE), EventFlags::IN)?;
    let (tx, rx) = channel();
    let mut lp = EventLoop {
        engine,
        epoll,
        waker: Waker::from(bell.clone()),
        bell: bell.clone(),
        rx,
        listeners: Slab::new(),
        conns: Slab::new(),
        scratch: vec![0; COPY_BUF].into_boxed_slice(),
        connecting: Vec::new(),
        again: Vec::new(),
        waiting: Vec::new(),
        deferred: Vec::new(),
        closing: Vec::new(),
        last_sync_ms: 0,
    };
    std::thread::Builder::new().name(format!("rvs-tcp-{n}")).spawn(move || lp.run())?;
    Ok(LoopHandle { tx, bell })
}

/// Gives a work list's buffer back to its field once a pass over it is done, unless the pass
/// filed new work there (then that list is kept): no allocation per turn.
fn reuse(field: &mut Vec<usize>, mut list: Vec<usize>) {
    list.clear();
    if field.is_empty() {
        *field = list;
    }
}

struct Listener {
    key: ServiceAddr,
    socket: Arc<TcpListener>,
    cap: Arc<ConnLimit>,
    /// Out of the epoll set: at a cap, or backing off after an accept error, until then.
    paused: Option<u64>,
}

struct EventLoop {
    engine: Weak<Engine>,
    epoll: OwnedFd,
    bell: Arc<Doorbell>,
    waker: Waker,
    rx: Receiver<Cmd>,
    listeners: Slab<Listener>,
    conns: Slab<TcpConn>,
    scratch: Box<[u8]>,
    /// Connections with a connect in progress (their deadlines).
    connecting: Vec<usize>,
    /// Connections to drive again next turn (a way stopped at its budget).
    again: Vec<usize>,
    /// Connections waiting for the kernel relay before a FIN.
    waiting: Vec<usize>,
    /// Connections that reached end of stream one way this turn.
    deferred: Vec<usize>,
    /// Connections to close at the end of this turn (their keys are reused only then, so a
    /// late event of this turn cannot reach another connection).
    closing: Vec<usize>,
    last_sync_ms: u64,
}

impl EventLoop {
    fn run(&mut self) {
        let mut events: Vec<Event> = Vec::with_capacity(EVENTS);
        loop {
            if self.bell.stop.load(Ordering::SeqCst) {
                return;
            }
            let timeout = self.timeout();
            events.clear();
            match epoll::wait(&self.epoll, spare_capacity(&mut events), timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => {
                    warn!(error = %e, "TCP event loop: epoll_wait failed");
                    std::thread::sleep(ACCEPT_BACKOFF);
                }
            }
            let Some(engine) = self.engine.upgrade() else { return };
            self.turn(&engine, &events);
        }
    }

    /// How long the loop may sleep: until the first connect deadline, a paused listener's
    /// retry, the kernel relay's next count, or at once when work is left over.
    fn timeout(&self) -> Option<Timespec> {
        let soonest = |d: Duration| Some(Timespec { tv_sec: d.as_secs() as i64, tv_nsec: i64::from(d.subsec_nanos()) });
        if !self.again.is_empty() || !self.deferred.is_empty() {
            return soonest(Duration::ZERO);
        }
        let mut t: Option<Duration> = None;
        let mut at_most = |d: Duration| t = Some(t.map_or(d, |t| t.min(d)));
        if !self.waiting.is_empty() {
            at_most(LINK_WAIT);
        }
        if self.listeners.iter().any(|(_, l)| l.paused.is_some()) {
            at_most(CAP_RETRY);
        }
        if let Some(engine) = self.engine.upgrade() {
            let now = engine.clock.now_ms();
            for &i in &self.connecting {
                if let Some(c) = self.conns.get(i) {
                    at_most(Duration::from_millis(c.deadline_ms.saturating_sub(now)));
                }
            }
            // With a kernel relay, a tick a second for its counters (looking for linked
            // connections would cost a walk of every connection per turn).
            if engine.kernel_relay().is_some() {
                at_most(Duration::from_millis((self.last_sync_ms + SYNC_EVERY_MS).saturating_sub(now)));
            }
        }
        t.and_then(soonest)
    }

    fn turn(&mut self, engine: &Arc<Engine>, events: &[Event]) {
        let now_ms = engine.clock.now_ms();
        for ev in events {
            let data = ev.data.u64();
            let flags = ev.flags;
            match data & 3 {
                KIND_WAKE => self.doorbell(engine, now_ms),
                KIND_LISTENER => self.accept((data >> 10) as usize, engine, now_ms),
                side => {
                    let (index, attempt) = ((data >> 10) as usize, ((data >> 2) & 0xff) as u8);
                    self.with_conn(engine, now_ms, index, |c, cx| c.on_event(side as usize, attempt, flags, cx));
                }
            }
        }
        let list = std::mem::take(&mut self.again);
        for &index in &list {
            self.with_conn(engine, now_ms, index, |c, cx| c.drive(cx));
        }
        reuse(&mut self.again, list);
        let list = std::mem::take(&mut self.waiting);
        for &index in &list {
            self.with_conn(engine, now_ms, index, |c, cx| c.drive(cx));
        }
        reuse(&mut self.waiting, list);
        self.connect_deadlines(engine, now_ms);
        if self.bell.closes.swap(false, Ordering::SeqCst) {
            for (index, c) in &self.conns {
                if c.entry.cancel.is_cancelled() {
                    debug!(client = %c.entry.client, "connection closed by the director");
                    self.closing.push(index);
                }
            }
        }
        let list = std::mem::take(&mut self.deferred);
        for &index in &list {
            self.with_conn(engine, now_ms, index, |c, cx| c.end_of_turn(cx));
        }
        reuse(&mut self.deferred, list);
        if now_ms >= self.last_sync_ms + SYNC_EVERY_MS {
            self.last_sync_ms = now_ms;
            self.conns.iter().filter(|(_, c)| c.linked()).for_each(|(_, c)| c.sync_kernel_counts(now_ms));
        }
        self.closing.sort_unstable();
        self.closing.dedup();
        let closing = std::mem::take(&mut self.closing);
        // Their keys may be reused from the next turn on: nothing else may name them.
        for list in [&mut self.again, &mut self.waiting, &mut self.deferred, &mut self.connecting] {
            list.retain(|i| closing.binary_search(i).is_err());
        }
        for &index in &closing {
            if self.conns.contains(index) {
                self.conns.remove(index).close(engine, now_ms);
            }
        }
        reuse(&mut self.closing, closing);
        self.resume_listeners(engine, now_ms);
    }

    /// Drives connection `index` with `f`, and files it where the result says.
    fn with_conn(
        &mut self,
        engine: &Engine,
        now_ms: u64,
        index: usize,
        f: impl FnOnce(&mut TcpConn, &mut Cx<'_>) -> Next,
    ) {
        if self.closing.contains(&index) {
            return;
        }
        let Some(conn) = self.conns.get_mut(index) else { return };
        let mut cx = Cx { engine, now_ms, epoll: self.epoll.as_fd(), index, scratch: &mut self.scratch };
        let next = f(conn, &mut cx);
        self.file(index, next);
    }

    fn file(&mut self, index: usize, next: Next) {
        if next.close {
            self.closing.push(index);
            return;
        }
        let Some(conn) = self.conns.get_mut(index) else { return };
        if conn.connecting() && !conn.listed_connecting {
            conn.listed_connecting = true;
            self.connecting.push(index);
        }
        if next.again && !self.again.contains(&index) {
            self.again.push(index);
        }
        if next.wait && !self.waiting.contains(&index) {
            self.waiting.push(index);
        }
        if next.defer && !self.deferred.contains(&index) {
            self.deferred.push(index);
        }
    }

    /// Connects that ran out of time go on to the next real server.
    fn connect_deadlines(&mut self, engine: &Engine, now_ms: u64) {
        let mut list = std::mem::take(&mut self.connecting);
        let mut i = 0;
        while i < list.len() {
            let index = list[i];
            let Some(c) = self.conns.get_mut(index) else {
                list.swap_remove(i);
                continue;
            };
            let connecting = c.connecting() && !self.closing.contains(&index);
            if connecting && now_ms < c.deadline_ms {
                i += 1;
                continue;
            }
            c.listed_connecting = false;
            list.swap_remove(i);
            if connecting {
                // Listed again (by `file`) if it goes on to another real server.
                self.with_conn(engine, now_ms, index, |c, cx| c.connect_timed_out(cx));
            }
        }
        list.append(&mut self.connecting);
        self.connecting = list;
    }

    fn doorbell(&mut self, engine: &Arc<Engine>, now_ms: u64) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.bell.fd, &mut buf);
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Cmd::Listen { key, listener, cap } => {
                    let index = self.listeners.insert(Listener { key, socket: listener, cap, paused: None });
                    if let Err(e) = self.arm(index) {
                        warn!(service = %key, error = %e, "TCP event loop: cannot watch the listener");
                        self.listeners.remove(index);
                    }
                }
                Cmd::Relate(r) => self.relate(engine, now_ms, *r),
                Cmd::Unlisten { key } => {
                    let gone: Vec<usize> =
                        self.listeners.iter().filter(|(_, l)| l.key == key).map(|(i, _)| i).collect();
                    for index in gone {
                        let l = self.listeners.remove(index);
                        if l.paused.is_none() {
                            let _ = epoll::delete(&self.epoll, &*l.socket);
                        }
                    }
                }
            }
        }
    }

    /// A related connection, relayed as any other from now on.
    fn relate(&mut self, engine: &Engine, now_ms: u64, r: Related) {
        let Related { key, entry, control, client, server, binding } = r;
        let index = self.conns.vacant_key();
        let watched = register(self.epoll.as_fd(), &client, token(index, CLIENT, 0))
            .and_then(|()| register(self.epoll.as_fd(), &server, token(index, SERVER, 0)));
        if let Err(e) = watched {
            warn!(client = %entry.client, error = %e, "TCP event loop: cannot watch a related connection");
            let _ = epoll::delete(&self.epoll, &client);
            engine.conns.remove(entry.id);
            return;
        }
        entry.cancel.watch(self.waker.clone());
        let kernel = engine.kernel_relay().cloned();
        self.conns.insert(TcpConn::related(key, entry, control, client, server, binding, kernel));
        self.with_conn(engine, now_ms, index, |c, cx| c.drive(cx));
    }

    fn arm(&self, index: usize) -> io::Result<()> {
        let l = &self.listeners[index];
        let data = EventData::new_u64(((index as u64) << 10) | KIND_LISTENER);
        epoll::add(&self.epoll, &*l.socket, data, EventFlags::IN | EventFlags::EXCLUSIVE).map_err(io::Error::from)
    }

    /// Takes listener `index` out of the epoll set until `until_ms` (and a place is free).
    fn pause(&mut self, index: usize, until_ms: u64) {
        let l = &mut self.listeners[index];
        if l.paused.is_none() {
            let _ = epoll::delete(&self.epoll, &*l.socket);
        }
        l.paused = Some(until_ms);
    }

    fn resume_listeners(&mut self, engine: &Engine, now_ms: u64) {
        let due: Vec<usize> = self
            .listeners
            .iter()
            .filter(|(_, l)| l.paused.is_some_and(|t| now_ms >= t))
            .filter(|(_, l)| try_places(&l.cap, &engine.limit).is_ok())
            .map(|(i, _)| i)
            .collect();
        for index in due {
            self.listeners[index].paused = None;
            if let Err(e) = self.arm(index) {
                warn!(service = %self.listeners[index].key, error = %e, "TCP event loop: cannot watch the listener");
                self.listeners[index].paused = Some(now_ms + ACCEPT_BACKOFF.as_millis() as u64);
            }
        }
    }

    /// Accepts what listener `index` holds, while the caps leave places.
    fn accept(&mut self, index: usize, engine: &Arc<Engine>, now_ms: u64) {
        for _ in 0..ACCEPT_BATCH {
            let Some(l) = self.listeners.get(index) else { return };
            if l.paused.is_some() {
                return;
            }
            let key = l.key;
            // At the service's or the director's cap, clients wait in the listen backlog.
            let places = match try_places(&l.cap, &engine.limit) {
                Ok(p) => p,
                Err(full) => {
                    full.note_wait();
                    self.pause(index, now_ms);
                    return;
                }
            };
            match rustix::net::acceptfrom_with(&*l.socket, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok((fd, peer)) => {
                    let Some(peer) = peer.and_then(|p| SocketAddr::try_from(p).ok()) else { continue };
                    self.open(engine, now_ms, key, TcpStream::from(fd), peer, places);
                }
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR | Errno::CONNABORTED) => {}
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(service = %key, error = %e, "accept failed");
                    self.pause(index, now_ms + ACCEPT_BACKOFF.as_millis() as u64);
                    return;
                }
            }
        }
    }

    /// A client connection accepted: entered in the table, watched, and its connect started.
    fn open(
        &mut self,
        engine: &Arc<Engine>,
        now_ms: u64,
        key: ServiceAddr,
        client: TcpStream,
        peer: SocketAddr,
        places: rvs_dataplane::ConnSlots,
    ) {
        let Some(service) = engine.service(&key) else { return };
        // The listener is bound to the service's own address (never a wildcard), so that is
        // the local address: no getsockname per connection. TCP options: inherited from it.
        let entry = engine.conns.enter(Protocol::Tcp, peer, key.addr, now_ms);
        if engine.stopped() {
            engine.conns.remove(entry.id);
            return;
        }
        if service.settings().helper_for(&service.key) == Helper::Ftp {
            // Its control stream is read line by line: a task of its own, not this relay.
            engine.serve_ftp(FtpStart { entry, places, key, service, client });
            return;
        }
        let index = self.conns.vacant_key();
        if let Err(e) = register(self.epoll.as_fd(), &client, token(index, CLIENT, 0)) {
            warn!(service = %key, error = %e, "TCP event loop: cannot watch a connection");
            engine.conns.remove(entry.id);
            return;
        }
        entry.cancel.watch(self.waker.clone());
        self.conns.insert(TcpConn::new(entry, places, key, service, client, engine.kernel_relay().cloned()));
        self.with_conn(engine, now_ms, index, |c, cx| c.connect_next(cx));
    }
}
