//! The listening sockets of a binary upgrade, one registry per process: those the data planes
//! hold now (what a running rvsd hands to its successor: a duplicate of each listener's
//! descriptor, the same socket with the same accept queue), and those this process was handed
//! by its predecessor (what [`crate::ListenerSet`] takes instead of binding anew).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};

use rvs_core::{Protocol, ServiceAddr};

/// Listeners held by this process's data planes (duplicates of their descriptors).
static HELD: Mutex<Option<HashMap<ServiceAddr, OwnedFd>>> = Mutex::new(None);
/// Listeners handed over by the previous rvsd, not yet taken by a data plane.
static HANDED: Mutex<Option<HashMap<ServiceAddr, OwnedFd>>> = Mutex::new(None);

fn lock(
    m: &'static Mutex<Option<HashMap<ServiceAddr, OwnedFd>>>,
) -> MutexGuard<'static, Option<HashMap<ServiceAddr, OwnedFd>>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records that a data plane now listens on `key` with `socket` (a duplicate is kept).
pub(crate) fn hold(key: ServiceAddr, socket: &impl AsFd) -> io::Result<()> {
    let dup = socket.as_fd().try_clone_to_owned()?;
    lock(&HELD).get_or_insert_with(HashMap::new).insert(key, dup);
    Ok(())
}

/// A data plane no longer listens on `key`.
pub(crate) fn release(key: &ServiceAddr) {
    if let Some(m) = lock(&HELD).as_mut() {
        m.remove(key);
    }
}

/// The listening sockets of every virtual service now, each a new descriptor of the same
/// socket, in a stable order (UDP after TCP, then by address).
pub fn held() -> io::Result<Vec<(ServiceAddr, OwnedFd)>> {
    let held = lock(&HELD);
    let mut out = Vec::new();
    for (key, fd) in held.iter().flatten() {
        out.push((*key, fd.try_clone()?));
    }
    out.sort_by_key(|(k, _)| (k.protocol == Protocol::Udp, k.addr));
    Ok(out)
}

/// Hands this process the listeners of its predecessor: a data plane that needs a listener for
/// one of these services takes it instead of binding.
pub fn inherit(sockets: Vec<(ServiceAddr, OwnedFd)>) {
    lock(&HANDED).get_or_insert_with(HashMap::new).extend(sockets);
}

/// The predecessor's listener for `key`, if it handed one and no data plane took it yet.
pub(crate) fn take(key: &ServiceAddr) -> Option<OwnedFd> {
    lock(&HANDED).as_mut()?.remove(key)
}

/// Closes this process's copies of the handed listeners no data plane took (the configuration
/// has no such service any more) and names their services.
pub fn close_untaken() -> Vec<ServiceAddr> {
    lock(&HANDED).take().map(|m| m.into_keys().collect()).unwrap_or_default()
}
