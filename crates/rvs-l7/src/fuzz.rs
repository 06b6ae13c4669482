//! Entry points for fuzzing the parsers without sockets: what the proxy would forward for a
//! client's bytes (or why it refuses them), how far the chunked validator takes a body, what
//! a real server's response head becomes towards the client, and the HTTP/2 stream's heads
//! converted to HTTP/1.1 and back. Used by the property tests and the cargo-fuzz targets.

use std::net::{IpAddr, Ipv4Addr};

use crate::chunked::Chunked;
use crate::http2;
use crate::refusal::Refusal;
use crate::request::{self, RequestBody};
use crate::response::{self, ResponseBody};
use crate::rewrite::{self, ClientSide, Forwarding};
use rvs_model::http::{ForwardedHeaders, Limits, MAX_HEADERS};

/// How a forwarded request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A request the proxy accepted, as it would go to a real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The head written towards the real server.
    pub head: Vec<u8>,
    /// Bytes of the client's input the head took.
    pub consumed: usize,
    pub framing: Framing,
    pub keep_alive: bool,
}

/// Parses the request at the start of `input` as a client connection would, and returns what
/// would be forwarded. `Ok(None)`: more bytes are needed.
pub fn forward_request(input: &[u8], limits: &Limits) -> Result<Option<Forwarded>, Refusal> {
    let mut headers = [std::mem::MaybeUninit::uninit(); MAX_HEADERS];
    let Some(p) = request::parse(input, &mut headers, limits)? else { return Ok(None) };
    let fwd = Forwarding::new(ForwardedHeaders::default(), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), false);
    let mut head = Vec::new();
    rewrite::request_head(&p, &fwd, &mut head);
    let framing = match p.body {
        RequestBody::None => Framing::None,
        RequestBody::Length(n) => Framing::Length(n),
        RequestBody::Chunked => Framing::Chunked,
    };
    Ok(Some(Forwarded { head, consumed: p.head_len, framing, keep_alive: p.keep_alive }))
}

/// Runs the chunked validator over `input`: `Ok((bytes of the body, complete))`.
pub fn chunked_body(input: &[u8]) -> Result<(usize, bool), &'static str> {
    let mut c = Chunked::default();
    let n = c.feed(input).map_err(|e| e.0)?;
    Ok((n, c.is_done()))
}

/// Like [`chunked_body`], but the input arrives in two reads split at `at` (clamped), as it
/// would from a socket: the streaming validator must answer as it does for the whole.
pub fn chunked_body_split(input: &[u8], at: usize) -> Result<(usize, bool), &'static str> {
    let (a, b) = input.split_at(at.min(input.len()));
    let mut c = Chunked::default();
    let mut n = c.feed(a).map_err(|e| e.0)?;
    if !c.is_done() {
        n += c.feed(b).map_err(|e| e.0)?;
    }
    Ok((n, c.is_done()))
}

/// How a response body is delimited (towards the client, or from the real server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    None,
    Length(u64),
    Chunked,
    /// Until the real server closes.
    UntilClose,
}

impl From<ResponseBody> for ResponseFraming {
    fn from(b: ResponseBody) -> Self {
        match b {
            ResponseBody::None => ResponseFraming::None,
            ResponseBody::Length(n) => ResponseFraming::Length(n),
            ResponseBody::Chunked => ResponseFraming::Chunked,
            ResponseBody::UntilClose => ResponseFraming::UntilClose,
        }
    }
}

/// A real server's response head the proxy accepted, and what goes to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedResponse {
    pub code: u16,
    /// The head written towards the client.
    pub head: Vec<u8>,
    /// Bytes of the real server's input the head took.
    pub consumed: usize,
    pub framing: ResponseFraming,
    /// The real server's connection can take another request.
    pub reusable: bool,
    /// An interim (1xx but 101) response: the final one follows.
    pub interim: bool,
    pub upgrade: bool,
}

/// Parses the response head at the start of `input` as the proxy reads a real server's
/// answer (`max` bounds the head), and rewrites it for a client of HTTP/1.`client_minor`
/// whose connection closes after it (`close`). `Ok(None)`: more bytes are needed.
pub fn forward_response(
    input: &[u8],
    request_is_head: bool,
    max: usize,
    client_minor: u8,
    close: bool,
) -> Result<Option<ForwardedResponse>, &'static str> {
    let mut headers = [std::mem::MaybeUninit::uninit(); MAX_HEADERS];
    let Some(r) = response::parse(input, &mut headers, request_is_head, max)? else { return Ok(None) };
    let mut head = Vec::new();
    rewrite::response_head(&r, ClientSide { minor: client_minor, close }, None, &mut head);
    Ok(Some(ForwardedResponse {
        code: r.code,
        head,
        consumed: r.head_len,
        framing: r.body.into(),
        reusable: r.reusable,
        interim: r.is_interim(),
        upgrade: r.upgrade.is_some(),
    }))
}

/// The HTTP/1.1 head an HTTP/2 stream becomes, for a request the h2 crate would hand over
/// (`None` when the http crate refuses its method, URI or a field, as h2 would); `end`: the
/// request has no body (END_STREAM on its HEADERS).
pub fn h2_request_head(method: &[u8], uri: &[u8], fields: &[(&[u8], &[u8])], end: bool) -> Option<Vec<u8>> {
    let mut req = http::Request::builder().method(method).uri(uri);
    for (name, value) in fields {
        req = req.header(*name, *value);
    }
    let (parts, ()) = req.body(()).ok()?.into_parts();
    Some(http2::stream_request_head(&parts, end).0)
}

/// A session's response head as an HTTP/2 stream sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Response {
    pub status: u16,
    /// The fields sent on the stream, names lowercase.
    pub fields: Vec<(String, Vec<u8>)>,
    pub framing: ResponseFraming,
    /// Bytes of the session's output the head took.
    pub consumed: usize,
    pub interim: bool,
}

/// Parses the HTTP/1.1 response head at the start of `input` as an HTTP/2 stream reads its
/// session's answer (`Ok(None)`: incomplete).
pub fn h2_response_head(input: &[u8], request_is_head: bool) -> Result<Option<H2Response>, String> {
    let Some((resp, framing, consumed, interim)) =
        http2::parse_head(input, request_is_head).map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let fields = resp.headers().iter().map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec())).collect();
    let framing = match framing {
        http2::Framing::None => ResponseFraming::None,
        http2::Framing::Length(n) => ResponseFraming::Length(n),
        http2::Framing::Chunked => ResponseFraming::Chunked,
        http2::Framing::UntilClose => ResponseFraming::UntilClose,
    };
    Ok(Some(H2Response { status: resp.status().as_u16(), fields, framing, consumed, interim }))
}
