//! Sending one whole Ethernet frame out of an interface through an `AF_PACKET` socket: the
//! `sockaddr_ll` that `sendto` needs, which no safe crate builds (VRRP's gratuitous ARP); and
//! receiving with the IPv6 hop limit from ancillary data (VRRP over IPv6).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sends `frame` (from its Ethernet header on) on interface `ifindex` to `dst` (a MAC) with
/// EtherType `ethertype`, through the `AF_PACKET`/`SOCK_RAW` socket `fd`.
pub fn send_frame(fd: BorrowedFd<'_>, ifindex: u32, ethertype: u16, dst: [u8; 6], frame: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all zeros is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as libc::c_ushort;
    addr.sll_protocol = ethertype.to_be();
    addr.sll_ifindex = i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&dst);
    // SAFETY: a valid fd; `frame` and `addr` are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One datagram from the IPv6 raw socket `fd` (nonblocking or readable) into `buf`, with its
/// source and the hop limit it arrived with (`IPV6_RECVHOPLIMIT` must be on): what VRRP over
/// IPv6 checks, read from ancillary data no safe crate parses.
pub fn recv_with_hop_limit(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, std::net::SocketAddrV6, Option<u8>)> {
    // SAFETY: plain data, all zeros valid.
    let mut src: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut control = [0u64; 8];
    // SAFETY: plain data, all zeros valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut src as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` is valid for the lengths it gives, for this call.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut hop_limit = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, within
    // `msg_controllen`; the data of an IPV6_HOPLIMIT message is one c_int.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IPV6 && (*c).cmsg_type == libc::IPV6_HOPLIMIT {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                hop_limit = u8::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let addr = std::net::SocketAddrV6::new(
        std::net::Ipv6Addr::from(src.sin6_addr.s6_addr),
        u16::from_be(src.sin6_port),
        src.sin6_flowinfo,
        src.sin6_scope_id,
    );
    Ok((n as usize, addr, hop_limit))
}
