//! The L7 engine as a data plane: a change is prepared by planning each http service's pools,
//! building its TLS configuration and binding the listeners of new services; publishing commits
//! the plans and swaps the snapshot the connections read.

use std::sync::Arc;
use std::time::Duration;

use rvs_dataplane::connect_failures::ConnectFailureObserver;
use rvs_dataplane::plane::Drained;
use rvs_dataplane::{DataPlane, PlaneError, PlaneReport, Prepared, Publication};
use rvs_model::DirectorModel;

use crate::engine::{L7Engine, PreparedServices};

impl DataPlane for L7Engine {
    fn name(&self) -> &'static str {
        "http"
    }

    fn prepare(&self, next: &DirectorModel) -> Result<Prepared, PlaneError> {
        self.prepare_services(next).map(Prepared::new)
    }

    fn publish(self: Arc<Self>, prepared: Prepared, next: &Publication) {
        let Some(prepared) = prepared.take::<PreparedServices>() else {
            tracing::error!("L7 engine: handed another data plane's prepared change; not published");
            return;
        };
        self.publish_services(prepared, next.model.clone());
    }

    fn report(&self) -> PlaneReport {
        PlaneReport {
            connections: self.connection_count(),
            kernel_relay: None,
            draining: self.is_stopping(),
            http: self.stats(),
            packet: None,
        }
    }

    fn zero_counters(&self, service: Option<&rvs_core::ServiceKey>) {
        // An http service is an address; a firewall mark's counters are not this engine's.
        match service {
            None => self.zero(None),
            Some(rvs_core::ServiceKey::Addr(a)) => self.zero(Some(a)),
            Some(rvs_core::ServiceKey::Mark(_)) => {}
        }
    }

    fn observe_connect_failures(&self, observer: ConnectFailureObserver) {
        L7Engine::observe_connect_failures(self, observer);
    }

    fn shutdown(&self, deadline: Duration) -> Drained<'_> {
        Box::pin(L7Engine::shutdown(self, deadline))
    }
}
