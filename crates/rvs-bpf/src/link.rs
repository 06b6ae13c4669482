//! Sending one whole Ethernet frame out of an interface through an `AF_PACKET` socket: the
//! `sockaddr_ll` that `sendto` needs, which no safe crate builds. VRRP's gratuitous ARP uses it.

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
