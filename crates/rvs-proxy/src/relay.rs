//! The relay: moves bytes both ways between the client and real server sockets. Each
//! direction copies small messages through a per-thread buffer and, once a read fills it (a
//! bulk flow), splices socket → pipe → socket with splice(2) so payload stays in the kernel.
//! A FIN on one side is passed on as a half-close; either direction's error ends the connection.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::net::Shutdown;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tracing::debug;

use rvs_core::Binding;

use crate::clock::Clock;
use crate::conn_table::ConnEntry;
use crate::splice::{give_pipe, read_clearing, splice_in, splice_out, take_pipe, write_all, Pipe};

/// Size of the copy path's scratch buffer; a read that fills it switches to splice.
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
    /// Set by the first direction to reach EOF.
    pub one_side_closed: AtomicBool,
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
        // Copy until a read fills the scratch buffer (a bulk burst), then splice until the
        // socket runs dry, then copy again. Small request/response traffic never pays for a
        // pipe, and a pipe goes back to the pool as soon as its burst is over.
        let mut bulk = false;
        let mut splice_ok = true;
        let mut pipe: Option<Pipe> = None;
        loop {
            let ready = from.ready(Interest::READABLE).await?;
            let moved = if !bulk {
                match copy_step(from, to)? {
                    Step::NotReady => continue,
                    Step::Eof => 0,
                    Step::Moved { n, full, rest } => {
                        self.count(way, n);
                        if let Some(rest) = rest {
                            write_all(to, &rest).await?;
                        }
                        bulk = full && splice_ok;
                        if !full && ready.is_read_closed() {
                            // The peer's FIN had arrived before this read, and the short read
                            // took all that came before it: end of stream, without a read
                            // that would only return 0.
                            self.half_close(to)?;
                            return Ok(());
                        }
                        n
                    }
                }
            } else {
                let p = match pipe.take().map_or_else(take_pipe, Ok) {
                    Ok(p) => p,
                    Err(e) => {
                        debug!(error = %e, "no pipe for splice: copying");
                        (bulk, splice_ok) = (false, false);
                        continue;
                    }
                };
                match splice_in(from, &p.w, p.size) {
                    Ok(Some(0)) => {
                        give_pipe(p);
                        0
                    }
                    Ok(Some(n)) => {
                        self.count(way, n);
                        // On error the pipe may hold bytes: it is dropped, not pooled.
                        splice_out(&p.r, to, n).await?;
                        pipe = Some(p);
                        n
                    }
                    Ok(None) => {
                        // The burst is over: the pipe goes back, small messages are copied.
                        give_pipe(p);
                        bulk = false;
                        continue;
                    }
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                        // This socket cannot be spliced: copy through the buffer from now on.
                        give_pipe(p);
                        (bulk, splice_ok) = (false, false);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            if moved == 0 {
                self.half_close(to)?;
                return Ok(());
            }
        }
    }

    /// End of stream from one side: pass the half-close on to `to`, unless the other way is
    /// done too: then both sockets close at once, which sends the FIN without a shutdown.
    fn half_close(&self, to: &TcpStream) -> io::Result<()> {
        self.binding.closing(self.clock.now_ms());
        self.entry.set_state(self.binding.state());
        if self.one_side_closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        match rustix::net::shutdown(to, Shutdown::Write) {
            Ok(()) | Err(rustix::io::Errno::NOTCONN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

thread_local! {
    /// Each worker thread's scratch buffer for the copy path: no per-connection buffer.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; COPY_BUF].into_boxed_slice());
}

/// What one copy step did.
enum Step {
    NotReady,
    Eof,
    /// `n` bytes read (`full`: the read filled the buffer); `rest` is what the destination
    /// did not take at once.
    Moved {
        n: usize,
        full: bool,
        rest: Option<Vec<u8>>,
    },
}

/// Reads once from `from` into the thread's scratch buffer and writes what `to` takes now.
fn copy_step(from: &TcpStream, to: &TcpStream) -> io::Result<Step> {
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        let len = buf.len();
        let n = match read_clearing(from, &mut buf[..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::NotReady),
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(Step::Eof);
        }
        let written = match to.try_write(&buf[..n]) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        Ok(Step::Moved { n, full: n == len, rest: (written < n).then(|| buf[written..n].to_vec()) })
    })
}
