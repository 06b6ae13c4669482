//! The sockets of the sync daemon, nothing more: a master's UDP socket sending to the multicast
//! group out of one interface (TTL 1, as IPVS) or to a unicast peer, and a backup's socket bound
//! to the sync port, in the group on its interface when it has one.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::message::DEFAULT_GROUP;

/// Where a master sends and what a backup listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The multicast interface (`--mcast-interface`), if any.
    pub interface: Option<String>,
    /// A unicast peer (`--sync-peer`): a master sends there instead of the group.
    pub peer: Option<IpAddr>,
    pub port: u16,
}

fn ifindex(name: &str) -> io::Result<u32> {
    let path = format!("/sys/class/net/{name}/ifindex");
    let text =
        std::fs::read_to_string(&path).map_err(|e| io::Error::new(e.kind(), format!("interface {name}: {e}")))?;
    text.trim().parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: not a number")))
}

/// A master's socket and where it sends.
pub struct Sender {
    socket: UdpSocket,
    to: SocketAddr,
}

impl Sender {
    pub fn open(at: &Endpoint) -> io::Result<Sender> {
        let to = SocketAddr::new(at.peer.unwrap_or(IpAddr::V4(DEFAULT_GROUP)), at.port);
        let domain = if to.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        if let Some(name) = &at.interface {
            // Bound to the device, multicast leaves through it.
            if at.peer.is_none() {
                s.bind_device(Some(name.as_bytes()))?;
            }
        } else if at.peer.is_none() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a multicast master needs an interface"));
        }
        if to.is_ipv4() {
            s.set_multicast_ttl_v4(1)?;
            s.set_multicast_loop_v4(false)?;
        }
        Ok(Sender { socket: s.into(), to })
    }

    pub fn send(&self, datagram: &[u8]) -> io::Result<usize> {
        self.socket.send_to(datagram, self.to)
    }

    pub fn target(&self) -> SocketAddr {
        self.to
    }
}

/// A backup's socket.
pub struct Receiver {
    socket: UdpSocket,
}

impl Receiver {
    /// Bound to the sync port on every address (IPv6 and IPv4 where the kernel allows one
    /// socket for both), in the multicast group on `at.interface` when given.
    pub fn open(at: &Endpoint) -> io::Result<Receiver> {
        let v6 = at.peer.is_some_and(|p| p.is_ipv6());
        let s = if v6 {
            let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
            s.set_only_v6(false)?;
            s.set_reuse_address(true)?;
            s.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), at.port).into())?;
            s
        } else {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.set_reuse_address(true)?;
            s.bind(&SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), at.port).into())?;
            if let Some(name) = &at.interface {
                s.join_multicast_v4_n(&DEFAULT_GROUP, &socket2::InterfaceIndexOrAddress::Index(ifindex(name)?))?;
            }
            s
        };
        let socket: UdpSocket = s.into();
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(Receiver { socket })
    }

    /// The next datagram, or `None` after 200 ms without one.
    pub fn recv<'a>(&self, buf: &'a mut [u8]) -> io::Result<Option<(&'a [u8], SocketAddr)>> {
        match self.socket.recv_from(buf) {
            Ok((n, from)) => Ok(Some((&buf[..n], from))),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}
