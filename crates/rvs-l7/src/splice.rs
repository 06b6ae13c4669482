//! splice(2) between two TCP sockets through a pipe, so payload stays in the kernel: an exact
//! byte count for bodies of known length, and a pump for Upgrade tunnels that passes a FIN on
//! as a half-close. The technique is rvs-proxy's relay; the pipe is kept per client connection.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::net::Shutdown;
use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::relay::RelayError;

/// Pipe capacity asked for: fewer, larger splices (as rvs-proxy's relay). The kernel may give
/// less (`/proc/sys/fs/pipe-max-size`, per-user limits); the pipe keeps what it got.
const PIPE_SIZE: usize = 1 << 20;
/// The default pipe capacity.
const DEFAULT_CHUNK: usize = 64 * 1024;

/// A pipe; after an error it may hold bytes, so it is dropped then.
#[derive(Debug)]
pub(crate) struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    /// Bytes per splice: the pipe's capacity.
    chunk: usize,
}

impl Pipe {
    /// A pipe; `bulk` asks for the large capacity (bodies), else the default (long-lived
    /// tunnels, which would otherwise eat the per-user pipe allowance).
    pub fn new(bulk: bool) -> io::Result<Self> {
        let (r, w) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        let chunk = if bulk { fcntl_setpipe_size(&w, PIPE_SIZE).unwrap_or(DEFAULT_CHUNK) } else { DEFAULT_CHUNK };
        Ok(Self { r, w, chunk })
    }
}

/// One splice from the socket into the pipe: `Some(0)` at EOF, `None` when not ready.
fn splice_in(from: &TcpStream, pipe_w: &OwnedFd, len: usize) -> io::Result<Option<usize>> {
    match from.try_io(Interest::READABLE, || {
        splice(from, None, pipe_w, None, len, SpliceFlags::MOVE | SpliceFlags::NONBLOCK).map_err(io::Error::from)
    }) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Empties `pending` bytes from the pipe into the socket.
async fn splice_out(pipe_r: &OwnedFd, to: &TcpStream, mut pending: usize) -> io::Result<()> {
    while pending > 0 {
        to.writable().await?;
        match to.try_io(Interest::WRITABLE, || {
            splice(pipe_r, None, to, None, pending, SpliceFlags::MOVE | SpliceFlags::NONBLOCK).map_err(io::Error::from)
        }) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => pending -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Moves exactly `len` bytes from `from` to `to`. Each wait for `from` is bounded by `idle`.
/// `moved` counts what went through (also when it fails part way).
pub(crate) async fn splice_exact(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &Pipe,
    len: u64,
    idle: Duration,
    moved: &mut u64,
) -> Result<(), RelayError> {
    let mut left = len;
    while left > 0 {
        match tokio::time::timeout(idle, from.readable()).await {
            Err(_) => return Err(RelayError::Timeout),
            Ok(Err(e)) => return Err(RelayError::Src(e)),
            Ok(Ok(())) => {}
        }
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(pipe.chunk);
        match splice_in(from, &pipe.w, want).map_err(RelayError::Src)? {
            None => continue,
            Some(0) => return Err(RelayError::SrcClosed),
            Some(n) => {
                splice_out(&pipe.r, to, n).await.map_err(RelayError::Dst)?;
                left -= n as u64;
                *moved += n as u64;
            }
        }
    }
    Ok(())
}

/// One direction of a spliced tunnel until EOF (passed on as a half-close) or an error.
/// `last` is the tunnel's last activity (ms on `clock`), shared with the other direction.
pub(crate) async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    last: &AtomicU64,
    now_ms: impl Fn() -> u64,
    moved: &AtomicU64,
) -> io::Result<()> {
    let pipe = Pipe::new(false)?;
    loop {
        from.readable().await?;
        match splice_in(from, &pipe.w, pipe.chunk)? {
            None => continue,
            Some(0) => {
                match rustix::net::shutdown(to, Shutdown::Write) {
                    Ok(()) | Err(rustix::io::Errno::NOTCONN) => {}
                    Err(e) => return Err(e.into()),
                }
                return Ok(());
            }
            Some(n) => {
                last.store(now_ms(), Ordering::Relaxed);
                moved.fetch_add(n as u64, Ordering::Relaxed);
                splice_out(&pipe.r, to, n).await?;
            }
        }
    }
}
