//! Unsolicited neighbour advertisements: what a new master sends to all nodes (ff02::1) for
//! each IPv6 virtual address, override flag set, with its MAC as the target link-layer
//! address, so that neighbours move the address to it (RFC 4861 7.2.6).

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

use socket2::{Domain, Protocol, Socket, Type};

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The ICMPv6 message (the kernel fills in the checksum of a raw ICMPv6 socket).
pub fn message(mac: [u8; 6], target: Ipv6Addr) -> [u8; 32] {
    let mut m = [0u8; 32];
    // Type 136 (neighbour advertisement), code 0, checksum 0, flags: override (0x20).
    m[0] = 136;
    m[4] = 0x20;
    m[8..24].copy_from_slice(&target.octets());
    // Option: target link-layer address (type 2), length 1 (8 bytes).
    m[24] = 2;
    m[25] = 1;
    m[26..32].copy_from_slice(&mac);
    m
}

pub struct NeighbourAnnouncer {
    socket: Socket,
    ifindex: u32,
    mac: [u8; 6],
}

impl NeighbourAnnouncer {
    pub fn open(interface: &str, ifindex: u32, mac: [u8; 6]) -> io::Result<NeighbourAnnouncer> {
        let socket = Socket::new(Domain::IPV6, Type::RAW.cloexec(), Some(Protocol::ICMPV6))?;
        socket.bind_device(Some(interface.as_bytes()))?;
        socket.set_multicast_hops_v6(255)?;
        socket.set_multicast_if_v6(ifindex)?;
        Ok(NeighbourAnnouncer { socket, ifindex, mac })
    }

    pub fn announce(&self, addr: Ipv6Addr) -> io::Result<()> {
        let dst = SocketAddr::V6(SocketAddrV6::new(ALL_NODES, 0, 0, self.ifindex));
        self.socket.send_to(&message(self.mac, addr), &dst.into()).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertisement_message() {
        let m = message([2, 0, 0, 0, 0, 1], "2001:db8::100".parse().unwrap());
        assert_eq!((m[0], m[1], m[4]), (136, 0, 0x20));
        assert_eq!(&m[8..24], &"2001:db8::100".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(&m[24..32], &[2, 1, 2, 0, 0, 0, 0, 1]);
    }
}
