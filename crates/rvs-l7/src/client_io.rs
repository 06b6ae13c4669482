//! The two kinds of stream a relay moves bytes between: the client side (plain TCP, TLS, or
//! the in-memory duplex of one HTTP/2 stream) and a shared reference to a real server's
//! socket. One trait tells whether a stream is a raw socket splice(2) may use; `TcpRef` lets
//! a `&TcpStream` read and write while another task of the same exchange peeks at it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use rustix::net::Shutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A stream that may expose its raw socket.
pub(crate) trait Sock {
    /// The socket, when bytes may move on it without passing through this process.
    fn sock(&self) -> Option<&TcpStream>;
}

/// The client side of a session.
pub(crate) trait ClientIo: AsyncRead + AsyncWrite + Sock + Unpin + Send + 'static {}

impl Sock for TcpStream {
    fn sock(&self) -> Option<&TcpStream> {
        Some(self)
    }
}
impl ClientIo for TcpStream {}

impl Sock for TlsStream<TcpStream> {
    fn sock(&self) -> Option<&TcpStream> {
        None
    }
}
impl ClientIo for TlsStream<TcpStream> {}

/// One HTTP/2 stream carried as an HTTP/1.1 exchange (see `http2`): bytes only, no socket.
impl Sock for tokio::io::DuplexStream {
    fn sock(&self) -> Option<&TcpStream> {
        None
    }
}
impl ClientIo for tokio::io::DuplexStream {}

/// Reads and writes through a shared reference.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TcpRef<'a>(pub &'a TcpStream);

impl Sock for TcpRef<'_> {
    fn sock(&self) -> Option<&TcpStream> {
        Some(self.0)
    }
}

impl AsyncRead for TcpRef<'_> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            // A short read clears the readiness, so a pooled connection's idle check after a
            // response costs no syscall.
            match rvs_dataplane::splice::read_clearing(self.0, buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TcpRef<'_> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match rustix::net::shutdown(self.0, Shutdown::Write) {
            Ok(()) | Err(rustix::io::Errno::NOTCONN) => Ok(()),
            Err(e) => Err(e.into()),
        })
    }
}
