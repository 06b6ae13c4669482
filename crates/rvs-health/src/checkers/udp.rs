//! The UDP check: send a datagram from a connected socket. With a reply required, the server is
//! up when a reply (matching `expect`, if set) comes in time; without, it is down only when an
//! ICMP port unreachable comes back (ECONNREFUSED on the connected socket) within the timeout.

use std::io;

use super::{excerpt, io_reason, udp_connect, Deadline, Endpoint, Failure, Success, Verdict};
use crate::result::human_duration;
use rvs_core::pattern::Pattern;

pub(crate) async fn check(
    payload: &[u8],
    expect: Option<&Pattern>,
    reply_required: bool,
    to: Endpoint,
    dl: &Deadline,
) -> Verdict {
    let sock = dl.io("opening a UDP socket", udp_connect(&to)).await?;
    let refused = || Failure::new("port unreachable (ICMP)");
    match dl.run("sending", sock.send(payload)).await? {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Err(refused()),
        Err(e) => return Err(Failure(io_reason(&e))),
    }
    let mut buf = vec![0u8; 65_536];
    let reply = match tokio::time::timeout_at(dl.at, sock.recv(&mut buf)).await {
        Err(_) if reply_required => {
            return Err(Failure(format!("no reply within {}", human_duration(dl.timeout))));
        }
        Err(_) => {
            return Ok(Success::up(format!("no port unreachable within {}", human_duration(dl.timeout))));
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => return Err(refused()),
        Ok(Err(e)) => return Err(Failure(io_reason(&e))),
        Ok(Ok(n)) => &buf[..n],
    };
    match expect {
        Some(re) if !re.is_match(reply) => {
            Err(Failure(format!("reply does not match /{re}/ (got \"{}\")", excerpt(reply, 60))))
        }
        Some(re) => Ok(Success::up(format!("reply matches /{re}/"))),
        None => Ok(Success::up(format!("reply of {} bytes", reply.len()))),
    }
}
