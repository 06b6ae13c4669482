//! The raw IP protocol 112 sockets of one IPv4 VRRP instance: one bound to the interface that
//! receives (multicast group joined, the IP header read for source, destination and TTL), one
//! bound to the router's primary address that sends with TTL 255.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use rvs_vrrp::packet::{IPPROTO_VRRP, MULTICAST_V4, VRRP_TTL};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};

/// A received IPv4 VRRP packet: the IP header's fields `decode` needs, and the VRRP payload.
pub struct Received<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub payload: &'a [u8],
}

pub struct VrrpSocket {
    /// A raw socket is a datagram socket to tokio: registered through `UdpSocket`, whose
    /// `recv` is the `recv(2)` a raw socket answers (no I/O-safety `unsafe` for `AsyncFd`).
    rx: tokio::net::UdpSocket,
    tx: Socket,
}

fn raw() -> io::Result<Socket> {
    Socket::new(Domain::IPV4, Type::RAW.nonblocking().cloexec(), Some(Protocol::from(i32::from(IPPROTO_VRRP))))
}

impl VrrpSocket {
    /// Sockets on `interface` (index `ifindex`) sending from `primary`; the multicast group is
    /// joined unless the instance speaks unicast only.
    pub fn open(interface: &str, ifindex: u32, primary: Ipv4Addr, multicast: bool) -> io::Result<VrrpSocket> {
        let rx = raw()?;
        rx.bind_device(Some(interface.as_bytes()))?;
        if multicast {
            rx.join_multicast_v4_n(&MULTICAST_V4, &InterfaceIndexOrAddress::Index(ifindex))?;
        }
        let tx = raw()?;
        tx.bind_device(Some(interface.as_bytes()))?;
        tx.bind(&SocketAddr::V4(SocketAddrV4::new(primary, 0)).into())?;
        tx.set_ttl_v4(u32::from(VRRP_TTL))?;
        tx.set_multicast_ttl_v4(u32::from(VRRP_TTL))?;
        tx.set_multicast_if_v4(&primary)?;
        tx.set_multicast_loop_v4(false)?;
        // The sending socket reads nothing: keep what the kernel queues for it small.
        tx.set_recv_buffer_size(1)?;
        Ok(VrrpSocket { rx: tokio::net::UdpSocket::from_std(rx.into())?, tx })
    }

    /// Sends one encoded advertisement to `dst` (the group or a unicast peer).
    pub fn send(&self, payload: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        self.tx.send_to(payload, &SocketAddr::V4(SocketAddrV4::new(dst, 0)).into()).map(|_| ())
    }

    /// The next packet; `None` for one too short to carry an IPv4 header (nothing to decode).
    pub async fn recv<'b>(&self, buf: &'b mut [u8]) -> io::Result<Option<Received<'b>>> {
        let n = self.rx.recv(buf).await?;
        Ok(parse_ipv4(&buf[..n]))
    }
}

/// Splits an IPv4 packet as a raw socket hands it over into header fields and payload.
fn parse_ipv4(p: &[u8]) -> Option<Received<'_>> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    if ihl < 20 || total < ihl {
        return None;
    }
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    Some(Received { src: src.into(), dst: dst.into(), ttl: p[8], payload: &p[ihl..total] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_fields_and_payload() {
        let mut p = vec![0x45, 0, 0, 24, 0, 0, 0, 0, 64, 112, 0, 0, 198, 18, 0, 1, 224, 0, 0, 18];
        p.extend_from_slice(&[1, 2, 3, 4, 9, 9]);
        let r = parse_ipv4(&p).expect("parsed");
        assert_eq!((r.src, r.dst, r.ttl), ("198.18.0.1".parse().unwrap(), "224.0.0.18".parse().unwrap(), 64));
        assert_eq!(r.payload, &[1, 2, 3, 4], "the IP total length bounds the payload");
        assert!(parse_ipv4(&p[..10]).is_none());
    }
}
