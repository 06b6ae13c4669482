//! Caps on concurrent client connections, the director's (HAProxy's global `maxconn`) and each
//! virtual service's (`max_connections`): at a cap the accept loop stops accepting, so clients
//! wait in the listen backlog instead of the daemon running out of file descriptors or memory.

use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rvs_core::ServiceAddr;
use tokio::sync::Notify;

/// How many client connections the director holds at once, and how many it may hold.
#[derive(Debug, Default)]
pub struct ConnLimit {
    /// The cap; 0 is none.
    max: AtomicUsize,
    current: AtomicUsize,
    /// How many times an accept loop found the cap reached and waited.
    waits: AtomicU64,
    /// Accept loops waiting now: a connection that ends only wakes (a lock inside `Notify`)
    /// when there are some.
    waiting: AtomicUsize,
    freed: Notify,
}

/// One client connection's place under the cap, given back when dropped.
#[derive(Debug)]
pub struct ConnSlot(Arc<ConnLimit>);

impl ConnLimit {
    pub fn new(max: Option<NonZeroUsize>) -> Arc<Self> {
        let limit = Arc::new(Self::default());
        limit.set_max(max);
        limit
    }

    /// Changes the cap at once. Connections over a lowered cap stay; none is accepted until
    /// enough of them have ended.
    pub fn set_max(&self, max: Option<NonZeroUsize>) {
        self.max.store(max.map_or(0, NonZeroUsize::get), Ordering::Release);
        self.freed.notify_waiters();
    }

    pub fn max(&self) -> Option<NonZeroUsize> {
        NonZeroUsize::new(self.max.load(Ordering::Acquire))
    }

    /// Client connections held now.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }

    /// How many times an accept loop waited at the cap.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// A place for one more connection, if the cap allows it now.
    pub fn try_acquire(self: &Arc<Self>) -> Option<ConnSlot> {
        let mut n = self.current.load(Ordering::SeqCst);
        loop {
            let max = self.max.load(Ordering::Acquire);
            if max != 0 && n >= max {
                return None;
            }
            match self.current.compare_exchange_weak(n, n + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(ConnSlot(self.clone())),
                Err(now) => n = now,
            }
        }
    }

    /// Counts one wait at the cap (an accept loop that found it reached and paused).
    pub fn note_wait(&self) {
        self.waits.fetch_add(1, Ordering::Relaxed);
    }

    /// A place for one more connection, waiting while the cap is reached.
    pub async fn acquire(self: &Arc<Self>) -> ConnSlot {
        if let Some(slot) = self.try_acquire() {
            return slot;
        }
        self.note_wait();
        // Counted as waiting before each check of `current` (both SeqCst): a connection that
        // ends either sees the waiter and wakes it, or the waiter's check sees the free place.
        // A guard, as the wait may be dropped (the accept loop stopping).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        loop {
            // Registered before the check, so a connection that ends in between still wakes us.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = self.try_acquire() {
                return slot;
            }
            freed.await;
        }
    }
}

/// An accepted connection's places: under its virtual service's cap and the director's.
#[derive(Debug)]
pub struct ConnSlots {
    _service: ConnSlot,
    _director: ConnSlot,
}

/// Places for one accepted connection: its service's first, then the director's (so a
/// service at its own cap holds no place of the director's while it waits).
pub async fn acquire_places(service: &Arc<ConnLimit>, director: &Arc<ConnLimit>) -> ConnSlots {
    let service = service.acquire().await;
    ConnSlots { _service: service, _director: director.acquire().await }
}

/// Places for one accepted connection if both caps allow it now (its service's first, as
/// [`acquire_places`]); otherwise the cap that is reached.
pub fn try_places<'a>(
    service: &'a Arc<ConnLimit>,
    director: &'a Arc<ConnLimit>,
) -> Result<ConnSlots, &'a Arc<ConnLimit>> {
    let s = service.try_acquire().ok_or(service)?;
    Ok(ConnSlots { _service: s, _director: director.try_acquire().ok_or(director)? })
}

/// A cap in the configuration's terms (`None`: no cap).
pub fn cap(max: Option<NonZeroU32>) -> Option<NonZeroUsize> {
    max.and_then(|m| NonZeroUsize::new(usize::try_from(m.get()).unwrap_or(usize::MAX)))
}

/// The caps of a data plane's virtual services, kept across publishes (the connections that
/// hold places keep them) and set at each publish. The control side locks it; a connection
/// only touches its own service's [`ConnLimit`].
#[derive(Debug)]
pub struct ServiceCaps<K = ServiceAddr>(Mutex<HashMap<K, Arc<ConnLimit>>>);

impl<K> Default for ServiceCaps<K> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: std::hash::Hash + Eq + Copy> ServiceCaps<K> {
    /// The caps become `wanted`; services not in it lose theirs.
    pub fn publish(&self, wanted: impl IntoIterator<Item = (K, Option<NonZeroU32>)>) {
        let mut caps = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept = HashMap::with_capacity(caps.len());
        for (key, max) in wanted {
            let limit = caps.remove(&key).unwrap_or_default();
            if limit.max() != cap(max) {
                limit.set_max(cap(max));
            }
            kept.insert(key, limit);
        }
        *caps = kept;
    }

    /// The cap of `key`: the published one, or none yet.
    pub fn get(&self, key: &K) -> Arc<ConnLimit> {
        let mut caps = self.0.lock().unwrap_or_else(|e| e.into_inner());
        caps.entry(*key).or_default().clone()
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::SeqCst);
        // Every waiter looks again: the accept loops of all services share the cap.
        if self.0.waiting.load(Ordering::SeqCst) > 0 {
            self.0.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at_most(n: usize) -> Option<NonZeroUsize> {
        NonZeroUsize::new(n)
    }

    /// An accept loop's wait for a place, started and given time to block.
    async fn waiting_accept(limit: &Arc<ConnLimit>) -> tokio::task::JoinHandle<ConnSlot> {
        let limit = limit.clone();
        let waiter = tokio::spawn(async move { limit.acquire().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        waiter
    }

    #[test]
    fn no_cap_takes_everything() {
        let limit = ConnLimit::new(None);
        let slots: Vec<_> = (0..1000).map(|_| limit.try_acquire().unwrap()).collect();
        assert_eq!(limit.current(), 1000);
        drop(slots);
        assert_eq!(limit.current(), 0);
    }

    #[test]
    fn the_cap_holds_and_a_dropped_slot_frees_a_place() {
        let limit = ConnLimit::new(at_most(2));
        let a = limit.try_acquire().unwrap();
        let _b = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        drop(a);
        assert!(limit.try_acquire().is_some());
    }

    #[tokio::test]
    async fn a_waiting_accept_goes_on_when_a_connection_ends() {
        let limit = ConnLimit::new(at_most(1));
        let held = limit.acquire().await;
        let waiter = waiting_accept(&limit).await;
        assert!(!waiter.is_finished(), "the cap let a second connection in");
        assert_eq!(limit.waits(), 1);
        drop(held);
        let slot = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("still waiting").unwrap();
        assert_eq!(limit.current(), 1);
        drop(slot);
        assert_eq!(limit.current(), 0);
    }

    #[tokio::test]
    async fn raising_the_cap_wakes_the_waiters_and_lowering_it_keeps_what_runs() {
        let limit = ConnLimit::new(at_most(1));
        let held = limit.acquire().await;
        let waiter = waiting_accept(&limit).await;
        limit.set_max(at_most(2));
        let second = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("still waiting").unwrap();
        limit.set_max(at_most(1));
        assert_eq!(limit.current(), 2, "lowering the cap closes nothing");
        drop(held);
        assert!(limit.try_acquire().is_none(), "still at the lowered cap");
        drop(second);
        assert!(limit.try_acquire().is_some());
    }

    #[tokio::test]
    async fn a_wait_given_up_is_no_longer_counted() {
        let limit = ConnLimit::new(at_most(1));
        let _held = limit.acquire().await;
        let waiter = waiting_accept(&limit).await;
        assert_eq!(limit.waiting.load(Ordering::SeqCst), 1);
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(limit.waiting.load(Ordering::SeqCst), 0, "a stopped accept loop stays counted as waiting");
    }

    #[test]
    fn service_caps_keep_their_counts_across_publishes() {
        let caps = ServiceCaps::default();
        let (a, b) =
            (ServiceAddr::tcp("127.0.0.1:80".parse().unwrap()), ServiceAddr::tcp("127.0.0.1:81".parse().unwrap()));
        caps.publish([(a, NonZeroU32::new(1)), (b, None)]);
        let held = caps.get(&a).try_acquire().expect("a place under a's cap");
        assert!(caps.get(&a).try_acquire().is_none(), "a is at its cap");
        caps.publish([(a, NonZeroU32::new(2))]);
        assert_eq!(caps.get(&a).current(), 1, "the held place stays counted after a publish");
        assert!(caps.get(&a).try_acquire().is_some(), "the raised cap has room");
        drop(held);
        assert_eq!(caps.get(&b).max(), None, "b left and came back without a cap");
    }
}
