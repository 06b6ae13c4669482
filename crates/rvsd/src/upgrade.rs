//! The binary upgrade (as HAProxy's `-x` and Envoy's hot restart): a new rvsd takes over the
//! listening sockets of the running one, so no client is refused while one binary replaces the
//! other.
//!
//! The running rvsd listens on an upgrade socket beside its API socket (`API.upgrade`, a unix
//! `SOCK_SEQPACKET` socket, mode 0600). The new one (`rvsd --upgrade-from API`) connects and
//! the two exchange JSON messages, one per packet:
//!
//! 1. new → old `{"op":"hello","version":1,"pid":N}`; the old may answer `{"op":"refused",
//!    "reason":...}` (another version, an upgrade already under way, stopping) and stays as it is.
//! 2. old → new `{"op":"manifest","version":1,"pid":N,"sockets":[{"kind":"tcp","address":...},
//!    {"kind":"udp",...},{"kind":"api-unix","path":...},{"kind":"api-tcp",...},
//!    {"kind":"upgrade","path":...}]}`, then `{"op":"fds","count":C}` packets carrying the
//!    descriptors in the manifest's order with `SCM_RIGHTS` (at most 250 a packet). The new one
//!    checks each descriptor against its entry (socket type, local address, listening) and
//!    gives up on any mismatch.
//! 3. new → old `{"op":"release-pins"}` when the new one runs the packet engine: the old stops
//!    scheduling new flows and unlocks the pin directory (the program stays attached, the maps
//!    pinned), answering `{"op":"pins-released"}`; the new one then takes the pins over.
//! 4. The new one binds what it was not handed, applies its configuration on the handed sockets
//!    and accepts on them (both accept for a moment: the same sockets, one accept queue), then
//!    sends `{"op":"ready","pid":N}`. The old answers `{"op":"stopping"}`, stops accepting
//!    (its copies of the sockets close, the new one's stay), drains its connections as on
//!    SIGTERM and exits.
//!
//! Until `ready`, the old rvsd serves as before: a new one that dies or hangs up earlier
//! changes nothing (but after `release-pins`, the old one's packet engine no longer schedules
//! new flows).

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};
use rvs_core::{Protocol, ServiceAddr};
use serde::{Deserialize, Serialize};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

/// The version of the handshake this rvsd speaks.
pub const VERSION: u32 = 1;
/// Descriptors per packet (the kernel takes at most 253).
const FDS_PER_PACKET: usize = 250;
/// The largest packet read.
const MAX_PACKET: usize = 1 << 20;
/// How long either side waits for the other's next message (the new one applies its whole
/// configuration between the manifest and `ready`).
const PATIENCE: Duration = Duration::from_secs(120);

/// The upgrade socket of the rvsd whose API socket is `api` (`API.upgrade`).
pub fn socket_path(api: &Path) -> PathBuf {
    let mut s = api.as_os_str().to_owned();
    s.push(".upgrade");
    s.into()
}

/// One handed-over socket, as the manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Entry {
    /// A TCP listener of an L4 or http virtual service.
    Tcp { address: SocketAddr },
    /// The socket of a UDP virtual service.
    Udp { address: SocketAddr },
    /// The control API's unix socket.
    ApiUnix { path: PathBuf },
    /// The control API's TCP listener.
    ApiTcp { address: SocketAddr },
    /// The upgrade socket itself.
    Upgrade { path: PathBuf },
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::Tcp { address } => write!(f, "tcp {address}"),
            Entry::Udp { address } => write!(f, "udp {address}"),
            Entry::ApiUnix { path } => write!(f, "API socket {}", path.display()),
            Entry::ApiTcp { address } => write!(f, "API on tcp {address}"),
            Entry::Upgrade { path } => write!(f, "upgrade socket {}", path.display()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Message {
    Hello { version: u32, pid: u32 },
    Refused { reason: String },
    Manifest { version: u32, pid: u32, sockets: Vec<Entry> },
    Fds { count: usize },
    ReleasePins,
    PinsReleased,
    Ready { pid: u32 },
    Stopping { pid: u32 },
}

/// Why an upgrade did not happen; the running rvsd goes on unharmed.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("no rvsd takes upgrades at {path}: {source} (is an rvsd running with this API socket?)")]
    Connect { path: PathBuf, source: io::Error },
    #[error("the running rvsd refused the upgrade: {0}")]
    Refused(String),
    #[error("the running rvsd's manifest does not match the sockets it passed: {0}")]
    Mismatch(String),
    #[error("unexpected message from the other rvsd: {0}")]
    Protocol(String),
    #[error("the upgrade connection: {0}")]
    Io(#[from] io::Error),
}

fn send(sock: &Socket, msg: &Message, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len().max(1)))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one packet"));
    }
    let n = rustix::net::sendmsg(sock, &[IoSlice::new(&bytes)], &mut control, SendFlags::NOSIGNAL)?;
    if n != bytes.len() {
        return Err(io::Error::other("short send on the upgrade socket"));
    }
    Ok(())
}

fn recv(sock: &Socket) -> io::Result<(Message, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_PACKET];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_PACKET))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let r = match rustix::net::recvmsg(sock, &mut [IoSliceMut::new(&mut buf)], &mut control, RecvFlags::CMSG_CLOEXEC) {
        Ok(r) => r,
        Err(rustix::io::Errno::AGAIN) => {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the other rvsd did not answer in time"))
        }
        Err(e) => return Err(e.into()),
    };
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(passed) = m {
            fds.extend(passed);
        }
    }
    if r.flags.intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a truncated upgrade packet"));
    }
    if r.bytes == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the other rvsd closed the upgrade connection"));
    }
    let msg = serde_json::from_slice(&buf[..r.bytes]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((msg, fds))
}

fn seqpacket() -> io::Result<Socket> {
    let s = Socket::new(Domain::UNIX, Type::SEQPACKET.cloexec(), None)?;
    s.set_read_timeout(Some(PATIENCE))?;
    s.set_write_timeout(Some(PATIENCE))?;
    Ok(s)
}

/// Binds the upgrade socket at `path` (replacing a stale one: the caller has checked that no
/// rvsd answers on the API socket beside it).
pub fn bind(path: &Path) -> io::Result<OwnedFd> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let s = Socket::new(Domain::UNIX, Type::SEQPACKET.cloexec(), None)?;
    s.bind(&SockAddr::unix(path)?)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    s.listen(8)?;
    Ok(s.into())
}

/// What the running rvsd hands over besides the data planes' listeners (taken from
/// [`rvs_dataplane::handover`] at each upgrade).
pub struct Offer {
    pub api_unix: (PathBuf, OwnedFd),
    pub api_tcp: Option<(SocketAddr, OwnedFd)>,
    pub upgrade: (PathBuf, OwnedFd),
    /// Set once rvsd stops (an upgrade is refused then).
    pub stopping: Arc<AtomicBool>,
    /// Stops the packet engine's scheduling and unlocks its pin directory.
    pub release_pins: Box<dyn Fn() + Send>,
}

/// Serves upgrades on the upgrade socket, one at a time, on a thread of its own: `upgraded` is
/// told the new rvsd's pid once one is ready (this rvsd must then stop accepting and drain),
/// and the thread ends.
pub fn serve(offer: Offer, upgraded: UnboundedSender<u32>) -> io::Result<()> {
    let listener = Socket::from(offer.upgrade.1.try_clone()?);
    std::thread::Builder::new().name("rvs-upgrade".into()).spawn(move || loop {
        let conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(e) => {
                warn!(error = %e, "upgrade socket: accept failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let _ = conn.set_read_timeout(Some(PATIENCE));
        let _ = conn.set_write_timeout(Some(PATIENCE));
        match hand_over(&conn, &offer) {
            Ok(Some(pid)) => {
                let _ = upgraded.send(pid);
                let _ = send(&conn, &Message::Stopping { pid: std::process::id() }, &[]);
                return;
            }
            Ok(None) => {}
            Err(e) => warn!("binary upgrade abandoned, this rvsd goes on serving: {e}"),
        }
    })?;
    Ok(())
}

/// One upgrade, on the old rvsd's side: `Some(pid)` once the new one is ready.
fn hand_over(conn: &Socket, offer: &Offer) -> Result<Option<u32>, UpgradeError> {
    let (msg, _) = recv(conn)?;
    let Message::Hello { version, pid } = msg else {
        return Err(UpgradeError::Protocol(format!("expected hello, got {msg:?}")));
    };
    let refuse = |reason: String| {
        warn!(pid, "binary upgrade refused: {reason}");
        send(conn, &Message::Refused { reason }, &[]).map(|()| None).map_err(UpgradeError::from)
    };
    if version != VERSION {
        return refuse(format!("upgrade protocol version {version}: this rvsd speaks version {VERSION}"));
    }
    if offer.stopping.load(Ordering::SeqCst) {
        return refuse("this rvsd is stopping".into());
    }
    info!(pid, "binary upgrade: handing the listening sockets over");
    let mut entries = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    for (key, fd) in rvs_dataplane::handover::held()? {
        entries.push(match key.protocol {
            Protocol::Udp => Entry::Udp { address: key.addr },
            _ => Entry::Tcp { address: key.addr },
        });
        fds.push(fd);
    }
    entries.push(Entry::ApiUnix { path: offer.api_unix.0.clone() });
    fds.push(offer.api_unix.1.try_clone()?);
    if let Some((address, fd)) = &offer.api_tcp {
        entries.push(Entry::ApiTcp { address: *address });
        fds.push(fd.try_clone()?);
    }
    entries.push(Entry::Upgrade { path: offer.upgrade.0.clone() });
    fds.push(offer.upgrade.1.try_clone()?);
    send(conn, &Message::Manifest { version: VERSION, pid: std::process::id(), sockets: entries }, &[])?;
    for chunk in fds.chunks(FDS_PER_PACKET) {
        let borrowed: Vec<BorrowedFd<'_>> = chunk.iter().map(AsFd::as_fd).collect();
        send(conn, &Message::Fds { count: chunk.len() }, &borrowed)?;
    }
    drop(fds);
    loop {
        match recv(conn)?.0 {
            Message::ReleasePins => {
                info!(pid, "binary upgrade: the packet engine stops scheduling and unlocks its pins");
                (offer.release_pins)();
                send(conn, &Message::PinsReleased, &[])?;
            }
            Message::Ready { pid } => {
                info!(pid, "binary upgrade: the new rvsd is ready; this one stops accepting and drains");
                return Ok(Some(pid));
            }
            other => return Err(UpgradeError::Protocol(format!("expected ready, got {other:?}"))),
        }
    }
}

/// The sockets a new rvsd was handed by the running one, and the connection to it.
pub struct Takeover {
    conn: Socket,
    /// The running rvsd's pid.
    pub from: u32,
    pub api_unix: Option<(PathBuf, OwnedFd)>,
    pub api_tcp: Option<(SocketAddr, OwnedFd)>,
    pub upgrade: Option<(PathBuf, OwnedFd)>,
    /// How many virtual services' sockets were handed over.
    pub services: usize,
}

/// Connects to the running rvsd whose API socket is `api` and takes its sockets: those of the
/// virtual services go to [`rvs_dataplane::handover::inherit`], the rest are in the answer.
pub fn take_over(api: &Path) -> Result<Takeover, UpgradeError> {
    let path = if api.extension().is_some_and(|e| e == "upgrade") { api.to_path_buf() } else { socket_path(api) };
    let conn = seqpacket()?;
    let addr = SockAddr::unix(&path)?;
    conn.connect(&addr).map_err(|source| UpgradeError::Connect { path: path.clone(), source })?;
    send(&conn, &Message::Hello { version: VERSION, pid: std::process::id() }, &[])?;
    let (version, from, entries) = match recv(&conn)?.0 {
        Message::Manifest { version, pid, sockets } => (version, pid, sockets),
        Message::Refused { reason } => return Err(UpgradeError::Refused(reason)),
        other => return Err(UpgradeError::Protocol(format!("expected a manifest, got {other:?}"))),
    };
    if version != VERSION {
        return Err(UpgradeError::Protocol(format!("manifest version {version}, this rvsd speaks {VERSION}")));
    }
    let mut fds = Vec::with_capacity(entries.len());
    while fds.len() < entries.len() {
        let (msg, passed) = recv(&conn)?;
        let Message::Fds { count } = msg else {
            return Err(UpgradeError::Protocol(format!("expected descriptors, got {msg:?}")));
        };
        if count != passed.len() {
            return Err(UpgradeError::Mismatch(format!(
                "a packet says {count} descriptors and carries {}",
                passed.len()
            )));
        }
        fds.extend(passed);
    }
    if fds.len() != entries.len() {
        return Err(UpgradeError::Mismatch(format!("{} sockets described, {} passed", entries.len(), fds.len())));
    }
    let mut t = Takeover { conn, from, api_unix: None, api_tcp: None, upgrade: None, services: 0 };
    let mut services = Vec::new();
    for (entry, fd) in entries.iter().zip(&fds) {
        check(entry, fd).map_err(|why| UpgradeError::Mismatch(format!("{entry}: {why}")))?;
    }
    for (entry, fd) in entries.into_iter().zip(fds) {
        match entry {
            Entry::Tcp { address } => services.push((ServiceAddr { protocol: Protocol::Tcp, addr: address }, fd)),
            Entry::Udp { address } => services.push((ServiceAddr { protocol: Protocol::Udp, addr: address }, fd)),
            Entry::ApiUnix { path } => t.api_unix = Some((path, fd)),
            Entry::ApiTcp { address } => t.api_tcp = Some((address, fd)),
            Entry::Upgrade { path } => t.upgrade = Some((path, fd)),
        }
    }
    t.services = services.len();
    rvs_dataplane::handover::inherit(services);
    Ok(t)
}

/// Whether `fd` is the socket `entry` says.
fn check(entry: &Entry, fd: &OwnedFd) -> Result<(), String> {
    let s = SockRef::from(fd);
    let (ty, listening) = match entry {
        Entry::Udp { .. } => (Type::DGRAM, false),
        Entry::Upgrade { .. } => (Type::SEQPACKET, true),
        _ => (Type::STREAM, true),
    };
    let got = s.r#type().map_err(|e| e.to_string())?;
    if got != ty {
        return Err(format!("a socket of type {got:?}, not {ty:?}"));
    }
    if listening && !s.is_listener().map_err(|e| e.to_string())? {
        return Err("not a listening socket".into());
    }
    let local = s.local_addr().map_err(|e| e.to_string())?;
    let fits = match entry {
        Entry::Tcp { address } | Entry::Udp { address } | Entry::ApiTcp { address } => {
            local.as_socket() == Some(*address)
        }
        Entry::ApiUnix { path } | Entry::Upgrade { path } => local.as_pathname() == Some(path.as_path()),
    };
    if !fits {
        return Err(format!("bound to {}", describe(&local)));
    }
    Ok(())
}

fn describe(a: &SockAddr) -> String {
    match (a.as_socket(), a.as_pathname()) {
        (Some(s), _) => s.to_string(),
        (None, Some(p)) => p.display().to_string(),
        _ => "an unnamed address".into(),
    }
}

impl Takeover {
    /// Asks the running rvsd to hand its packet engine's pins over (before this one starts its
    /// packet engine on them).
    pub fn release_pins(&self) -> Result<(), UpgradeError> {
        send(&self.conn, &Message::ReleasePins, &[])?;
        match recv(&self.conn)?.0 {
            Message::PinsReleased => Ok(()),
            other => Err(UpgradeError::Protocol(format!("expected pins-released, got {other:?}"))),
        }
    }

    /// Tells the running rvsd this one is ready: it stops accepting, drains and exits.
    pub fn finish(self) -> Result<(), UpgradeError> {
        send(&self.conn, &Message::Ready { pid: std::process::id() }, &[])?;
        match recv(&self.conn)?.0 {
            Message::Stopping { .. } => Ok(()),
            other => Err(UpgradeError::Protocol(format!("expected stopping, got {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_that_is_not_what_the_manifest_says_is_a_mismatch() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let fd = OwnedFd::from(tcp);
        assert_eq!(check(&Entry::Tcp { address: addr }, &fd), Ok(()));
        let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(check(&Entry::Tcp { address: other }, &fd).unwrap_err().contains("bound to"));
        assert!(check(&Entry::Udp { address: addr }, &fd).unwrap_err().contains("type"));
        let udp = OwnedFd::from(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        assert!(check(&Entry::Tcp { address: addr }, &udp).is_err());
        let stream = std::net::TcpStream::connect(addr).unwrap();
        let conn = OwnedFd::from(stream);
        assert!(check(&Entry::ApiTcp { address: addr }, &conn).is_err(), "a connection is not a listener");
    }

    #[test]
    fn descriptors_and_messages_cross_a_seqpacket_pair() {
        let (a, b) = Socket::pair(Domain::UNIX, Type::SEQPACKET, None).unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        send(&a, &Message::Fds { count: 1 }, &[udp.as_fd()]).unwrap();
        let (msg, fds) = recv(&b).unwrap();
        assert!(matches!(msg, Message::Fds { count: 1 }), "{msg:?}");
        assert_eq!(fds.len(), 1);
        assert_eq!(check(&Entry::Udp { address: addr }, &fds[0]), Ok(()));
        drop(a);
        assert_eq!(recv(&b).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
