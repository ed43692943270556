//! `GET /metadata`: a CapabilityStatement built from what this server really does — the route
//! table in `fhir::handle`, the types in `fhir::types`, the search parameters in `search` —
//! so that it never claims more. <https://hl7.org/fhir/R4/capabilitystatement.html>

use serde_json::{json, Value};

use super::super::types::SUPPORTED_TYPES;
use super::super::FhirServer;
use crate::search::SUPPORTED_PARAMETERS;

/// Type-level and instance-level interactions every supported type has (see `fhir::handle`).
const TYPE_INTERACTIONS: [&str; 8] = [
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
];

pub fn capability_statement(server: &FhirServer, base: &str) -> Value {
    let resources: Vec<Value> = SUPPORTED_TYPES
        .iter()
        .map(|t| {
            json!({
                "type": t,
                "interaction": TYPE_INTERACTIONS.iter().map(|code| json!({"code": code})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalUpdate": true,
                "conditionalDelete": "not-supported",
                "referencePolicy": ["literal"],
                "searchParam": SUPPORTED_PARAMETERS
                    .iter()
                    .map(|(name, kind, definition)| json!({"name": name, "type": kind, "definition": definition}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "publisher": "ProviderCard Integrations",
        "kind": "instance",
        "software": {"name": "providercard", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "ProviderCard Integrations Plan-Net provider directory", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml"],
        "rest": [{
            "mode": "server",
            "documentation": format!(
                "Plan-Net resources with full version history. _count defaults to {} and is capped at {}.",
                server.settings.default_count, server.settings.max_count
            ),
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
        }],
    })
}
