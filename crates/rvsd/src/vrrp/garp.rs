//! Gratuitous ARP: the frame a new master broadcasts for each IPv4 virtual address so that
//! neighbours point it at its MAC (an ARP request whose sender and target are the address),
//! sent whole through an `AF_PACKET` socket.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use socket2::{Domain, Socket, Type};

const ETH_P_ARP: u16 = 0x0806;
const BROADCAST: [u8; 6] = [0xff; 6];

/// The 42-byte frame: Ethernet header, then an ARP request (RFC 5227's announcement: sender and
/// target protocol address both `addr`, target hardware address zero).
pub fn frame(mac: [u8; 6], addr: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&BROADCAST);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    // Hardware Ethernet (1), protocol IPv4, lengths 6 and 4, operation request (1).
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&addr.octets());
    f[38..42].copy_from_slice(&addr.octets());
    f
}

/// A sending-only packet socket (protocol 0: it receives nothing).
pub struct Announcer {
    socket: Socket,
    ifindex: u32,
    mac: [u8; 6],
}

impl Announcer {
    pub fn open(ifindex: u32, mac: [u8; 6]) -> io::Result<Announcer> {
        let socket = Socket::new(Domain::PACKET, Type::RAW.cloexec(), None)?;
        Ok(Announcer { socket, ifindex, mac })
    }

    /// One gratuitous ARP for `addr`.
    pub fn announce(&self, addr: Ipv4Addr) -> io::Result<()> {
        rvs_bpf::link::send_frame(self.socket.as_fd(), self.ifindex, ETH_P_ARP, BROADCAST, &frame(self.mac, addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_frame() {
        let mac = [2, 0, 0, 0, 0, 1];
        let f = frame(mac, Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "a request");
        assert_eq!(&f[22..28], &mac, "sender hardware address");
        assert_eq!(&f[28..32], &[198, 18, 0, 100], "sender protocol address");
        assert_eq!(&f[32..38], &[0; 6], "target hardware address");
        assert_eq!(&f[38..42], &[198, 18, 0, 100], "target protocol address");
    }
}
