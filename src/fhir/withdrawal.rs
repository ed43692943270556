//! Withdrawal from the public Plan-Net view. A record the system must keep while it no longer
//! conforms — a provider whose NPI NPPES deactivated — is not deleted (its history stays) but
//! withdrawn: a new version that is `active: false`, claims no Plan-Net profile, and carries the
//! `withdrawn` tag, which default searches exclude. Reinstating reverses it; the resource claims
//! its Plan-Net profile again if it conforms. Only the system does this (the CLI and, later,
//! the NPPES re-validation job), never a client write.

use serde_json::{json, Value};

use super::audit::{self, Activity, Author};
use super::request::Actor;
use super::{FhirError, FhirServer, VersionTag};

pub const TAG_SYSTEM: &str = "https://providercard.dev/fhir/CodeSystem/directory-status";
pub const TAG_CODE: &str = "withdrawn";

fn is_withdrawn_tag(tag: &Value) -> bool {
    tag["system"] == TAG_SYSTEM && tag["code"] == TAG_CODE
}

/// The token a search must exclude by default (`_tag:not=…`).
pub fn excluded_tag() -> String {
    format!("{TAG_SYSTEM}|{TAG_CODE}")
}

fn current(server: &FhirServer, resource_type: &str, id: &str) -> Result<Value, FhirError> {
    let not_found = || FhirError::NotFound {
        resource_type: resource_type.to_string(),
        id: id.to_string(),
    };
    let stored = server.store.read(resource_type, id)?.ok_or_else(not_found)?;
    if stored.deleted {
        return Err(FhirError::Gone {
            resource_type: resource_type.to_string(),
            id: id.to_string(),
            version_id: stored.version_id,
        });
    }
    serde_json::from_str(stored.content.as_deref().unwrap_or("{}")).map_err(|e| FhirError::Internal(e.to_string()))
}

/// Marks a resource withdrawn: `active: false`, no Plan-Net profile claimed, the tag.
pub fn mark_withdrawn(resource_type: &str, resource: &mut Value, reason: &str) {
    let meta = resource
        .as_object_mut()
        .expect("a resource")
        .entry("meta")
        .or_insert_with(|| json!({}));
    if let Some(profiles) = meta.get_mut("profile").and_then(Value::as_array_mut) {
        profiles.retain(|p| !p.as_str().is_some_and(|p| p.contains("/davinci-pdex-plan-net/")));
        if profiles.is_empty() {
            meta.as_object_mut().expect("meta").remove("profile");
        }
    }
    let tags = meta
        .as_object_mut()
        .expect("meta")
        .entry("tag")
        .or_insert_with(|| json!([]));
    if let Some(tags) = tags.as_array_mut() {
        if !tags.iter().any(is_withdrawn_tag) {
            tags.push(json!({"system": TAG_SYSTEM, "code": TAG_CODE, "display": format!("withdrawn: {reason}")}));
        }
    }
    if resource.get("active").is_some()
        || matches!(
            resource_type,
            "Practitioner" | "PractitionerRole" | "Organization" | "HealthcareService" | "OrganizationAffiliation"
        )
    {
        resource["active"] = json!(false);
    }
}

pub fn is_withdrawn(resource: &Value) -> bool {
    resource["meta"]["tag"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(is_withdrawn_tag))
}

pub fn withdraw(server: &FhirServer, resource_type: &str, id: &str, reason: &str) -> Result<VersionTag, FhirError> {
    withdraw_as(server, resource_type, id, reason, &operator())
}

fn operator() -> Author {
    Author {
        actor: Actor::Operator,
        source_address: None,
    }
}

/// Withdraws on behalf of `author` (the operator, or an integration such as NPPES).
pub fn withdraw_as(
    server: &FhirServer,
    resource_type: &str,
    id: &str,
    reason: &str,
    author: &Author,
) -> Result<VersionTag, FhirError> {
    let mut resource = current(server, resource_type, id)?;
    mark_withdrawn(resource_type, &mut resource, reason);
    let stored = server.store.write(|tx| {
        let stored = tx.put(resource_type, id, resource.clone(), "PUT")?;
        // The operator's (or integration's) change is audited like any client's.
        audit::record(tx, author, &stored, Activity::Update)?;
        Ok::<_, crate::store::StoreError>(stored)
    })?;
    Ok(VersionTag::of(&stored))
}

/// Reverses [`mark_withdrawn`]: the tag goes, `active` is true again, and the resource claims
/// its Plan-Net profile again when it conforms.
pub fn unmark_withdrawn(validator: &crate::validation::Validator, resource_type: &str, resource: &mut Value) {
    if let Some(tags) = resource["meta"].get_mut("tag").and_then(Value::as_array_mut) {
        tags.retain(|t| !is_withdrawn_tag(t));
        if tags.is_empty() {
            resource["meta"].as_object_mut().expect("meta").remove("tag");
        }
    }
    if resource.get("active").is_some() {
        resource["active"] = json!(true);
    }
    let report = validator.validate(resource_type, &resource, false, None);
    let has_errors = report.has_errors();
    if let (Some(profile), false) = (report.conforms_to, has_errors) {
        let meta = resource
            .as_object_mut()
            .expect("a resource")
            .entry("meta")
            .or_insert_with(|| json!({}));
        let profiles = meta
            .as_object_mut()
            .expect("meta")
            .entry("profile")
            .or_insert_with(|| json!([]));
        if let Some(list) = profiles.as_array_mut() {
            if !list.iter().any(|p| p == &profile) {
                list.push(json!(profile));
            }
        }
    }
}

pub fn reinstate(server: &FhirServer, resource_type: &str, id: &str) -> Result<VersionTag, FhirError> {
    reinstate_as(server, resource_type, id, &operator())
}

pub fn reinstate_as(
    server: &FhirServer,
    resource_type: &str,
    id: &str,
    author: &Author,
) -> Result<VersionTag, FhirError> {
    let mut resource = current(server, resource_type, id)?;
    unmark_withdrawn(&server.validator, resource_type, &mut resource);
    let stored = server.store.write(|tx| {
        let stored = tx.put(resource_type, id, resource.clone(), "PUT")?;
        // The operator's (or integration's) change is audited like any client's.
        audit::record(tx, author, &stored, Activity::Update)?;
        Ok::<_, crate::store::StoreError>(stored)
    })?;
    Ok(VersionTag::of(&stored))
}
