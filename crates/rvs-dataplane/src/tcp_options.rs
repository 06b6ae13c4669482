//! The TCP options rvs sets on the connections it proxies, for both data planes: `TCP_NODELAY`
//! and `TCP_NOTSENT_LOWAT` (a socket takes more only when little of what it holds is unsent).
//! Listeners set them once for what they accept; connections to real servers after connect.

use std::io;
use std::os::fd::AsFd;

use socket2::SockRef;

/// Most bytes a proxied socket may hold that it has not sent yet (in-flight bytes do not count,
/// so send-buffer autotuning still fills long fat paths). Without the limit a relay piles up to
/// the whole send buffer behind a slow reader; a peer on the same host then takes each window in
/// one burst, its receive-buffer autotuning sees a tiny round trip and keeps its window small,
/// and every byte costs more wakeups and acknowledgements: on loopback a 1 MiB-response load took
/// about a third less CPU per byte on the client with the limit (bench/run.sh, bulk).
pub const NOTSENT_LOWAT: u32 = 128 * 1024;

/// Sets the relay's options on a socket: a listener (accepted connections inherit them) or a
/// connected stream.
pub fn apply(socket: &impl AsFd) -> io::Result<()> {
    let s = SockRef::from(socket);
    s.set_tcp_nodelay(true)?;
    s.set_tcp_notsent_lowat(NOTSENT_LOWAT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listeners::bind_listener;

    /// The options reach accepted connections through the listener, and connected streams
    /// directly: read back from the kernel.
    #[tokio::test]
    async fn accepted_and_connected_sockets_carry_the_options() {
        let listener = bind_listener("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let a = SockRef::from(&accepted);
        assert!(a.tcp_nodelay().unwrap());
        assert_eq!(a.tcp_notsent_lowat().unwrap(), NOTSENT_LOWAT);

        let c = SockRef::from(&client);
        assert_ne!(c.tcp_notsent_lowat().unwrap(), NOTSENT_LOWAT);
        apply(&client).unwrap();
        assert!(c.tcp_nodelay().unwrap());
        assert_eq!(c.tcp_notsent_lowat().unwrap(), NOTSENT_LOWAT);
    }
}
