//! `GET /v1/vrrp`: each VRRP instance with its state, effective priority, the master it hears,
//! advertisements sent and received, refused packets by kind and transitions.

use hyper::{Method, StatusCode};
use serde::Serialize;

use super::{json, Resp, Route};

#[derive(Serialize)]
struct InstanceView {
    name: String,
    interface: String,
    vrid: u8,
    state: &'static str,
    priority: u8,
    configured_priority: u8,
    primary: Option<String>,
    master: Option<String>,
    virtual_addresses: Vec<String>,
    advertisements_sent: u64,
    advertisements_received: u64,
    ignored: u64,
    decode_errors: std::collections::BTreeMap<&'static str, u64>,
    transitions: u64,
    error: Option<String>,
}

pub(crate) fn route(at: &Route<'_>) -> Result<Resp, Resp> {
    if at.method != Method::GET {
        return Err(at.not_found());
    }
    let views: Vec<InstanceView> = at
        .director
        .vrrp
        .instances()
        .iter()
        .map(|i| {
            let st = i.status();
            InstanceView {
                name: i.spec.name.clone(),
                interface: i.spec.interface.clone(),
                vrid: i.spec.vrid,
                state: st.state,
                priority: st.priority,
                configured_priority: i.spec.priority,
                primary: st.primary.map(|a| a.to_string()),
                master: st.master.map(|a| a.to_string()),
                virtual_addresses: i.spec.virtual_addresses.iter().map(ToString::to_string).collect(),
                advertisements_sent: st.sent,
                advertisements_received: st.received,
                ignored: st.ignored,
                decode_errors: st.decode_errors,
                transitions: st.transitions,
                error: st.error,
            }
        })
        .collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "instances": views })))
}
