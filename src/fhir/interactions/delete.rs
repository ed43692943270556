//! delete: a new version that marks the resource gone; its history stays readable.
//! <https://hl7.org/fhir/R4/http.html#delete>

use super::super::audit::{self, Activity, Author};
use super::super::outcome::{operation_outcome, Issue};
use super::super::{FhirError, FhirRequest, FhirResponse, FhirServer, VersionTag};
use crate::store::Tx;

pub fn run(tx: &mut Tx<'_>, resource_type: &str, id: &str, author: &Author) -> Result<FhirResponse, FhirError> {
    let Some(current) = tx.read(resource_type, id)? else {
        return Err(FhirError::NotFound {
            resource_type: resource_type.to_string(),
            id: id.to_string(),
        });
    };
    if current.deleted {
        // Deleting what is already deleted succeeds and writes nothing.
        let outcome = operation_outcome(&[Issue::information(
            "informational",
            format!("{resource_type}/{id} was already deleted"),
        )]);
        return Ok(FhirResponse {
            status: 200,
            body: Some(outcome),
            version: None,
            is_write: false,
        });
    }
    let stored = tx.delete(resource_type, id)?.expect("a live resource was just read");
    audit::record(tx, author, &stored, Activity::Delete)?;
    let outcome = operation_outcome(&[Issue::information(
        "informational",
        format!("{resource_type}/{id} deleted"),
    )]);
    Ok(FhirResponse {
        status: 200,
        body: Some(outcome),
        version: Some(VersionTag::of(&stored)),
        is_write: false,
    })
}

pub fn delete(
    server: &FhirServer,
    resource_type: &str,
    id: &str,
    request: &FhirRequest,
) -> Result<FhirResponse, FhirError> {
    let author = Author::of(request);
    server.store.write(|tx| run(tx, resource_type, id, &author))
}
