//! The client connections of the engine, for the count and for closing what is left at the
//! shutdown deadline. Sharded: a connection touches one small lock when it starts and when it
//! ends, never per request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::task::AbortHandle;

const SHARDS: usize = 64;

#[derive(Debug)]
pub(crate) struct SessionTable {
    shards: Vec<Mutex<HashMap<u64, AbortHandle>>>,
    next: AtomicU64,
}

impl Default for SessionTable {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), next: AtomicU64::new(0) }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SessionTable {
    /// Spawns `f(id)` as a session; the task must call [`SessionTable::remove`] with `id` when
    /// it ends (the shard stays locked until the handle is in, so that cannot race).
    pub fn spawn<F, Fut>(&self, f: F)
    where
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut shard = lock(&self.shards[id as usize % SHARDS]);
        let handle = tokio::spawn(f(id));
        shard.insert(id, handle.abort_handle());
    }

    pub fn remove(&self, id: u64) {
        lock(&self.shards[id as usize % SHARDS]).remove(&id);
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Aborts every session; returns how many there were.
    pub fn abort_all(&self) -> usize {
        let mut n = 0;
        for s in &self.shards {
            for (_, h) in lock(s).drain() {
                h.abort();
                n += 1;
            }
        }
        n
    }
}
