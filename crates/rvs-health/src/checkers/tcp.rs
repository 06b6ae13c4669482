//! The TCP check (keepalived's `TCP_CHECK`): the real server is up when a connection to it is
//! accepted within the timeout.

use super::{connect, Deadline, Endpoint, Success, Verdict};

pub(crate) async fn check(to: Endpoint, dl: &Deadline) -> Verdict {
    let stream = connect(&to, dl).await?;
    drop(stream);
    Ok(Success::up("connected"))
}
