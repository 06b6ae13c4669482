//! rvs-l7: the Layer-7 data plane, the KTCPVS idea in userspace. An L7 virtual service reads
//! each HTTP/1.x request, matches it against rules (host, path, method, header, query, cookie),
//! and schedules it on a pool of real servers with any IPVS scheduler from rvs-core; then it
//! relays, streaming bodies (splice(2) for large ones) and tunnelling WebSocket upgrades.
//! TLS virtual services also take HTTP/2 clients (ALPN `h2`), each stream carried as one
//! HTTP/1.1 exchange through the same path.

#![forbid(unsafe_code)]

mod body;
mod buffer;
mod chunked;
mod client_io;
mod control;
mod engine;
mod error;
mod exchange;
pub mod fuzz;
mod head;
mod http2;
mod plane;
mod refusal;
mod relay;
mod request;
mod request_view;
mod response;
mod rewrite;
mod routing;
mod runtime;
mod session;
mod sessions;
mod splice;
mod stats;
mod tls;
mod upstream;
mod watchdog;

pub use engine::{L7Engine, L7EngineConfig};
pub use error::L7Error;
pub use refusal::Refusal;

/// Whether a service's TLS settings build: every certificate parses and fits its key (what
/// the engine checks when it prepares a change, for `rvsd --check-config`).
pub fn check_tls(tls: &rvs_model::http::TlsConfig) -> Result<(), rvs_model::http::ConfigError> {
    tls::server_config(tls).map(drop)
}
pub use stats::{CounterSnapshot, L7ServiceStats, PoolStats, RealServerStats, RuleStats, LATENCY_BUCKETS_US};
