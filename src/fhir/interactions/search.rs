//! Type-level search, as far as the search module supports it today: `_id` and `identifier`,
//! paged by a cursor on the resource id. <https://hl7.org/fhir/R4/http.html#search>

use serde_json::{json, Value};

use super::super::outcome::operation_outcome;
use super::super::{FhirError, FhirRequest, FhirResponse, FhirServer};
use super::{link_with, page_size};
use crate::search::Criteria;
use crate::store::CurrentVersion;

pub fn search_type(
    server: &FhirServer,
    base: &str,
    resource_type: &str,
    request: &FhirRequest,
) -> Result<FhirResponse, FhirError> {
    let criteria = Criteria::parse(&request.query)?;
    let count = page_size(server, request)?;
    let after = request.param("_cursor");
    let (page, total) = if criteria.is_empty() {
        let page = server.store.list(resource_type, after, count)?;
        (page, server.store.count_live(resource_type)?)
    } else {
        server.store.snapshot(|tx| {
            let ids = criteria.matching_ids(tx, resource_type)?;
            let total = ids.len() as i64;
            let mut page = Vec::new();
            for id in ids
                .iter()
                .filter(|id| after.is_none_or(|a| id.as_str() > a))
                .take(count as usize)
            {
                if let Some(current) = tx.read(resource_type, id)? {
                    page.push(current);
                }
            }
            Ok((page, total))
        })?
    };
    let mut links = vec![
        json!({"relation": "self", "url": link_with(base, resource_type, &request.query, &[])}),
    ];
    if page.len() as i64 == count && count > 0 {
        let last = &page.last().expect("a full page").id;
        links.push(json!({"relation": "next", "url": link_with(base, resource_type, &request.query, &[("_cursor", last.clone())])}));
    }
    let mut entries = page
        .iter()
        .map(|c| match_entry(base, c))
        .collect::<Result<Vec<_>, _>>()?;
    let warnings = criteria.ignored_warnings();
    if !warnings.is_empty() {
        entries
            .push(json!({"resource": operation_outcome(&warnings), "search": {"mode": "outcome"}}));
    }
    Ok(FhirResponse::ok(json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": entries,
    })))
}

fn match_entry(base: &str, current: &CurrentVersion) -> Result<Value, FhirError> {
    let resource: Value = current
        .content
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| FhirError::Internal(format!("stored resource is not JSON: {e}")))?
        .unwrap_or(Value::Null);
    Ok(json!({
        "fullUrl": format!("{base}/{}/{}", current.resource_type, current.id),
        "resource": resource,
        "search": {"mode": "match"},
    }))
}
