//! Next hops the XDP program found unresolved: the kernel is asked to resolve them (ARP or
//! neighbour discovery) by routing one empty datagram to the next hop's discard port out of
//! that interface, so the neighbour table, not rvs, holds every MAC address. The packet that
//! met the unresolved neighbour was dropped; the client's retransmission finds it resolved.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// The discard service (RFC 863): what the probe is addressed to.
const DISCARD_PORT: u16 = 9;
/// One probe per next hop per this long, however many packets meet it unresolved.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Probes next hops, at most one per [`PROBE_INTERVAL`] each.
#[derive(Debug, Default)]
pub struct Resolver {
    last: HashMap<(IpAddr, u32), Instant>,
}

impl Resolver {
    /// Asks the kernel to resolve `next_hop` on interface `ifindex`, unless that was asked
    /// within the last second. Returns whether a probe went out.
    pub fn resolve(&mut self, next_hop: IpAddr, ifindex: u32, now: Instant) -> io::Result<bool> {
        if self.last.get(&(next_hop, ifindex)).is_some_and(|t| now.duration_since(*t) < PROBE_INTERVAL) {
            return Ok(false);
        }
        self.last.retain(|_, t| now.duration_since(*t) < PROBE_INTERVAL);
        self.last.insert((next_hop, ifindex), now);
        probe(next_hop, NonZeroU32::new(ifindex))?;
        Ok(true)
    }
}

/// Routes one empty datagram to `to` (out of interface `ifindex` when given), which makes the
/// kernel resolve the next hop on the way: called for each new real server, so that its first
/// flow does not meet an unresolved neighbour.
pub fn probe(to: IpAddr, ifindex: Option<NonZeroU32>) -> io::Result<()> {
    let domain = if to.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let socket = Socket::new(domain, Type::DGRAM, None)?;
    if ifindex.is_some() {
        if to.is_ipv4() {
            socket.bind_device_by_index_v4(ifindex)?;
        } else {
            socket.bind_device_by_index_v6(ifindex)?;
        }
    }
    let next_hop = to;
    socket.connect(&SocketAddr::new(next_hop, DISCARD_PORT).into())?;
    socket.send(&[])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_probe_per_next_hop_per_interval() {
        let mut r = Resolver::default();
        let lo = 1; // loopback's index in every namespace
        let hop: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(r.resolve(hop, lo, t0).unwrap());
        assert!(!r.resolve(hop, lo, t0 + Duration::from_millis(10)).unwrap());
        assert!(r.resolve(hop, lo, t0 + PROBE_INTERVAL).unwrap());
    }
}
