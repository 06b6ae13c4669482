//! The heads the proxy writes: the request towards the real server (hop-by-hop fields and the
//! client's framing fields dropped, canonical framing and the forwarding headers added) and
//! the response towards the client (HTTP/1.1 status line, hop-by-hop fields dropped, the
//! connection's own `Connection`, an inserted persistence cookie).

use std::net::IpAddr;

use httparse::Header;

use crate::head::{self, eq_lower, is_hop_by_hop, offset};
use crate::request::{ParsedRequest, RequestBody};
use crate::response::{ParsedResponse, ResponseBody};
use rvs_model::http::ForwardedHeaders;

/// What the forwarding headers say about one client connection, formatted once per connection.
#[derive(Debug, Clone)]
pub(crate) struct Forwarding {
    pub headers: ForwardedHeaders,
    /// The client address as X-Forwarded-For writes it.
    pub client_ip: String,
    /// The `for=` parameter of Forwarded (IPv6 quoted in brackets).
    pub forwarded_for: String,
    pub tls: bool,
}

impl Forwarding {
    pub fn new(headers: ForwardedHeaders, client: IpAddr, tls: bool) -> Self {
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let forwarded_for = match client {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("\"[{a}]\""),
        };
        Self { headers, client_ip: client.to_string(), forwarded_for, tls }
    }

    fn proto(&self) -> &'static [u8] {
        if self.tls {
            b"https"
        } else {
            b"http"
        }
    }
}

/// Appends the decimal digits of `n`.
pub(crate) fn push_num(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether `name` is listed in a Connection field (so is hop-by-hop for this message).
fn named_by_connection(headers: &[Header<'_>], name: &str) -> bool {
    headers
        .iter()
        .filter(|h| eq_lower(h.name.as_bytes(), b"connection"))
        .any(|h| head::list(h.value).any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
}

/// Copies the lines of `head` from offset `from` up to its blank line into `out`, leaving out
/// the fields `drop` picks: the kept lines go out as they came, in runs of whole lines. The
/// fields are those parsed from `head` (the blank line is a bare CRLF: heads are checked).
fn copy_fields<'h>(
    head: &[u8],
    from: usize,
    fields: &[Header<'h>],
    mut drop: impl FnMut(&Header<'h>) -> bool,
    out: &mut Vec<u8>,
) {
    let end = head.len() - 2;
    let mut run = from;
    for (i, h) in fields.iter().enumerate() {
        if drop(h) {
            out.extend_from_slice(&head[run..offset(head, h.name.as_bytes())]);
            run = fields.get(i + 1).map_or(end, |next| offset(head, next.name.as_bytes()));
        }
    }
    out.extend_from_slice(&head[run..end]);
}

/// Writes the request head for the real server into `out` (cleared first). The request line
/// and the kept fields are copied as received (the request line has single spaces and the
/// version the request was parsed with).
pub(crate) fn request_head<'a>(p: &ParsedRequest<'a>, fwd: &Forwarding, out: &mut Vec<u8>) {
    out.clear();
    let f = fwd.headers;
    let mut xff = false;
    let mut host = None;
    let drop = |h: &Header<'a>| {
        let n = h.name;
        if is_hop_by_hop(n) || eq_lower(n.as_bytes(), b"expect") {
            return true;
        }
        if eq_lower(n.as_bytes(), b"host") {
            host = Some(h.value);
            return false;
        }
        if f.x_forwarded_for && eq_lower(n.as_bytes(), b"x-forwarded-for") {
            xff = true;
            return true;
        }
        (f.x_forwarded_proto && eq_lower(n.as_bytes(), b"x-forwarded-proto"))
            || (p.connection_names && named_by_connection(p.headers, n))
    };
    copy_fields(p.raw, offset(p.raw, p.method.as_bytes()), p.headers, drop, out);
    match p.body {
        RequestBody::None => {}
        RequestBody::Length(len) => {
            out.extend_from_slice(b"Content-Length: ");
            push_num(out, len);
            out.extend_from_slice(b"\r\n");
        }
        RequestBody::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    if let Some(up) = p.upgrade {
        out.extend_from_slice(b"Connection: Upgrade\r\n");
        push_field(out, b"Upgrade", up);
    } else if p.minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    if f.x_forwarded_for {
        out.extend_from_slice(b"X-Forwarded-For: ");
        if xff {
            for h in p.headers.iter().filter(|h| eq_lower(h.name.as_bytes(), b"x-forwarded-for")) {
                for e in head::list(h.value) {
                    out.extend_from_slice(e);
                    out.extend_from_slice(b", ");
                }
            }
        }
        out.extend_from_slice(fwd.client_ip.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if f.x_forwarded_proto {
        push_field(out, b"X-Forwarded-Proto", fwd.proto());
    }
    if f.forwarded {
        out.extend_from_slice(b"Forwarded: for=");
        out.extend_from_slice(fwd.forwarded_for.as_bytes());
        out.extend_from_slice(b";proto=");
        out.extend_from_slice(fwd.proto());
        if let Some(h) = host.filter(|h| !h.is_empty()) {
            out.extend_from_slice(b";host=\"");
            out.extend_from_slice(h);
            out.push(b'"');
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How the client connection is handled after a response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientSide {
    /// HTTP/1.`minor` of the client's request.
    pub minor: u8,
    /// The client connection closes after this response.
    pub close: bool,
}

/// Writes the response head for the client into `out` (appending): a status line of its own,
/// the kept fields as received. `set_cookie` is a whole Set-Cookie value to add.
pub(crate) fn response_head(r: &ParsedResponse<'_>, client: ClientSide, set_cookie: Option<&[u8]>, out: &mut Vec<u8>) {
    // A status code is three digits (httparse takes no other).
    debug_assert!((100..1000).contains(&r.code));
    let digit = |n: u16| b'0' + (n % 10) as u8;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[digit(r.code / 100), digit(r.code / 10), digit(r.code), b' ']);
    out.extend_from_slice(r.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let framed = matches!(r.body, ResponseBody::Length(_) | ResponseBody::Chunked);
    let drop = |h: &Header<'_>| {
        let n = h.name;
        if eq_lower(n.as_bytes(), b"content-length") || eq_lower(n.as_bytes(), b"transfer-encoding") {
            framed
        } else {
            is_hop_by_hop(n) || (r.connection_names && named_by_connection(r.headers, n))
        }
    };
    let from = r.headers.first().map_or(r.raw.len() - 2, |h| offset(r.raw, h.name.as_bytes()));
    copy_fields(r.raw, from, r.headers, drop, out);
    match r.body {
        ResponseBody::Length(len) => {
            out.extend_from_slice(b"Content-Length: ");
            push_num(out, len);
            out.extend_from_slice(b"\r\n");
        }
        ResponseBody::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        ResponseBody::None | ResponseBody::UntilClose => {}
    }
    if let Some(up) = r.upgrade {
        out.extend_from_slice(b"Connection: Upgrade\r\n");
        push_field(out, b"Upgrade", up);
    } else if !r.is_interim() {
        if client.close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if client.minor == 0 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    if let Some(c) = set_cookie {
        push_field(out, b"Set-Cookie", c);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_model::http::Limits;

    fn forward(raw: &[u8], headers: ForwardedHeaders, tls: bool) -> String {
        let mut h = [std::mem::MaybeUninit::uninit(); 64];
        let p = crate::request::parse(raw, &mut h, &Limits::default()).unwrap().unwrap();
        let fwd = Forwarding::new(headers, "192.0.2.7".parse().unwrap(), tls);
        let mut out = Vec::new();
        request_head(&p, &fwd, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn request_hop_by_hop_and_forwarding() {
        let all = ForwardedHeaders { x_forwarded_for: true, x_forwarded_proto: true, forwarded: true };
        let out = forward(
            b"POST /x HTTP/1.1\r\nHost: a.example:8080\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\n\
X-Secret: 1\r\nTE: trailers\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: gopher\r\n\
Content-Length: 3\r\nContent-Length: 3\r\nExpect: 100-continue\r\nAccept: */*\r\n\r\n",
            all,
            true,
        );
        assert_eq!(
            out,
            "POST /x HTTP/1.1\r\nHost: a.example:8080\r\nAccept: */*\r\nContent-Length: 3\r\n\
X-Forwarded-For: 10.0.0.1, 192.0.2.7\r\nX-Forwarded-Proto: https\r\n\
Forwarded: for=192.0.2.7;proto=https;host=\"a.example:8080\"\r\n\r\n"
        );
    }

    #[test]
    fn request_forwarding_off_and_http10() {
        let none = ForwardedHeaders { x_forwarded_for: false, x_forwarded_proto: false, forwarded: false };
        let out = forward(b"GET / HTTP/1.0\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n", none, false);
        assert_eq!(out, "GET / HTTP/1.0\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: keep-alive\r\n\r\n");
    }

    #[test]
    fn websocket_upgrade_is_kept() {
        let out = forward(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
            ForwardedHeaders::default(),
            false,
        );
        assert!(out.contains("Connection: Upgrade\r\nUpgrade: websocket\r\n"), "{out}");
        assert!(out.contains("Sec-WebSocket-Key: k\r\n"));
    }

    #[test]
    fn response_rewrite() {
        let raw = b"HTTP/1.0 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
Content-Length: 2\r\nServer: t\r\n\r\nok";
        let mut h = [std::mem::MaybeUninit::uninit(); 16];
        let r = crate::response::parse(raw, &mut h, false, 4096).unwrap().unwrap();
        let mut out = Vec::new();
        response_head(&r, ClientSide { minor: 1, close: true }, Some(b"RVSID=ab; Path=/"), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nServer: t\r\nContent-Length: 2\r\nConnection: close\r\nSet-Cookie: RVSID=ab; Path=/\r\n\r\n"
        );
    }

    #[test]
    fn numbers() {
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            let mut v = Vec::new();
            push_num(&mut v, n);
            assert_eq!(String::from_utf8(v).unwrap(), n.to_string());
        }
    }
}
