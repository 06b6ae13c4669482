//! `GET /v1/vrrp`: each VRRP instance with its state, effective priority, the master it hears,
//! advertisements sent and received, refused packets by kind and transitions.

use hyper::{Method, StatusCode};
use rvs_api::{VrrpInstanceView, VrrpView};

use super::{json, Resp, Route};

pub(crate) fn route(at: &Route<'_>) -> Result<Resp, Resp> {
    if at.method != Method::GET {
        return Err(at.not_found());
    }
    let instances: Vec<VrrpInstanceView> = at
        .director
        .vrrp
        .instances()
        .iter()
        .map(|i| {
            let st = i.status();
            VrrpInstanceView {
                name: i.spec.name.clone(),
                interface: i.spec.interface.clone(),
                vrid: i.spec.vrid,
                state: st.state.to_string(),
                priority: st.priority,
                configured_priority: i.spec.priority,
                primary: st.primary.map(|a| a.to_string()),
                master: st.master.map(|a| a.to_string()),
                virtual_addresses: i.spec.virtual_addresses.iter().map(ToString::to_string).collect(),
                advertisements_sent: st.sent,
                advertisements_received: st.received,
                ignored: st.ignored,
                decode_errors: st.decode_errors.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                transitions: st.transitions,
                error: st.error,
            }
        })
        .collect();
    Ok(json(StatusCode::OK, &VrrpView { instances }))
}
