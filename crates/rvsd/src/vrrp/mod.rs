//! The VRRP shell: runs each `[[vrrp]]` instance of the file as a task (rvs-vrrp's state
//! machine with real sockets, netlink and gratuitous ARP), starts and stops them on reload
//! (an instance whose spec is unchanged is left alone), and lists them for the API and metrics.

mod garp;
mod instance;
mod na;
mod netlink;
mod socket;
mod socket6;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use rvs_model::vrrp::VrrpInstanceSpec;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use instance::Instance;

use crate::director::Director;

/// A running unit: a sync group's instances (a lone instance is a group of one), one task.
struct Running {
    instances: Vec<Arc<Instance>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The file's instances as units, by key (`group NAME`, or the lone instance's name), in file
/// order within each.
fn units(specs: Vec<VrrpInstanceSpec>) -> BTreeMap<String, Vec<VrrpInstanceSpec>> {
    let mut out: BTreeMap<String, Vec<VrrpInstanceSpec>> = BTreeMap::new();
    for s in specs {
        let key = s.sync_group.as_ref().map_or_else(|| s.name.clone(), |g| format!("group {g}"));
        out.entry(key).or_default().push(s);
    }
    out
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
        let units = units(specs);
        let mut running = self.lock();
        let same = |r: &Running, specs: &[VrrpInstanceSpec]| {
            r.instances.len() == specs.len() && r.instances.iter().zip(specs).all(|(i, s)| i.spec == *s)
        };
        let gone: Vec<String> = running
            .iter()
            .filter(|(key, r)| !units.get(*key).is_some_and(|specs| same(r, specs)))
            .map(|(key, _)| key.clone())
            .collect();
        // What stops first: every unit that had an instance a new unit has (the same name).
        let mut stopping: Vec<(Vec<String>, JoinHandle<()>)> = Vec::new();
        for key in gone {
            if let Some(r) = running.remove(&key) {
                r.stop.cancel();
                stopping.push((r.instances.iter().map(|i| i.spec.name.clone()).collect(), r.task));
            }
        }
        for (key, specs) in units {
            if running.contains_key(&key) {
                continue;
            }
            let (before, rest): (Vec<_>, Vec<_>) =
                stopping.into_iter().partition(|(names, _)| specs.iter().any(|s| names.contains(&s.name)));
            stopping = rest;
            let instances: Vec<Arc<Instance>> = specs.into_iter().map(Instance::new).collect();
            let stop = CancellationToken::new();
            let (members, d, s) = (instances.clone(), director.clone(), stop.clone());
            let task = tokio::spawn(async move {
                for (_, old) in before {
                    let _ = old.await;
                }
                instance::run(members, d, s).await;
            });
            running.insert(key, Running { instances, stop, task });
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
        self.lock().values().flat_map(|r| r.instances.iter().cloned()).collect()
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
