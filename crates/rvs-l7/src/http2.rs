//! HTTP/2 from clients (ALPN `h2` on TLS virtual services). The h2 crate speaks the framing,
//! flow control and stream limits; each stream is carried as one HTTP/1.1 exchange through the
//! session code HTTP/1.1 clients use (checks, routing, scheduling, pools, forwarding headers,
//! counters) over an in-memory duplex, and the HTTP/1.1 response that comes out is the stream's.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use http::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::debug;

use crate::chunked::{ChunkError, Chunked};
use crate::engine::L7Engine;
use crate::head::{self, Coding};
use crate::runtime::ServiceRuntime;
use crate::session;
use crate::upstream::UPSTREAM_BUFFER;
use rvs_dataplane::ConnSlot;
use rvs_model::http::MAX_HEADERS;

/// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
pub(crate) const MAX_STREAMS: u32 = 100;
/// Stream tasks a connection may have running: a stream the client resets leaves its task
/// finishing the exchange with the real server, so resetting streams in a loop (rapid reset)
/// must not pile up tasks; past this, new streams are refused (REFUSED_STREAM, retryable).
const MAX_TASKS: usize = 2 * MAX_STREAMS as usize;
/// Receive windows: per stream, and for the whole connection.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Response bytes a stream may have queued in the connection beyond what the socket took (the
/// h2 crate's default is 400 KiB: with 100 streams whose client opened large windows and then
/// stopped reading, one connection held about 60 MB).
const SEND_BUFFER: usize = 32 * 1024;
/// Bytes in flight between a stream and its session, each way.
const DUPLEX: usize = 16 * 1024;
/// Largest response head the session writes (it bounds what real servers send).
const MAX_RESPONSE_HEAD: usize = UPSTREAM_BUFFER + 16 * 1024;
/// How often a connection looks at the shutdown flag and at its idle time.
const TICK: Duration = Duration::from_millis(200);
/// How long a closing connection waits for the client's last frames once no stream is open.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// HTTP/2 counters of one L7 virtual service (kept across publishes), since the start or the
/// last zeroing.
#[derive(Debug, Default)]
pub(crate) struct Http2Counters {
    /// HTTP/2 client connections.
    pub connections: AtomicU64,
    /// HTTP/2 streams (requests).
    pub streams: AtomicU64,
    /// Streams refused (REFUSED_STREAM): the connection's exchange cap, or the director's
    /// connection cap (each running stream takes a place under it).
    pub refused: AtomicU64,
}

impl Http2Counters {
    pub fn zero(&self) {
        self.connections.store(0, Ordering::Relaxed);
        self.streams.store(0, Ordering::Relaxed);
        self.refused.store(0, Ordering::Relaxed);
    }
}

/// Why a stream ended without a whole response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    #[error("HTTP/2: {0}")]
    H2(#[from] h2::Error),
    #[error("session: {0}")]
    Io(#[from] io::Error),
    #[error("the session closed before a response head")]
    NoHead,
    #[error("invalid response head: {0}")]
    Head(&'static str),
    #[error(transparent)]
    Chunked(#[from] ChunkError),
    #[error("the session closed before the end of the response body")]
    Truncated,
    #[error("the client reset the stream")]
    Reset,
    #[error("the client did not open its window in time")]
    Stalled,
}

/// Runs an HTTP/2 client connection to its end: the handshake (within the header-read
/// timeout), then one task per stream; a graceful GOAWAY when idle or when the engine stops.
pub(crate) async fn serve<T>(
    engine: Arc<L7Engine>,
    svc: Arc<ServiceRuntime>,
    io: T,
    peer: SocketAddr,
    local: SocketAddr,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let key = svc.key;
    let limits = svc.limits;
    let header_list = limits.max_header_bytes.saturating_add(32 * limits.max_headers);
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(u32::try_from(header_list).unwrap_or(u32::MAX))
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buffer_size(SEND_BUFFER);
    let mut conn = match tokio::time::timeout(svc.timeouts.header_read, builder.handshake::<_, Bytes>(io)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            debug!(service = %key, client = %peer, error = %e, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => {
            debug!(service = %key, client = %peer, "HTTP/2 handshake timed out");
            return;
        }
    };
    svc.http2.connections.fetch_add(1, Ordering::Relaxed);
    // Idle before the first stream: the header-read timeout; between streams: keep-alive.
    let mut idle_limit = svc.timeouts.header_read;
    drop(svc);

    let mut streams = JoinSet::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut idle_since = Instant::now();
    let mut closing: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            r = conn.accept() => r,
            Some(_) = streams.join_next(), if !streams.is_empty() => {
                if streams.is_empty() {
                    idle_since = Instant::now();
                }
                continue;
            }
            _ = tick.tick() => {
                let idle = streams.is_empty() && idle_since.elapsed() >= idle_limit;
                match closing {
                    None if engine.is_stopping() || idle => {
                        debug!(service = %key, client = %peer, idle, "HTTP/2 connection closing (GOAWAY)");
                        conn.graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                    Some(t) if streams.is_empty() && t.elapsed() >= CLOSE_WAIT => break,
                    _ => {}
                }
                continue;
            }
        };
        match accepted {
            None => break,
            Some(Err(e)) => {
                debug!(service = %key, client = %peer, error = %e, "HTTP/2 connection error");
                break;
            }
            Some(Ok((req, mut respond))) => match engine.service(&key) {
                Some(svc) => {
                    // Each running stream is an exchange with a real server and holds its own
                    // buffers: it takes a place under the director's connection cap as an
                    // HTTP/1.1 connection would, and none is waited for (the client retries).
                    let slot = if streams.len() >= MAX_TASKS { None } else { engine.try_connection_slot() };
                    let Some(slot) = slot else {
                        debug!(service = %key, client = %peer, running = streams.len(), "HTTP/2 stream refused: at the exchange or connection cap");
                        svc.http2.refused.fetch_add(1, Ordering::Relaxed);
                        respond.send_reset(Reason::REFUSED_STREAM);
                        continue;
                    };
                    svc.http2.streams.fetch_add(1, Ordering::Relaxed);
                    idle_limit = svc.timeouts.keep_alive;
                    streams.spawn(stream(engine.clone(), svc, peer, local, req, respond, slot));
                }
                None => {
                    // The virtual service was removed: no new streams on this connection.
                    respond.send_reset(Reason::REFUSED_STREAM);
                    if closing.is_none() {
                        conn.graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                }
            },
        }
    }
    // Streams still running end on their own once the connection is gone (their sessions see
    // the duplex close); their counters are recorded before they finish.
    drop(conn);
    while streams.join_next().await.is_some() {}
}

/// One stream: its request as an HTTP/1.1 exchange through a session, the response back.
async fn stream(
    engine: Arc<L7Engine>,
    svc: Arc<ServiceRuntime>,
    peer: SocketAddr,
    local: SocketAddr,
    req: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    _slot: ConnSlot,
) {
    let (parts, body) = req.into_parts();
    let (head, chunked) = stream_request_head(&parts, body.is_end_stream());
    let is_head = parts.method == Method::HEAD;
    let stall = svc.timeouts.server;
    let (near, far) = tokio::io::duplex(DUPLEX);
    let session = session::run(engine, svc, far, peer, local, true);
    let bridge = bridge(head, body, chunked, Reply { is_head, stall }, respond, near);
    let ((), r) = tokio::join!(session, bridge);
    if let Err(e) = r {
        debug!(client = %peer, error = %e, "HTTP/2 stream ended without a whole response");
    }
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Connection-specific fields: never forwarded between HTTP/2 and HTTP/1.1.
fn is_connection_specific(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" | "te" | "http2-settings"
    )
}

/// The HTTP/1.1 request head of a stream whose request ends with its HEADERS frame (`end`)
/// or not, and whether its body goes chunked (its length is unknown).
pub(crate) fn stream_request_head(parts: &http::request::Parts, end: bool) -> (Vec<u8>, bool) {
    let chunked = !end && !parts.headers.contains_key(CONTENT_LENGTH);
    (request_head(parts, end, chunked), chunked)
}

/// The HTTP/1.1 request head of a stream: `:authority` as Host, cookies joined into one field
/// (RFC 9113 8.2.3), chunked framing when the length is unknown, and `Connection: close` (the
/// session serves this one request).
fn request_head(parts: &http::request::Parts, end: bool, chunked: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    match parts.uri.path_and_query() {
        Some(pq) => out.extend_from_slice(pq.as_str().as_bytes()),
        // CONNECT: the authority form, which the shared checks refuse (405).
        None => out.extend_from_slice(parts.uri.authority().map_or("/", |a| a.as_str()).as_bytes()),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let authority = parts.uri.authority();
    if let Some(a) = authority {
        push_field(&mut out, b"Host", a.as_str().as_bytes());
    }
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if is_connection_specific(n) || (n == "host" && authority.is_some()) {
            continue;
        }
        if n == "cookie" {
            if !cookies.is_empty() {
                cookies.extend_from_slice(b"; ");
            }
            cookies.extend_from_slice(value.as_bytes());
            continue;
        }
        push_field(&mut out, n.as_bytes(), value.as_bytes());
    }
    if !cookies.is_empty() {
        push_field(&mut out, b"cookie", &cookies);
    }
    if chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    } else if end
        && !parts.headers.contains_key(CONTENT_LENGTH)
        && matches!(parts.method, Method::POST | Method::PUT | Method::PATCH)
    {
        out.extend_from_slice(b"Content-Length: 0\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

/// What the response relay needs to know.
#[derive(Debug, Clone, Copy)]
struct Reply {
    /// The request was HEAD: the response has no body whatever its head says.
    is_head: bool,
    /// Longest wait for the client to open its window (it does not read).
    stall: Duration,
}

/// Moves the request into the session and the response out of it. When the response is
/// whole before the request body, dropping the stream's handles stops the rest of the upload:
/// h2 sends RST_STREAM(NO_ERROR) once the response is out (RFC 9113 8.1).
async fn bridge(
    head: Vec<u8>,
    body: RecvStream,
    chunked: bool,
    reply: Reply,
    respond: SendResponse<Bytes>,
    near: DuplexStream,
) -> Result<(), StreamError> {
    let (rd, mut wr) = tokio::io::split(near);
    wr.write_all(&head).await?;
    let upload = upload(body, wr, chunked);
    let download = download(rd, respond, reply);
    tokio::pin!(upload, download);
    let mut uploaded = false;
    loop {
        // An explicit reset here would drop response data h2 has not sent yet.
        tokio::select! {
            r = &mut upload, if !uploaded => {
                uploaded = true;
                if let Err(e) = r {
                    // The session sees the request end early and answers or gives up.
                    debug!(error = %e, "HTTP/2 request body not carried to its end");
                }
            }
            r = &mut download => return r.map(drop),
        }
    }
}

/// The request body into the session, chunked when its length is unknown; the receive window
/// opens again as the session takes the bytes. Ends the session's input either way.
async fn upload(mut body: RecvStream, mut wr: WriteHalf<DuplexStream>, chunked: bool) -> Result<(), StreamError> {
    let r = async {
        while let Some(data) = body.data().await {
            let data = data?;
            let n = data.len();
            if n == 0 {
                continue;
            }
            if chunked {
                let mut line = Vec::with_capacity(20);
                line.extend_from_slice(format!("{n:x}").as_bytes());
                line.extend_from_slice(b"\r\n");
                wr.write_all(&line).await?;
                wr.write_all(&data).await?;
                wr.write_all(b"\r\n").await?;
            } else {
                wr.write_all(&data).await?;
            }
            body.flow_control().release_capacity(n)?;
        }
        if chunked {
            wr.write_all(b"0\r\n\r\n").await?;
        }
        Ok(())
    }
    .await;
    let _ = wr.shutdown().await;
    r
}

/// How the session delimits the response body.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Reads the session's response and sends it on the stream; returns the stream once the
/// response is whole. On a failure after the head the stream is reset.
async fn download(
    mut rd: ReadHalf<DuplexStream>,
    mut respond: SendResponse<Bytes>,
    reply: Reply,
) -> Result<SendStream<Bytes>, StreamError> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let (resp, framing, used) = loop {
        let parsed = parse_head(&buf, reply.is_head);
        match parsed {
            Err(e) => {
                respond.send_reset(Reason::INTERNAL_ERROR);
                return Err(e);
            }
            Ok(Some((interim, _, used, true))) => {
                // 100 Continue, 103 Early Hints: passed on (101 never comes: no upgrades).
                if interim.status() != StatusCode::SWITCHING_PROTOCOLS {
                    let _ = respond.send_informational(interim);
                }
                buf.drain(..used);
                continue;
            }
            Ok(Some((resp, framing, used, false))) => break (resp, framing, used),
            Ok(None) if buf.len() >= MAX_RESPONSE_HEAD => {
                respond.send_reset(Reason::INTERNAL_ERROR);
                return Err(StreamError::Head("too large"));
            }
            Ok(None) => {}
        }
        let read = tokio::select! {
            r = read_more(&mut rd, &mut buf) => r,
            _ = poll_fn(|cx| respond.poll_reset(cx)) => return Err(StreamError::Reset),
        };
        match read {
            Ok(0) | Err(_) => {
                respond.send_reset(Reason::INTERNAL_ERROR);
                return Err(StreamError::NoHead);
            }
            Ok(_) => {}
        }
    };
    buf.drain(..used);
    let end = matches!(framing, Framing::None | Framing::Length(0));
    let mut send = respond.send_response(resp, end)?;
    if end {
        return Ok(send);
    }
    match body(&mut rd, &mut send, framing, buf, reply.stall).await {
        Ok(()) => Ok(send),
        Err(e) => {
            send.send_reset(if matches!(e, StreamError::Reset) { Reason::CANCEL } else { Reason::INTERNAL_ERROR });
            Err(e)
        }
    }
}

async fn read_more(rd: &mut ReadHalf<DuplexStream>, buf: &mut Vec<u8>) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + 16 * 1024, 0);
    let r = rd.read(&mut buf[start..]).await;
    buf.truncate(start + *r.as_ref().unwrap_or(&0));
    r
}

/// The response body: decoded from the session's framing, sent within the stream's window.
async fn body(
    rd: &mut ReadHalf<DuplexStream>,
    send: &mut SendStream<Bytes>,
    framing: Framing,
    first: Vec<u8>,
    stall: Duration,
) -> Result<(), StreamError> {
    let mut pending = first;
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    let mut decoder = Chunked::default();
    let mut data = Vec::new();
    let mut read = vec![0u8; 16 * 1024];
    loop {
        if !pending.is_empty() {
            data.clear();
            match framing {
                Framing::Chunked => {
                    decoder.feed_with(&pending, |d| data.extend_from_slice(d))?;
                }
                Framing::Length(_) => {
                    let take = pending.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    data.extend_from_slice(&pending[..take]);
                    left -= take as u64;
                }
                Framing::UntilClose | Framing::None => data.extend_from_slice(&pending),
            }
            pending.clear();
            send_data(send, Bytes::copy_from_slice(&data), stall).await?;
        }
        let done = match framing {
            Framing::Chunked => decoder.is_done(),
            Framing::Length(_) => left == 0,
            Framing::None => true,
            Framing::UntilClose => false,
        };
        if done {
            send.send_data(Bytes::new(), true)?;
            return Ok(());
        }
        let n = tokio::select! {
            r = rd.read(&mut read) => r?,
            _ = poll_fn(|cx| send.poll_reset(cx)) => return Err(StreamError::Reset),
        };
        if n == 0 {
            if let Framing::UntilClose = framing {
                send.send_data(Bytes::new(), true)?;
                return Ok(());
            }
            return Err(StreamError::Truncated);
        }
        pending.extend_from_slice(&read[..n]);
    }
}

/// Sends `data` as the peer's window allows, waiting at most `stall` for each opening.
async fn send_data(send: &mut SendStream<Bytes>, mut data: Bytes, stall: Duration) -> Result<(), StreamError> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let cap = match tokio::time::timeout(stall, poll_fn(|cx| send.poll_capacity(cx))).await {
            Ok(Some(c)) => c?,
            Ok(None) => return Err(StreamError::Reset),
            Err(_) => return Err(StreamError::Stalled),
        };
        if cap == 0 {
            continue;
        }
        let part = data.split_to(cap.min(data.len()));
        send.send_data(part, false)?;
    }
    Ok(())
}

pub(crate) type ParsedHead = (Response<()>, Framing, usize, bool);

/// Parses the session's response head at the start of `buf`: `Ok(None)` when incomplete;
/// the bool says whether it is an interim (1xx) response.
pub(crate) fn parse_head(buf: &[u8], is_head: bool) -> Result<Option<ParsedHead>, StreamError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS + 16];
    let mut r = httparse::Response::new(&mut headers);
    let used = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(StreamError::Head("unparsable")),
    };
    let code = r.code.ok_or(StreamError::Head("no status"))?;
    let status = StatusCode::from_u16(code).map_err(|_| StreamError::Head("invalid status"))?;
    let mut resp = Response::new(());
    *resp.status_mut() = status;
    let mut framing = Framing::UntilClose;
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // As an HTTP/1.1 client reads it (RFC 9112 6.3): chunked only when it is the last
            // coding; otherwise the body runs until the session closes.
            framing = match head::transfer_coding(h.value) {
                Coding::Chunked | Coding::ChunkedAfterOthers => Framing::Chunked,
                Coding::NotChunked => Framing::UntilClose,
                Coding::Invalid => return Err(StreamError::Head("invalid Transfer-Encoding")),
            };
            continue;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok());
            framing = Framing::Length(len.ok_or(StreamError::Head("invalid Content-Length"))?);
        }
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else { continue };
        if is_connection_specific(name.as_str()) || name.as_str() == "trailer" {
            continue;
        }
        let Ok(value) = HeaderValue::from_bytes(h.value) else { continue };
        resp.headers_mut().append(name, value);
    }
    if status.is_informational() {
        return Ok(Some((resp, Framing::None, used, true)));
    }
    if is_head || code == 204 || code == 304 {
        framing = Framing::None;
    }
    Ok(Some((resp, framing, used, false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: Request<()>) -> http::request::Parts {
        req.into_parts().0
    }

    #[test]
    fn request_heads() {
        let req = Request::builder()
            .method("POST")
            .uri("https://a.test:8443/up?x=1")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("te", "trailers")
            .header("x-y", "z")
            .body(())
            .unwrap();
        let h = String::from_utf8(request_head(&parts(req), false, true)).unwrap();
        assert_eq!(
            h,
            "POST /up?x=1 HTTP/1.1\r\nHost: a.test:8443\r\nx-y: z\r\ncookie: a=1; b=2\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let req = Request::builder().method("PUT").uri("https://a/").body(()).unwrap();
        let h = String::from_utf8(request_head(&parts(req), true, false)).unwrap();
        assert!(h.contains("Content-Length: 0\r\n"), "{h}");
        let req = Request::builder().method("CONNECT").uri("a.test:443").body(()).unwrap();
        let h = String::from_utf8(request_head(&parts(req), true, false)).unwrap();
        assert!(h.starts_with("CONNECT a.test:443 HTTP/1.1\r\n"), "{h}");
    }

    #[test]
    fn response_heads() {
        let raw = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n5\r\n";
        let (resp, framing, used, interim) = parse_head(raw, false).unwrap().unwrap();
        assert!(!interim);
        assert!(matches!(framing, Framing::Chunked));
        assert_eq!(&raw[used..], b"5\r\n");
        assert_eq!(resp.headers().len(), 1);
        assert_eq!(resp.headers()["x-a"], "1");
        let (resp, framing, _, _) = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", true).unwrap().unwrap();
        assert!(matches!(framing, Framing::None));
        assert_eq!(resp.headers()["content-length"], "7");
        let (_, framing, _, _) = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", false).unwrap().unwrap();
        assert!(matches!(framing, Framing::Length(7)));
        let (resp, _, used, interim) =
            parse_head(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nX", false).unwrap().unwrap();
        assert!(interim);
        assert_eq!((resp.status(), used), (StatusCode::EARLY_HINTS, 44));
        assert_eq!(resp.headers()["link"], "</a.css>");
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n", false).unwrap().is_none());
        // Found by the h2_response fuzz target: a coding other than chunked last is no
        // chunked framing; the body runs until the session closes, as for HTTP/1.1 clients.
        let (_, framing, _, _) =
            parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n", false)
                .unwrap()
                .unwrap();
        assert!(matches!(framing, Framing::UntilClose), "{framing:?}");
        let (_, framing, _, _) =
            parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false).unwrap().unwrap();
        assert!(matches!(framing, Framing::Chunked), "{framing:?}");
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", false).is_err());
        assert!(parse_head(b"garbage\r\n\r\n", false).is_err());
    }
}
