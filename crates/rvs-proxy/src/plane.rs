//! The L4 proxy engine as a data plane: a change is prepared by binding the listeners and UDP
//! sockets of the services it adds, and published by handing the engine the new snapshot of
//! the service table.

use std::sync::Arc;
use std::time::Duration;

use rvs_core::RealServer;
use rvs_dataplane::connect_failures::ConnectFailureObserver;
use rvs_dataplane::plane::{Drained, KernelRelayReport};
use rvs_dataplane::{ConnInfo, DataPlane, PlaneError, PlaneErrorKind, PlaneReport, Prepared, Publication};
use rvs_model::DirectorModel;

use crate::engine::{BoundSockets, Engine};

/// The TCP and UDP services this engine serves: those whose real servers it proxies (full NAT);
/// the packet engine serves the others.
fn proxy_services(model: &DirectorModel) -> Vec<rvs_core::ServiceKey> {
    model
        .table
        .services
        .iter()
        .filter(|(k, m)| k.protocol.proxied() && m.engine() == rvs_core::forwarding::Engine::Proxy)
        .map(|(k, _)| *k)
        .collect()
}

impl DataPlane for Engine {
    fn name(&self) -> &'static str {
        "proxy"
    }

    fn prepare(&self, next: &DirectorModel) -> Result<Prepared, PlaneError> {
        let bound = self
            .bind_missing(proxy_services(next))
            .map_err(|e| PlaneError::new(PlaneErrorKind::Listen, Some(e.key), e))?;
        Ok(Prepared::new(bound))
    }

    fn publish(self: Arc<Self>, prepared: Prepared, next: &Publication) {
        let Some(bound) = prepared.take::<BoundSockets>() else {
            tracing::error!("proxy engine: handed another data plane's prepared change; not published");
            return;
        };
        Engine::publish(&self, bound, proxy_services(&next.model), next.services.clone(), &next.removed);
    }

    fn report(&self) -> PlaneReport {
        PlaneReport {
            connections: self.connection_count(),
            kernel_relay: self.kernel_relay().map(|k| KernelRelayReport {
                capacity: k.capacity(),
                linked: k.linked(),
                linked_total: k.linked_total(),
            }),
            draining: self.draining(),
            http: Vec::new(),
            packet: None,
        }
    }

    fn connections(&self) -> Vec<ConnInfo> {
        Engine::connections(self)
    }

    fn close_connections_to(&self, dest: &Arc<RealServer>) -> usize {
        Engine::close_connections_to(self, dest)
    }

    fn observe_connect_failures(&self, observer: ConnectFailureObserver) {
        Engine::observe_connect_failures(self, observer);
    }

    fn shutdown(&self, deadline: Duration) -> Drained<'_> {
        Box::pin(Engine::shutdown(self, deadline))
    }
}
