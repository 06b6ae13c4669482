//! The API's error: which field, what is wrong. Rendered as `{"error": {...}}` with a 4xx.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}{message}", field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct ApiError {
    /// The request field at fault (dotted path), when one is.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    pub message: String,
    /// What kind of refusal, for programs: `no_service`, `no_server`, `service_exists`,
    /// `server_exists`, `unsupported`, `listen` (an address that cannot be bound), `invalid`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
}

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self { field: Some(field.into()), message: message.to_string(), code: None }
    }
    pub fn with_code(mut self, code: &str) -> Self {
        self.code = Some(code.to_string());
        self
    }
    pub fn message(message: impl std::fmt::Display) -> Self {
        Self { field: None, message: message.to_string(), code: None }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}
