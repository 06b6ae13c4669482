//! The send/expect check (ldirectord's `negotiate`, the nanny's send/expect): connect, send a
//! string if one is set, and read until what was received matches the expected regex.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{connect, excerpt, io_reason, Deadline, Endpoint, Failure, Success, Verdict};
use rvs_core::pattern::Pattern;

/// Most bytes read while waiting for a match.
const MAX_READ: usize = 64 * 1024;

pub(crate) async fn check(send: Option<&[u8]>, expect: &Pattern, to: Endpoint, dl: &Deadline) -> Verdict {
    let mut stream = connect(&to, dl).await?;
    if let Some(data) = send {
        dl.io("sending", stream.write_all(data)).await?;
    }
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout_at(dl.at, stream.read(&mut chunk)).await;
        let n = match read {
            Err(_) => {
                let what = format!("waiting for /{expect}/ (got \"{}\")", excerpt(&got, 60));
                return Err(dl.expired(&what));
            }
            Ok(Err(e)) => return Err(Failure(format!("{} before /{expect}/ matched", io_reason(&e)))),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            return Err(Failure(format!(
                "connection closed; response does not match /{expect}/ (got \"{}\")",
                excerpt(&got, 60)
            )));
        }
        got.extend_from_slice(&chunk[..n]);
        if let Some(verdict) = judge(expect, &got) {
            return verdict;
        }
    }
}

/// The verdict on what was received so far: `None` while it does not match and there is room
/// for more.
pub(crate) fn judge(expect: &Pattern, got: &[u8]) -> Option<Verdict> {
    if expect.is_match(got) {
        return Some(Ok(Success::up(format!("response matches /{expect}/"))));
    }
    if got.len() >= MAX_READ {
        return Some(Err(Failure(format!("no match for /{expect}/ in the first 64 KiB"))));
    }
    None
}
