//! The listening sockets of a data plane, one per virtual service (a TCP listener, or the UDP
//! socket of a UDP service): bound before a change is applied (so an address that cannot be
//! bound refuses the change), started when the change is published, closed when its service goes.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rvs_core::ServiceAddr;
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// A listener refused: the virtual service's address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {key}: {source}")]
pub struct ListenError {
    pub key: ServiceAddr,
    #[source]
    pub source: io::Error,
}

/// A listening socket for a virtual service, non-blocking: `SO_REUSEADDR` and the relay's TCP
/// options (which accepted connections inherit: [`crate::tcp_options`]), bound to `addr`, with
/// `backlog`. For an engine's own event loop; [`bind_listener`] is the same for tokio.
pub fn bind_std_listener(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking().cloexec(), Some(SockProtocol::TCP))?;
    socket.set_reuse_address(true)?;
    // Accepted connections inherit the options from the listener: no setsockopt per connection.
    crate::tcp_options::apply(&socket)?;
    freebind(&socket, addr)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// [`bind_std_listener`] registered with tokio (within a runtime).
pub fn bind_listener(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    TcpListener::from_std(bind_std_listener(addr, backlog)?)
}

/// A socket a virtual service receives on.
pub trait Bind: Sized + AsFd {
    fn bind(addr: SocketAddr, backlog: u32) -> io::Result<Self>;
    /// The same socket from a descriptor handed over by the previous rvsd (already bound and
    /// listening).
    fn from_fd(fd: OwnedFd) -> io::Result<Self>;
}

impl Bind for TcpListener {
    fn bind(addr: SocketAddr, backlog: u32) -> io::Result<Self> {
        bind_listener(addr, backlog)
    }
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        TcpListener::from_std(std::net::TcpListener::from_fd(fd)?)
    }
}

impl Bind for std::net::TcpListener {
    fn bind(addr: SocketAddr, backlog: u32) -> io::Result<Self> {
        bind_std_listener(addr, backlog)
    }
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        let l = std::net::TcpListener::from(fd);
        l.set_nonblocking(true)?;
        Ok(l)
    }
}

impl Bind for UdpSocket {
    /// The UDP socket of a UDP service (`backlog` does not apply).
    fn bind(addr: SocketAddr, _backlog: u32) -> io::Result<Self> {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM.nonblocking().cloexec(), Some(SockProtocol::UDP))?;
        freebind(&s, addr)?;
        s.bind(&addr.into())?;
        UdpSocket::from_std(s.into())
    }
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        let s = std::net::UdpSocket::from(fd);
        s.set_nonblocking(true)?;
        UdpSocket::from_std(s)
    }
}

/// `IP_FREEBIND` / `IPV6_FREEBIND`: a virtual address binds whether or not it is on an
/// interface yet, so a VRRP backup listens on the addresses its master holds and a takeover
/// needs no rebind.
fn freebind(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    match addr {
        SocketAddr::V4(_) => socket.set_freebind_v4(true),
        SocketAddr::V6(_) => socket.set_freebind_v6(true),
    }
}

#[derive(Debug)]
struct Slot<L> {
    stop: CancellationToken,
    /// Bound but not yet accepting (between `adopt` and `retain`).
    pending: Option<L>,
}

/// A listener to start accepting on, and the token that stops it.
pub type Started<L = TcpListener> = (ServiceAddr, L, CancellationToken);

#[derive(Debug)]
pub struct ListenerSet<L = TcpListener> {
    backlog: u32,
    slots: Mutex<HashMap<ServiceAddr, Slot<L>>>,
    /// Services whose listener was just stopped, and when: its accept task closes it a moment
    /// later, so binding the same address again at once (`ipvsadm -C` then `-R`) waits for that.
    retiring: Mutex<HashMap<ServiceAddr, Instant>>,
}

/// How long a stopped listener may take to close before its address is bound again.
const RETIRE_WAIT: Duration = Duration::from_secs(1);

impl<L: Bind> ListenerSet<L> {
    pub fn new(backlog: u32) -> Self {
        Self { backlog, slots: Mutex::default(), retiring: Mutex::default() }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<ServiceAddr, Slot<L>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds listeners for the services in `keys` that have none yet, and hands them back
    /// without keeping them: a change prepares its listeners with this, and [`Self::adopt`]s
    /// them when it is published (dropped, they close). All or nothing.
    pub fn bind_missing(
        &self,
        keys: impl IntoIterator<Item = ServiceAddr>,
    ) -> Result<Vec<(ServiceAddr, L)>, ListenError> {
        let slots = self.slots();
        let mut fresh: Vec<(ServiceAddr, L)> = Vec::new();
        for key in keys {
            if slots.contains_key(&key) || fresh.iter().any(|(k, _)| *k == key) {
                continue;
            }
            // The previous rvsd's socket, when it handed one over: its accept queue goes on.
            let socket = match crate::handover::take(&key) {
                Some(fd) => L::from_fd(fd),
                None => self.bind_after_retired(key),
            };
            match socket {
                Ok(l) => fresh.push((key, l)),
                Err(source) => return Err(ListenError { key, source }),
            }
        }
        Ok(fresh)
    }

    /// Binds `key`'s address; if a listener of this set for it was stopped a moment ago and
    /// still holds it (its task has not closed it yet), retries until it is gone.
    fn bind_after_retired(&self, key: ServiceAddr) -> io::Result<L> {
        let stopped = {
            let mut retiring = self.retiring.lock().unwrap_or_else(|e| e.into_inner());
            retiring.retain(|_, at| at.elapsed() < RETIRE_WAIT);
            retiring.get(&key).copied()
        };
        loop {
            match L::bind(key.addr, self.backlog) {
                Err(e)
                    if e.kind() == io::ErrorKind::AddrInUse && stopped.is_some_and(|at| at.elapsed() < RETIRE_WAIT) =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                r => return r,
            }
        }
    }

    /// Keeps listeners bound by [`Self::bind_missing`]; they start with the next [`Self::retain`].
    pub fn adopt(&self, bound: Vec<(ServiceAddr, L)>) {
        let mut slots = self.slots();
        for (key, l) in bound {
            if slots.contains_key(&key) {
                continue;
            }
            if let Err(e) = crate::handover::hold(key, &l) {
                tracing::warn!(service = %key, error = %e, "cannot keep the listener for a binary upgrade");
            }
            slots.insert(key, Slot { stop: CancellationToken::new(), pending: Some(l) });
        }
    }

    /// Keeps the listeners of `keys` only (the others close: `what` names them in the log),
    /// and hands back the bound ones that should start accepting now.
    pub fn retain(&self, keys: &[ServiceAddr], what: &str) -> Vec<Started<L>> {
        let mut slots = self.slots();
        let mut retiring = self.retiring.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|key, slot| {
            let keep = keys.contains(key);
            if !keep {
                info!(service = %key, "{what} removed: listener closed");
                crate::handover::release(key);
                slot.stop.cancel();
                retiring.insert(*key, Instant::now());
            }
            keep
        });
        drop(retiring);
        slots.iter_mut().filter_map(|(key, slot)| slot.pending.take().map(|l| (*key, l, slot.stop.clone()))).collect()
    }

    /// Stops accepting everywhere (shutdown).
    pub fn stop_all(&self) {
        self.slots().iter().for_each(|(key, s)| {
            crate::handover::release(key);
            s.stop.cancel();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A virtual address that is on no interface (a VRRP backup's) binds, TCP and UDP.
    #[tokio::test]
    async fn binds_an_address_not_on_any_interface() {
        let addr: SocketAddr = "198.19.255.77:0".parse().unwrap();
        let tcp = bind_std_listener(addr, 16).expect("TCP with IP_FREEBIND");
        assert_eq!(tcp.local_addr().unwrap().ip(), addr.ip());
        let udp = <UdpSocket as Bind>::bind(addr, 0).expect("UDP with IP_FREEBIND");
        assert_eq!(udp.local_addr().unwrap().ip(), addr.ip());
        let v6: SocketAddr = "[2001:db8:ffff::77]:0".parse().unwrap();
        if std::net::UdpSocket::bind("[::1]:0").is_ok() {
            assert!(bind_std_listener(v6, 16).is_ok(), "IPv6 with IPV6_FREEBIND");
        }
    }
}
