//! Type-level search (`GET /Type?…` and `POST /Type/_search`): parse, plan over the index,
//! page with a keyset cursor, add `_include`/`_revinclude`d resources, shape with
//! `_summary`/`_elements`. <https://hl7.org/fhir/R4/search.html>

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::super::outcome::operation_outcome;
use super::super::{FhirError, FhirRequest, FhirResponse, FhirServer};
use super::link_with;
use crate::search::query::{self, Include, Limits, SearchQuery, Summary};
use crate::search::sql;
use crate::store::{CurrentVersion, StoreError, Tx};

/// How many rounds `:iterate` follows references.
const ITERATE_DEPTH: usize = 3;

pub fn search_type(
    server: &FhirServer,
    base: &str,
    resource_type: &str,
    request: &FhirRequest,
) -> Result<FhirResponse, FhirError> {
    let limits = Limits {
        default_count: server.settings.default_count,
        max_count: server.settings.max_count,
    };
    let q = query::parse(
        &server.search,
        resource_type,
        &request.query,
        &limits,
        request.strict_handling,
    )?;
    let (mut matches, total, includes) = server.store.snapshot(|tx| run(tx, &q))?;
    let more = matches.len() as i64 > q.count;
    matches.truncate(q.count as usize);

    let mut links = vec![json!({"relation": "self", "url": link_with(base, resource_type, &request.query, &[])})];
    if more && q.count > 0 {
        let (last, keys) = matches.last().expect("a full page");
        let cursor = json!([keys[0], keys[1], keys[2], last.id]).to_string();
        links.push(
            json!({"relation": "next", "url": link_with(base, resource_type, &request.query, &[("_cursor", cursor)])}),
        );
    }
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset"});
    if let Some(total) = total {
        bundle["total"] = json!(total);
    }
    bundle["link"] = json!(links);
    let mut entries = Vec::new();
    if q.summary != Summary::Count {
        for (current, _) in &matches {
            entries.push(entry(base, current, "match", &q, &server.summary_elements)?);
        }
        for current in &includes {
            entries.push(entry(base, current, "include", &q, &server.summary_elements)?);
        }
    }
    if !q.warnings.is_empty() {
        entries.push(json!({"resource": operation_outcome(&q.warnings), "search": {"mode": "outcome"}}));
    }
    if !entries.is_empty() {
        bundle["entry"] = json!(entries);
    }
    Ok(FhirResponse::ok(bundle))
}

type Page = (Vec<(CurrentVersion, [String; 3])>, Option<i64>, Vec<CurrentVersion>);

fn run(tx: &mut Tx<'_>, q: &SearchQuery) -> Result<Page, StoreError> {
    let count_only = q.summary == Summary::Count;
    // A chained search's first page counts in its own statement (see `sql::counted_page`).
    let counted = if q.total && !count_only {
        sql::counted_page(q)
    } else {
        None
    };
    let (rows, total) = if let Some(statement) = counted {
        let rows = tx.search(&statement.sql, &statement.binds)?;
        // No row: nothing matches (it is a first page).
        let total = rows.first().and_then(|r| r.total).unwrap_or(0);
        (rows, Some(total))
    } else {
        let total = if q.total || count_only {
            let statement = sql::total(q);
            Some(tx.count(&statement.sql, &statement.binds)?)
        } else {
            None
        };
        if count_only {
            return Ok((vec![], total, vec![]));
        }
        let statement = sql::page(q);
        (tx.search(&statement.sql, &statement.binds)?, total)
    };
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut by_id: BTreeMap<String, CurrentVersion> = tx
        .read_many(&q.resource_type, &ids)?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let matches: Vec<(CurrentVersion, [String; 3])> = rows
        .into_iter()
        .filter_map(|r| {
            let keys = [
                r.k0.unwrap_or_default(),
                r.k1.unwrap_or_default(),
                r.k2.unwrap_or_default(),
            ];
            by_id.remove(&r.id).map(|c| (c, keys))
        })
        .collect();
    let page: Vec<CurrentVersion> = matches.iter().take(q.count as usize).map(|(c, _)| c.clone()).collect();
    let includes = included(tx, q, &page)?;
    Ok((matches, total, includes))
}

/// `_include` and `_revinclude` (with `:iterate`), each resource once, none that is a match.
fn included(tx: &mut Tx<'_>, q: &SearchQuery, matches: &[CurrentVersion]) -> Result<Vec<CurrentVersion>, StoreError> {
    let mut seen: BTreeSet<(String, String)> = matches
        .iter()
        .map(|c| (c.resource_type.clone(), c.id.clone()))
        .collect();
    let mut out = Vec::new();
    let mut frontier: Vec<CurrentVersion> = matches.to_vec();
    for round in 0..=ITERATE_DEPTH {
        let mut found: Vec<CurrentVersion> = Vec::new();
        let applies = |inc: &Include| round == 0 || inc.iterate;
        let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in &frontier {
            by_type.entry(c.resource_type.clone()).or_default().push(c.id.clone());
        }
        for inc in q.includes.iter().filter(|i| applies(i)) {
            for (source_type, ids) in &by_type {
                if inc.source_type != "*" && &inc.source_type != source_type {
                    continue;
                }
                let mut targets: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (target_type, target_id) in tx.references_of(source_type, &inc.param, ids)? {
                    if target_type.is_empty() || inc.target_type.as_ref().is_some_and(|t| t != &target_type) {
                        continue;
                    }
                    targets.entry(target_type).or_default().push(target_id);
                }
                for (target_type, target_ids) in targets {
                    found.extend(tx.read_many(&target_type, &target_ids)?);
                }
            }
        }
        for inc in q.revincludes.iter().filter(|i| applies(i)) {
            for (target_type, ids) in &by_type {
                let referring = tx.referring(&inc.source_type, &inc.param, target_type, ids)?;
                found.extend(tx.read_many(&inc.source_type, &referring)?);
            }
        }
        frontier = found
            .into_iter()
            .filter(|c| seen.insert((c.resource_type.clone(), c.id.clone())))
            .collect();
        if frontier.is_empty() {
            break;
        }
        out.extend(frontier.iter().cloned());
    }
    Ok(out)
}

fn entry(
    base: &str,
    current: &CurrentVersion,
    mode: &str,
    q: &SearchQuery,
    summary: &crate::search::SummaryElements,
) -> Result<Value, FhirError> {
    let mut resource: Value = current
        .content
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| FhirError::Internal(format!("stored resource is not JSON: {e}")))?
        .unwrap_or(Value::Null);
    shape(&mut resource, q, summary);
    Ok(json!({
        "fullUrl": format!("{base}/{}/{}", current.resource_type, current.id),
        "resource": resource,
        "search": {"mode": mode},
    }))
}

/// `_summary` and `_elements`: keep what was asked for and mark the resource SUBSETTED.
fn shape(resource: &mut Value, q: &SearchQuery, summary: &crate::search::SummaryElements) {
    let Some(object) = resource.as_object_mut() else { return };
    let resource_type = object
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let keep: Option<BTreeSet<String>> = match (q.summary, &q.elements) {
        (Summary::True, _) => Some(summary.of(&resource_type).iter().cloned().collect()),
        (Summary::Text, _) => Some(["text"].iter().map(|s| s.to_string()).collect()),
        (Summary::Data, _) => Some(object.keys().filter(|k| *k != "text").cloned().collect()),
        (_, Some(elements)) => Some(elements.iter().cloned().collect()),
        _ => None,
    };
    let Some(keep) = keep else { return };
    let before = object.len();
    object.retain(|k, _| keep.contains(k) || matches!(k.as_str(), "resourceType" | "id" | "meta"));
    if object.len() < before || q.summary == Summary::True {
        let meta = object.entry("meta").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let tags = meta.entry("tag").or_insert_with(|| json!([]));
            if let Some(tags) = tags.as_array_mut() {
                tags.push(json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED", "display": "subsetted"}));
            }
        }
    }
}
