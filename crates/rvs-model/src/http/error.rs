//! The typed errors of the Layer-7 configuration (matches, rules, pools, virtual services,
//! TLS settings). Every refusal names what was wrong and where.

use std::net::SocketAddr;

use rvs_core::{CommandError, ServiceAddr};

/// A configuration refused before anything changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("host pattern `{pattern}`: {reason}")]
    Host { pattern: String, reason: &'static str },
    #[error("path `{0}` must start with `/` and hold no spaces or control characters")]
    Path(String),
    #[error("invalid regular expression `{pattern}`: {message}")]
    Regex { pattern: String, message: String },
    #[error("`{name}` is not a valid {what} name")]
    Name { name: String, what: &'static str },
    #[error("`{0}` is not a valid HTTP method")]
    Method(String),
    #[error("value `{0}` holds control characters")]
    Value(String),
    #[error("match `{text}`: {reason}")]
    Syntax { text: String, reason: String },
    #[error("rule `{0}` has no conditions (use the default pool to catch everything)")]
    EmptyRule(String),
    #[error("rule name `{0}` is used twice")]
    DuplicateRule(String),
    #[error("pool name `{0}` is used twice")]
    DuplicatePool(String),
    #[error("rule `{rule}` sends to pool `{pool}`, which is not defined")]
    UnknownPool { rule: String, pool: String },
    #[error("default pool `{0}` is not defined")]
    UnknownDefaultPool(String),
    #[error("pool `{pool}`: {reason}")]
    Pool { pool: String, reason: String },
    #[error("pool `{pool}`: {source}")]
    PoolCommand { pool: String, source: CommandError },
    #[error("pool `{pool}` mixes IPv4 and IPv6 real servers ({addr})")]
    MixedFamily { pool: String, addr: SocketAddr },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("limit: {0}")]
    Limit(String),
    #[error("L7 virtual service {0} is declared twice")]
    DuplicateService(ServiceAddr),
}

impl From<rvs_core::pattern::PatternError> for ConfigError {
    fn from(e: rvs_core::pattern::PatternError) -> Self {
        ConfigError::Regex { pattern: e.source_text, message: e.message }
    }
}
