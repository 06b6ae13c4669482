//! The connection table: every proxied connection, for `ipvsadm -L -c`, for closing the
//! connections of a deleted real server and for draining on shutdown. Sharded, so the data
//! plane touches one small lock twice per connection (insert, remove) and atomics otherwise.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use rvs_core::{ConnState, Protocol, RealServer};
use rvs_dataplane::hasher::UnkeyedMap;

const SHARDS: usize = 64;

/// How a connection is closed from outside its task (the idle sweeper, `expire_nodest_conn`,
/// the shutdown deadline): a flag and the one waiting task's waker, inside the entry. Cheaper
/// per connection than a `CancellationToken` (no allocation of its own, no `Notify`), and it
/// holds a single waiter: only the connection's own task waits on it.
#[derive(Debug, Default)]
pub struct Closer {
    closed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Closer {
    /// Closes the connection: its task's [`Self::cancelled`] completes.
    pub fn cancel(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(w) = lock(&self.waker).take() {
            w.wake();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Has `waker` woken at [`Self::cancel`] (an event loop's, for the connections it drives)
    /// instead of a waiting task's; woken at once when the close came first.
    pub fn watch(&self, waker: Waker) {
        *lock(&self.waker) = Some(waker);
        if self.is_cancelled() {
            if let Some(w) = lock(&self.waker).take() {
                w.wake();
            }
        }
    }

    /// Completes once [`Self::cancel`] has been called. One waiting task at a time.
    pub fn cancelled(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.is_cancelled() {
                return Poll::Ready(());
            }
            {
                let mut w = lock(&self.waker);
                if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *w = Some(cx.waker().clone());
                }
            }
            // A cancel between the first check and the waker's storing took no waker: look again.
            if self.is_cancelled() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// The keys are the connections' sequence numbers: no SipHash needed.
type Shard = Mutex<UnkeyedMap<u64, Arc<ConnEntry>>>;

/// One connection as the table sees it.
#[derive(Debug)]
pub struct ConnEntry {
    pub id: u64,
    pub protocol: Protocol,
    pub client: SocketAddr,
    pub virtual_addr: SocketAddr,
    dest: Mutex<Option<Arc<RealServer>>>,
    state: AtomicU8,
    last_activity_ms: AtomicU64,
    pub cancel: Closer,
}

impl ConnEntry {
    pub fn set_dest(&self, d: Option<Arc<RealServer>>) {
        *lock(&self.dest) = d;
    }
    pub fn dest(&self) -> Option<Arc<RealServer>> {
        lock(&self.dest).clone()
    }
    pub fn set_state(&self, s: ConnState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }
    pub fn state(&self) -> ConnState {
        ConnState::from_u8(self.state.load(Ordering::Relaxed))
    }
    pub fn touch(&self, now_ms: u64) {
        self.last_activity_ms.store(now_ms, Ordering::Relaxed);
    }
    pub fn last_activity_ms(&self) -> u64 {
        self.last_activity_ms.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
pub struct ConnTable {
    shards: Vec<Shard>,
    next_id: AtomicU64,
}

impl Default for ConnTable {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), next_id: AtomicU64::new(1) }
    }
}

/// Removes its entry from the table when the connection ends.
#[derive(Debug)]
pub struct ConnGuard<'a> {
    table: &'a ConnTable,
    pub entry: Arc<ConnEntry>,
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.table.remove(self.entry.id);
    }
}

impl ConnTable {
    fn shard(&self, id: u64) -> &Shard {
        &self.shards[(id as usize) % SHARDS]
    }

    /// Enters a connection; its entry leaves the table when the guard goes.
    pub fn insert(
        &self,
        protocol: Protocol,
        client: SocketAddr,
        virtual_addr: SocketAddr,
        now_ms: u64,
    ) -> ConnGuard<'_> {
        ConnGuard { table: self, entry: self.enter(protocol, client, virtual_addr, now_ms) }
    }

    /// Enters a connection whose owner [`Self::remove`]s it when it ends (an event loop's
    /// connection, which cannot hold a guard borrowing the table).
    pub fn enter(
        &self,
        protocol: Protocol,
        client: SocketAddr,
        virtual_addr: SocketAddr,
        now_ms: u64,
    ) -> Arc<ConnEntry> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(ConnEntry {
            id,
            protocol,
            client,
            virtual_addr,
            dest: Mutex::new(None),
            state: AtomicU8::new(ConnState::Opening as u8),
            last_activity_ms: AtomicU64::new(now_ms),
            cancel: Closer::default(),
        });
        lock(self.shard(id)).insert(id, entry.clone());
        entry
    }

    /// Removes connection `id` (it ended).
    pub fn remove(&self, id: u64) {
        lock(self.shard(id)).remove(&id);
    }

    /// Every connection, in no particular order.
    pub fn entries(&self) -> Vec<Arc<ConnEntry>> {
        self.shards.iter().flat_map(|s| lock(s).values().cloned().collect::<Vec<_>>()).collect()
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes every connection to `dest` (`expire_nodest_conn`). Returns how many.
    pub fn close_dest(&self, dest: &Arc<RealServer>) -> usize {
        let mut n = 0;
        for e in self.entries() {
            if e.dest().is_some_and(|d| Arc::ptr_eq(&d, dest)) {
                e.cancel.cancel();
                n += 1;
            }
        }
        n
    }

    pub fn close_all(&self) {
        self.entries().iter().for_each(|e| e.cancel.cancel());
    }
}
