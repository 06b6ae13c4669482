//! The push channel: `GET /v1/stream`, server-sent events, one `tick` a second with the live
//! figures and the new events. Each client has a small bounded queue; a client that does not
//! keep up (its queue full: it stopped reading) is dropped and its connection closed, so a slow
//! or vanished client costs a bounded amount of memory.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame};
use tokio::sync::{mpsc, Notify};

/// Push-channel clients at once.
pub const MAX_CLIENTS: usize = 64;
/// Messages queued per client (seconds of backlog) before it is dropped.
pub const QUEUE: usize = 8;

struct Client {
    tx: mpsc::Sender<Bytes>,
    /// Closes the client's connection.
    kill: Arc<Notify>,
}

/// The clients of the push channel.
#[derive(Default)]
pub struct Hub {
    clients: Mutex<Vec<Client>>,
    /// Clients dropped for not reading.
    dropped: AtomicU64,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new client whose connection `kill` closes; `None` when there are too many.
    pub fn subscribe(&self, kill: Arc<Notify>) -> Option<SseBody> {
        let mut clients = self.lock();
        clients.retain(|c| !c.tx.is_closed());
        if clients.len() >= MAX_CLIENTS {
            return None;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        // The browser reconnects after 2 s if the connection drops.
        let _ = tx.try_send(Bytes::from_static(b"retry: 2000\n\n"));
        clients.push(Client { tx, kill });
        Some(SseBody { rx })
    }

    /// Sends one event to every client; drops those whose queue is full.
    pub fn broadcast(&self, event: &str, data: &[u8]) {
        let mut msg = Vec::with_capacity(data.len() + event.len() + 16);
        msg.extend_from_slice(b"event: ");
        msg.extend_from_slice(event.as_bytes());
        msg.extend_from_slice(b"\ndata: ");
        msg.extend_from_slice(data);
        msg.extend_from_slice(b"\n\n");
        let msg = Bytes::from(msg);
        self.lock().retain(|c| match c.tx.try_send(msg.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::info!("dashboard push client dropped: it stopped reading");
                c.kill.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    pub fn clients(&self) -> usize {
        let mut clients = self.lock();
        clients.retain(|c| !c.tx.is_closed());
        clients.len()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The body of a push-channel response: the client's queue, as it comes.
pub struct SseBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_does_not_read_is_dropped_and_closed() {
        let hub = Hub::default();
        let kill = Arc::new(Notify::new());
        let body = hub.subscribe(kill.clone()).unwrap();
        for _ in 0..QUEUE + 1 {
            hub.broadcast("tick", b"{}");
        }
        assert_eq!(hub.clients(), 0);
        assert_eq!(hub.dropped(), 1);
        drop(body);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(1), kill.notified()).await.expect("killed");
        });
    }
}
