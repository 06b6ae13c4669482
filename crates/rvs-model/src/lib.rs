//! rvs-model: what a configuration says, as pure validated data: the Layer-7 services (rules,
//! matches, pools, TLS settings) and the health-check specs (checks, timing, quorum, notify
//! commands), and the VRRP instances. No sockets, no runtime, no TLS library: the config
//! parser, the API and the data planes all read these types, and none of them pulls a runtime
//! crate into the others.

#![forbid(unsafe_code)]

pub mod director;
pub mod health;
pub mod http;
pub mod vrrp;

pub use director::{DirectorModel, HttpChange, HttpChangeError, PoolServer, Verdict};
