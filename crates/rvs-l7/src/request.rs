//! Request heads from clients: httparse for the grammar, then the strict checks that keep
//! anything ambiguous from being forwarded: CRLF only, one Host, one framing (Content-Length
//! or exactly `Transfer-Encoding: chunked`, never both, never in HTTP/1.0), no disguised
//! framing fields, a request target of a known form. The result borrows the head's bytes.

use std::mem::MaybeUninit;

use httparse::{Header, Status};

use crate::head::{self, eq_lower, Coding};
use crate::refusal::Refusal;
use crate::request_view::RequestView;
use rvs_model::http::Limits;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestBody {
    /// No Content-Length, no Transfer-Encoding: no body.
    None,
    /// Content-Length (which may be 0).
    Length(u64),
    Chunked,
}

/// A checked request head.
#[derive(Debug)]
pub(crate) struct ParsedRequest<'a> {
    pub method: &'a str,
    pub target: &'a str,
    /// HTTP/1.`minor`.
    pub minor: u8,
    pub headers: &'a [Header<'a>],
    /// The head as received (leading empty lines and the blank line included); the fields
    /// borrow from it.
    pub raw: &'a [u8],
    /// Bytes of the head, blank line included.
    pub head_len: usize,
    pub body: RequestBody,
    /// The host named (absolute-form authority, else Host), without the port.
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// A WebSocket upgrade request: the Upgrade value to pass on.
    pub upgrade: Option<&'a [u8]>,
    /// `Expect: 100-continue` on a request with a body.
    pub expect_continue: bool,
    /// A Connection field names a field other than the hop-by-hop ones: that field is
    /// hop-by-hop for this request too.
    pub connection_names: bool,
}

impl<'a> ParsedRequest<'a> {
    pub fn view(&self) -> RequestView<'a> {
        RequestView {
            method: self.method,
            target: self.target,
            host: self.host,
            path: self.path,
            query: self.query,
            headers: self.headers,
        }
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Methods a retry on a fresh connection may repeat (RFC 9110 9.2.2).
    pub fn is_idempotent(&self) -> bool {
        matches!(self.method, "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE")
    }
}

/// Parses and checks the head at the start of `buf`. `Ok(None)`: incomplete, read more.
/// `headers` is scratch space for the fields; it needs no initialising.
pub(crate) fn parse<'a>(
    buf: &'a [u8],
    headers: &'a mut [MaybeUninit<Header<'a>>],
    limits: &Limits,
) -> Result<Option<ParsedRequest<'a>>, Refusal> {
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, headers) {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) => {
            head::check_partial(buf).map_err(Refusal::BadRequest)?;
            if buf.len() > limits.max_header_bytes {
                return Err(too_large(buf, limits.max_header_bytes));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::HeadTooLarge),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(_) => {
            // A head longer than allowed is 431 (414 for its request line) even when it is also
            // malformed further on.
            return Err(if buf.len() > limits.max_header_bytes {
                too_large(buf, limits.max_header_bytes)
            } else {
                malformed(buf)
            });
        }
    };
    if head_len > limits.max_header_bytes {
        return Err(too_large(buf, limits.max_header_bytes));
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Refusal::BadRequest("incomplete request line"));
    };
    let headers: &'a [Header<'a>] = req.headers;
    head::check_line_ends(&buf[..head_len], headers).map_err(Refusal::BadRequest)?;
    if headers.len() > limits.max_headers {
        return Err(Refusal::HeadTooLarge);
    }
    if method == "CONNECT" {
        return Err(Refusal::MethodNotAllowed);
    }
    let (authority, path, query) = split_target(method, target)?;

    let mut host_field = None;
    let mut hosts = 0;
    let (mut te, mut tes, mut cls) = (None, 0, 0);
    let (mut close, mut keep, mut upgrade_token, mut connection_names) = (false, false, false, false);
    let mut upgrade = None;
    let mut expect = None;
    for h in headers {
        let name = h.name;
        if head::is_disguised_critical(name) {
            return Err(Refusal::BadRequest("field name disguising a framing field"));
        }
        match name.len() {
            4 if eq_lower(name.as_bytes(), b"host") => {
                hosts += 1;
                host_field = Some(h.value);
            }
            6 if eq_lower(name.as_bytes(), b"expect") => expect = Some(h.value),
            7 if eq_lower(name.as_bytes(), b"upgrade") => upgrade = Some(h.value),
            10 if eq_lower(name.as_bytes(), b"connection") => {
                for t in head::list(h.value) {
                    close |= eq_lower(t, b"close");
                    keep |= eq_lower(t, b"keep-alive");
                    upgrade_token |= eq_lower(t, b"upgrade");
                    connection_names |= !head::is_hop_by_hop_bytes(t);
                }
            }
            14 if eq_lower(name.as_bytes(), b"content-length") => cls += 1,
            17 if eq_lower(name.as_bytes(), b"transfer-encoding") => {
                tes += 1;
                te = Some(h.value);
            }
            _ => {}
        }
    }

    if hosts > 1 {
        return Err(Refusal::BadRequest("more than one Host field"));
    }
    if hosts == 0 && minor == 1 {
        return Err(Refusal::BadRequest("HTTP/1.1 request without Host"));
    }
    let host_field = match host_field {
        Some(v) => Some(host_of(v).map_err(|e| match std::str::from_utf8(v) {
            Err(_) => Refusal::BadRequest("invalid Host"),
            Ok(_) => e,
        })?),
        None => None,
    };
    let host = match authority {
        Some(a) => Some(host_of(a.as_bytes())?),
        None => host_field,
    };

    let body = match (te, cls) {
        (Some(_), _) if minor == 0 => return Err(Refusal::BadRequest("Transfer-Encoding in an HTTP/1.0 request")),
        (Some(_), n) if n > 0 => return Err(Refusal::BadRequest("both Content-Length and Transfer-Encoding")),
        (Some(_), _) if tes > 1 => return Err(Refusal::BadRequest("more than one Transfer-Encoding field")),
        (Some(v), _) => match head::transfer_coding(v) {
            Coding::Chunked => RequestBody::Chunked,
            Coding::ChunkedAfterOthers => return Err(Refusal::NotImplemented("transfer coding other than chunked")),
            Coding::NotChunked | Coding::Invalid => {
                return Err(Refusal::BadRequest("Transfer-Encoding that does not end in chunked"))
            }
        },
        (None, 0) => RequestBody::None,
        (None, _) => {
            let values = headers.iter().filter(|h| eq_lower(h.name.as_bytes(), b"content-length")).map(|h| h.value);
            match head::content_length(values).map_err(Refusal::BadRequest)? {
                Some(n) => RequestBody::Length(n),
                None => RequestBody::None,
            }
        }
    };
    if let (Some(max), RequestBody::Length(n)) = (limits.max_body_bytes, body) {
        if n > max {
            return Err(Refusal::BodyTooLarge);
        }
    }
    let has_body = matches!(body, RequestBody::Chunked) || matches!(body, RequestBody::Length(n) if n > 0);

    let expect_continue = match expect {
        Some(v) if minor == 1 => {
            if !head::list(v).all(|e| eq_lower(e, b"100-continue")) {
                return Err(Refusal::Expectation);
            }
            has_body
        }
        _ => false,
    };
    // Only WebSocket upgrades of bodiless GETs become tunnels; other upgrade offers (h2c, ...)
    // are dropped so a tunnel cannot carry requests past the rules.
    let upgrade = match upgrade {
        Some(v) if upgrade_token && minor == 1 && method == "GET" && !has_body => {
            head::list(v).next().filter(|p| eq_lower(p, b"websocket")).map(|_| v)
        }
        _ => None,
    };
    let keep_alive = if minor == 1 { !close } else { keep && !close };

    Ok(Some(ParsedRequest {
        method,
        target,
        minor,
        headers,
        raw: &buf[..head_len],
        head_len,
        body,
        host,
        path,
        query,
        keep_alive,
        upgrade,
        expect_continue,
        connection_names,
    }))
}

/// The refusal for a head past the limit: 414 when its request line alone is (no line end
/// within the limit), 431 otherwise.
pub(crate) fn too_large(buf: &[u8], limit: usize) -> Refusal {
    match buf.iter().position(|&b| b == b'\n') {
        Some(end) if end <= limit => Refusal::HeadTooLarge,
        _ => Refusal::UriTooLong,
    }
}

/// The request line said a version httparse does not know: 505 for a well-formed
/// `HTTP/x.y` other than 1.0/1.1, 400 for anything else.
fn version_error(buf: &[u8]) -> Refusal {
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    match parts.as_slice() {
        [_, _, [b'H', b'T', b'T', b'P', b'/', a, b'.', b]] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Refusal::Version
        }
        [_, _, [b'H', b'T', b'T', b'P', b'/', a]] if a.is_ascii_digit() => Refusal::Version,
        _ => Refusal::BadRequest("invalid request line"),
    }
}

/// A reason for a head httparse refused, naming the common smuggling tricks.
fn malformed(buf: &[u8]) -> Refusal {
    if head::check_partial(buf).is_err() {
        return Refusal::BadRequest("bare LF, bare CR or control character in head");
    }
    if buf.windows(3).any(|w| w == b"\r\n " || w == b"\r\n\t") {
        return Refusal::BadRequest("obsolete line folding");
    }
    Refusal::BadRequest("malformed head")
}

/// Authority (absolute-form only), path and query of a request target.
fn split_target<'a>(method: &str, target: &'a str) -> Result<(Option<&'a str>, &'a str, Option<&'a str>), Refusal> {
    if target.contains('#') {
        return Err(Refusal::BadRequest("fragment in request target"));
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok((None, "*", None))
        } else {
            Err(Refusal::BadRequest("asterisk-form target with a method other than OPTIONS"))
        };
    }
    let split_query = |pq: &'a str| match pq.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (pq, None),
    };
    if target.starts_with('/') {
        let (p, q) = split_query(target);
        return Ok((None, p, q));
    }
    // On bytes: the target may hold non-ASCII (UTF-8) bytes, and a str slice inside one panics.
    let lower_starts = |p: &str| target.as_bytes().get(..p.len()).is_some_and(|t| t.eq_ignore_ascii_case(p.as_bytes()));
    let rest = if lower_starts("http://") {
        &target[7..]
    } else if lower_starts("https://") {
        &target[8..]
    } else {
        return Err(Refusal::BadRequest("request target is neither origin-form nor absolute-form"));
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, pq) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err(Refusal::BadRequest("invalid authority in request target"));
    }
    let (p, q) = split_query(pq);
    Ok((Some(authority), if p.is_empty() { "/" } else { p }, q))
}

/// Bytes of a host that is not an IPv6 literal (letters, digits, unreserved, sub-delims and
/// `%`), as a table.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let extra = b"-._~!$&'()*+,;=%";
    let mut i = 0;
    while i < 256 {
        table[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

/// The host of an authority (`host`, `host:port`, `[v6]:port`), checked, port removed.
fn host_of(authority: &[u8]) -> Result<&str, Refusal> {
    let bad = Refusal::BadRequest("invalid host");
    let (host, port) = if authority.first() == Some(&b'[') {
        let end = authority.iter().position(|b| *b == b']').ok_or(bad)?;
        let literal = &authority[1..end];
        if literal.is_empty() || !literal.iter().all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.') {
            return Err(bad);
        }
        authority.split_at(end + 1)
    } else {
        let (host, port) = match authority.iter().rposition(|b| *b == b':') {
            Some(i) => authority.split_at(i),
            None => (authority, &b""[..]),
        };
        if !host.iter().all(|b| REG_NAME[usize::from(*b)]) {
            return Err(bad);
        }
        (host, port)
    };
    if !port.is_empty() {
        let digits = port.strip_prefix(b":").ok_or(bad)?;
        if digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad);
        }
    }
    // ASCII only, by the checks above.
    std::str::from_utf8(host).map_err(|_| bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(raw: &[u8]) -> Result<Option<(RequestBody, bool, Option<String>)>, Refusal> {
        let mut h = [MaybeUninit::uninit(); 128];
        let limits = Limits { max_body_bytes: Some(1_000_000), ..Limits::default() };
        parse(raw, &mut h, &limits).map(|o| o.map(|p| (p.body, p.keep_alive, p.host.map(str::to_string))))
    }

    fn status(raw: &[u8]) -> u16 {
        match run(raw) {
            Ok(Some(_)) => 200,
            Ok(None) => 0,
            Err(r) => r.status(),
        }
    }

    #[test]
    fn plain_requests() {
        assert_eq!(
            run(b"GET /a?b HTTP/1.1\r\nHost: Example.com:8080\r\n\r\n").unwrap().unwrap(),
            (RequestBody::None, true, Some("Example.com".into()))
        );
        assert_eq!(run(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap(), (RequestBody::None, false, None));
        assert!(run(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap().unwrap().1);
        assert!(!run(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap().unwrap().1);
        assert_eq!(run(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap(), None);
        let abs = run(b"GET http://b.example:81/x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().unwrap();
        assert_eq!(abs.2.as_deref(), Some("b.example"));
        let v6 = run(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n").unwrap().unwrap();
        assert_eq!(v6.2.as_deref(), Some("[::1]"));
        assert_eq!(status(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
    }

    #[test]
    fn framing() {
        assert_eq!(
            run(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").unwrap().unwrap().0,
            RequestBody::Length(5)
        );
        assert_eq!(
            run(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap().unwrap().0,
            RequestBody::Chunked
        );
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), 200);
    }

    #[test]
    fn smuggling_vectors_are_refused() {
        let cases: &[(&[u8], u16)] = &[
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400),
            (b"GET / HTTP/1.1\nHost: a\n\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400),
            (b"GET /#x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            (b"GET / FOO\r\nHost: a\r\n\r\n", 400),
            (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\n", 417),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n", 400),
        ];
        for (raw, want) in cases {
            assert_eq!(status(raw), *want, "{}", String::from_utf8_lossy(raw).escape_debug());
        }
    }

    #[test]
    fn a_request_line_past_the_limit_is_414() {
        let mut raw = b"GET /".to_vec();
        raw.extend_from_slice(&[b'a'; 20_000]);
        assert_eq!(status(&raw), 414, "no line end yet");
        raw.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(status(&raw), 414, "whole");
        assert!(Refusal::UriTooLong.response().starts_with(b"HTTP/1.1 414 URI Too Long\r\n"));
    }

    #[test]
    fn oversize_head_is_431() {
        let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
        raw.extend_from_slice(&[b'a'; 20_000]);
        assert_eq!(status(&raw), 431);
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(status(&raw), 431);
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..110 {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status(&many), 431);
    }

    #[test]
    fn upgrades_and_expect() {
        let mut h = [MaybeUninit::uninit(); 32];
        let raw = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
        let p = parse(raw, &mut h, &Limits::default()).unwrap().unwrap();
        assert_eq!(p.upgrade, Some(&b"websocket"[..]));
        let mut h = [MaybeUninit::uninit(); 32];
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
        assert_eq!(parse(raw, &mut h, &Limits::default()).unwrap().unwrap().upgrade, None);
        let mut h = [MaybeUninit::uninit(); 32];
        let raw = b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        assert!(parse(raw, &mut h, &Limits::default()).unwrap().unwrap().expect_continue);
    }
}
