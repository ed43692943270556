//! `GET /metadata`: a CapabilityStatement built from what this server really does — the route
//! table in `fhir::handle`, the types in `fhir::types`, the search parameters in `search` —
//! so that it never claims more. <https://hl7.org/fhir/R4/capabilitystatement.html>

use serde_json::{json, Value};

use super::super::types::{is_read_only, SUPPORTED_TYPES};
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

/// What clients may do with a type only the server writes (Provenance, the audit trail).
const READ_ONLY_INTERACTIONS: [&str; 3] = ["read", "vread", "search-type"];

pub fn capability_statement(server: &FhirServer, base: &str) -> Value {
    let resources: Vec<Value> = SUPPORTED_TYPES
        .iter()
        .map(|t| {
            let mut resource = json!({
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
            });
            if is_read_only(t) {
                read_only(&mut resource);
            }
            resource
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
            "security": security(server, base),
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
        }],
    })
}

fn read_only(resource: &mut Value) {
    resource["interaction"] = READ_ONLY_INTERACTIONS
        .iter()
        .map(|code| json!({"code": code}))
        .collect();
    resource["versioning"] = json!("versioned");
    for flag in ["updateCreate", "conditionalCreate", "conditionalUpdate"] {
        resource[flag] = json!(false);
    }
}

/// `rest.security`: SMART Backend Services, the token endpoint (the SMART oauth-uris
/// extension), and in words which access mode is on.
/// <https://hl7.org/fhir/smart-app-launch/conformance.html>
fn security(server: &FhirServer, base: &str) -> Value {
    let access = &server.settings.access;
    let reads = if access.reads_require_token {
        "Reads and searches require a bearer token with a read scope (system/*.read, system/Type.rs)."
    } else {
        "Reads and searches are public."
    };
    let writes = if access.open_writes {
        "OPEN-WRITES MODE: writes are accepted without a token, from anyone (development only)."
    } else {
        "Writes require a bearer token whose scopes cover every resource type written \
         (system/Type.write, or system/Type.c, .u, .d)."
    };
    json!({
        "cors": access.cors,
        "service": [{
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR",
                "display": "SMART-on-FHIR",
            }],
            "text": "SMART Backend Services: client_credentials with a private_key_jwt assertion (RS384 or ES384)",
        }],
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "token", "valueUri": format!("{base}/auth/token")}],
        }],
        "description": format!(
            "{reads} {writes} Tokens: {base}/auth/token (see {base}/.well-known/smart-configuration)."
        ),
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
