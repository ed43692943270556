//! The one trait every outside system is reached through, so that the registry, the jobs,
//! the health endpoint and the metrics treat NPPES, payers and CAQH alike.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// What kind of outside system an adapter speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntegrationKind {
    /// A source of truth about providers' identity (NPPES).
    Registry,
    /// A health plan's provider directory.
    Payer,
    /// Credentialing data (CAQH ProView).
    Credentialing,
    /// Another provider directory.
    Directory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthType {
    None,
    Basic,
    OAuth2ClientCredentials,
    SmartBackendServices,
    ApiKey,
}

/// What an adapter can do; callers check before asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub read: bool,
    pub write: bool,
    pub bidirectional: bool,
    pub webhooks: bool,
    pub batch: bool,
    pub auth: AuthType,
}

/// The provider an adapter is asked about: our resource, and its NPI when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderRef {
    pub resource_type: String,
    pub id: String,
    pub npi: Option<String>,
}

impl ProviderRef {
    pub fn reference(&self) -> String {
        format!("{}/{}", self.resource_type, self.id)
    }
}

/// One health check's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    pub ok: bool,
    pub response_time: Duration,
    pub message: Option<String>,
}

/// What a sync of one provider did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// `unchanged`, `updated`, `queued`, `withdrawn`, `reinstated`, `not-found` …
    pub outcome: String,
    /// Elements changed in our copy, as paths.
    pub changed: Vec<String>,
    pub message: Option<String>,
}

/// A finding of `validate_provider`: something the outside system disagrees with.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub element: String,
    pub ours: Option<String>,
    pub theirs: Option<String>,
    pub message: String,
}

/// What a push returned (a payer's submission id and status, …).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PushReceipt {
    pub status: String,
    pub reference: Option<String>,
    pub detail: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("{integration} does not support {operation}")]
    Unsupported {
        integration: String,
        operation: &'static str,
    },
    #[error("{0} is not known to this server")]
    UnknownProvider(String),
    /// The outside system could not answer now; the work is worth retrying later.
    #[error("{integration} is unavailable: {reason}")]
    Unavailable {
        integration: String,
        reason: String,
        retry_in: Option<Duration>,
    },
    /// The outside system refused the request; retrying the same request cannot help.
    #[error("{integration} refused the request: {reason}")]
    Refused { integration: String, reason: String },
    #[error("the webhook signature does not match")]
    BadSignature,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// An outside system. Only the identity methods are required; an adapter implements the
/// operations its capabilities declare, and the others answer `Unsupported`.
#[async_trait::async_trait]
pub trait IntegrationAdapter: Send + Sync {
    fn name(&self) -> &str;
    fn version(&self) -> &str;
    fn kind(&self) -> IntegrationKind;
    fn capabilities(&self) -> Capabilities;

    /// Called once at start-up, before any other call.
    async fn initialize(&self) -> Result<(), IntegrationError> {
        Ok(())
    }

    async fn health_check(&self) -> HealthCheck;

    async fn shutdown(&self) {}

    /// The outside system's view of the provider, as FHIR or as its own JSON.
    async fn fetch_provider(&self, _provider: &ProviderRef) -> Result<Option<Value>, IntegrationError> {
        Err(self.unsupported("fetch_provider"))
    }

    async fn push_provider(&self, _provider: &ProviderRef, _resource: &Value) -> Result<PushReceipt, IntegrationError> {
        Err(self.unsupported("push_provider"))
    }

    /// Brings our copy and theirs in line, in the direction the adapter owns.
    async fn sync_provider(&self, _provider: &ProviderRef) -> Result<SyncReport, IntegrationError> {
        Err(self.unsupported("sync_provider"))
    }

    /// Compares our copy with theirs without changing either.
    async fn validate_provider(
        &self,
        _provider: &ProviderRef,
        _resource: &Value,
    ) -> Result<Vec<Finding>, IntegrationError> {
        Err(self.unsupported("validate_provider"))
    }

    /// A notification pushed by the outside system. `signature` is checked by the caller
    /// against the configured secret (see [`super::webhook`]) before this is called.
    async fn handle_webhook(&self, _payload: &Value) -> Result<Value, IntegrationError> {
        Err(self.unsupported("handle_webhook"))
    }

    fn unsupported(&self, operation: &'static str) -> IntegrationError {
        IntegrationError::Unsupported {
            integration: self.name().to_string(),
            operation,
        }
    }
}
