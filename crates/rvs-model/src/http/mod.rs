//! What an http (Layer-7) virtual service is configured to do: its rules and their conditions,
//! its pools of real servers and how requests stick to them, forwarding headers, limits,
//! timeouts and TLS settings. Validated data; the L7 engine evaluates and runs it.

mod error;
mod matcher;
mod pool;
mod rule;
mod service;
mod tls;

pub use error::ConfigError;
pub use matcher::{is_tchar, HostPattern, Match, PathPattern, ValuePattern};
pub use pool::{CookieInsert, HashOn, HashSource, PoolConfig, PoolPersistence};
pub use rule::{check_ident, Rule};
pub use rvs_core::pattern::Pattern;
pub use service::{ForwardedHeaders, HttpTimeouts, L7ServiceConfig, Limits, MAX_HEADERS};
pub use tls::{TlsCertificate, TlsConfig};
