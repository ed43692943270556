//! A FHIR request as the REST layer sees it, free of any HTTP framework, and the route table
//! that says which interaction it is. Batch and transaction entries become the same requests.

use serde_json::Value;

use super::error::FhirError;
use super::types;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "GET" | "HEAD" => Some(Method::Get),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// Who a request comes from, as the HTTP layer established it; every write records it in its
/// Provenance (see `fhir::audit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A registered backend client that presented a valid access token.
    Client { id: String, name: String },
    /// Nobody identified: a read, or a write the server accepts only in open-writes mode.
    Anonymous,
    /// The server's own command line (`import`, `serve --demo`), run by its operator.
    Operator,
    /// The server acting on what an outside system told it (NPPES re-validation).
    Integration { name: String },
}

impl Actor {
    /// How the actor is named in the audit trail.
    pub fn display(&self) -> String {
        match self {
            Actor::Client { id, name } => format!("{name} (client {id})"),
            Actor::Anonymous => "anonymous (open-writes mode)".to_string(),
            Actor::Operator => "providercard command line (operator)".to_string(),
            Actor::Integration { name } => format!("providercard {name} integration"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FhirRequest {
    pub method: Method,
    /// The path below the base, without slashes at either end: `Practitioner/123`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub if_match: Option<String>,
    pub if_none_exist: Option<String>,
    pub body: Option<Value>,
    /// `Prefer: handling=strict`: refuse unknown search parameters instead of ignoring them.
    pub strict_handling: bool,
    /// Set by the HTTP layer for every request; requests made inside the process (import,
    /// demo data) are the operator's. Bundle entries inherit their Bundle's.
    pub actor: Actor,
    /// The peer's network address, when the request came over the network.
    pub source_address: Option<String>,
}

impl FhirRequest {
    pub fn new(method: Method, path: &str) -> FhirRequest {
        FhirRequest {
            method,
            path: path.trim_matches('/').to_string(),
            query: vec![],
            if_match: None,
            if_none_exist: None,
            body: None,
            strict_handling: false,
            actor: Actor::Operator,
            source_address: None,
        }
    }

    /// A request from a relative URL such as `Practitioner?identifier=x` (Bundle.entry.request.url).
    pub fn from_url(method: Method, url: &str) -> FhirRequest {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let mut request = FhirRequest::new(method, path);
        request.query = parse_query(query);
        request
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

pub fn parse_query(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()
}

/// Which endpoint a path names. <https://hl7.org/fhir/R4/http.html>
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `[base]`: batch and transaction.
    System,
    /// `[base]/metadata`
    Metadata,
    /// `[base]/Type`
    Type(String),
    /// `[base]/Type/_search` (POST with a form body)
    TypeSearch(String),
    /// `[base]/Type/_history`
    TypeHistory(String),
    /// `[base]/Type/$operation`
    TypeOperation(String, String),
    /// `[base]/Type/id/$operation`
    InstanceOperation(String, String, String),
    /// `[base]/Type/id`
    Instance(String, String),
    /// `[base]/Type/id/_history`
    InstanceHistory(String, String),
    /// `[base]/Type/id/_history/vid`
    Version(String, String, String),
}

impl Route {
    pub fn parse(path: &str) -> Result<Route, FhirError> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let route = match segments.as_slice() {
            [] => return Ok(Route::System),
            ["metadata"] => return Ok(Route::Metadata),
            [t] => Route::Type(t.to_string()),
            [t, "_history"] => Route::TypeHistory(t.to_string()),
            [t, "_search"] => Route::TypeSearch(t.to_string()),
            [t, op] if op.starts_with('$') => Route::TypeOperation(t.to_string(), op.to_string()),
            [t, id, op] if op.starts_with('$') => {
                Route::InstanceOperation(t.to_string(), id.to_string(), op.to_string())
            }
            [t, id] => Route::Instance(t.to_string(), id.to_string()),
            [t, id, "_history"] => Route::InstanceHistory(t.to_string(), id.to_string()),
            [t, id, "_history", vid] => Route::Version(t.to_string(), id.to_string(), vid.to_string()),
            _ => return Err(FhirError::UnknownPath(format!("/{path}"))),
        };
        let resource_type = route.resource_type().unwrap_or_default();
        if !resource_type.starts_with(|c: char| c.is_ascii_uppercase()) {
            return Err(FhirError::UnknownPath(format!("/{path}")));
        }
        if !types::is_supported(resource_type) {
            return Err(FhirError::UnsupportedType(resource_type.to_string()));
        }
        Ok(route)
    }

    /// Whether `method` on this route changes data: searches by POST and operations such as
    /// `$validate` do not.
    pub fn is_written_by(&self, method: Method) -> bool {
        !matches!(
            (method, self),
            (Method::Get, _)
                | (
                    _,
                    Route::TypeSearch(_) | Route::TypeOperation(..) | Route::InstanceOperation(..)
                )
        )
    }

    pub fn resource_type(&self) -> Option<&str> {
        match self {
            Route::System | Route::Metadata => None,
            Route::Type(t) | Route::TypeHistory(t) | Route::TypeSearch(t) | Route::TypeOperation(t, _) => Some(t),
            Route::InstanceOperation(t, _, _) => Some(t),
            Route::Instance(t, _) | Route::InstanceHistory(t, _) | Route::Version(t, _, _) => Some(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_interactions() {
        assert_eq!(Route::parse("").unwrap(), Route::System);
        assert_eq!(
            Route::parse("Practitioner/a/_history/2").unwrap(),
            Route::Version("Practitioner".into(), "a".into(), "2".into())
        );
        assert!(matches!(Route::parse("Patient/1"), Err(FhirError::UnsupportedType(t)) if t == "Patient"));
        assert!(matches!(Route::parse("favicon.ico"), Err(FhirError::UnknownPath(_))));
    }
}
