//! The accept loop of a TCP virtual service, one for every engine: accept, wait for places
//! under the service's and the director's connection caps, hand the connection on; back off
//! after an accept error; stop when the listener's token is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rvs_core::ServiceAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::conn_limit::{acquire_places, try_places, ConnLimit, ConnSlots};

/// How long the loop pauses after a failed accept (EMFILE and friends) instead of spinning.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Accepts on `listener` until `stop` is cancelled. Each client connection is handed to
/// `serve` with its places under `service_cap` and `director_cap` (held for as long as the
/// connection keeps the [`ConnSlots`]); `serve` is expected to spawn the connection's task and
/// return at once. At either cap the loop waits before accepting more, so new clients wait in
/// the listen backlog.
pub async fn accept_loop<F>(
    key: ServiceAddr,
    listener: TcpListener,
    stop: CancellationToken,
    service_cap: &Arc<ConnLimit>,
    director_cap: &Arc<ConnLimit>,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr, ConnSlots),
{
    loop {
        // `biased`: polled in order, without drawing a random branch order per connection.
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Accepted is served: a stop that comes now does not drop it (its client is
                // sending already; dropping it would reset a request a binary upgrade must not
                // lose). Only at the service's or the director's cap does it wait here (and
                // the next ones in the listen backlog), and a stop then ends the wait.
                let places = match try_places(service_cap, director_cap) {
                    Ok(p) => p,
                    Err(_) => tokio::select! {
                        biased;
                        _ = stop.cancelled() => break,
                        p = acquire_places(service_cap, director_cap) => p,
                    },
                };
                serve(stream, peer, places);
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(service = %key, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use rvs_core::Protocol;
    use tokio::sync::mpsc;

    use super::*;
    use crate::listeners::bind_listener;

    fn key(addr: SocketAddr) -> ServiceAddr {
        ServiceAddr { protocol: Protocol::Tcp, addr }
    }

    #[tokio::test]
    async fn connections_are_handed_on_with_places_under_both_caps_until_stopped() {
        let listener = bind_listener("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = listener.local_addr().unwrap();
        let service = ConnLimit::new(NonZeroUsize::new(1));
        let director = ConnLimit::new(None);
        let stop = CancellationToken::new();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn({
            let (service, director, stop) = (service.clone(), director.clone(), stop.clone());
            async move {
                accept_loop(key(addr), listener, stop, &service, &director, |stream, peer, places| {
                    tx.send((stream, peer, places)).unwrap();
                })
                .await
            }
        });

        let first = TcpStream::connect(addr).await.unwrap();
        let (_, peer, places) = rx.recv().await.unwrap();
        assert_eq!(peer, first.local_addr().unwrap());
        assert_eq!((service.current(), director.current()), (1, 1));

        // At the service's cap the second connection waits until the first one's places go.
        let second = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(rx.try_recv().is_err(), "handed on above the service's cap");
        drop(places);
        let (_, peer, _places) = rx.recv().await.unwrap();
        assert_eq!(peer, second.local_addr().unwrap());

        stop.cancel();
        task.await.unwrap();
    }
}
