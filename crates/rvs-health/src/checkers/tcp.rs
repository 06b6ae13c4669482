//! The TCP check (keepalived's `TCP_CHECK`): the real server is up when a connection to it is
//! accepted within the timeout.

use std::net::SocketAddr;

use super::{connect, Deadline, Success, Verdict};

pub(crate) async fn check(addr: SocketAddr, dl: &Deadline) -> Verdict {
    let stream = connect(addr, dl).await?;
    drop(stream);
    Ok(Success::up("connected"))
}
