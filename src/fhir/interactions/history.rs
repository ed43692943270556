//! Instance and type history, newest first, paged by a cursor on the write order so that
//! writes between pages neither repeat nor skip a version. <https://hl7.org/fhir/R4/http.html#history>

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use super::super::{FhirError, FhirRequest, FhirResponse, FhirServer};
use super::{link_with, page_size};
use crate::store::StoredVersion;

fn parse_since(raw: &str) -> Result<String, FhirError> {
    let instant = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        })
        .map_err(|_| {
            FhirError::bad_parameter(
                "_since",
                format!("_since must be an instant such as 2024-01-31T12:00:00Z, not '{raw}'"),
            )
        })?;
    Ok(instant.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

pub fn history(
    server: &FhirServer,
    base: &str,
    resource_type: &str,
    id: Option<&str>,
    request: &FhirRequest,
) -> Result<FhirResponse, FhirError> {
    let count = page_size(server, request)?;
    let since = request.param("_since").map(parse_since).transpose()?;
    let before = match request.param("_cursor") {
        Some(raw) => Some(
            raw.parse::<i64>()
                .map_err(|_| FhirError::bad_parameter("_cursor", "the paging cursor is not one this server made"))?,
        ),
        None => None,
    };
    if let Some(id) = id {
        if !server.store.exists_ever(resource_type, id)? {
            return Err(FhirError::NotFound {
                resource_type: resource_type.to_string(),
                id: id.to_string(),
            });
        }
    }
    let page = server
        .store
        .history(resource_type, id, since.as_deref(), before, count)?;
    let path = match id {
        Some(id) => format!("{resource_type}/{id}/_history"),
        None => format!("{resource_type}/_history"),
    };
    let mut links = vec![json!({"relation": "self", "url": link_with(base, &path, &request.query, &[])})];
    if page.versions.len() as i64 == count && count > 0 {
        let last = page.versions.last().expect("a full page").seq;
        links.push(json!({"relation": "next", "url": link_with(base, &path, &request.query, &[("_cursor", last.to_string())])}));
    }
    let entries = page
        .versions
        .iter()
        .map(|v| history_entry(base, v))
        .collect::<Result<Vec<_>, FhirError>>()?;
    Ok(FhirResponse::ok(json!({
        "resourceType": "Bundle",
        "type": "history",
        "total": page.total,
        "link": links,
        "entry": entries,
    })))
}

fn history_entry(base: &str, v: &StoredVersion) -> Result<Value, FhirError> {
    let url = if v.method == "POST" {
        v.resource_type.clone()
    } else {
        format!("{}/{}", v.resource_type, v.id)
    };
    let status = match (v.method.as_str(), v.version_id) {
        ("DELETE", _) => "200 OK",
        (_, 1) => "201 Created",
        _ => "200 OK",
    };
    let mut entry = json!({
        "fullUrl": format!("{base}/{}/{}", v.resource_type, v.id),
        "request": {"method": v.method, "url": url},
        "response": {"status": status, "etag": format!("W/\"{}\"", v.version_id), "lastModified": v.last_updated},
    });
    if let Some(resource) = v.resource()? {
        entry["resource"] = resource;
    }
    Ok(entry)
}
