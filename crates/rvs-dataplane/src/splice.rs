//! splice(2) between sockets through pipes, shared by the data planes: pipes pooled per thread
//! (a burst borrows one and gives it back empty, so idle connections hold none), one splice
//! into a pipe, emptying a pipe into a socket, and writing a buffer to a shared socket.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Capacity asked for each pipe: fewer, larger splices. The kernel may give less
/// (`/proc/sys/fs/pipe-max-size`, per-user pipe limits); a pipe keeps what it got.
const PIPE_SIZE: usize = 1 << 20;
/// Empty pipes kept per thread.
const POOL_MAX: usize = 64;

/// A pipe: its two ends and its capacity.
#[derive(Debug)]
pub struct Pipe {
    pub r: OwnedFd,
    pub w: OwnedFd,
    pub size: usize,
}

thread_local! {
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// An empty pipe from this thread's pool, or a new one.
pub fn take_pipe() -> io::Result<Pipe> {
    if let Some(p) = POOL.with(|pool| pool.borrow_mut().pop()) {
        return Ok(p);
    }
    let (r, w) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
    let size = fcntl_setpipe_size(&w, PIPE_SIZE).unwrap_or(64 * 1024);
    Ok(Pipe { r, w, size })
}

/// Returns an empty pipe to the pool (closed when the pool is full). Only empty pipes may come
/// back: a pipe that still holds bytes is dropped instead.
pub fn give_pipe(p: Pipe) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_MAX {
            pool.push(p);
        }
    });
}

/// One splice from the socket into the pipe: `Some(0)` at EOF, `None` when not ready.
pub fn splice_in(from: &TcpStream, pipe_w: &OwnedFd, chunk: usize) -> io::Result<Option<usize>> {
    match from.try_io(Interest::READABLE, || {
        splice(from, None, pipe_w, None, chunk, SpliceFlags::MOVE | SpliceFlags::NONBLOCK).map_err(io::Error::from)
    }) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Empties `pending` bytes from the pipe into the socket.
pub async fn splice_out(pipe_r: &OwnedFd, to: &TcpStream, mut pending: usize) -> io::Result<()> {
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

/// Writes all of `data` to a socket shared by reference.
pub async fn write_all(to: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        to.writable().await?;
        match to.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One read from a socket shared by reference. A short read means the socket is drained, so
/// its readiness is cleared at once (as tokio's own `poll_read` does): the next wait needs a
/// new event instead of a read that would only say EAGAIN. `WouldBlock` when not ready.
pub fn read_clearing(from: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let len = buf.len();
    let mut short = 0;
    match from.try_io(Interest::READABLE, || {
        let n = rustix::io::read(from, &mut *buf)?;
        if n > 0 && n < len {
            short = n;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && short > 0 => Ok(short),
        r => r,
    }
}
