//! One request through a real server: schedule it on its pool (cookie, hash or plain), take
//! a kept-alive connection or connect (retrying other real servers), send the head and stream
//! the body while watching for an early answer, read the response head (passing interim
//! ones on), stream the response body, and keep the connection for reuse when it is clean.
//! A kept-alive connection that turns out closed is retried once on a fresh one.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rvs_core::{Binding, ProxyProtocol, SchedRequest};
use rvs_dataplane::Clock;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::body::BodyCursor;
use crate::client_io::{ClientIo, TcpRef};
use crate::refusal::Refusal;
use crate::relay::{BodyRelay, RelayError, SpliceRoute};
use crate::response::{self, ParsedResponse, ResponseBody};
use crate::rewrite::{self, ClientSide};
use crate::runtime::{DestRuntime, PoolRuntime, ServiceRuntime};
use crate::session::{Next, Outcome, Prepared, Session};
use crate::splice::pump;
use crate::upstream::{UpstreamConn, UPSTREAM_BUFFER};
use crate::watchdog::Waited;
use rvs_model::http::MAX_HEADERS;

/// Body bytes already buffered that go out in the same write as the head.
const INLINE: usize = 16 * 1024;
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Why no usable response head came.
#[derive(Debug)]
enum HeadFail {
    /// Closed or reset; `fresh`: before any byte of this attempt's response.
    Closed {
        fresh: bool,
    },
    Timeout,
    Invalid(&'static str),
}

/// A response head, already rewritten for the client into the session's output buffer.
#[derive(Debug, Clone, Copy)]
struct Head {
    code: u16,
    body: ResponseBody,
    reusable: bool,
    head_len: usize,
    upgrade: bool,
    interim: bool,
    /// The client connection closes after this response (the head says so).
    close: bool,
}

/// A connect to a real server that did not give a connection.
struct ConnectFailure {
    timed_out: bool,
    /// For the log and passive health checking, worded as the L4 engine words it.
    reason: String,
}

impl<C: ClientIo> Session<C> {
    /// Sends the request (its head received at `started`) to a real server of `pool` and its
    /// response back.
    pub(crate) async fn forward(
        &mut self,
        svc: &ServiceRuntime,
        pool: &Arc<PoolRuntime>,
        p: &Prepared,
        started: Instant,
    ) -> Outcome {
        let mut bytes_in = p.head_len as u64;
        let mut bytes_out = 0u64;
        let mut cursor = BodyCursor::request(p.body);
        let max = svc.limits.max_body_bytes;
        {
            let mut relay = new_relay(&mut cursor, &mut self.inbuf, svc.timeouts.client_body, max);
            let r = relay.take_buffered(&mut self.out, INLINE);
            bytes_in += relay.moved;
            if let Err(e) = r {
                return self.upload_failed(e, bytes_in).await;
            }
        }
        // The whole request is in `out`: a stale kept-alive connection may be retried.
        let mut retry_ok = cursor.is_done() && p.idempotent && !p.upgrade;

        let (binding, dest, mut conn, mut reused) = match self.acquire(svc, pool, p, started).await {
            Ok(x) => x,
            Err(r) => return self.refuse(r, bytes_in).await,
        };
        binding.established();
        // When the request went out: the response head is waited for from there.
        let mut sent = if reused { started } else { Instant::now() };
        let base_close = !p.keep_alive || self.engine.is_stopping();
        let set_cookie: Option<&[u8]> = match dest {
            Some(d) if p.cookie_dest != Some(binding.dest.addr) => d.set_cookie.as_deref(),
            _ => None,
        };

        let mut early = false;
        let mut pending = 0usize;
        let head = 'attempt: loop {
            if TcpRef(&conn.stream).write_all(&self.out).await.is_err() {
                if reused && retry_ok {
                    retry_ok = false;
                    match self.reconnect(svc, pool, &conn).await {
                        Some(c) => (conn, reused, sent) = (c, false, Instant::now()),
                        None => return self.fail(binding, Refusal::BadGateway("reconnect failed"), bytes_in).await,
                    }
                    continue;
                }
                return self.fail(binding, Refusal::BadGateway("request not accepted"), bytes_in).await;
            }
            if p.expect_continue && !cursor.is_done() && self.inbuf.is_empty() {
                if self.io.write_all(CONTINUE).await.is_err() || self.io.flush().await.is_err() {
                    return gone(bytes_in, bytes_out);
                }
                bytes_out += CONTINUE.len() as u64;
            }
            // The body, while watching for the real server answering before it has all of it.
            let mut answered = None;
            while !cursor.is_done() {
                let mut relay = new_relay(&mut cursor, &mut self.inbuf, svc.timeouts.client_body, max);
                let res = {
                    let route = SpliceRoute { threshold: svc.splice_threshold };
                    let mut up = TcpRef(&conn.stream);
                    let upload = relay.run(&mut self.io, &mut up, &mut pending, Some(route));
                    let mut probe = [0u8; 1];
                    tokio::select! {
                        biased;
                        r = upload => Some(r),
                        _ = conn.stream.peek(&mut probe) => None,
                    }
                };
                bytes_in += relay.moved;
                sent = Instant::now();
                let resumable = !relay.in_splice;
                match res {
                    Some(Ok(())) => break,
                    Some(Err(RelayError::Dst(e))) => {
                        // The real server stopped reading; it may have said why first.
                        debug!(dest = %conn.dest, error = %e, "real server stopped reading the request body");
                        match self.read_head(&mut conn, p, sent + Duration::from_millis(200), true, set_cookie).await {
                            Ok(h) if !h.interim => {
                                early = true;
                                self.linger = true;
                                answered = Some(h);
                                break;
                            }
                            _ => {
                                self.end_binding(binding);
                                return self.upload_failed(RelayError::Dst(e), bytes_in).await;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        self.end_binding(binding);
                        return self.upload_failed(e, bytes_in).await;
                    }
                    None => match self.read_head(&mut conn, p, sent + svc.timeouts.server, true, set_cookie).await {
                        Ok(h) if h.interim && resumable => {
                            bytes_out += self.pass_interim(&mut conn, p, h).await;
                        }
                        Ok(h) if !h.interim => {
                            // The rest of the body stays unread: close gently after the answer.
                            early = true;
                            self.linger = true;
                            answered = Some(h);
                            break;
                        }
                        Ok(_) => {
                            return self.fail(binding, Refusal::BadGateway("interim answer mid-splice"), bytes_in).await
                        }
                        Err(f) => return self.head_failed(binding, f, bytes_in).await,
                    },
                }
            }
            if let Some(h) = answered {
                break h;
            }
            loop {
                match self.read_head(&mut conn, p, sent + svc.timeouts.server, base_close, set_cookie).await {
                    Ok(h) if h.interim => {
                        retry_ok = false;
                        bytes_out += self.pass_interim(&mut conn, p, h).await;
                    }
                    Ok(h) => break 'attempt h,
                    Err(HeadFail::Closed { fresh: true }) if reused && retry_ok => {
                        retry_ok = false;
                        match self.reconnect(svc, pool, &conn).await {
                            Some(c) => (conn, reused, sent) = (c, false, Instant::now()),
                            None => return self.fail(binding, Refusal::BadGateway("reconnect failed"), bytes_in).await,
                        }
                        continue 'attempt;
                    }
                    Err(f) => return self.head_failed(binding, f, bytes_in).await,
                }
            }
        };
        conn.buf.consume(head.head_len);

        if head.upgrade {
            let ok = self.io.write_all(&self.out).await.is_ok() && self.io.flush().await.is_ok();
            bytes_out += self.out.len() as u64;
            if ok {
                let (i, o) = self.tunnel(svc, &mut conn).await;
                bytes_in += i;
                bytes_out += o;
            }
            binding.count_in(bytes_in);
            binding.count_out(bytes_out);
            self.end_binding(binding);
            return Outcome { status: head.code, bytes_in, bytes_out, next: Next::Close };
        }

        let close = head.close;
        let mut rcursor = BodyCursor::response(head.body);
        let mut relay = new_relay(&mut rcursor, &mut conn.buf, svc.timeouts.server, None);
        if relay.take_buffered(&mut self.out, INLINE).is_err() {
            return self.fail(binding, Refusal::BadGateway("invalid chunked response body"), bytes_in).await;
        }
        let inline = relay.moved;
        if self.io.write_all(&self.out).await.is_err() {
            self.end_binding(binding);
            return Outcome { status: head.code, bytes_in, bytes_out, next: Next::Close };
        }
        bytes_out += self.out.len() as u64;
        let mut pending = 0usize;
        let route = SpliceRoute { threshold: svc.splice_threshold };
        let r = relay.run(&mut TcpRef(&conn.stream), &mut self.io, &mut pending, Some(route)).await;
        bytes_out += relay.moved - inline;
        if let Err(e) = &r {
            debug!(client = %self.peer, dest = %conn.dest, error = %e, "response body not relayed to its end");
        }
        let reusable = r.is_ok() && head.reusable && !early && conn.buf.is_empty();
        conn.served += 1;
        binding.count_in(bytes_in);
        binding.count_out(bytes_out);
        let end = self.end_binding(binding);
        if reusable {
            self.release(dest, conn, end);
        }
        let next = if close || r.is_err() { Next::Close } else { Next::KeepAlive };
        Outcome { status: head.code, bytes_in, bytes_out, next }
    }

    /// Picks a real server (scheduled at `started`, the first time) and gets a connection to it: a kept-alive one, or a new one; a
    /// refused or timed-out connect is counted against the server and another is tried.
    /// Returns the binding, the real server's runtime, the connection and whether it is reused.
    async fn acquire<'p>(
        &mut self,
        svc: &ServiceRuntime,
        pool: &'p Arc<PoolRuntime>,
        p: &Prepared,
        started: Instant,
    ) -> Result<(Binding, Option<&'p DestRuntime>, Box<UpstreamConn>, bool), Refusal> {
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut timed_out = false;
        let clock = self.engine.clock;
        loop {
            let now = if tried.is_empty() { clock.ms_at(started.into_std()) } else { clock.now_ms() };
            let req = SchedRequest { client: p.sched_client, destination: self.local, now_ms: now };
            let binding = match p.cookie_dest {
                Some(a) if tried.is_empty() => {
                    pool.schedule_to(a, &req).or_else(|| pool.vs.schedule(&req, &tried, false))
                }
                _ => pool.vs.schedule(&req, &tried, false),
            }
            .or_else(|| pool.vs.sorry_binding(&tried, now));
            let Some(binding) = binding else {
                return Err(match (tried.is_empty(), timed_out) {
                    (true, _) => Refusal::NoServer,
                    (false, true) => Refusal::GatewayTimeout,
                    (false, false) => Refusal::BadGateway("connect failed"),
                });
            };
            let dest = binding.dest.addr;
            let runtime = pool.dests.get(&dest);
            let proxy = runtime.map_or(ProxyProtocol::Off, |d| d.proxy_protocol);
            if let Some(c) = self.take_idle(runtime, dest, proxy) {
                pool.counters.upstream(true);
                return Ok((binding, runtime, c, true));
            }
            match self.connect(svc, dest, proxy).await {
                Ok(c) => {
                    pool.counters.upstream(false);
                    return Ok((binding, runtime, c, false));
                }
                Err(f) => {
                    timed_out = f.timed_out;
                    self.engine.connect_failed(svc.key, &pool.name, dest, &f.reason);
                }
            }
            binding.connect_failed(self.engine.clock.now_ms());
            tried.push(dest);
            if tried.len() > svc.connect_retries as usize {
                return Err(if timed_out { Refusal::GatewayTimeout } else { Refusal::BadGateway("connect failed") });
            }
        }
    }

    /// A new connection to `dest`, PROXY header sent.
    async fn connect(
        &self,
        svc: &ServiceRuntime,
        dest: SocketAddr,
        proxy: ProxyProtocol,
    ) -> Result<Box<UpstreamConn>, ConnectFailure> {
        let failed = |timed_out, reason: String| {
            debug!(dest = %dest, "{reason}");
            ConnectFailure { timed_out, reason }
        };
        let stream = match tokio::time::timeout(svc.timeouts.connect, TcpStream::connect(dest)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(failed(false, format!("connect failed: {e}"))),
            Err(_) => return Err(failed(true, format!("connect timed out after {:?}", svc.timeouts.connect))),
        };
        let _ = rvs_dataplane::tcp_options::apply(&stream);
        if let Some(h) = rvs_dataplane::proxy_protocol::header(proxy, self.peer, self.local) {
            if let Err(e) = TcpRef(&stream).write_all(&h).await {
                return Err(failed(false, format!("PROXY header not sent: {e}")));
            }
        }
        Ok(UpstreamConn::new(stream, dest, proxy))
    }

    /// A fresh connection to the server a stale kept-alive one went to.
    async fn reconnect(
        &self,
        svc: &ServiceRuntime,
        pool: &PoolRuntime,
        old: &UpstreamConn,
    ) -> Option<Box<UpstreamConn>> {
        debug!(dest = %old.dest, served = old.served, "kept-alive connection was closed; retrying on a new one");
        let c = self.connect(svc, old.dest, old.proxy).await.ok()?;
        pool.counters.upstream(false);
        Some(c)
    }

    /// Reads one response head (by `deadline`) and rewrites it for the client into `out`.
    async fn read_head(
        &mut self,
        conn: &mut UpstreamConn,
        p: &Prepared,
        deadline: Instant,
        close: bool,
        set_cookie: Option<&[u8]>,
    ) -> Result<Head, HeadFail> {
        let mut fresh = conn.buf.is_empty();
        loop {
            if !conn.buf.is_empty() {
                let h = {
                    let mut headers = [std::mem::MaybeUninit::uninit(); MAX_HEADERS];
                    match response::parse(conn.buf.filled(), &mut headers, p.is_head, UPSTREAM_BUFFER) {
                        Err(e) => Err(HeadFail::Invalid(e)),
                        Ok(None) => Ok(None),
                        Ok(Some(r)) => {
                            let close = close || self.engine.is_stopping();
                            client_head(&r, p, close, set_cookie, &mut self.out).map(Some)
                        }
                    }
                };
                if let Some(h) = h? {
                    return Ok(h);
                }
            }
            match self.timer.wait(deadline, false, conn.buf.read_from(&mut TcpRef(&conn.stream))).await {
                Waited::Expired | Waited::Tick => return Err(HeadFail::Timeout),
                Waited::Done(Ok(0) | Err(_)) => return Err(HeadFail::Closed { fresh: fresh && conn.buf.is_empty() }),
                Waited::Done(Ok(_)) => fresh = false,
            }
        }
    }

    /// Passes an interim (1xx) response on to an HTTP/1.1 client; returns the bytes sent.
    async fn pass_interim(&mut self, conn: &mut UpstreamConn, p: &Prepared, h: Head) -> u64 {
        conn.buf.consume(h.head_len);
        if p.minor == 0 {
            return 0;
        }
        if self.io.write_all(&self.out).await.is_err() || self.io.flush().await.is_err() {
            return 0;
        }
        self.out.len() as u64
    }

    /// Ends `binding` now; the reading is the exchange's end too. Returns it.
    fn end_binding(&mut self, binding: Binding) -> Instant {
        let end = Instant::now();
        binding.finish(self.engine.clock.ms_at(end.into_std()));
        self.ended = Some(end);
        end
    }

    async fn fail(&mut self, binding: Binding, r: Refusal, bytes_in: u64) -> Outcome {
        self.end_binding(binding);
        self.refuse(r, bytes_in).await
    }

    async fn head_failed(&mut self, binding: Binding, f: HeadFail, bytes_in: u64) -> Outcome {
        debug!(client = %self.peer, dest = %binding.dest.addr, failure = ?f, "no usable response head");
        let r = match f {
            HeadFail::Timeout => Refusal::GatewayTimeout,
            HeadFail::Closed { .. } => Refusal::BadGateway("real server closed the connection"),
            HeadFail::Invalid(why) => Refusal::BadGateway(why),
        };
        self.fail(binding, r, bytes_in).await
    }

    async fn upload_failed(&mut self, e: RelayError, bytes_in: u64) -> Outcome {
        match e {
            RelayError::SrcClosed | RelayError::Src(_) => gone(bytes_in, 0),
            RelayError::Timeout => self.refuse(Refusal::Timeout, bytes_in).await,
            RelayError::TooLarge => self.refuse(Refusal::BodyTooLarge, bytes_in).await,
            RelayError::Framing(_) => self.refuse(Refusal::BadRequest("invalid chunked body"), bytes_in).await,
            RelayError::Dst(_) => self.refuse(Refusal::BadGateway("real server stopped reading"), bytes_in).await,
        }
    }

    /// After a 101: bytes both ways until both sides close, one fails, or the tunnel idles
    /// out. Returns the bytes moved (client to server, server to client).
    async fn tunnel(&mut self, svc: &ServiceRuntime, conn: &mut UpstreamConn) -> (u64, u64) {
        let (mut i, mut o) = (0u64, 0u64);
        if !self.inbuf.is_empty() {
            if TcpRef(&conn.stream).write_all(self.inbuf.filled()).await.is_err() {
                return (i, o);
            }
            i += self.inbuf.len() as u64;
            self.inbuf.consume(self.inbuf.len());
        }
        if !conn.buf.is_empty() {
            if self.io.write_all(conn.buf.filled()).await.is_err() || self.io.flush().await.is_err() {
                return (i, o);
            }
            o += conn.buf.len() as u64;
            conn.buf.consume(conn.buf.len());
        }
        let clock = self.engine.clock;
        let last = AtomicU64::new(clock.now_ms());
        let (moved_in, moved_out) = (AtomicU64::new(0), AtomicU64::new(0));
        let idle_ms = svc.timeouts.tunnel_idle.as_millis() as u64;
        let watchdog = async {
            let every = (svc.timeouts.tunnel_idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
            loop {
                tokio::time::sleep(every).await;
                if clock.now_ms().saturating_sub(last.load(Ordering::Relaxed)) >= idle_ms {
                    debug!("tunnel idle timeout");
                    return;
                }
            }
        };
        let up = &conn.stream;
        if let Some(client) = self.io.sock() {
            let now = || clock.now_ms();
            let work = async {
                let _ =
                    tokio::try_join!(pump(client, up, &last, now, &moved_in), pump(up, client, &last, now, &moved_out));
            };
            tokio::select! {
                _ = work => {}
                _ = watchdog => {}
            }
        } else {
            let (mut rd, mut wr) = tokio::io::split(&mut self.io);
            let (mut up_w, mut up_r) = (TcpRef(up), TcpRef(up));
            let work = async {
                let _ = tokio::try_join!(
                    copy_half(&mut rd, &mut up_w, &last, clock, &moved_in),
                    copy_half(&mut up_r, &mut wr, &last, clock, &moved_out)
                );
            };
            tokio::select! {
                _ = work => {}
                _ = watchdog => {}
            }
        }
        (i + moved_in.load(Ordering::Relaxed), o + moved_out.load(Ordering::Relaxed))
    }
}

fn new_relay<'a>(
    cursor: &'a mut BodyCursor,
    buf: &'a mut crate::buffer::Buffer,
    idle: Duration,
    max: Option<u64>,
) -> BodyRelay<'a> {
    BodyRelay { cursor, buf, idle, max, moved: 0, in_splice: false }
}

/// The client went away mid-request: nothing to answer.
fn gone(bytes_in: u64, bytes_out: u64) -> Outcome {
    Outcome { status: 0, bytes_in, bytes_out, next: Next::Close }
}

/// Checks a response against its request and writes the client's head into `out`.
fn client_head(
    r: &ParsedResponse<'_>,
    p: &Prepared,
    close: bool,
    set_cookie: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Result<Head, HeadFail> {
    if r.code == 101 && !(p.upgrade && r.upgrade.is_some()) {
        return Err(HeadFail::Invalid("101 to a request that did not ask to upgrade"));
    }
    if p.minor == 0 && r.body == ResponseBody::Chunked {
        return Err(HeadFail::Invalid("chunked response to an HTTP/1.0 request"));
    }
    let interim = r.is_interim();
    let close = close || r.body == ResponseBody::UntilClose;
    out.clear();
    rewrite::response_head(r, ClientSide { minor: p.minor, close }, if interim { None } else { set_cookie }, out);
    Ok(Head {
        code: r.code,
        body: r.body,
        reusable: r.reusable,
        head_len: r.head_len,
        upgrade: r.code == 101,
        interim,
        close,
    })
}

/// One direction of a tunnel through buffers (TLS clients).
async fn copy_half<R, W>(r: &mut R, w: &mut W, last: &AtomicU64, clock: Clock, moved: &AtomicU64) -> io::Result<()>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return w.shutdown().await;
        }
        w.write_all(&buf[..n]).await?;
        w.flush().await?;
        last.store(clock.now_ms(), Ordering::Relaxed);
        moved.fetch_add(n as u64, Ordering::Relaxed);
    }
}
