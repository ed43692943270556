//! update (with create-on-update and `If-Match`), and conditional update.
//! <https://hl7.org/fhir/R4/http.html#update> <https://hl7.org/fhir/R4/http.html#cond-update>

use serde_json::Value;

use super::super::audit::{self, Activity, Author};
use super::super::hooks::{put_with, WriteHook};
use super::super::outcome::Issue;
use super::super::types::is_valid_id;
use super::super::{FhirError, FhirRequest, FhirResponse, FhirServer, VersionTag};
use super::{checked_body, if_match_version};
use crate::search::Conditions;
use crate::store::Tx;

/// How the target of an update is named.
pub enum Target {
    Id(String),
    /// `PUT /Type?criteria`: the one match, or a new resource when none.
    Criteria(Conditions),
}

pub struct PreparedUpdate {
    pub resource_type: String,
    pub target: Target,
    pub resource: Value,
    pub if_match: Option<i64>,
    pub author: Author,
    pub hook: Option<std::sync::Arc<dyn WriteHook>>,
}

fn body_id(resource: &Value) -> Option<&str> {
    resource.get("id").and_then(Value::as_str)
}

pub fn prepare_update(
    server: &FhirServer,
    resource_type: &str,
    id: &str,
    request: FhirRequest,
) -> Result<PreparedUpdate, FhirError> {
    if !is_valid_id(id) {
        return Err(FhirError::bad_parameter(
            "id",
            format!("'{id}' is not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)"),
        ));
    }
    let author = Author::of(&request);
    let resource = checked_body(server, resource_type, request.body)?;
    match body_id(&resource) {
        Some(body_id) if body_id == id => {}
        Some(body_id) => {
            return Err(FhirError::invalid(
                Issue::error(
                    "invalid",
                    format!("the id in the body ({body_id}) differs from the id in the URL ({id})"),
                )
                .at(format!("{resource_type}.id")),
            ))
        }
        None => {
            return Err(FhirError::invalid(
                Issue::error("required", "an update must carry the resource's id in the body")
                    .at(format!("{resource_type}.id")),
            ))
        }
    }
    let if_match = request.if_match.as_deref().map(if_match_version).transpose()?;
    Ok(PreparedUpdate {
        resource_type: resource_type.to_string(),
        target: Target::Id(id.to_string()),
        resource,
        if_match,
        author,
        hook: server.write_hook.clone(),
    })
}

pub fn prepare_conditional(
    server: &FhirServer,
    resource_type: &str,
    request: FhirRequest,
) -> Result<PreparedUpdate, FhirError> {
    let criteria = Conditions::parse(&server.search, resource_type, &request.query, "url")?;
    let author = Author::of(&request);
    let resource = checked_body(server, resource_type, request.body)?;
    if let Some(id) = body_id(&resource) {
        if !is_valid_id(id) {
            return Err(FhirError::invalid(
                Issue::error("value", format!("'{id}' is not a valid FHIR id")).at(format!("{resource_type}.id")),
            ));
        }
    }
    let if_match = request.if_match.as_deref().map(if_match_version).transpose()?;
    Ok(PreparedUpdate {
        resource_type: resource_type.to_string(),
        target: Target::Criteria(criteria),
        resource,
        if_match,
        author,
        hook: server.write_hook.clone(),
    })
}

pub fn run(tx: &mut Tx<'_>, update: &PreparedUpdate) -> Result<FhirResponse, FhirError> {
    let resource_type = &update.resource_type;
    let id = match &update.target {
        Target::Id(id) => id.clone(),
        Target::Criteria(criteria) => {
            let matches = criteria.matching_ids(tx)?;
            match (matches.as_slice(), body_id(&update.resource)) {
                ([], Some(id)) => id.to_string(),
                ([], None) => uuid::Uuid::new_v4().to_string(),
                ([found], Some(id)) if found != id => {
                    return Err(FhirError::invalid(
                        Issue::error(
                            "invalid",
                            format!("the search matches {resource_type}/{found} but the body's id is {id}"),
                        )
                        .at(format!("{resource_type}.id")),
                    ))
                }
                ([found], _) => found.clone(),
                (many, _) => {
                    return Err(FhirError::MultipleMatches(format!(
                        "the conditional update matches {} {resource_type} resources; it must match at most one",
                        many.len()
                    )))
                }
            }
        }
    };
    let current = tx.read(resource_type, &id)?;
    if let Some(expected) = update.if_match {
        let actual = current.as_ref().filter(|c| !c.deleted).map(|c| c.version_id);
        if actual != Some(expected) {
            return Err(FhirError::PreconditionFailed(match actual {
                Some(actual) => {
                    format!("If-Match names version {expected} but {resource_type}/{id} is at version {actual}")
                }
                None => format!("If-Match names version {expected} but {resource_type}/{id} does not exist"),
            }));
        }
    }
    let created = current.as_ref().is_none_or(|c| c.deleted);
    let stored = put_with(
        update.hook.as_ref(),
        tx,
        resource_type,
        &id,
        update.resource.clone(),
        "PUT",
    )?;
    let activity = if created { Activity::Create } else { Activity::Update };
    audit::record(tx, &update.author, &stored, activity)?;
    Ok(FhirResponse {
        status: if created { 201 } else { 200 },
        body: stored.resource()?,
        version: Some(VersionTag::of(&stored)),
        is_write: true,
    })
}

pub fn update(
    server: &FhirServer,
    resource_type: &str,
    id: &str,
    request: FhirRequest,
) -> Result<FhirResponse, FhirError> {
    let prepared = prepare_update(server, resource_type, id, request)?;
    server.store.write(|tx| run(tx, &prepared))
}

pub fn conditional_update(
    server: &FhirServer,
    resource_type: &str,
    request: FhirRequest,
) -> Result<FhirResponse, FhirError> {
    let prepared = prepare_conditional(server, resource_type, request)?;
    server.store.write(|tx| run(tx, &prepared))
}
