//! Failed connects to real servers, told to whoever watches them (rvsd's passive health
//! checking): the record of one, and one observer slot per data plane, set once, read without
//! a lock.

use std::net::SocketAddr;
use std::sync::OnceLock;

use rvs_core::ServiceKey;

/// One failed connect: the real server as the health plane knows it (its virtual service, its
/// pool for an http service, its address) and why. Borrowed: reporting allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedConnect<'a> {
    /// The virtual service the connection came to.
    pub service: ServiceKey,
    /// The pool of an http (L7) service's real server; `None` for an L4 service's.
    pub pool: Option<&'a str>,
    /// The real server's address.
    pub server: SocketAddr,
    /// Why: the connect error, or the timeout.
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use rvs_core::Protocol;

    use super::*;

    /// What an observer saw of one failed connect.
    type Seen = Arc<Mutex<Vec<(ServiceKey, Option<String>, SocketAddr, String)>>>;

    #[test]
    fn the_first_observer_is_told_of_each_failed_connect() {
        let slot = ConnectFailures::default();
        let service = ServiceKey::new(Protocol::Tcp, "10.0.0.1:80".parse().unwrap());
        let failed = FailedConnect {
            service,
            pool: Some("api"),
            server: "10.0.1.1:8080".parse().unwrap(),
            reason: "connect failed: refused",
        };
        slot.report(&failed); // nobody watches yet: nothing happens
        let seen: Seen = Arc::default();
        let record = |seen: Seen| -> ConnectFailureObserver {
            Box::new(move |f| {
                seen.lock().unwrap().push((f.service, f.pool.map(str::to_string), f.server, f.reason.to_string()))
            })
        };
        slot.observe(record(seen.clone()));
        let ignored: Seen = Arc::default();
        slot.observe(record(ignored.clone()));
        slot.report(&failed);
        slot.report(&FailedConnect { pool: None, ..failed });
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], (service, Some("api".to_string()), failed.server, failed.reason.to_string()));
        assert_eq!(seen[1].1, None);
        assert!(ignored.lock().unwrap().is_empty());
    }
}
