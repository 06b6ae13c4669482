//! rvs-api: the control API's wire types, version 1. Requests carry text as users write it
//! (addresses, scheduler names); conversion into core commands names the field at fault.
//! Responses are views of the service table. No I/O here: rvsd serves, rvsadm calls.

#![forbid(unsafe_code)]

mod convert;
mod error;
mod http_views;
pub mod path;
mod sync;
mod types;
mod vrrp;

pub use convert::{
    command_to_api, id_from_core, parse_mark, service_key, table_to_commands, timeouts_view, view_service, FWMARK,
    FWMARK6,
};
pub use error::{ApiError, ErrorBody};
pub use http_views::view_http_service;
pub use sync::{SyncDaemonSpec, SyncView};
pub use types::*;
pub use vrrp::{VrrpInstanceView, VrrpView};

/// The path prefix of this version of the API.
pub const PREFIX: &str = "/v1";
