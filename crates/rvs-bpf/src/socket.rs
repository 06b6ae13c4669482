//! Socket queries that no safe crate wraps, used to account for bytes the kernel moved on rvsd's
//! behalf (a linked connection's sockets): `getsockopt(TCP_INFO)` and `ioctl(TIOCOUTQ)`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Bytes ever written into a TCP socket (by rvsd or by the kernel relay): acknowledged ones
/// plus those still in the send queue.
pub fn bytes_written(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: tcp_info is plain data; the kernel fills at most `len` bytes.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid fd, a buffer of `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one c_int.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut queued) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info.tcpi_bytes_acked + queued.max(0) as u64)
}
