//! rvs-dataplane: what every data plane of rvs shares. The data-plane interface the director
//! publishes through ([`plane`]), and the kit the proxy engines (L4 full NAT, L7 HTTP) are
//! built from. It is not an engine itself and holds no service table.

#![forbid(unsafe_code)]

pub mod plane;

pub use plane::{
    ConnInfo, DataPlane, KernelRelayReport, PlaneError, PlaneErrorKind, PlaneReport, Prepared, Publication,
};
