//! Entry points for fuzzing the parsers without sockets: what the proxy would forward for a
//! client's bytes (or why it refuses them), and how far the chunked validator takes a body.
//! Used by the property tests; a cargo-fuzz target can call the same functions.

use std::net::{IpAddr, Ipv4Addr};

use crate::chunked::Chunked;
use crate::refusal::Refusal;
use crate::request::{self, RequestBody};
use crate::rewrite::{self, Forwarding};
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
