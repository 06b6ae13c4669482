//! One client connection from its first request to its close: read and check each request
//! head (with the slowloris and keep-alive timeouts), route it, then hand it to the exchange.
//! Requests on one connection are scheduled one by one; the proxy's own answers (400, 503,
//! ...) close the connection after a short lingering drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rvs_core::ProxyProtocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::buffer::Buffer;
use crate::client_io::ClientIo;
use crate::engine::L7Engine;
use crate::refusal::Refusal;
use crate::request::{self, RequestBody};
use crate::rewrite::{self, Forwarding};
use crate::runtime::{DestRuntime, PoolRuntime, Route, ServiceRuntime};
use crate::stats::Record;
use crate::upstream::UpstreamConn;
use crate::watchdog::{Waited, Watchdog};
use rvs_model::http::MAX_HEADERS;

/// Most private (PROXY protocol) upstream connections a client connection keeps.
const MAX_PRIVATE: usize = 8;
/// How long a refused client may go on sending before the connection is closed.
const LINGER: Duration = Duration::from_secs(1);
/// At a stop, how long a keep-alive connection idle since its last answer may wait for its next
/// request before it is closed.
const STOP_IDLE_GRACE: Duration = Duration::from_millis(300);

/// What happens to the client connection after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    KeepAlive,
    Close,
    /// A new configuration was published while the head was read: take it and go on.
    Reload,
}

/// The request as the rest of the exchange needs it, detached from the head's bytes (the
/// head for the real server is already written into the session's output buffer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prepared {
    pub head_len: usize,
    pub body: RequestBody,
    pub keep_alive: bool,
    pub minor: u8,
    pub is_head: bool,
    pub idempotent: bool,
    pub upgrade: bool,
    pub expect_continue: bool,
    pub route: Option<Route>,
    /// The address the scheduler sees (the client's, or one derived from a hash key).
    pub sched_client: SocketAddr,
    /// The real server a persistence cookie names.
    pub cookie_dest: Option<SocketAddr>,
}

/// What reading a request head gave.
enum Read {
    Request(Prepared),
    /// A new configuration was published: prepare the head with it.
    Reload,
    /// The client closed, stayed idle too long, or the engine is stopping.
    Closed,
}

/// How one exchange went, for the counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// The status sent to the client (0 when none was).
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub next: Next,
}

pub(crate) struct Session<C> {
    pub engine: Arc<L7Engine>,
    pub io: C,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub inbuf: Buffer,
    pub out: Vec<u8>,
    pub fwd: Forwarding,
    /// Upstream connections that carry a PROXY header for this client.
    #[allow(clippy::vec_box, reason = "connections move in and out as pointers, not 150-byte copies")]
    pub private: Vec<Box<UpstreamConn>>,
    /// Drain what the client still sends before closing (after a refusal).
    pub linger: bool,
    /// Bounds the waits for request and response heads.
    pub timer: Watchdog,
    /// When the last exchange ended (or the connection started): the keep-alive wait runs
    /// from there.
    last: Instant,
    /// The clock reading an exchange ended with, when it took one (its binding finished at
    /// it): the request's latency ends there too.
    pub ended: Option<Instant>,
    first: bool,
}

/// Runs a client connection to its end.
pub(crate) async fn run<C: ClientIo>(
    engine: Arc<L7Engine>,
    mut svc: Arc<ServiceRuntime>,
    io: C,
    peer: SocketAddr,
    local: SocketAddr,
    tls: bool,
) {
    let mut generation = engine.generation();
    let mut s = Session {
        fwd: Forwarding::new(svc.forwarded, peer.ip(), tls),
        inbuf: Buffer::new(svc.limits.max_header_bytes.max(12 * 1024) + 4096),
        out: Vec::with_capacity(4096),
        engine,
        io,
        peer,
        local,
        private: Vec::new(),
        linger: false,
        timer: Watchdog::new(),
        last: Instant::now(),
        ended: None,
        first: true,
    };
    loop {
        let now = s.engine.generation();
        if now != generation {
            generation = now;
            match s.engine.service(&svc.key) {
                Some(n) => svc = n,
                None => break,
            }
            s.fwd = Forwarding::new(svc.forwarded, peer.ip(), tls);
        }
        match s.exchange(&svc, generation).await {
            Next::Close => break,
            Next::KeepAlive | Next::Reload => {}
        }
    }
    s.finish().await;
}

impl<C: ClientIo> Session<C> {
    /// One request and its response.
    async fn exchange(&mut self, svc: &ServiceRuntime, generation: u64) -> Next {
        let p = match self.read_request(svc, generation).await {
            Ok(Read::Request(p)) => p,
            Ok(Read::Reload) => return Next::Reload,
            Ok(Read::Closed) => return Next::Close,
            Err(r) => {
                let o = self.refuse(r, self.inbuf.len() as u64).await;
                svc.counters.record(&Record::new(o.status, o.bytes_in, o.bytes_out, 0));
                return Next::Close;
            }
        };
        let started = Instant::now();
        self.first = false;
        self.inbuf.consume(p.head_len);
        let Some(route) = p.route else {
            let o = self.refuse(Refusal::NoRoute, p.head_len as u64).await;
            let r = self.record(&o, started);
            svc.counters.record(&r);
            svc.unrouted.record(&r);
            return Next::Close;
        };
        let pool: &Arc<PoolRuntime> = &svc.pools[route.pool];
        let o = self.forward(svc, pool, &p, started).await;
        let r = self.record(&o, started);
        svc.counters.record(&r);
        svc.route_counters(&route).record(&r);
        pool.counters.record(&r);
        o.next
    }

    /// Reads until a whole request head is buffered and prepares it with `svc`, unless a newer
    /// configuration was published meanwhile.
    async fn read_request(&mut self, svc: &ServiceRuntime, generation: u64) -> Result<Read, Refusal> {
        let idle = if self.first { svc.timeouts.header_read } else { svc.timeouts.keep_alive };
        let idle_deadline = self.last + idle;
        let mut head_deadline = None;
        loop {
            if !self.inbuf.is_empty() {
                if self.engine.generation() != generation {
                    return Ok(Read::Reload);
                }
                let prepared = {
                    let mut headers = [std::mem::MaybeUninit::uninit(); MAX_HEADERS];
                    prepare(self.inbuf.filled(), &mut headers, svc, &self.fwd, self.peer, &mut self.out)
                };
                if let Some(p) = prepared? {
                    return Ok(Read::Request(p));
                }
                if self.inbuf.is_full() {
                    let filled = self.inbuf.filled();
                    return Err(crate::request::too_large(filled, filled.len()));
                }
                head_deadline.get_or_insert_with(|| Instant::now() + svc.timeouts.header_read);
            }
            let deadline = head_deadline.unwrap_or(idle_deadline);
            // An idle connection wakes at each tick to notice a shutdown.
            match self.timer.wait(deadline, true, self.inbuf.read_from(&mut self.io)).await {
                // At a stop, a connection that just had an answer waits a moment for its next
                // request (answered with `Connection: close`): closing it at once would race
                // a request already on its way. One that has had no request yet is not idle:
                // its client is sending the first (it waits up to the header timeout).
                Waited::Expired | Waited::Tick
                    if self.inbuf.is_empty()
                        && !self.first
                        && self.engine.is_stopping()
                        && self.last.elapsed() >= STOP_IDLE_GRACE =>
                {
                    return Ok(Read::Closed)
                }
                Waited::Expired if self.inbuf.is_empty() => return Ok(Read::Closed),
                Waited::Expired => return Err(Refusal::Timeout),
                Waited::Tick => {}
                Waited::Done(Ok(0) | Err(_)) => return Ok(Read::Closed),
                Waited::Done(Ok(_)) => {}
            }
        }
    }

    /// The counters' view of an exchange that started at `started` and ends now (at the
    /// reading it ended with, when it took one).
    fn record(&mut self, o: &Outcome, started: Instant) -> Record {
        let end = self.ended.take().unwrap_or_else(Instant::now);
        self.last = end;
        let latency_us = end.saturating_duration_since(started).as_micros().min(u128::from(u64::MAX)) as u64;
        Record::new(o.status, o.bytes_in, o.bytes_out, latency_us)
    }

    /// Answers the request itself and closes.
    pub(crate) async fn refuse(&mut self, r: Refusal, bytes_in: u64) -> Outcome {
        tracing::debug!(client = %self.peer, status = r.status(), reason = %r, "refused");
        let resp = r.response();
        let _ = self.io.write_all(&resp).await;
        let _ = self.io.flush().await;
        self.linger = true;
        Outcome { status: r.status(), bytes_in, bytes_out: resp.len() as u64, next: Next::Close }
    }

    /// Keeps a reusable upstream connection to real server `dest`, idle since `now`: private
    /// ones in the session, others in the real server's idle list.
    pub(crate) fn release(&mut self, dest: Option<&DestRuntime>, mut conn: Box<UpstreamConn>, now: Instant) {
        conn.idle_since = now.into_std();
        if conn.proxy != ProxyProtocol::Off {
            if self.private.len() < MAX_PRIVATE {
                self.private.push(conn);
            }
        } else if let Some(d) = dest {
            d.idle.put(conn);
        }
    }

    /// An idle connection to real server `dest` (with its runtime) speaking `proxy`, if one
    /// is kept.
    pub(crate) fn take_idle(
        &mut self,
        runtime: Option<&DestRuntime>,
        dest: SocketAddr,
        proxy: ProxyProtocol,
    ) -> Option<Box<UpstreamConn>> {
        if proxy != ProxyProtocol::Off {
            while let Some(i) = self.private.iter().position(|c| c.dest == dest && c.proxy == proxy) {
                let c = self.private.swap_remove(i);
                if c.is_usable() {
                    return Some(c);
                }
            }
            return None;
        }
        let idle = &runtime?.idle;
        std::iter::from_fn(|| idle.take()).find(|c| c.is_usable())
    }

    /// Closes the client connection: FIN (or TLS close_notify), and after a refusal a short
    /// drain so the client reads the answer instead of a reset.
    async fn finish(mut self) {
        self.private.clear();
        let _ = tokio::time::timeout(LINGER, self.io.shutdown()).await;
        if self.linger {
            let mut sink = [0u8; 4096];
            let drain = async {
                let mut total = 0usize;
                while let Ok(n) = self.io.read(&mut sink).await {
                    total += n;
                    if n == 0 || total > 1 << 20 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER, drain).await;
        }
    }
}

/// Parses, checks and routes the head at the start of `buf`, and writes the head for the
/// real server into `out`. `Ok(None)`: the head is not complete yet.
fn prepare<'a>(
    buf: &'a [u8],
    headers: &'a mut [std::mem::MaybeUninit<httparse::Header<'a>>],
    svc: &ServiceRuntime,
    fwd: &Forwarding,
    peer: SocketAddr,
    out: &mut Vec<u8>,
) -> Result<Option<Prepared>, Refusal> {
    let Some(p) = request::parse(buf, headers, &svc.limits)? else { return Ok(None) };
    let view = p.view();
    let route = svc.route(&view);
    let (sched_client, cookie_dest) = match route {
        Some(r) => {
            let pool = &svc.pools[r.pool];
            (pool.sched_client(&view, peer), pool.cookie_dest(&view))
        }
        None => (peer, None),
    };
    if route.is_some() {
        rewrite::request_head(&p, fwd, out);
    }
    Ok(Some(Prepared {
        head_len: p.head_len,
        body: p.body,
        keep_alive: p.keep_alive,
        minor: p.minor,
        is_head: p.is_head(),
        idempotent: p.is_idempotent(),
        upgrade: p.upgrade.is_some(),
        expect_continue: p.expect_continue,
        route,
        sched_client,
        cookie_dest,
    }))
}
