//! create, and conditional create with `If-None-Exist`.
//! <https://hl7.org/fhir/R4/http.html#create>

use serde_json::Value;

use super::super::audit::{self, Activity, Author};
use super::super::hooks::{put_with, WriteHook};
use super::super::request::parse_query;
use super::super::{FhirError, FhirRequest, FhirResponse, FhirServer, VersionTag};
use super::checked_body;
use crate::search::Conditions;
use crate::store::Tx;

/// A create ready to run: body checked, id chosen.
pub struct PreparedCreate {
    pub resource_type: String,
    pub id: String,
    pub resource: Value,
    pub if_none_exist: Option<Conditions>,
    pub author: Author,
    pub hook: Option<std::sync::Arc<dyn WriteHook>>,
}

pub fn prepare(server: &FhirServer, resource_type: &str, request: FhirRequest) -> Result<PreparedCreate, FhirError> {
    let author = Author::of(&request);
    let mut resource = checked_body(server, resource_type, request.body)?;
    let if_none_exist = match request.if_none_exist.as_deref() {
        Some(query) => {
            let query = parse_query(query.trim_start_matches('?'));
            Some(Conditions::parse(
                &server.search,
                resource_type,
                &query,
                "If-None-Exist",
            )?)
        }
        None => None,
    };
    // The server assigns the id of a created resource; one in the body is ignored.
    if let Some(object) = resource.as_object_mut() {
        object.remove("id");
    }
    Ok(PreparedCreate {
        resource_type: resource_type.to_string(),
        id: uuid::Uuid::new_v4().to_string(),
        resource,
        if_none_exist,
        author,
        hook: server.write_hook.clone(),
    })
}

pub fn run(tx: &mut Tx<'_>, create: &PreparedCreate) -> Result<FhirResponse, FhirError> {
    if let Some(criteria) = &create.if_none_exist {
        let matches = criteria.matching_ids(tx)?;
        match matches.as_slice() {
            [] => {}
            [id] => {
                let existing = tx
                    .read(&create.resource_type, id)?
                    .expect("a match is a stored resource");
                let body = existing
                    .content
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| {
                        FhirError::Internal(format!("stored {}/{id} is not JSON: {e}", create.resource_type))
                    })?;
                return Ok(FhirResponse {
                    status: 200,
                    body,
                    version: Some(VersionTag {
                        resource_type: existing.resource_type,
                        id: existing.id,
                        version_id: existing.version_id,
                        last_updated: existing.last_updated,
                    }),
                    is_write: true,
                });
            }
            many => {
                return Err(FhirError::MultipleMatches(format!(
                    "If-None-Exist matches {} {} resources; it must match at most one",
                    many.len(),
                    create.resource_type
                )))
            }
        }
    }
    let stored = put_with(
        create.hook.as_ref(),
        tx,
        &create.resource_type,
        &create.id,
        create.resource.clone(),
        "POST",
    )?;
    audit::record(tx, &create.author, &stored, Activity::Create)?;
    Ok(FhirResponse {
        status: 201,
        body: stored.resource()?,
        version: Some(VersionTag::of(&stored)),
        is_write: true,
    })
}

pub fn create(server: &FhirServer, resource_type: &str, request: FhirRequest) -> Result<FhirResponse, FhirError> {
    let prepared = prepare(server, resource_type, request)?;
    server.store.write(|tx| run(tx, &prepared))
}
