//! FTP data connections through the full-NAT proxy: the listener the director opens for one
//! data connection a control line announced, and the relay of that connection once both its
//! sides are up. Passive mode (`227`/`229` from the real server): the director listens on the
//! address the client reached it on, and connects to the address the real server announced.
//! Active mode (`PORT`/`EPRT` from the client): the director listens on its own address facing
//! the real server, and connects to the client's port. A data connection goes to the control
//! connection's real server, never scheduled; it is a connection of the service (counted in
//! its statistics and listed with `-L -c`), and keeps the control connection from idling out
//! while it moves bytes (as IPVS's controlled connections do). Once both its sides are up it
//! is handed to an event loop, which relays it as any other connection (copied, spliced in
//! bulk, or linked into the kernel relay).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rvs_core::{ConnState, Protocol, RealServer, ServiceAddr, VirtualService};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::AbortHandle;
use tracing::debug;

use crate::conn_table::ConnEntry;
use crate::engine::Engine;
use crate::event_loop::Related;

/// How long a data listener waits for its connection before it closes.
pub(crate) const DATA_WAIT: Duration = Duration::from_secs(30);
/// Data listeners one control connection holds at once; a new one closes the oldest (a new
/// `PASV` or `PORT` replaces the previous one for the FTP server too).
pub(crate) const MAX_PENDING: usize = 2;

/// Which side opens the data connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The client connects to the director, which connects to the real server.
    Passive,
    /// The real server connects to the director, which connects to the client.
    Active,
}

/// What a data connection of one control connection needs to know.
#[derive(Clone)]
pub(crate) struct Control {
    pub engine: Arc<Engine>,
    pub key: ServiceAddr,
    pub service: Arc<VirtualService>,
    pub dest: Arc<RealServer>,
    pub entry: Arc<ConnEntry>,
    /// The client's address on the control connection.
    pub client: SocketAddr,
    /// The director's address the client reached (the VIP).
    pub client_local: SocketAddr,
    /// The real server's address on the control connection.
    pub server: SocketAddr,
    /// The director's address facing the real server.
    pub server_local: SocketAddr,
}

/// The data listeners a control connection holds; closed when it ends.
#[derive(Default)]
pub(crate) struct Pending {
    tasks: Vec<AbortHandle>,
}

impl Pending {
    fn add(&mut self, task: AbortHandle) {
        self.tasks.retain(|t| !t.is_finished());
        if self.tasks.len() >= MAX_PENDING {
            self.tasks.remove(0).abort();
        }
        self.tasks.push(task);
    }
}

impl Drop for Pending {
    /// Listeners still waiting close; data connections already relaying go on.
    fn drop(&mut self) {
        self.tasks.iter().for_each(AbortHandle::abort);
    }
}

/// Opens a listener for one data connection whose other end is `target` (passive: the real
/// server's announced address; active: the client's), and returns the address to announce in
/// its place. The connection is awaited and relayed by a task of its own.
pub(crate) async fn open(
    ctl: &Control,
    mode: Mode,
    target: SocketAddr,
    pending: &mut Pending,
) -> io::Result<SocketAddr> {
    let local_ip = match mode {
        Mode::Passive => ctl.client_local.ip(),
        Mode::Active => ctl.server_local.ip(),
    };
    let listener = TcpListener::bind(SocketAddr::new(local_ip, 0)).await?;
    let announced = listener.local_addr()?;
    let ctl2 = ctl.clone();
    let task = tokio::spawn(async move {
        match tokio::time::timeout(DATA_WAIT, accept_from(&listener, &ctl2, mode)).await {
            Ok(Ok(accepted)) => {
                drop(listener);
                tokio::spawn(connect_and_relay(ctl2, mode, accepted, target));
            }
            Ok(Err(e)) => debug!(service = %ctl2.key, error = %e, "FTP data listener failed"),
            Err(_) => debug!(service = %ctl2.key, listener = %announced, "FTP data listener unused: closed"),
        }
    });
    pending.add(task.abort_handle());
    Ok(announced)
}

/// The expected peer's connection: the control connection's client (passive) or real server
/// (active); connections from other addresses are closed at once.
async fn accept_from(listener: &TcpListener, ctl: &Control, mode: Mode) -> io::Result<(TcpStream, SocketAddr)> {
    let expected: IpAddr = match mode {
        Mode::Passive => ctl.client.ip(),
        Mode::Active => ctl.server.ip(),
    };
    loop {
        let (sock, peer) = listener.accept().await?;
        if peer.ip() == expected {
            return Ok((sock, peer));
        }
        debug!(service = %ctl.key, peer = %peer, expected = %expected, "FTP data connection from an unexpected address: closed");
    }
}

/// The other side's connect (with the engine's connect timeout), then the relay.
async fn connect_and_relay(ctl: Control, mode: Mode, accepted: (TcpStream, SocketAddr), target: SocketAddr) {
    let engine = &ctl.engine;
    let (sock, peer) = accepted;
    let from = match mode {
        Mode::Passive => ctl.server_local.ip(),
        Mode::Active => ctl.client_local.ip(),
    };
    let other = match tokio::time::timeout(engine.connect_timeout(), connect_from(from, target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return debug!(service = %ctl.key, target = %target, error = %e, "FTP data connect failed"),
        Err(_) => return debug!(service = %ctl.key, target = %target, "FTP data connect timed out"),
    };
    let (client_side, server_side) = match mode {
        Mode::Passive => (sock, other),
        Mode::Active => (other, sock),
    };
    let (client_addr, virtual_addr) = match mode {
        Mode::Passive => (peer, client_side.local_addr().unwrap_or(ctl.client_local)),
        Mode::Active => (target, client_side.local_addr().unwrap_or(ctl.client_local)),
    };
    let now = engine.clock.now_ms();
    let entry = engine.conns.enter(Protocol::Tcp, client_addr, virtual_addr, now);
    if engine.stopped() {
        engine.conns.remove(entry.id);
        return;
    }
    entry.set_dest(Some(ctl.dest.clone()));
    entry.set_state(ConnState::Established);
    let binding = ctl.service.related(ctl.dest.clone(), now);
    binding.established();
    debug!(service = %ctl.key, client = %client_addr, dest = %target, ?mode, "FTP data connection");
    let _ = client_side.set_nodelay(true);
    let _ = server_side.set_nodelay(true);
    match (client_side.into_std(), server_side.into_std()) {
        (Ok(client), Ok(server)) => {
            engine.relay_related(Related { key: ctl.key, entry, control: ctl.entry.clone(), client, server, binding });
        }
        (Err(e), _) | (_, Err(e)) => {
            debug!(service = %ctl.key, error = %e, "FTP data connection: cannot hand it to an event loop");
            binding.finish(engine.clock.now_ms());
            engine.conns.remove(entry.id);
        }
    }
}

async fn connect_from(ip: IpAddr, target: SocketAddr) -> io::Result<TcpStream> {
    let sock = if target.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // The source the FTP server expects (vsftpd refuses a data connection from another
    // address than its control connection's), when the families agree.
    if ip.is_ipv4() == target.is_ipv4() {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    sock.connect(target).await
}
