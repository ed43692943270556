//! read and vread. <https://hl7.org/fhir/R4/http.html#read>

use super::super::{FhirError, FhirResponse, FhirServer, VersionTag};

pub fn read(server: &FhirServer, resource_type: &str, id: &str) -> Result<FhirResponse, FhirError> {
    let not_found = || FhirError::NotFound {
        resource_type: resource_type.to_string(),
        id: id.to_string(),
    };
    let current = server.store.read(resource_type, id)?.ok_or_else(not_found)?;
    if current.deleted {
        return Err(FhirError::Gone {
            resource_type: resource_type.to_string(),
            id: id.to_string(),
            version_id: current.version_id,
        });
    }
    let body = current
        .content
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| FhirError::Internal(format!("stored {resource_type}/{id} is not JSON: {e}")))?;
    Ok(FhirResponse {
        status: 200,
        body,
        version: Some(VersionTag {
            resource_type: current.resource_type,
            id: current.id,
            version_id: current.version_id,
            last_updated: current.last_updated,
        }),
        is_write: false,
    })
}

pub fn vread(server: &FhirServer, resource_type: &str, id: &str, vid: &str) -> Result<FhirResponse, FhirError> {
    let not_found = || FhirError::VersionNotFound {
        resource_type: resource_type.to_string(),
        id: id.to_string(),
        version_id: vid.to_string(),
    };
    let version_id = vid.parse::<i64>().map_err(|_| not_found())?;
    let stored = server
        .store
        .vread(resource_type, id, version_id)?
        .ok_or_else(not_found)?;
    if stored.deleted {
        return Err(FhirError::Gone {
            resource_type: resource_type.to_string(),
            id: id.to_string(),
            version_id,
        });
    }
    Ok(FhirResponse {
        status: 200,
        body: stored.resource()?,
        version: Some(VersionTag::of(&stored)),
        is_write: false,
    })
}
