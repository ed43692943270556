//! One file per interaction. Writes come in two halves: a check of the request that needs no
//! database, and the work inside a store transaction, so that a transaction Bundle can run
//! many of them in one database transaction.

pub mod bundle;
pub mod capability;
pub mod create;
pub mod delete;
pub mod history;
pub mod read;
pub mod search;
pub mod update;
pub mod validate;

use serde_json::Value;

use super::outcome::Issue;
use super::{FhirError, FhirServer};

/// The body of a create or update: present, of the endpoint's type, structurally valid.
pub(crate) fn checked_body(server: &FhirServer, resource_type: &str, body: Option<Value>) -> Result<Value, FhirError> {
    let Some(resource) = body else {
        return Err(FhirError::invalid(
            Issue::error("required", "the request has no resource in its body").at(resource_type),
        ));
    };
    let report = server
        .validator
        .validate(resource_type, &resource, server.settings.require_plan_net, None);
    if !report.structure.is_empty() {
        return Err(FhirError::Invalid(report.structure));
    }
    if let Some(hook) = &server.write_hook {
        hook.check(resource_type, &resource)?;
    }
    if report.has_errors() {
        return Err(FhirError::Unprocessable(report.profile));
    }
    let mut resource = resource;
    if let Some(profile) = report.conforms_to {
        claim_profile(&mut resource, &profile);
    }
    Ok(resource)
}

/// Adds `profile` to `meta.profile` (the Plan-Net CapabilityStatement wants every served
/// instance to say which profile it conforms to).
fn claim_profile(resource: &mut Value, profile: &str) {
    let Some(object) = resource.as_object_mut() else { return };
    let meta = object.entry("meta").or_insert_with(|| serde_json::json!({}));
    let Some(meta) = meta.as_object_mut() else { return };
    let profiles = meta.entry("profile").or_insert_with(|| serde_json::json!([]));
    if let Some(list) = profiles.as_array_mut() {
        if !list.iter().any(|p| p == profile) {
            list.push(Value::String(profile.to_string()));
        }
    }
}

/// Reads `If-Match: W/"3"` (or `"3"`, or `3`) as a version number.
pub(crate) fn if_match_version(if_match: &str) -> Result<i64, FhirError> {
    let raw = if_match.trim().trim_start_matches("W/").trim_matches('"');
    raw.parse::<i64>().map_err(|_| {
        FhirError::bad_parameter(
            "If-Match",
            format!("If-Match must be a version ETag such as W/\"3\", not {if_match}"),
        )
    })
}

/// `_count`: the documented default when absent, lowered to the maximum when larger.
pub(crate) fn page_size(server: &FhirServer, request: &super::FhirRequest) -> Result<i64, FhirError> {
    match request.param("_count") {
        None => Ok(server.settings.default_count),
        Some(raw) => {
            let n = raw.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                FhirError::bad_parameter("_count", format!("_count must be a whole number, not '{raw}'"))
            })?;
            Ok(n.min(server.settings.max_count))
        }
    }
}

/// A link to the same endpoint with some parameters replaced (paging links).
pub(crate) fn link_with(base: &str, path: &str, query: &[(String, String)], replace: &[(&str, String)]) -> String {
    let mut params: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !replace.iter().any(|(r, _)| r == k))
        .cloned()
        .collect();
    params.extend(replace.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let encoded = serde_urlencoded::to_string(&params).unwrap_or_default();
    if encoded.is_empty() {
        format!("{base}/{path}")
    } else {
        format!("{base}/{path}?{encoded}")
    }
}
