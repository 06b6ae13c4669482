//! The interface side of VRRP through rtnetlink: an interface's index, MAC address and primary
//! IPv4 address, and adding or removing the virtual addresses on it (`ip addr add/del`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::Handle;

/// What VRRP needs to know of its interface.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub mac: [u8; 6],
    /// Administratively up with its carrier (IFF_UP and IFF_RUNNING).
    pub up: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink: {0}")]
    Io(#[from] std::io::Error),
    #[error("interface {0}: {1}")]
    Request(String, rtnetlink::Error),
    #[error("interface {0}: not found")]
    NoInterface(String),
    #[error("interface {0}: no IPv4 address to send advertisements from")]
    NoAddress(String),
    #[error("interface {0}: no IPv6 link-local address to send advertisements from")]
    NoLinkLocal(String),
}

/// A netlink connection (its task runs on the current runtime).
pub fn connect() -> Result<Handle, NetlinkError> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    Ok(handle)
}

pub async fn link(handle: &Handle, name: &str) -> Result<Link, NetlinkError> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    let msg = match links.try_next().await {
        Ok(Some(m)) => m,
        Ok(None) | Err(rtnetlink::Error::NetlinkError(_)) => return Err(NetlinkError::NoInterface(name.into())),
        Err(e) => return Err(NetlinkError::Request(name.into(), e)),
    };
    let mut mac = [0u8; 6];
    for a in &msg.attributes {
        if let LinkAttribute::Address(b) = a {
            if b.len() == 6 {
                mac.copy_from_slice(b);
            }
        }
    }
    let up = msg.header.flags.contains(LinkFlags::Up | LinkFlags::Running);
    Ok(Link { index: msg.header.index, mac, up })
}

/// The interface's IPv4 addresses, in the kernel's order.
async fn ipv4_addresses(handle: &Handle, name: &str, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, NetlinkError> {
    let mut out = Vec::new();
    let mut addrs = handle.address().get().set_link_index_filter(index).execute();
    while let Some(m) = addrs.try_next().await.map_err(|e| NetlinkError::Request(name.into(), e))? {
        for a in &m.attributes {
            if let AddressAttribute::Local(IpAddr::V4(v4)) | AddressAttribute::Address(IpAddr::V4(v4)) = a {
                if !out.iter().any(|(x, _)| x == v4) {
                    out.push((*v4, m.header.prefix_len));
                }
            }
        }
    }
    Ok(out)
}

/// The first IPv4 address of the interface that is not one of the virtual addresses.
pub async fn primary_v4(handle: &Handle, name: &str, index: u32, vips: &[IpAddr]) -> Result<Ipv4Addr, NetlinkError> {
    ipv4_addresses(handle, name, index)
        .await?
        .into_iter()
        .map(|(a, _)| a)
        .find(|a| !vips.contains(&IpAddr::V4(*a)))
        .ok_or_else(|| NetlinkError::NoAddress(name.into()))
}

/// The interface's IPv6 link-local address (what VRRP over IPv6 advertises from).
pub async fn link_local_v6(handle: &Handle, name: &str, index: u32) -> Result<Ipv6Addr, NetlinkError> {
    let mut addrs = handle.address().get().set_link_index_filter(index).execute();
    while let Some(m) = addrs.try_next().await.map_err(|e| NetlinkError::Request(name.into(), e))? {
        for a in &m.attributes {
            if let AddressAttribute::Address(IpAddr::V6(v6)) = a {
                if v6.segments()[0] & 0xffc0 == 0xfe80 {
                    return Ok(*v6);
                }
            }
        }
    }
    Err(NetlinkError::NoLinkLocal(name.into()))
}

fn host_prefix(a: &IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

/// Adds `addr` (a host prefix) to the interface; one already there is left as it is.
pub async fn add(handle: &Handle, name: &str, index: u32, addr: IpAddr) -> Result<(), NetlinkError> {
    let mut req = handle.address().add(index, addr, host_prefix(&addr));
    // A virtual address moves between routers: no duplicate address detection on it.
    req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -rustix::io::Errno::EXIST.raw_os_error() => Ok(()),
        Err(e) => Err(NetlinkError::Request(name.into(), e)),
    }
}

/// Removes `addr` from the interface if it is there.
pub async fn remove(handle: &Handle, name: &str, index: u32, addr: IpAddr) -> Result<(), NetlinkError> {
    let mut found = Vec::new();
    let mut addrs = handle.address().get().set_link_index_filter(index).set_address_filter(addr).execute();
    while let Some(m) = addrs.try_next().await.map_err(|e| NetlinkError::Request(name.into(), e))? {
        found.push(m);
    }
    for m in found {
        match handle.address().del(m).execute().await {
            Ok(()) => {}
            Err(rtnetlink::Error::NetlinkError(e))
                if e.raw_code() == -rustix::io::Errno::ADDRNOTAVAIL.raw_os_error() => {}
            Err(e) => return Err(NetlinkError::Request(name.into(), e)),
        }
    }
    Ok(())
}
