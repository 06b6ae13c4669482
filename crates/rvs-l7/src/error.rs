//! What the L7 engine's control calls can fail with; the configuration's own errors are
//! rvs-model's [`ConfigError`]. Every refusal names what was wrong and where.

use rvs_core::ServiceAddr;
use rvs_model::http::ConfigError;

/// What the engine's control calls can fail with.
#[derive(Debug, thiserror::Error)]
pub enum L7Error {
    #[error("L7 virtual service {key}: {source}")]
    Config { key: ServiceAddr, source: Box<ConfigError> },
    #[error(transparent)]
    Listen(#[from] rvs_dataplane::ListenError),
}

impl L7Error {
    /// The virtual service at fault.
    pub fn key(&self) -> Option<ServiceAddr> {
        match self {
            L7Error::Config { key, .. } => Some(*key),
            L7Error::Listen(e) => Some(e.key),
        }
    }
}
