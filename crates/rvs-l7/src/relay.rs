//! Message bodies in flight: the client's body to the real server and the real server's body
//! to the client, never held whole. Bytes already buffered go first; then reads are forwarded
//! as far as the body cursor allows; a known length above the splice threshold between two
//! plain sockets moves by splice(2). Errors say which side failed.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::body::BodyCursor;
use crate::buffer::Buffer;
use crate::chunked::ChunkError;
use crate::client_io::Sock;
use rvs_dataplane::splice::{give_pipe, take_pipe};

use crate::splice::splice_exact;

/// Why a body stopped moving.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RelayError {
    #[error("source closed before the end of the body")]
    SrcClosed,
    #[error("reading: {0}")]
    Src(io::Error),
    #[error("writing: {0}")]
    Dst(io::Error),
    #[error(transparent)]
    Framing(#[from] ChunkError),
    #[error("body above the limit")]
    TooLarge,
    #[error("timed out waiting for the body")]
    Timeout,
}

/// How a relay may splice: the body length from which it does. It splices only when both
/// streams expose their sockets, with a pipe borrowed from rvs-dataplane's per-thread pool.
pub(crate) struct SpliceRoute {
    pub threshold: u64,
}

/// One body from a source (with its buffer) to a sink.
pub(crate) struct BodyRelay<'a> {
    pub cursor: &'a mut BodyCursor,
    pub buf: &'a mut Buffer,
    /// Wait bound for each read from the source.
    pub idle: Duration,
    /// Payload limit (client bodies).
    pub max: Option<u64>,
    /// Bytes moved so far.
    pub moved: u64,
    /// A splice is under way (bytes may sit in a pipe): if the relay is dropped now, the body
    /// cannot be resumed.
    pub in_splice: bool,
}

impl BodyRelay<'_> {
    /// Takes what the buffer holds of the body into `out` (at most `room` bytes), so it can go
    /// out with the head in one write.
    pub fn take_buffered(&mut self, out: &mut Vec<u8>, room: usize) -> Result<(), RelayError> {
        if self.cursor.is_done() || self.buf.is_empty() {
            return Ok(());
        }
        let avail = &self.buf.filled()[..self.buf.len().min(room)];
        let n = self.cursor.feed(avail)?;
        self.check_limit()?;
        out.extend_from_slice(&avail[..n]);
        self.buf.consume(n);
        self.moved += n as u64;
        Ok(())
    }

    fn check_limit(&self) -> Result<(), RelayError> {
        match (self.max, self.cursor.remaining()) {
            (Some(max), None) if self.cursor.decoded() > max => Err(RelayError::TooLarge),
            _ => Ok(()),
        }
    }

    /// Forwards the body to its end. `splice` is tried for a known length once the buffer is
    /// empty. Cancel-safe when `splice` is none: state lives in the cursor and the buffer, and
    /// `pending` holds bytes of the buffer already counted into the body but not yet written.
    pub async fn run<R, W>(
        &mut self,
        src: &mut R,
        dst: &mut W,
        pending: &mut usize,
        splice: Option<SpliceRoute>,
    ) -> Result<(), RelayError>
    where
        R: AsyncRead + Sock + Unpin + ?Sized,
        W: AsyncWrite + Sock + Unpin + ?Sized,
    {
        loop {
            if *pending > 0 {
                let n = dst.write(&self.buf.filled()[..*pending]).await.map_err(RelayError::Dst)?;
                if n == 0 {
                    return Err(RelayError::Dst(io::ErrorKind::WriteZero.into()));
                }
                self.buf.consume(n);
                *pending -= n;
                self.moved += n as u64;
                continue;
            }
            if self.cursor.is_done() {
                dst.flush().await.map_err(RelayError::Dst)?;
                return Ok(());
            }
            if !self.buf.is_empty() {
                *pending = self.cursor.feed(self.buf.filled())?;
                self.check_limit()?;
                if *pending > 0 || self.cursor.is_done() {
                    continue;
                }
            }
            if let (Some(route), Some(left)) = (splice.as_ref(), self.cursor.remaining()) {
                if left >= route.threshold && self.buf.is_empty() && src.sock().is_some() && dst.sock().is_some() {
                    dst.flush().await.map_err(RelayError::Dst)?;
                    let pipe = take_pipe().map_err(RelayError::Src)?;
                    let (Some(from), Some(to)) = (src.sock(), dst.sock()) else { unreachable!("checked above") };
                    let mut moved = 0;
                    self.in_splice = true;
                    let r = splice_exact(from, to, &pipe, left, self.idle, &mut moved).await;
                    self.in_splice = false;
                    self.moved += moved;
                    self.cursor.advance(moved);
                    r?;
                    // Only a pipe that emptied cleanly goes back to the pool.
                    give_pipe(pipe);
                    continue;
                }
            }
            let n = match tokio::time::timeout(self.idle, self.buf.read_from(src)).await {
                Err(_) => return Err(RelayError::Timeout),
                Ok(Err(e)) => return Err(RelayError::Src(e)),
                Ok(Ok(n)) => n,
            };
            if n == 0 {
                if self.cursor.close() {
                    dst.flush().await.map_err(RelayError::Dst)?;
                    return Ok(());
                }
                return Err(RelayError::SrcClosed);
            }
        }
    }
}
