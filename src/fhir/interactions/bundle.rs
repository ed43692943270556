//! batch and transaction Bundles posted to the base. <https://hl7.org/fhir/R4/http.html#transaction>
//!
//! A transaction is all-or-nothing: every entry is checked before the database is touched,
//! then all writes run in one store transaction, in the order the spec gives (DELETE, POST,
//! PUT, then GET after the commit). `urn:uuid:` fullUrls of created resources are replaced
//! by the ids the server assigns, in every reference of every entry. A batch runs each entry
//! on its own and reports each outcome.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::super::audit::Author;
use super::super::outcome::{operation_outcome, Issue};
use super::super::types;
use super::super::{handle, FhirError, FhirRequest, FhirResponse, FhirServer, Method, Route};
use super::{create, delete, update};

/// One entry, read and checked.
struct Entry {
    index: usize,
    request: FhirRequest,
    full_url: Option<String>,
}

fn at(index: usize, element: &str) -> String {
    format!("Bundle.entry[{index}].{element}")
}

fn entries_of(bundle: &Value) -> Result<Vec<Entry>, FhirError> {
    let entries = match bundle.get("entry") {
        None => return Ok(vec![]),
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            return Err(FhirError::invalid(
                Issue::error("structure", "Bundle.entry must be an array").at("Bundle.entry"),
            ))
        }
    };
    let mut issues = Vec::new();
    let mut out = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let request = entry.get("request");
        let method = request.and_then(|r| r.get("method")).and_then(Value::as_str);
        let url = request.and_then(|r| r.get("url")).and_then(Value::as_str);
        let Some(method) = method.and_then(Method::parse) else {
            issues.push(
                Issue::error("required", "each entry needs request.method: GET, POST, PUT or DELETE")
                    .at(at(index, "request.method")),
            );
            continue;
        };
        let Some(url) = url else {
            issues.push(Issue::error("required", "each entry needs request.url").at(at(index, "request.url")));
            continue;
        };
        let mut fhir_request = FhirRequest::from_url(method, url);
        fhir_request.if_match = request
            .and_then(|r| r.get("ifMatch"))
            .and_then(Value::as_str)
            .map(str::to_string);
        fhir_request.if_none_exist = request
            .and_then(|r| r.get("ifNoneExist"))
            .and_then(Value::as_str)
            .map(str::to_string);
        fhir_request.body = entry.get("resource").cloned();
        out.push(Entry {
            index,
            request: fhir_request,
            full_url: entry.get("fullUrl").and_then(Value::as_str).map(str::to_string),
        });
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(FhirError::Invalid(issues))
    }
}

pub fn batch_or_transaction(server: &FhirServer, base: &str, request: FhirRequest) -> Result<FhirResponse, FhirError> {
    let bundle = request.body.ok_or_else(|| {
        FhirError::invalid(Issue::error("required", "POST to the base needs a Bundle in its body").at("Bundle"))
    })?;
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(FhirError::invalid(
            Issue::error(
                "invalid",
                "only a batch or transaction Bundle may be posted to the base",
            )
            .at("Bundle.resourceType"),
        ));
    }
    // Every entry is the Bundle caller's request: the audit trail names them for each.
    let entries = || -> Result<Vec<Entry>, FhirError> {
        let mut entries = entries_of(&bundle)?;
        for entry in &mut entries {
            entry.request.actor = request.actor.clone();
            entry.request.source_address = request.source_address.clone();
        }
        Ok(entries)
    };
    match bundle.get("type").and_then(Value::as_str) {
        Some("transaction") => transaction(server, base, entries()?),
        Some("batch") => Ok(batch(server, base, entries()?)),
        other => Err(FhirError::invalid(
            Issue::error(
                "value",
                format!(
                    "Bundle.type must be batch or transaction, not {}",
                    other.unwrap_or("absent")
                ),
            )
            .at("Bundle.type"),
        )),
    }
}

fn batch(server: &FhirServer, base: &str, entries: Vec<Entry>) -> FhirResponse {
    let responses = entries
        .into_iter()
        .map(|entry| {
            let index = entry.index;
            match handle(server, base, entry.request) {
                Ok(response) => response_entry(base, &response),
                Err(error) => {
                    if error.is_server_fault() {
                        tracing::error!(error = %error, entry = index, "batch entry failed");
                    }
                    error_entry(&error)
                }
            }
        })
        .collect::<Vec<_>>();
    FhirResponse::ok(json!({"resourceType": "Bundle", "type": "batch-response", "entry": responses}))
}

/// A checked transaction write, ready to run inside the store transaction.
enum Write {
    Create(create::PreparedCreate),
    Update(update::PreparedUpdate),
    Delete {
        resource_type: String,
        id: String,
        author: Author,
    },
}

fn transaction(server: &FhirServer, base: &str, mut entries: Vec<Entry>) -> Result<FhirResponse, FhirError> {
    // 1. Ids for created resources, so references to their fullUrls can be rewritten.
    let mut new_ids: HashMap<String, String> = HashMap::new();
    let mut assigned: HashMap<usize, String> = HashMap::new();
    for entry in &entries {
        if let (Method::Post, Ok(Route::Type(t))) = (entry.request.method, Route::parse(&entry.request.path)) {
            let id = uuid::Uuid::new_v4().to_string();
            if let Some(full_url) = &entry.full_url {
                new_ids.insert(full_url.clone(), format!("{t}/{id}"));
            }
            assigned.insert(entry.index, id);
        }
    }
    for entry in &mut entries {
        if let Some(body) = &mut entry.request.body {
            rewrite_references(body, &new_ids);
        }
    }

    // 2. Check every entry before touching the database; report every problem at once.
    let mut issues = Vec::new();
    let mut writes: Vec<(usize, Write)> = Vec::new();
    let mut reads: Vec<Entry> = Vec::new();
    for entry in entries {
        let index = entry.index;
        match prepare(server, entry, &assigned) {
            Ok(Some(write)) => writes.push((index, write)),
            Ok(None) => {}
            Err(PrepareError::Read(entry)) => reads.push(*entry),
            Err(PrepareError::Fhir(error)) => issues.extend(error.issues().into_iter().map(|i| reroot(i, index))),
        }
    }
    if !issues.is_empty() {
        return Err(FhirError::Invalid(issues));
    }

    // 3. Run the writes in one database transaction, DELETE, POST, then PUT.
    let rank = |w: &Write| match w {
        Write::Delete { .. } => 0,
        Write::Create(_) => 1,
        Write::Update(_) => 2,
    };
    writes.sort_by_key(|(index, w)| (rank(w), *index));
    let written: Vec<(usize, FhirResponse)> = server
        .store
        .write(|tx| {
            let mut out = Vec::with_capacity(writes.len());
            for (index, write) in &writes {
                let result = match write {
                    Write::Create(c) => create::run(tx, c),
                    Write::Update(u) => update::run(tx, u),
                    Write::Delete {
                        resource_type,
                        id,
                        author,
                    } => delete::run(tx, resource_type, id, author),
                };
                out.push((*index, result.map_err(|e| EntryError(*index, e))?));
            }
            Ok(out)
        })
        .map_err(|EntryError(index, error)| match error {
            FhirError::Invalid(issues) => FhirError::Invalid(issues.into_iter().map(|i| reroot(i, index)).collect()),
            FhirError::Unprocessable(issues) => {
                FhirError::Unprocessable(issues.into_iter().map(|i| reroot(i, index)).collect())
            }
            other => other,
        })?;

    // 4. Reads see the committed state.
    let mut responses: Vec<(usize, Value)> = written.iter().map(|(i, r)| (*i, response_entry(base, r))).collect();
    for entry in reads {
        let index = entry.index;
        let value = match handle(server, base, entry.request) {
            Ok(r) => response_entry(base, &r),
            Err(e) => error_entry(&e),
        };
        responses.push((index, value));
    }
    responses.sort_by_key(|(i, _)| *i);
    Ok(FhirResponse::ok(json!({
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": responses.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    })))
}

/// An entry's error inside the store transaction, remembering which entry failed.
struct EntryError(usize, FhirError);

impl From<crate::store::StoreError> for EntryError {
    fn from(e: crate::store::StoreError) -> Self {
        EntryError(usize::MAX, FhirError::Store(e))
    }
}

impl crate::store::AsStoreConflict for EntryError {
    fn is_store_conflict(&self) -> bool {
        crate::store::AsStoreConflict::is_store_conflict(&self.1)
    }
}

enum PrepareError {
    Read(Box<Entry>),
    Fhir(FhirError),
}

impl From<FhirError> for PrepareError {
    fn from(e: FhirError) -> Self {
        PrepareError::Fhir(e)
    }
}

fn prepare(
    server: &FhirServer,
    entry: Entry,
    assigned: &HashMap<usize, String>,
) -> Result<Option<Write>, PrepareError> {
    let route = Route::parse(&entry.request.path)?;
    if let Some(t) = route.resource_type().filter(|t| types::is_read_only(t)) {
        if route.is_written_by(entry.request.method) {
            return Err(PrepareError::Fhir(FhirError::ReadOnlyType(t.to_string())));
        }
    }
    let write = match (entry.request.method, route) {
        (Method::Get, _) => return Err(PrepareError::Read(Box::new(entry))),
        (Method::Post, Route::Type(t)) => {
            let mut prepared = create::prepare(server, &t, entry.request)?;
            prepared.id = assigned
                .get(&entry.index)
                .expect("an id was assigned to every create")
                .clone();
            Write::Create(prepared)
        }
        (Method::Put, Route::Instance(t, id)) => Write::Update(update::prepare_update(server, &t, &id, entry.request)?),
        (Method::Put, Route::Type(t)) => Write::Update(update::prepare_conditional(server, &t, entry.request)?),
        (Method::Delete, Route::Instance(t, id)) => Write::Delete {
            author: Author::of(&entry.request),
            resource_type: t,
            id,
        },
        (method, _) => {
            return Err(PrepareError::Fhir(FhirError::invalid(
                Issue::error(
                    "not-supported",
                    format!(
                        "{} {} is not supported in a transaction",
                        method.as_str(),
                        entry.request.path
                    ),
                )
                .at("request.url"),
            )))
        }
    };
    Ok(Some(write))
}

/// Puts an entry's issue paths under `Bundle.entry[i]`.
fn reroot(issue: Issue, index: usize) -> Issue {
    let mentions_entry = issue.expression.iter().any(|e| e.starts_with("Bundle."));
    if mentions_entry {
        issue
    } else if issue.expression.iter().any(|e| e.starts_with("request.")) {
        let mut issue = issue;
        for e in &mut issue.expression {
            *e = at(index, e);
        }
        issue
    } else {
        issue.under(&at(index, "resource"))
    }
}

/// Replaces every `reference` that names a `urn:uuid:` fullUrl of this Bundle.
fn rewrite_references(value: &mut Value, new_ids: &HashMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "reference" {
                    if let Value::String(reference) = child {
                        if let Some(new) = new_ids.get(reference.as_str()) {
                            *reference = new.clone();
                        }
                    }
                } else {
                    rewrite_references(child, new_ids);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_references(v, new_ids)),
        _ => {}
    }
}

fn status_line(status: u16) -> String {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        _ => "",
    };
    format!("{status} {reason}").trim_end().to_string()
}

fn response_entry(base: &str, response: &FhirResponse) -> Value {
    let mut entry_response = json!({"status": status_line(response.status)});
    let mut entry = json!({});
    if let Some(version) = &response.version {
        entry["fullUrl"] = json!(format!("{base}/{}/{}", version.resource_type, version.id));
        entry_response["etag"] = json!(version.etag());
        entry_response["lastModified"] = json!(version.last_updated);
        if response.is_write {
            entry_response["location"] = json!(version.versioned_path());
        }
    }
    match &response.body {
        Some(body) if body.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome") => {
            entry_response["outcome"] = body.clone();
        }
        Some(body) => entry["resource"] = body.clone(),
        None => {}
    }
    entry["response"] = entry_response;
    entry
}

fn error_entry(error: &FhirError) -> Value {
    json!({"response": {"status": error.status().to_string(), "outcome": operation_outcome(&error.issues())}})
}
