//! The relay: moves bytes both ways between the client and real server sockets. Each
//! direction splices socket → pipe → socket with splice(2), so payload stays in the kernel;
//! where splice cannot serve a socket it falls back to a buffered copy. A FIN on one side is
//! passed on as a half-close; either direction's error ends the connection.

use std::io;
use std::os::fd::OwnedFd;

use rustix::net::Shutdown;
use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use rvs_core::Binding;

use crate::clock::Clock;
use crate::conn_table::ConnEntry;

/// Bytes moved per splice call: the default pipe capacity.
const CHUNK: usize = 64 * 1024;
/// Buffer size of the copy fallback.
const COPY_BUF: usize = 16 * 1024;

/// Which way a direction carries bytes, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Client to real server ("in" in IPVS terms).
    In,
    /// Real server to client ("out").
    Out,
}

/// What one relayed connection shares between its two directions.
pub(crate) struct Relay<'a> {
    pub binding: &'a Binding,
    pub entry: &'a ConnEntry,
    pub clock: Clock,
}

impl Relay<'_> {
    /// Relays until both sides have closed, or one fails.
    pub async fn run(&self, client: &TcpStream, server: &TcpStream) -> io::Result<()> {
        tokio::try_join!(self.pump(client, server, Way::In), self.pump(server, client, Way::Out))?;
        Ok(())
    }

    fn count(&self, way: Way, n: usize) {
        self.entry.touch(self.clock.now_ms());
        match way {
            Way::In => self.binding.count_in(n as u64),
            Way::Out => self.binding.count_out(n as u64),
        }
    }

    async fn pump(&self, from: &TcpStream, to: &TcpStream, way: Way) -> io::Result<()> {
        let mut pipe: Option<(OwnedFd, OwnedFd)> = None;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            from.readable().await?;
            let moved = if buf.is_empty() {
                let (r, w) = match &pipe {
                    Some(p) => p,
                    None => pipe.insert(pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?),
                };
                match splice_in(from, w) {
                    Ok(Some(n)) => {
                        if n > 0 {
                            self.count(way, n);
                            splice_out(r, to, n).await?;
                        }
                        n
                    }
                    Ok(None) => continue,
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                        // This socket cannot be spliced: copy through a buffer from now on.
                        pipe = None;
                        buf = vec![0; COPY_BUF];
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            } else {
                match from.try_read(&mut buf) {
                    Ok(n) => {
                        if n > 0 {
                            self.count(way, n);
                            write_all(to, &buf[..n]).await?;
                        }
                        n
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            };
            if moved == 0 {
                // EOF from `from`: pass the half-close on.
                self.binding.closing(self.clock.now_ms());
                self.entry.set_state(self.binding.state());
                match rustix::net::shutdown(to, Shutdown::Write) {
                    Ok(()) | Err(rustix::io::Errno::NOTCONN) => {}
                    Err(e) => return Err(e.into()),
                }
                return Ok(());
            }
        }
    }
}

/// One splice from the socket into the pipe: `Some(0)` at EOF, `None` when not ready.
fn splice_in(from: &TcpStream, pipe_w: &OwnedFd) -> io::Result<Option<usize>> {
    match from.try_io(Interest::READABLE, || {
        splice(from, None, pipe_w, None, CHUNK, SpliceFlags::MOVE | SpliceFlags::NONBLOCK).map_err(io::Error::from)
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

/// Writes all of `data` to a socket shared by reference.
pub(crate) async fn write_all(to: &TcpStream, mut data: &[u8]) -> io::Result<()> {
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
