//! The VRRP shell: runs each `[[vrrp]]` instance of the file as a task (rvs-vrrp's state
//! machine with real sockets, netlink and gratuitous ARP), starts and stops them on reload
//! (an instance whose spec is unchanged is left alone), and lists them for the API and metrics.

mod garp;
mod instance;
mod netlink;
mod socket;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use rvs_model::vrrp::VrrpInstanceSpec;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use instance::Instance;

use crate::director::Director;

struct Running {
    instance: Arc<Instance>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

#[derive(Default)]
pub struct VrrpPlane {
    /// The director the instances report to (set once it exists).
    director: OnceLock<Weak<Director>>,
    running: Mutex<BTreeMap<String, Running>>,
}

impl VrrpPlane {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The director whose apply path the instances' transitions go through.
    pub fn attach(&self, director: &Arc<Director>) {
        let _ = self.director.set(Arc::downgrade(director));
    }

    /// Makes the running instances those of `specs` (within the runtime): new ones start,
    /// removed ones stop, a changed one starts once its old self has stopped, unchanged ones
    /// are not touched.
    pub fn reconcile(&self, specs: Vec<VrrpInstanceSpec>) {
        let director = self.director.get().cloned().unwrap_or_default();
        let mut running = self.lock();
        let gone: Vec<String> = running
            .iter()
            .filter(|(name, r)| !specs.iter().any(|s| &s.name == *name && *s == r.instance.spec))
            .map(|(name, _)| name.clone())
            .collect();
        let mut stopping: BTreeMap<String, JoinHandle<()>> = BTreeMap::new();
        for name in gone {
            if let Some(r) = running.remove(&name) {
                r.stop.cancel();
                stopping.insert(name, r.task);
            }
        }
        for spec in specs {
            if running.contains_key(&spec.name) {
                continue;
            }
            let before = stopping.remove(&spec.name);
            let instance = Instance::new(spec);
            let stop = CancellationToken::new();
            let (inst, d, s) = (instance.clone(), director.clone(), stop.clone());
            let task = tokio::spawn(async move {
                if let Some(old) = before {
                    let _ = old.await;
                }
                instance::run(inst, d, s).await;
            });
            running.insert(instance.spec.name.clone(), Running { instance, stop, task });
        }
        // Removed instances finish their shutdown on their own.
        drop(stopping);
    }

    /// Stops every instance: priority-0 advertisements, addresses removed.
    pub async fn shutdown(&self) {
        let all: Vec<Running> = std::mem::take(&mut *self.lock()).into_values().collect();
        stop_all(all).await;
    }

    /// Every instance, by name.
    pub fn instances(&self) -> Vec<Arc<Instance>> {
        self.lock().values().map(|r| r.instance.clone()).collect()
    }
}

async fn stop_all(list: Vec<Running>) {
    for r in &list {
        r.stop.cancel();
    }
    for r in list {
        let _ = r.task.await;
    }
}
