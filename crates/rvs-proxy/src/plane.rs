//! The L4 proxy engine as a data plane: a change is prepared by binding the listeners and UDP
//! sockets of the services it adds, and published by handing the engine the new snapshot of
//! the service table.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rvs_core::{MarkKey, MarkMatch, RealServer, ServiceAddr, ServiceKey};
use rvs_dataplane::connect_failures::ConnectFailureObserver;
use rvs_dataplane::plane::{Drained, KernelRelayReport};
use rvs_dataplane::{ConnInfo, DataPlane, PlaneError, PlaneErrorKind, PlaneReport, Prepared, Publication};
use rvs_model::DirectorModel;

use crate::engine::{BoundSockets, Engine};

/// The most listening addresses one firewall mark may ask of this engine (its matches' ports
/// summed): each is a socket.
pub const MAX_MARK_LISTENERS: u32 = 4096;

/// Why this engine cannot serve a firewall-mark service.
#[derive(Debug, thiserror::Error)]
pub enum MarkListenError {
    #[error(
        "virtual service {service}: its match {m} is a network; the proxy engine (full NAT) listens on single \
         addresses, so give its real servers gate or tunnel (the packet engine serves networks) or match host \
         addresses"
    )]
    Network { service: MarkKey, m: MarkMatch },
    #[error("virtual service {service}: its match {m} is SCTP, which the proxy engine has no sockets for")]
    Sctp { service: MarkKey, m: MarkMatch },
    #[error("virtual service {service}: its matches name more than {MAX_MARK_LISTENERS} ports for the proxy engine to listen on")]
    TooManyPorts { service: MarkKey },
    #[error("{listen} would be served by both virtual service {a} and virtual service {b}")]
    Shared { listen: ServiceAddr, a: ServiceKey, b: ServiceKey },
}

impl MarkListenError {
    fn service(&self) -> ServiceKey {
        match self {
            MarkListenError::Network { service, .. }
            | MarkListenError::Sctp { service, .. }
            | MarkListenError::TooManyPorts { service } => ServiceKey::Mark(*service),
            MarkListenError::Shared { b, .. } => *b,
        }
    }
}

/// The listening addresses of the TCP and UDP services this engine serves (those whose real
/// servers it proxies, full NAT; the packet engine serves the others), each with its service:
/// an address service's own, a firewall mark's every address and port of its matches.
pub(crate) fn proxy_listeners(model: &DirectorModel) -> Result<Vec<(ServiceAddr, ServiceKey)>, MarkListenError> {
    let mut out: BTreeMap<ServiceAddr, ServiceKey> = BTreeMap::new();
    let mut put = |listen: ServiceAddr, key: ServiceKey| match out.insert(listen, key) {
        Some(a) if a != key => Err(MarkListenError::Shared { listen, a, b: key }),
        _ => Ok(()),
    };
    for (key, m) in &model.table.services {
        if m.engine_for(key) != rvs_core::forwarding::Engine::Proxy {
            continue;
        }
        let mk = match key {
            ServiceKey::Addr(a) => {
                put(*a, *key)?;
                continue;
            }
            ServiceKey::Mark(mk) => *mk,
        };
        // A mark without real servers yet is no engine's: it may be meant for the packet
        // engine (networks, SCTP), which its first gate or tunnel real server will say.
        if m.servers.is_empty() {
            continue;
        }
        let Some(def) = model.table.marks.get(&mk.mark) else { continue };
        if def.matches_of(mk.family).map(|m| m.ports.count()).sum::<u32>() > MAX_MARK_LISTENERS {
            return Err(MarkListenError::TooManyPorts { service: mk });
        }
        for m in def.matches_of(mk.family) {
            if !m.dest.is_host() {
                return Err(MarkListenError::Network { service: mk, m: *m });
            }
            if !m.protocol.proxied() {
                return Err(MarkListenError::Sctp { service: mk, m: *m });
            }
            for port in m.ports.ports() {
                put(ServiceAddr { protocol: m.protocol, addr: SocketAddr::new(m.dest.addr(), port) }, *key)?;
            }
        }
    }
    Ok(out.into_iter().collect())
}

impl DataPlane for Engine {
    fn name(&self) -> &'static str {
        "proxy"
    }

    fn prepare(&self, next: &DirectorModel) -> Result<Prepared, PlaneError> {
        let listeners =
            proxy_listeners(next).map_err(|e| PlaneError::new(PlaneErrorKind::Invalid, Some(e.service()), e))?;
        let bound = self.bind_missing(listeners.iter().map(|(l, _)| *l)).map_err(|e| {
            let service = listeners.iter().find(|(l, _)| *l == e.key).map_or(e.key.into(), |(_, k)| *k);
            PlaneError::new(PlaneErrorKind::Listen, Some(service), e)
        })?;
        Ok(Prepared::new((bound, listeners)))
    }

    fn publish(self: Arc<Self>, prepared: Prepared, next: &Publication) {
        let Some((bound, listeners)) = prepared.take::<(BoundSockets, Vec<(ServiceAddr, ServiceKey)>)>() else {
            tracing::error!("proxy engine: handed another data plane's prepared change; not published");
            return;
        };
        Engine::publish(&self, bound, listeners, next.services.clone(), &next.removed);
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
