//! splice(2) between two TCP sockets, so payload stays in the kernel: an exact byte count for
//! bodies of known length, and a pump for Upgrade tunnels that passes a FIN on as a half-close.
//! The pipes and the single splices are rvs-dataplane's (`rvs_dataplane::splice`).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::net::Shutdown;
use rvs_dataplane::splice::{give_pipe, splice_in, splice_out, take_pipe, Pipe};
use tokio::net::TcpStream;

use crate::relay::RelayError;

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
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(pipe.size);
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
    // A pipe is borrowed from the pool while bytes flow and given back (empty) when the
    // socket runs dry, so an idle tunnel holds none.
    let mut pipe: Option<Pipe> = None;
    loop {
        from.readable().await?;
        let p = match pipe.take() {
            Some(p) => p,
            None => take_pipe()?,
        };
        match splice_in(from, &p.w, p.size)? {
            None => give_pipe(p),
            Some(0) => {
                give_pipe(p);
                match rustix::net::shutdown(to, Shutdown::Write) {
                    Ok(()) | Err(rustix::io::Errno::NOTCONN) => {}
                    Err(e) => return Err(e.into()),
                }
                return Ok(());
            }
            Some(n) => {
                last.store(now_ms(), Ordering::Relaxed);
                moved.fetch_add(n as u64, Ordering::Relaxed);
                // On error the pipe may hold bytes: it is dropped, not pooled.
                splice_out(&p.r, to, n).await?;
                pipe = Some(p);
            }
        }
    }
}
