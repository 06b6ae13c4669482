//! Failed connects to real servers, told to whoever watches them (rvsd's passive health
//! checking): the record of one, and one observer slot per data plane, set once, read without
//! a lock.

use std::net::SocketAddr;
use std::sync::OnceLock;

use rvs_core::ServiceKey;

/// One failed connect: the virtual service, the pool (http services), the real server and why.
#[derive(Debug, Clone, Copy)]
pub struct FailedConnect<'a> {
    pub service: ServiceKey,
    pub pool: Option<&'a str>,
    pub server: SocketAddr,
    pub reason: &'a str,
}

/// Receives each failed connect.
pub type ConnectFailureObserver = Box<dyn Fn(&FailedConnect<'_>) + Send + Sync>;

/// A data plane's observer slot.
#[derive(Default)]
pub struct ConnectFailures(OnceLock<ConnectFailureObserver>);

impl ConnectFailures {
    /// Sets the observer (once; later calls are ignored).
    pub fn observe(&self, observer: ConnectFailureObserver) {
        let _ = self.0.set(observer);
    }

    /// Tells the observer, if there is one.
    pub fn report(&self, failed: &FailedConnect<'_>) {
        if let Some(observe) = self.0.get() {
            observe(failed);
        }
    }
}

impl std::fmt::Debug for ConnectFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ConnectFailures").field(&self.0.get().is_some()).finish()
    }
}
