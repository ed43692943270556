//! The REST layer's error type and its single mapping to an HTTP status and an
//! OperationOutcome. Policy: every failure a client can fix is a 4xx naming the element at
//! fault; an outage is a 503 so clients retry; anything else is a 500 whose body says only
//! "internal error" while the cause goes to the log.

use super::outcome::{operation_outcome, Issue, Severity};
use crate::store::{AsStoreConflict, StoreError};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    #[error("resource type {0} is not supported here")]
    UnsupportedType(String),
    #[error("{0} is not a known endpoint")]
    UnknownPath(String),
    #[error("{resource_type}/{id} is not known")]
    NotFound { resource_type: String, id: String },
    /// Something other than a resource is not known (an integration, a taxonomy code).
    #[error("{0}")]
    NotKnown(String),
    /// An outside system (NPPES, a payer) could not answer now.
    #[error("{message}")]
    Upstream { message: String, retry_after: Option<u64> },
    #[error("{resource_type}/{id} has no version {version_id}")]
    VersionNotFound {
        resource_type: String,
        id: String,
        version_id: String,
    },
    #[error("{resource_type}/{id} was deleted")]
    Gone {
        resource_type: String,
        id: String,
        version_id: i64,
    },
    /// The request or its body is malformed or structurally invalid.
    #[error("invalid request")]
    Invalid(Vec<Issue>),
    /// Well-formed but breaks a rule (a profile, a business rule).
    #[error("unprocessable resource")]
    Unprocessable(Vec<Issue>),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    MultipleMatches(String),
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("none of the accepted formats is supported: {0}")]
    NotAcceptable(String),
    #[error("content type {0} is not supported")]
    UnsupportedMediaType(String),
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// No credentials, or credentials that are not valid (RFC 6750 `invalid_token`).
    #[error("{reason}")]
    Unauthorized {
        reason: String,
        /// Whether a token was presented: RFC 6750 names an error only then.
        token_presented: bool,
    },
    /// A valid token whose scopes do not cover the request (RFC 6750 `insufficient_scope`).
    #[error("the access token's scopes do not allow this request; it needs {}", needed.join(" "))]
    Forbidden { needed: Vec<String> },
    #[error("{0} is written by the server only (the audit trail); clients may read it")]
    ReadOnlyType(String),
    #[error("too many requests; retry in {retry_after} s")]
    Throttled { retry_after: u64 },
    #[error("the request did not finish within {seconds} s")]
    Timeout { seconds: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an unexpected state; the message is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AsStoreConflict for FhirError {
    fn is_store_conflict(&self) -> bool {
        matches!(self, FhirError::Store(StoreError::Conflict))
    }
}

impl FhirError {
    pub fn invalid(issue: Issue) -> FhirError {
        FhirError::Invalid(vec![issue])
    }

    /// A bad value in a request parameter or header: 400 with the parameter named.
    pub fn bad_parameter(name: &str, message: impl Into<String>) -> FhirError {
        FhirError::invalid(Issue::error("invalid", message).at(name.to_string()))
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            FhirError::UnsupportedType(_) | FhirError::UnknownPath(_) => 404,
            FhirError::NotFound { .. } | FhirError::VersionNotFound { .. } | FhirError::NotKnown(_) => 404,
            FhirError::Upstream { .. } => 503,
            FhirError::Gone { .. } => 410,
            FhirError::Invalid(_) => 400,
            FhirError::Unprocessable(_) => 422,
            FhirError::PreconditionFailed(_) | FhirError::MultipleMatches(_) => 412,
            FhirError::MethodNotAllowed(_) | FhirError::ReadOnlyType(_) => 405,
            FhirError::Unauthorized { .. } => 401,
            FhirError::Forbidden { .. } => 403,
            FhirError::Throttled { .. } => 429,
            FhirError::Timeout { .. } => 503,
            FhirError::NotAcceptable(_) => 406,
            FhirError::UnsupportedMediaType(_) => 415,
            FhirError::PayloadTooLarge { .. } => 413,
            FhirError::Store(StoreError::Conflict) => 409,
            FhirError::Store(StoreError::Unavailable(_)) => 503,
            FhirError::Store(_) | FhirError::Internal(_) => 500,
        }
    }

    /// The issues this error reports to the client.
    pub fn issues(&self) -> Vec<Issue> {
        let one = |code: &'static str| vec![Issue::error(code, self.to_string())];
        match self {
            FhirError::Invalid(issues) | FhirError::Unprocessable(issues) => issues.clone(),
            FhirError::UnsupportedType(_) => one("not-supported"),
            FhirError::UnknownPath(_)
            | FhirError::NotFound { .. }
            | FhirError::VersionNotFound { .. }
            | FhirError::NotKnown(_) => one("not-found"),
            FhirError::Upstream { .. } => one("transient"),
            FhirError::Gone { .. } => one("deleted"),
            FhirError::PreconditionFailed(_) | FhirError::MultipleMatches(_) => one("conflict"),
            FhirError::MethodNotAllowed(_) | FhirError::NotAcceptable(_) | FhirError::UnsupportedMediaType(_) => {
                one("not-supported")
            }
            FhirError::ReadOnlyType(_) => one("not-supported"),
            FhirError::Unauthorized { .. } => one("login"),
            FhirError::Forbidden { .. } => one("forbidden"),
            FhirError::Throttled { .. } => one("throttled"),
            FhirError::Timeout { .. } => vec![Issue::error("timeout", format!("{self}; retry later"))],
            FhirError::PayloadTooLarge { .. } => one("too-costly"),
            FhirError::Store(StoreError::Conflict) => {
                vec![Issue::error(
                    "conflict",
                    "the resource is being changed by other writers; retry",
                )]
            }
            FhirError::Store(StoreError::Unavailable(_)) => vec![Issue {
                severity: Severity::Error,
                code: "transient",
                diagnostics: "the database is unavailable; retry later".into(),
                expression: vec![],
            }],
            FhirError::Store(_) | FhirError::Internal(_) => {
                vec![Issue::error("exception", "internal error")]
            }
        }
    }

    pub fn outcome(&self) -> Value {
        operation_outcome(&self.issues())
    }

    /// `Retry-After` in seconds, for the errors a client should retry later.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            FhirError::Throttled { retry_after } => Some(*retry_after),
            FhirError::Upstream { retry_after, .. } => Some(retry_after.unwrap_or(30)),
            FhirError::Store(StoreError::Unavailable(_)) | FhirError::Timeout { .. } => Some(5),
            _ => None,
        }
    }

    /// `WWW-Authenticate` for 401 and 403, as RFC 6750 section 3 has it: a bare challenge when
    /// no token was sent, `invalid_token` for a bad one, `insufficient_scope` with the scopes
    /// that would do.
    pub fn www_authenticate(&self) -> Option<String> {
        const REALM: &str = "Bearer realm=\"providercard\"";
        match self {
            FhirError::Unauthorized {
                token_presented: false, ..
            } => Some(REALM.to_string()),
            FhirError::Unauthorized { .. } => Some(format!("{REALM}, error=\"invalid_token\"")),
            FhirError::Forbidden { needed } => Some(format!(
                "{REALM}, error=\"insufficient_scope\", scope=\"{}\"",
                needed.join(" ")
            )),
            _ => None,
        }
    }

    /// Whether the cause must go to the log because the client is told nothing of it.
    pub fn is_server_fault(&self) -> bool {
        self.status() >= 500
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_one_status_and_issue_code() {
        let nf = FhirError::NotFound {
            resource_type: "Practitioner".into(),
            id: "x".into(),
        };
        let cases: Vec<(FhirError, u16, &str)> = vec![
            (FhirError::UnsupportedType("Patient".into()), 404, "not-supported"),
            (nf, 404, "not-found"),
            (
                FhirError::Gone {
                    resource_type: "Location".into(),
                    id: "x".into(),
                    version_id: 2,
                },
                410,
                "deleted",
            ),
            (
                FhirError::invalid(Issue::error("structure", "bad").at("Practitioner.active")),
                400,
                "structure",
            ),
            (
                FhirError::Unprocessable(vec![Issue::error("invariant", "pd-1")]),
                422,
                "invariant",
            ),
            (FhirError::PreconditionFailed("stale".into()), 412, "conflict"),
            (FhirError::MultipleMatches("2".into()), 412, "conflict"),
            (FhirError::MethodNotAllowed("PATCH".into()), 405, "not-supported"),
            (FhirError::NotAcceptable("text/html".into()), 406, "not-supported"),
            (
                FhirError::UnsupportedMediaType("text/plain".into()),
                415,
                "not-supported",
            ),
            (FhirError::PayloadTooLarge { limit: 10 }, 413, "too-costly"),
            (
                FhirError::Unauthorized {
                    reason: "no token".into(),
                    token_presented: false,
                },
                401,
                "login",
            ),
            (
                FhirError::Forbidden {
                    needed: vec!["system/Location.c".into()],
                },
                403,
                "forbidden",
            ),
            (FhirError::ReadOnlyType("Provenance".into()), 405, "not-supported"),
            (FhirError::Throttled { retry_after: 3 }, 429, "throttled"),
            (FhirError::Timeout { seconds: 30 }, 503, "timeout"),
            (FhirError::Store(StoreError::Conflict), 409, "conflict"),
            (
                FhirError::Store(StoreError::Unavailable("refused".into())),
                503,
                "transient",
            ),
            (FhirError::Internal("boom".into()), 500, "exception"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status(), status, "{error:?}");
            assert_eq!(error.issues()[0].code, code, "{error:?}");
        }
    }

    #[test]
    fn auth_failures_challenge_the_client_as_rfc_6750_says() {
        let missing = FhirError::Unauthorized {
            reason: "a write needs a bearer token".into(),
            token_presented: false,
        };
        assert_eq!(
            missing.www_authenticate().as_deref(),
            Some("Bearer realm=\"providercard\"")
        );
        let invalid = FhirError::Unauthorized {
            reason: "expired".into(),
            token_presented: true,
        };
        assert_eq!(
            invalid.www_authenticate().as_deref(),
            Some("Bearer realm=\"providercard\", error=\"invalid_token\"")
        );
        let forbidden = FhirError::Forbidden {
            needed: vec!["system/Location.c".into()],
        };
        assert!(forbidden
            .www_authenticate()
            .unwrap()
            .contains("error=\"insufficient_scope\", scope=\"system/Location.c\""));
        assert_eq!(FhirError::Throttled { retry_after: 7 }.retry_after(), Some(7));
        assert_eq!(FhirError::Internal("x".into()).www_authenticate(), None);
    }

    #[test]
    fn a_server_fault_tells_the_client_nothing_of_its_cause() {
        let error = FhirError::Internal("password=hunter2 at /srv/db.rs:42".into());
        let body = error.outcome().to_string();
        assert!(!body.contains("hunter2") && !body.contains("db.rs"), "{body}");
        let unavailable = FhirError::Store(StoreError::Unavailable("connection to 10.0.0.5 refused".into()));
        assert!(!unavailable.outcome().to_string().contains("10.0.0.5"));
    }
}
