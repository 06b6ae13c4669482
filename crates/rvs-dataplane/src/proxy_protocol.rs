//! PROXY protocol headers (v1 text, v2 binary) that tell a real server the client address
//! full NAT hides. Only the encoder: rvs writes these, it never reads them.

use std::net::SocketAddr;

use rvs_core::ProxyProtocol;

/// The v2 signature, 12 bytes.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The header announcing a TCP connection from `client` to `local`, or `None` when off.
pub fn header(version: ProxyProtocol, client: SocketAddr, local: SocketAddr) -> Option<Vec<u8>> {
    match version {
        ProxyProtocol::Off => None,
        ProxyProtocol::V1 => Some(v1(client, local)),
        ProxyProtocol::V2 => Some(v2(client, local)),
    }
}

fn v1(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (client, local) = same_family(client, local);
    let fam = if client.is_ipv4() { "TCP4" } else { "TCP6" };
    format!("PROXY {fam} {} {} {} {}\r\n", client.ip(), local.ip(), client.port(), local.port()).into_bytes()
}

fn v2(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (client, local) = same_family(client, local);
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x21); // version 2, PROXY command
    match (client, local) {
        (SocketAddr::V4(c), SocketAddr::V4(l)) => {
            h.push(0x11); // AF_INET, STREAM
            h.extend_from_slice(&12u16.to_be_bytes());
            h.extend_from_slice(&c.ip().octets());
            h.extend_from_slice(&l.ip().octets());
        }
        _ => {
            h.push(0x21); // AF_INET6, STREAM
            h.extend_from_slice(&36u16.to_be_bytes());
            h.extend_from_slice(&v6(client).octets());
            h.extend_from_slice(&v6(local).octets());
        }
    }
    h.extend_from_slice(&client.port().to_be_bytes());
    h.extend_from_slice(&local.port().to_be_bytes());
    h
}

fn v6(a: SocketAddr) -> std::net::Ipv6Addr {
    match a {
        SocketAddr::V4(a) => a.ip().to_ipv6_mapped(),
        SocketAddr::V6(a) => *a.ip(),
    }
}

/// Both addresses in one family (IPv4-mapped IPv6 addresses are unmapped when both can be).
fn same_family(client: SocketAddr, local: SocketAddr) -> (SocketAddr, SocketAddr) {
    let unmap = |a: SocketAddr| match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        a => a,
    };
    let (c, l) = (unmap(client), unmap(local));
    if c.is_ipv4() == l.is_ipv4() {
        (c, l)
    } else {
        (SocketAddr::new(v6(c).into(), c.port()), SocketAddr::new(v6(l).into(), l.port()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_ipv4_line() {
        let h = header(ProxyProtocol::V1, "198.18.0.1:40000".parse().unwrap(), "127.0.0.1:80".parse().unwrap());
        assert_eq!(h.unwrap(), b"PROXY TCP4 198.18.0.1 127.0.0.1 40000 80\r\n");
    }

    #[test]
    fn v2_ipv6_layout() {
        let h = header(ProxyProtocol::V2, "[2001:db8::1]:1000".parse().unwrap(), "[::1]:80".parse().unwrap()).unwrap();
        assert_eq!(&h[..12], &V2_SIGNATURE);
        assert_eq!(h[12], 0x21);
        assert_eq!(h[13], 0x21);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 36);
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(&h[48..50], &1000u16.to_be_bytes());
        assert_eq!(&h[50..52], &80u16.to_be_bytes());
    }

    #[test]
    fn v2_ipv4_layout() {
        let h = header(ProxyProtocol::V2, "10.0.0.1:5".parse().unwrap(), "10.0.0.2:6".parse().unwrap()).unwrap();
        assert_eq!(h.len(), 28);
        assert_eq!(&h[16..20], &[10, 0, 0, 1]);
        assert_eq!(&h[20..24], &[10, 0, 0, 2]);
    }

    #[test]
    fn off_sends_nothing() {
        assert!(header(ProxyProtocol::Off, "10.0.0.1:5".parse().unwrap(), "10.0.0.2:6".parse().unwrap()).is_none());
    }
}
