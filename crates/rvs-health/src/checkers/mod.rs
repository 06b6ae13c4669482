//! The checkers, one file each, and what they share: a deadline that turns a stalled step into
//! "timeout after 2s while connecting", connecting, short reasons for I/O errors, printable
//! excerpts of what a server sent, bounded lines.

pub(crate) mod agent;
pub(crate) mod dns;
pub(crate) mod exec;
pub(crate) mod expect;
pub(crate) mod http;
pub(crate) mod http_response;
pub(crate) mod smtp;
pub(crate) mod tcp;
pub(crate) mod tls;
pub(crate) mod udp;

use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::health::{Health, WeightHint};
use crate::result::human_duration;

/// A failed check, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure(pub String);

impl Failure {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Failure(reason.into())
    }
}

/// A check that found the server alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Success {
    pub outcome: Health,
    pub weight: Option<WeightHint>,
    pub reason: String,
}

impl Success {
    pub(crate) fn up(reason: impl Into<String>) -> Self {
        Self { outcome: Health::Up, weight: None, reason: reason.into() }
    }
}

pub(crate) type Verdict = Result<Success, Failure>;

/// The end of a check's time budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub at: Instant,
    pub timeout: Duration,
}

impl Deadline {
    pub(crate) fn after(timeout: Duration) -> Self {
        Self { at: Instant::now() + timeout, timeout }
    }

    /// "timeout after 2s {what}".
    pub(crate) fn expired(&self, what: &str) -> Failure {
        Failure(format!("timeout after {} {what}", human_duration(self.timeout)))
    }

    /// Runs `fut` until the deadline; on expiry fails with "timeout after 2s {what}".
    pub(crate) async fn run<T>(&self, what: &str, fut: impl Future<Output = T>) -> Result<T, Failure> {
        tokio::time::timeout_at(self.at, fut).await.map_err(|_| self.expired(what))
    }

    /// As [`Deadline::run`] for an I/O step: its error becomes the failure reason.
    pub(crate) async fn io<T>(&self, what: &str, fut: impl Future<Output = io::Result<T>>) -> Result<T, Failure> {
        self.run(what, fut).await?.map_err(|e| Failure(io_reason(&e)))
    }
}

pub(crate) use crate::check::Endpoint;

/// A socket for a check through the VIP: marked (policy routing sends it to the packet
/// engine's check device) and bound to the source the real server answers to.
fn marked_socket(to: &Endpoint, kind: Type, mark: u32) -> io::Result<Socket> {
    let domain = if to.addr.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let sock = Socket::new(domain, kind, None)?;
    sock.set_mark(mark)?;
    sock.set_nonblocking(true)?;
    if let Some(src) = to.source {
        sock.bind(&SocketAddr::new(src, 0).into())?;
    }
    Ok(sock)
}

/// Connects to `to` before the deadline (marked and bound for a check through the VIP).
pub(crate) async fn connect(to: &Endpoint, dl: &Deadline) -> Result<TcpStream, Failure> {
    let stream = match to.mark {
        None => dl.io("connecting", TcpStream::connect(to.addr)).await?,
        Some(mark) => {
            let sock = marked_socket(to, Type::STREAM, mark).map_err(|e| Failure(io_reason(&e)))?;
            let sock = TcpSocket::from_std_stream(std::net::TcpStream::from(sock));
            dl.io("connecting", sock.connect(to.addr)).await?
        }
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A short reason for an I/O error: "connection refused", "connection reset by peer".
pub(crate) fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => return "connection refused".into(),
        io::ErrorKind::ConnectionReset => return "connection reset by peer".into(),
        io::ErrorKind::UnexpectedEof => return "connection closed".into(),
        _ => {}
    }
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", e.kind()),
    }
}

/// At most `max` bytes of `data`, printable: ASCII as is, `\r` `\n` `\t`, others as `\xHH`,
/// with `…` when cut.
pub(crate) fn excerpt(data: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in data.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if data.len() > max {
        out.push('…');
    }
    out
}

/// How reading a bounded line ended badly.
#[derive(Debug)]
pub(crate) enum LineError {
    Io(io::Error),
    /// End of stream before any byte of the line.
    Eof,
    /// Longer than the limit without a newline.
    TooLong,
}

/// Reads one line (through `\n`, which is kept) of at most `limit` bytes into `buf`.
/// A last line without `\n` before end of stream is returned as it is.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<(), LineError> {
    buf.clear();
    loop {
        let available = r.fill_buf().await.map_err(LineError::Io)?;
        if available.is_empty() {
            return if buf.is_empty() { Err(LineError::Eof) } else { Ok(()) };
        }
        let (take, done) = match memchr_newline(available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if buf.len() + take > limit {
            return Err(LineError::TooLong);
        }
        buf.extend_from_slice(&available[..take]);
        r.consume(take);
        if done {
            return Ok(());
        }
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// `line` without its trailing `\r\n` or `\n`.
pub(crate) fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The UDP socket to reach `to`: bound to the unspecified address of its family (or, through
/// the VIP, marked and bound to its source), connected.
pub(crate) async fn udp_connect(to: &Endpoint) -> io::Result<tokio::net::UdpSocket> {
    let addr = to.addr;
    if let Some(mark) = to.mark {
        let sock = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(marked_socket(to, Type::DGRAM, mark)?))?;
        sock.connect(addr).await?;
        return Ok(sock);
    }
    let bind: SocketAddr =
        if addr.is_ipv4() { "0.0.0.0:0".parse() } else { "[::]:0".parse() }.expect("literal socket address");
    let sock = tokio::net::UdpSocket::bind(bind).await?;
    sock.connect(addr).await?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        assert_eq!(io_reason(&io::Error::from(io::ErrorKind::ConnectionRefused)), "connection refused");
        assert_eq!(io_reason(&io::Error::from_raw_os_error(113)), "no route to host");
        assert_eq!(io_reason(&io::Error::other("Boom")), "boom");
    }

    #[test]
    fn excerpts() {
        assert_eq!(excerpt(b"220 hi\r\n", 100), r"220 hi\r\n");
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
        assert_eq!(excerpt(&[0xff, b'"'], 10), r#"\xff\""#);
    }

    #[tokio::test]
    async fn bounded_lines() {
        let data: &[u8] = b"first\r\nsecond\nlast";
        let mut r = tokio::io::BufReader::new(data);
        let mut buf = Vec::new();
        read_line(&mut r, &mut buf, 100).await.unwrap();
        assert_eq!(trim_eol(&buf), b"first");
        read_line(&mut r, &mut buf, 100).await.unwrap();
        assert_eq!(trim_eol(&buf), b"second");
        read_line(&mut r, &mut buf, 100).await.unwrap();
        assert_eq!(buf, b"last");
        assert!(matches!(read_line(&mut r, &mut buf, 100).await, Err(LineError::Eof)));
        let mut r = tokio::io::BufReader::new(&b"0123456789\n"[..]);
        assert!(matches!(read_line(&mut r, &mut buf, 5).await, Err(LineError::TooLong)));
    }
}
