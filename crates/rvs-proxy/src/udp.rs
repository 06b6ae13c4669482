//! UDP virtual services in the proxy engine: one socket per service. Each client address is a
//! flow (IPVS's UDP connection): its first datagram is scheduled like a TCP connection, then it
//! has its own connected socket towards that real server, whose replies go back to the client
//! from the service's address. A flow ends when idle for the `udp` timeout, when its real server
//! refuses (ICMP port unreachable), or when the director closes it; a deleted service ends its
//! flows with it (a datagram flow has nothing to drain). A service that schedules each datagram
//! (one-packet scheduling, the sip persistence engine) keeps a flow per client and real server
//! instead, for the replies: each datagram is scheduled first, then sent through the flow to the
//! real server chosen.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rvs_core::sched::SchedRequest;
use rvs_core::{Binding, Protocol, ServiceAddr};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::conn_table::{Closer, ConnEntry, ConnGuard};
use crate::engine::Engine;

/// The largest datagram relayed.
const MAX_DATAGRAM: usize = 65_535;

thread_local! {
    /// Each worker thread's buffer for the replies of its flows: no buffer per flow.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; MAX_DATAGRAM].into_boxed_slice());
}

/// One client's flow, as the service's receive loop holds it.
struct Flow<'a> {
    upstream: Arc<UdpSocket>,
    binding: Arc<Binding>,
    guard: ConnGuard<'a>,
}

impl Flow<'_> {
    fn is_over(&self) -> bool {
        self.guard.entry.cancel.is_cancelled()
    }
}

/// A flow's key: the client, and for a service that schedules each datagram the real server.
type FlowKey = (SocketAddr, Option<SocketAddr>);

/// Whether the service at `key` schedules each datagram (looked at once a second: an edit of
/// the setting takes effect within that).
fn schedules_each_datagram(engine: &Engine, key: &ServiceAddr) -> bool {
    engine.service(key).is_some_and(|s| s.schedules_each_datagram())
}

/// Receives the datagrams of the UDP service `key` until `stop`; ends its flows then (at a
/// shutdown, once they are quiet).
pub(crate) async fn serve(engine: Arc<Engine>, key: ServiceAddr, socket: UdpSocket, stop: CancellationToken) {
    let socket = Arc::new(socket);
    let mut flows: HashMap<FlowKey, Flow<'_>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut prune = tokio::time::interval(Duration::from_secs(1));
    let mut each = schedules_each_datagram(&engine, &key);
    loop {
        let (n, client) = tokio::select! {
            _ = stop.cancelled() => break,
            _ = prune.tick() => {
                flows.retain(|_, f| !f.is_over());
                each = schedules_each_datagram(&engine, &key);
                continue;
            }
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    debug!(service = %key, error = %e, "receive failed");
                    continue;
                }
            },
        };
        // A service that schedules each datagram: the datagram's own binding counts it (a
        // connection each, as IPVS counts them) and ends once it is sent.
        let mut datagram_binding = None;
        let fk = if each {
            let Some(b) = schedule_datagram(&engine, key, client, &buf[..n]) else { continue };
            let fk = (client, Some(b.dest.addr));
            datagram_binding = Some(b);
            fk
        } else {
            (client, None)
        };
        if flows.get(&fk).is_some_and(Flow::is_over) {
            flows.remove(&fk);
        }
        let flow = match flows.entry(fk) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let binding = match datagram_binding.take() {
                    Some(b) => b,
                    None => match schedule(&engine, key, client) {
                        Some(b) => b,
                        None => continue,
                    },
                };
                match open_flow(&engine, key, client, &socket, binding).await {
                    Some(flow) => e.insert(flow),
                    None => continue,
                }
            }
        };
        flow.guard.entry.touch(engine.clock.now_ms());
        match &datagram_binding {
            Some(b) => b.count_in(n as u64),
            None => flow.binding.count_in(n as u64),
        }
        // Waits only while the socket's send buffer is full (a new socket's first send waits
        // for the reactor to see it writable).
        match flow.upstream.send(&buf[..n]).await {
            Ok(_) => {}
            Err(e) => {
                debug!(service = %key, client = %client, error = %e, "send to the real server failed: flow ended");
                end_flow(&engine, key, &flow.binding, &flow.guard.entry.cancel, &e);
                flows.remove(&fk);
            }
        }
        if let Some(b) = datagram_binding {
            b.finish(engine.clock.now_ms());
        }
    }
    // At a shutdown (a binary upgrade's successor takes the next datagrams), answers still
    // on their way come back through their flows, which end once quiet, at most `LINGER`
    // after the stop. A deleted service frees its address at once.
    let until = tokio::time::Instant::now() + LINGER;
    let busy = |flows: &HashMap<FlowKey, Flow<'_>>| {
        let now = engine.clock.now_ms();
        flows.values().any(|f| !f.is_over() && now.saturating_sub(f.guard.entry.last_activity_ms()) < QUIET_MS)
    };
    while engine.draining() && busy(&flows) && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for flow in flows.values() {
        flow.guard.entry.cancel.cancel();
    }
}

/// How long the flows of a stopped UDP service may wait for their answers.
const LINGER: Duration = Duration::from_secs(2);
/// A flow this long without a datagram has no answer to wait for.
const QUIET_MS: u64 = 300;

/// Schedules a new client's flow.
fn schedule(engine: &Engine, key: ServiceAddr, client: SocketAddr) -> Option<Binding> {
    let snapshot = engine.snapshot();
    let service = engine.service(&key)?;
    let req = SchedRequest { client, destination: key.addr, now_ms: engine.clock.now_ms() };
    let binding = service.schedule(&req, &[], snapshot.options.expire_quiescent_template);
    if binding.is_none() {
        debug!(service = %key, client = %client, "no real server available: datagram dropped");
    }
    binding
}

/// Schedules one datagram of a service that schedules each (see the module's doc); `None`
/// when it is dropped: no real server, or no Call-ID for the sip engine (as IPVS drops it).
fn schedule_datagram(engine: &Engine, key: ServiceAddr, client: SocketAddr, datagram: &[u8]) -> Option<Binding> {
    let snapshot = engine.snapshot();
    let service = engine.service(&key)?;
    let req = SchedRequest { client, destination: key.addr, now_ms: engine.clock.now_ms() };
    match service.schedule_datagram(&req, datagram, snapshot.options.expire_quiescent_template) {
        Ok(Some(b)) => Some(b),
        Ok(None) => {
            debug!(service = %key, client = %client, "no real server available: datagram dropped");
            None
        }
        Err(e) => {
            debug!(service = %key, client = %client, "datagram dropped by the persistence engine: {e}");
            None
        }
    }
}

/// Opens a flow's socket towards the real server `binding` is to.
async fn open_flow<'a>(
    engine: &'a Arc<Engine>,
    key: ServiceAddr,
    client: SocketAddr,
    socket: &Arc<UdpSocket>,
    binding: Binding,
) -> Option<Flow<'a>> {
    let now = engine.clock.now_ms();
    let dest = binding.target(key.addr);
    let local: SocketAddr = if dest.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let upstream = match connected(local, dest).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            debug!(service = %key, dest = %dest, error = %e, "no socket towards the real server");
            binding.connect_failed(now);
            return None;
        }
    };
    let guard = engine.conns.insert(Protocol::Udp, client, key.addr, now);
    guard.entry.set_dest(Some(binding.dest.clone()));
    let binding = Arc::new(binding);
    tokio::spawn(relay_replies(
        engine.clone(),
        key,
        client,
        binding.clone(),
        upstream.clone(),
        socket.clone(),
        guard.entry.clone(),
    ));
    Some(Flow { upstream, binding, guard })
}

async fn connected(local: SocketAddr, dest: SocketAddr) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(local).await?;
    s.connect(dest).await?;
    Ok(s)
}

/// A flow ends on an error; when its real server refused (ICMP port unreachable), passive
/// health checking hears of it.
fn end_flow(engine: &Engine, key: ServiceAddr, binding: &Binding, cancel: &Closer, e: &io::Error) {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        engine.connect_failed(key, binding.dest.addr, "port unreachable");
    }
    cancel.cancel();
}

/// Sends the real server's replies back to the client from the service's address, until the
/// flow is closed or the real server refuses.
async fn relay_replies(
    engine: Arc<Engine>,
    key: ServiceAddr,
    client: SocketAddr,
    binding: Arc<Binding>,
    upstream: Arc<UdpSocket>,
    socket: Arc<UdpSocket>,
    entry: Arc<ConnEntry>,
) {
    let cancel = &entry.cancel;
    let ended = loop {
        tokio::select! {
            _ = cancel.cancelled() => break None,
            r = upstream.readable() => if let Err(e) = r { break Some(e) },
        }
        let r = SCRATCH.with(|scratch| -> io::Result<()> {
            let mut buf = scratch.borrow_mut();
            loop {
                let n = match upstream.try_recv(&mut buf[..]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                };
                entry.touch(engine.clock.now_ms());
                binding.count_out(n as u64);
                match socket.try_send_to(&buf[..n], client) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => debug!(service = %key, client = %client, error = %e, "reply not sent"),
                }
            }
        });
        if let Err(e) = r {
            break Some(e);
        }
    };
    if let Some(e) = ended {
        debug!(service = %key, client = %client, dest = %binding.dest.addr, error = %e, "flow ended");
        end_flow(&engine, key, &binding, cancel, &e);
    }
    binding.closing(engine.clock.now_ms());
}
