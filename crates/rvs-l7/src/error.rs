//! What the L7 engine's control calls can fail with; the configuration's own errors are
//! rvs-model's [`ConfigError`]. Every refusal names what was wrong and where.

use rvs_core::{CommandError, ServiceKey};
use rvs_model::http::ConfigError;

/// What the engine's control calls can fail with.
#[derive(Debug, thiserror::Error)]
pub enum L7Error {
    #[error("L7 virtual service {key}: {source}")]
    Config { key: ServiceKey, source: Box<ConfigError> },
    #[error(transparent)]
    Listen(#[from] rvs_proxy::ListenError),
    #[error("no such L7 virtual service {0}")]
    NoService(ServiceKey),
    #[error("no pool `{pool}` in L7 virtual service {key}")]
    NoPool { key: ServiceKey, pool: String },
    #[error("L7 virtual service {key}, pool `{pool}`: {source}")]
    Command { key: ServiceKey, pool: String, source: Box<CommandError> },
}
