//! FHIR REST semantics: requests in, resources or OperationOutcomes out. No actix, no SQL:
//! the HTTP layer (`crate::http`) only extracts and renders; the store (`crate::store`) only
//! keeps versions. Each interaction lives in its own file under `interactions/`.
//! <https://hl7.org/fhir/R4/http.html>

pub mod audit;
pub mod error;
pub mod format;
pub mod hooks;
pub mod interactions;
pub mod outcome;
pub mod request;
pub mod types;
pub mod withdrawal;

use serde_json::Value;

pub use error::FhirError;
pub use request::{Actor, FhirRequest, Method, Route};

use crate::search::{Registry, SummaryElements};
use crate::store::{Store, StoredVersion};
use crate::validation::Validator;

/// Limits and defaults of the REST layer.
#[derive(Debug, Clone)]
pub struct FhirSettings {
    /// `_count` when a client gives none.
    pub default_count: i64,
    /// The largest `_count` honoured; larger asks are lowered to it.
    pub max_count: i64,
    /// Who may read and write; enforced by the HTTP layer, declared in `/metadata`.
    pub access: AccessPolicy,
    /// Refuse writes that do not conform to their type's Plan-Net profile even when they do
    /// not claim it (otherwise they are stored without claiming it).
    pub require_plan_net: bool,
}

/// The access rules in force. The default is the safe one: public reads, writes with a token.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// Writes need no token (development and conformance kits only).
    pub open_writes: bool,
    /// Reads and searches need a token with a read scope.
    pub reads_require_token: bool,
    /// Browser clients of some origins are allowed (CORS).
    pub cors: bool,
}

impl Default for FhirSettings {
    fn default() -> Self {
        FhirSettings {
            default_count: 50,
            max_count: 500,
            access: AccessPolicy::default(),
            require_plan_net: false,
        }
    }
}

/// Everything an interaction needs.
pub struct FhirServer {
    pub store: Store,
    /// The search parameters, also the store's indexer.
    pub search: std::sync::Arc<Registry>,
    pub summary_elements: SummaryElements,
    pub validator: std::sync::Arc<Validator>,
    pub settings: FhirSettings,
    /// Checks and enrichment other modules add to writes (NPPES).
    pub write_hook: Option<std::sync::Arc<dyn hooks::WriteHook>>,
}

/// `meta.versionId` and `meta.lastUpdated` of what a response is about (ETag, Last-Modified).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionTag {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    pub last_updated: String,
}

impl VersionTag {
    pub fn of(v: &StoredVersion) -> VersionTag {
        VersionTag {
            resource_type: v.resource_type.clone(),
            id: v.id.clone(),
            version_id: v.version_id,
            last_updated: v.last_updated.clone(),
        }
    }

    /// `W/"3"` <https://hl7.org/fhir/R4/http.html#versioning>
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version_id)
    }

    /// `Practitioner/abc/_history/3`, relative to the base.
    pub fn versioned_path(&self) -> String {
        format!("{}/{}/_history/{}", self.resource_type, self.id, self.version_id)
    }
}

#[derive(Debug, Clone)]
pub struct FhirResponse {
    pub status: u16,
    /// A resource, a Bundle, or an OperationOutcome.
    pub body: Option<Value>,
    pub version: Option<VersionTag>,
    /// Set for writes: `Location` is sent and `Prefer: return=` applies.
    pub is_write: bool,
}

impl FhirResponse {
    pub fn ok(body: Value) -> FhirResponse {
        FhirResponse {
            status: 200,
            body: Some(body),
            version: None,
            is_write: false,
        }
    }
}

/// Answers one request: the route table of the REST layer.
pub fn handle(server: &FhirServer, base: &str, request: FhirRequest) -> Result<FhirResponse, FhirError> {
    use interactions::*;
    let route = Route::parse(&request.path)?;
    if let Some(t) = route.resource_type().filter(|t| types::is_read_only(t)) {
        if route.is_written_by(request.method) {
            return Err(FhirError::ReadOnlyType(t.to_string()));
        }
    }
    match (request.method, route) {
        (Method::Get, Route::Metadata) => Ok(FhirResponse::ok(capability::capability_statement(server, base))),
        (Method::Post, Route::System) => bundle::batch_or_transaction(server, base, request),
        (Method::Get, Route::Type(t)) | (Method::Post, Route::TypeSearch(t)) => {
            search::search_type(server, base, &t, &request)
        }
        (Method::Post, Route::Type(t)) => create::create(server, &t, request),
        (Method::Put, Route::Type(t)) => update::conditional_update(server, &t, request),
        (Method::Get, Route::Instance(t, id)) => read::read(server, &t, &id),
        (Method::Put, Route::Instance(t, id)) => update::update(server, &t, &id, request),
        (Method::Delete, Route::Instance(t, id)) => delete::delete(server, &t, &id, &request),
        (Method::Get, Route::Version(t, id, vid)) => read::vread(server, &t, &id, &vid),
        (Method::Get, Route::InstanceHistory(t, id)) => history::history(server, base, &t, Some(&id), &request),
        (Method::Post, Route::TypeOperation(t, op)) if op == "$validate" => {
            validate::validate(server, &t, None, request)
        }
        (Method::Post, Route::InstanceOperation(t, id, op)) if op == "$validate" => {
            validate::validate(server, &t, Some(&id), request)
        }
        (Method::Get, Route::TypeHistory(t)) => history::history(server, base, &t, None, &request),
        (method, _) => Err(FhirError::MethodNotAllowed(method.as_str().to_string())),
    }
}
