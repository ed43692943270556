//! `GET /metadata`: a CapabilityStatement built from what this server really does — the route
//! table in `fhir::handle`, the types in `fhir::types`, the search parameters in `search` —
//! so that it never claims more. <https://hl7.org/fhir/R4/capabilitystatement.html>

use serde_json::{json, Value};

use super::super::types::SUPPORTED_TYPES;
use super::super::FhirServer;
use crate::search::registry::ParamType;

/// The Plan-Net server CapabilityStatement this server implements.
pub const PLAN_NET_CAPABILITY: &str = "http://hl7.org/fhir/us/davinci-pdex-plan-net/CapabilityStatement/plan-net";

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
                "searchParam": server.search.of_type(t).map(|p| json!({
                    "name": p.code, "definition": p.url, "type": p.kind.as_str(),
                })).collect::<Vec<_>>(),
                "searchInclude": search_includes(server, t),
                "searchRevInclude": search_revincludes(server, t),
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "publisher": "ProviderCard Integrations",
        "kind": "instance",
        "instantiates": [PLAN_NET_CAPABILITY],
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

/// `Type:param` for each reference parameter of the type, and `*`.
fn search_includes(server: &FhirServer, resource_type: &str) -> Vec<String> {
    let mut out: Vec<String> = server
        .search
        .of_type(resource_type)
        .filter(|p| p.kind == ParamType::Reference)
        .map(|p| format!("{resource_type}:{}", p.code))
        .collect();
    out.push("*".to_string());
    out
}

/// `Source:param` for each reference parameter of another type that may point here.
fn search_revincludes(server: &FhirServer, resource_type: &str) -> Vec<String> {
    SUPPORTED_TYPES
        .iter()
        .flat_map(|source| {
            server
                .search
                .of_type(source)
                .filter(|p| {
                    p.kind == ParamType::Reference
                        && (p.targets.is_empty() || p.targets.iter().any(|t| t == resource_type))
                })
                .map(move |p| format!("{source}:{}", p.code))
        })
        .collect()
}
