//! systemd's readiness protocol (`sd_notify(3)`): one datagram per state change to the unix
//! socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). Without
//! that variable (not started by systemd with `Type=notify`) every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The states rvsd reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Started: the configuration is applied and the API answers.
    Ready,
    /// A reload (SIGHUP) has begun; `Ready` follows when it is done, refused or not.
    Reloading,
    /// Shutting down: listeners close, connections drain.
    Stopping,
}

impl State {
    /// The message's text.
    pub fn message(self) -> String {
        match self {
            State::Ready => "READY=1\nSTATUS=running".to_string(),
            // Type=notify takes RELOADING=1 alone (only Type=notify-reload wants MONOTONIC_USEC).
            State::Reloading => "RELOADING=1\nSTATUS=reloading".to_string(),
            State::Stopping => "STOPPING=1\nSTATUS=draining connections".to_string(),
        }
    }
}

/// The socket's address from `$NOTIFY_SOCKET`, if it is set.
fn address() -> Option<std::io::Result<SocketAddr>> {
    let name = std::env::var_os("NOTIFY_SOCKET")?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str());
    Some(match bytes.strip_prefix(b"@") {
        Some(abstract_name) => <SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(abstract_name),
        None => SocketAddr::from_pathname(std::path::Path::new(&name)),
    })
}

/// Tells systemd about `state`. Failures are logged, never fatal: rvsd runs the same without a
/// supervisor listening.
pub fn notify(state: State) {
    let Some(addr) = address() else { return };
    let sent = addr.and_then(|addr| {
        let socket = UnixDatagram::unbound()?;
        socket.send_to_addr(state.message().as_bytes(), &addr)
    });
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot notify systemd ($NOTIFY_SOCKET) of {state:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_systemds_keys() {
        assert!(State::Ready.message().starts_with("READY=1\n"));
        assert!(State::Stopping.message().starts_with("STOPPING=1\n"));
        assert!(State::Reloading.message().starts_with("RELOADING=1\n"));
    }
}
