//! Entry points for fuzzing the checkers' reply parsers without sockets: an HTTP response
//! (head and body) read as the HTTP check reads it, an agent's reply line, a DNS answer, and
//! the send/expect check's matching of what was received. Each answers as the check would.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rvs_core::pattern::Pattern;
use rvs_model::health::dns::QType;

use crate::checkers::{agent, dns, expect, http_response, Verdict};
use crate::health::{Health, WeightHint};

/// A check that found the server alive: what it sets, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alive {
    pub outcome: Health,
    pub weight: Option<WeightHint>,
    pub reason: String,
}

fn verdict(v: Verdict) -> Result<Alive, String> {
    v.map(|s| Alive { outcome: s.outcome, weight: s.weight, reason: s.reason }).map_err(|f| f.0)
}

/// An HTTP response as the HTTP check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    /// The body, at most `cap` bytes of it.
    pub body: Vec<u8>,
    /// The body was longer than `cap`.
    pub truncated: bool,
}

/// Reads `input` as the HTTP check reads a server's response to a GET (or HEAD), keeping at
/// most `cap` bytes of the body; the input arrives through a buffer of `buffer` bytes (at
/// least 1), as short reads from a socket would.
pub fn http_reply(input: &[u8], head_request: bool, buffer: usize, cap: usize) -> Result<HttpReply, String> {
    let mut r = tokio::io::BufReader::with_capacity(buffer.max(1), input);
    run(async {
        let head = http_response::read_head(&mut r, head_request).await?;
        let body = http_response::read_body(&mut r, head.framing, cap).await?;
        Ok(HttpReply { status: head.status, body: body.bytes, truncated: body.truncated })
    })
    .map_err(|f: crate::checkers::Failure| f.0)
}

/// Judges one agent reply line.
pub fn agent_reply(line: &[u8]) -> Result<Alive, String> {
    verdict(agent::parse(line))
}

/// Judges a DNS datagram as the answer to query `id` for `a.example A`; `None`: not an answer
/// to it (the check waits for another).
pub fn dns_reply(id: u16, datagram: &[u8]) -> Option<Result<Alive, String>> {
    dns::judge(id, datagram, "a.example", QType::A).map(verdict)
}

/// What the send/expect check makes of the bytes received so far: `None` while it waits for
/// more.
pub fn expect_reply(expect: &Pattern, received: &[u8]) -> Option<Result<Alive, String>> {
    expect::judge(expect, received).map(verdict)
}

/// Polls `fut` to its end: reading from a slice never waits, so one poll finishes it.
fn run<T>(fut: impl Future<Output = T>) -> T {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("reading from a slice never waits"),
    }
}
