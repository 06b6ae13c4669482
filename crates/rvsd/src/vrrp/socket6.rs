//! The raw IP protocol 112 sockets of one IPv6 VRRP instance: one that receives on the
//! interface (ff02::12 joined) with the hop limit as ancillary data, one bound to the router's
//! link-local address that sends with hop limit 255.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

use rvs_vrrp::packet::{IPPROTO_VRRP, MULTICAST_V6, VRRP_TTL};
use std::os::fd::AsFd;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;

pub struct Vrrp6Socket {
    /// Registered with tokio as a datagram socket, as the IPv4 one.
    rx: tokio::net::UdpSocket,
    tx: Socket,
    ifindex: u32,
}

fn raw() -> io::Result<Socket> {
    Socket::new(Domain::IPV6, Type::RAW.nonblocking().cloexec(), Some(Protocol::from(i32::from(IPPROTO_VRRP))))
}

impl Vrrp6Socket {
    pub fn open(interface: &str, ifindex: u32, primary: Ipv6Addr, multicast: bool) -> io::Result<Vrrp6Socket> {
        let rx = raw()?;
        rx.bind_device(Some(interface.as_bytes()))?;
        rx.set_recv_hoplimit_v6(true)?;
        if multicast {
            rx.join_multicast_v6(&MULTICAST_V6, ifindex)?;
        }
        let tx = raw()?;
        tx.bind_device(Some(interface.as_bytes()))?;
        tx.bind(&SocketAddr::V6(SocketAddrV6::new(primary, 0, 0, ifindex)).into())?;
        tx.set_multicast_hops_v6(u32::from(VRRP_TTL))?;
        tx.set_unicast_hops_v6(u32::from(VRRP_TTL))?;
        tx.set_multicast_if_v6(ifindex)?;
        tx.set_multicast_loop_v6(false)?;
        tx.set_recv_buffer_size(1)?;
        Ok(Vrrp6Socket { rx: tokio::net::UdpSocket::from_std(rx.into())?, tx, ifindex })
    }

    pub fn send(&self, payload: &[u8], dst: Ipv6Addr) -> io::Result<()> {
        let scope = if dst.is_multicast() || dst.segments()[0] & 0xffc0 == 0xfe80 { self.ifindex } else { 0 };
        self.tx.send_to(payload, &SocketAddr::V6(SocketAddrV6::new(dst, 0, 0, scope)).into()).map(|_| ())
    }

    /// The next packet: its source, hop limit (0 if the kernel gave none) and length in `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(Ipv6Addr, u8, usize)> {
        loop {
            self.rx.readable().await?;
            match self.rx.try_io(Interest::READABLE, || rvs_bpf::link::recv_with_hop_limit(self.rx.as_fd(), buf)) {
                Ok((n, src, hops)) => return Ok((*src.ip(), hops.unwrap_or(0), n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
