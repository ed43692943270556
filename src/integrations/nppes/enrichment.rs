//! Applying an NPI Registry answer to our copy of a provider, inside one store transaction:
//! fill what the provider left empty (never overwrite; differences become a discrepancy
//! alert), give a Practitioner a PractitionerRole with its NUCC specialties, record where the
//! data came from (a Provenance naming NPPES and the retrieval time), and withdraw the
//! provider from the public Plan-Net view when CMS deactivated the NPI, or reinstate it when
//! NPPES shows the NPI again.
//!
//! Two paths lead here: a client's write (the [`NppesWriteHook`], from the answer the HTTP
//! layer prefetched into the cache) and the jobs (enrichment the write could not wait for,
//! and the weekly re-validation).

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};

use super::cache::{self, Cached};
use super::client::Lookup;
use super::mapping;
use super::model::NppesRecord;
use super::npi::{npis_in, Npi};
use super::taxonomy::NuccCodeSet;
use crate::fhir::audit::{self, Activity, Author};
use crate::fhir::hooks::{Put, WriteHook};
use crate::fhir::outcome::Issue;
use crate::fhir::withdrawal;
use crate::fhir::{Actor, FhirError};
use crate::integrations::adapter::{ProviderRef, SyncReport};
use crate::jobs::{self, NewJob};
use crate::ops::alerts::{self, kind, NewAlert, Severity};
use crate::store::{Store, StoreError, StoredVersion, Tx};
use crate::validation::Validator;

pub const ENRICH_JOB: &str = "nppes-enrich";

/// What applying an answer needs besides the transaction.
#[derive(Clone)]
pub struct Reference {
    pub codes: Arc<NuccCodeSet>,
    pub plan_net_specialties: Arc<HashSet<String>>,
    pub cache_ttl_ms: i64,
    pub validator: Arc<Validator>,
}

/// The types NPPES knows: individuals (NPI-1) and organizations (NPI-2).
pub fn is_nppes_type(resource_type: &str) -> bool {
    matches!(resource_type, "Practitioner" | "Organization")
}

/// The first NPI identifier that passes its check digit.
pub fn npi_of(resource: &Value) -> Option<Npi> {
    npis_in(resource).into_iter().find_map(|(_, v)| Npi::parse(&v).ok())
}

pub fn nppes_author() -> Author {
    Author {
        actor: Actor::Integration { name: "nppes".into() },
        source_address: None,
    }
}

/// What applying an answer did.
#[derive(Debug, Default)]
pub struct Applied {
    pub outcome: &'static str,
    pub changed: Vec<String>,
}

/// Applies `answer` to `resource` and stores it through `put` (always: a client's write must
/// be stored whatever NPPES said), then writes the role, the Provenance and the alerts.
pub fn apply(
    tx: &mut Tx<'_>,
    reference: &Reference,
    resource_type: &str,
    id: &str,
    mut resource: Value,
    npi: &Npi,
    answer: &Cached,
    put: Put<'_>,
) -> Result<(StoredVersion, Applied), FhirError> {
    let subject = format!("{resource_type}/{id}");
    let backend = tx.backend();
    let mut applied = Applied::default();
    match &answer.lookup {
        Lookup::Found(record) => {
            if withdrawal::is_withdrawn(&resource) && withdrawn_by_nppes(&resource) {
                withdrawal::unmark_withdrawn(&reference.validator, resource_type, &mut resource);
                applied.changed.push(format!("{resource_type}.meta.tag"));
                applied.outcome = "reinstated";
            }
            let enrichment = match resource_type {
                "Organization" => mapping::enrich_organization(&mut resource, record),
                _ => mapping::enrich_practitioner(&mut resource, record),
            };
            let stored = put(tx, resource)?;
            if !enrichment.filled.is_empty() {
                let provenance = nppes_provenance(&stored, npi, answer.fetched_at, &enrichment.filled);
                tx.put("Provenance", &uuid::Uuid::new_v4().to_string(), provenance, "POST")?;
            }
            if resource_type == "Practitioner" {
                applied
                    .changed
                    .extend(upsert_role(tx, reference, id, record, npi, answer.fetched_at)?);
            }
            let conn = tx.connection();
            if enrichment.discrepancies.is_empty() {
                alerts::resolve_on(conn, backend, kind::NPPES_DISCREPANCY, &subject)?;
            } else {
                let details: Vec<Value> = enrichment
                    .discrepancies
                    .iter()
                    .map(|d| json!({"element": d.element, "provider": d.provider_value, "nppes": d.nppes_value}))
                    .collect();
                let elements: Vec<&str> = enrichment.discrepancies.iter().map(|d| d.element.as_str()).collect();
                alerts::raise_on(
                    conn,
                    backend,
                    &NewAlert::new(
                        kind::NPPES_DISCREPANCY,
                        &subject,
                        Severity::Warning,
                        format!("{subject} differs from NPPES in {}", elements.join(", ")),
                    )
                    .npi(npi.as_str())
                    .details(json!({ "discrepancies": details })),
                )?;
            }
            alerts::resolve_on(conn, backend, kind::NPI_NOT_FOUND, &subject)?;
            alerts::resolve_on(conn, backend, kind::NPI_DEACTIVATED, &subject)?;
            applied.changed.extend(enrichment.filled);
            if applied.outcome.is_empty() {
                applied.outcome = if applied.changed.is_empty() {
                    "unchanged"
                } else {
                    "updated"
                };
            }
            Ok((stored, applied))
        }
        Lookup::NotFound => {
            let stored = put(tx, resource)?;
            alerts::raise_on(
                tx.connection(),
                backend,
                &NewAlert::new(
                    kind::NPI_NOT_FOUND,
                    &subject,
                    Severity::Warning,
                    format!("NPPES has no provider with NPI {npi} ({subject})"),
                )
                .npi(npi.as_str()),
            )?;
            applied.outcome = "not-found";
            Ok((stored, applied))
        }
        Lookup::Deactivated { message } => {
            if !withdrawal::is_withdrawn(&resource) {
                withdrawal::mark_withdrawn(resource_type, &mut resource, &withdrawal_reason(npi));
                applied.changed.push(format!("{resource_type}.active"));
            }
            let stored = put(tx, resource)?;
            alerts::raise_on(
                tx.connection(),
                backend,
                &NewAlert::new(kind::NPI_DEACTIVATED, &subject, Severity::Critical, message.clone()).npi(npi.as_str()),
            )?;
            applied.outcome = "withdrawn";
            Ok((stored, applied))
        }
    }
}

fn withdrawal_reason(npi: &Npi) -> String {
    format!("NPPES reports NPI {npi} deactivated")
}

/// Only a withdrawal NPPES caused is NPPES's to reverse (an operator's stays).
fn withdrawn_by_nppes(resource: &Value) -> bool {
    resource["meta"]["tag"].as_array().is_some_and(|tags| {
        tags.iter().any(|t| {
            t["code"] == withdrawal::TAG_CODE && t["display"].as_str().is_some_and(|d| d.contains("NPPES reports"))
        })
    })
}

/// Gives the practitioner a PractitionerRole carrying its NPPES specialties: a new one when it
/// has none, else the specialties missing from its first role are added (none removed).
/// Only codes Plan-Net's required specialty value set accepts are used.
fn upsert_role(
    tx: &mut Tx<'_>,
    reference: &Reference,
    practitioner_id: &str,
    record: &NppesRecord,
    npi: &Npi,
    fetched_at: i64,
) -> Result<Vec<String>, FhirError> {
    let mut record = record.clone();
    record.taxonomies.retain(|t| {
        t.code
            .as_deref()
            .is_some_and(|c| reference.plan_net_specialties.contains(c))
    });
    if record.taxonomies.is_empty() {
        return Ok(Vec::new());
    }
    let roles = tx.referring(
        "PractitionerRole",
        "practitioner",
        "Practitioner",
        &[practitioner_id.to_string()],
    )?;
    let live = roles
        .iter()
        .filter_map(|id| tx.read("PractitionerRole", id).transpose())
        .collect::<Result<Vec<_>, StoreError>>()?;
    let existing = live.into_iter().find(|r| !r.deleted);
    let (role_id, mut role, added) = match existing {
        Some(current) => {
            let mut role = current.json()?;
            let added = mapping::merge_specialties(&mut role, &record, &reference.codes);
            if added.is_empty() {
                return Ok(Vec::new());
            }
            (current.id, role, added)
        }
        None => {
            let role =
                mapping::practitioner_role_for(&format!("Practitioner/{practitioner_id}"), &record, &reference.codes);
            let added = record
                .distinct_taxonomies()
                .iter()
                .filter_map(|t| t.code.clone())
                .collect();
            (uuid::Uuid::new_v4().to_string(), role, added)
        }
    };
    // Claim the Plan-Net profile only when the role conforms (a record without a practice
    // phone gives a role without telecom, which Plan-Net's pd-1 refuses).
    let report = reference.validator.validate("PractitionerRole", &role, false, None);
    if report.has_errors() || report.conforms_to.is_none() {
        if let Some(meta) = role.get_mut("meta").and_then(Value::as_object_mut) {
            meta.remove("profile");
        }
    }
    let stored = tx.put("PractitionerRole", &role_id, role, "PUT")?;
    audit::record(tx, &nppes_author(), &stored, Activity::Update)?;
    let filled: Vec<String> = added
        .iter()
        .map(|c| format!("PractitionerRole.specialty ({c})"))
        .collect();
    let provenance = nppes_provenance(&stored, npi, fetched_at, &filled);
    tx.put("Provenance", &uuid::Uuid::new_v4().to_string(), provenance, "POST")?;
    Ok(filled)
}

/// Where enriched elements came from: NPPES, the NPI, and when the record was retrieved.
fn nppes_provenance(stored: &StoredVersion, npi: &Npi, fetched_at: i64, filled: &[String]) -> Value {
    let retrieved = crate::store::instant_of_ms(fetched_at);
    json!({
        "resourceType": "Provenance",
        "target": [{"reference": format!("{}/{}/_history/{}", stored.resource_type, stored.id, stored.version_id)}],
        "occurredDateTime": retrieved,
        "recorded": stored.last_updated,
        "reason": [{"text": format!("filled from NPPES: {}", filled.join(", "))}],
        "activity": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
            "code": "UPDATE",
            "display": "revise",
        }]},
        "agent": [{
            "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                "code": "author",
                "display": "Author",
            }]},
            "who": {"display": "CMS National Plan and Provider Enumeration System (NPPES)"},
        }],
        "entity": [{
            "role": "source",
            "what": {
                "identifier": {"system": super::npi::NPI_SYSTEM, "value": npi.as_str()},
                "display": format!("NPI Registry API v2.1 record of NPI {npi}, retrieved {retrieved}"),
            },
        }],
    })
}

/// Applies a fresh answer to the stored provider outside any client write (the jobs and
/// `sync`): a new version only when something changed.
pub fn apply_answer(
    store: &Store,
    reference: &Reference,
    provider: &ProviderRef,
    answer: &Cached,
) -> Result<SyncReport, StoreError> {
    apply_stored(store, reference, provider, answer, None).map(|(report, _)| report)
}

/// As [`apply_answer`], also marking `job` done in the same transaction. Returns false as
/// its second value when the job's lease was lost (and nothing was written).
pub fn apply_stored(
    store: &Store,
    reference: &Reference,
    provider: &ProviderRef,
    answer: &Cached,
    job: Option<&jobs::Job>,
) -> Result<(SyncReport, bool), StoreError> {
    let (resource_type, id) = (provider.resource_type.as_str(), provider.id.as_str());
    let result = store.write(|tx| {
        let Some(current) = tx.read(resource_type, id)? else {
            return Ok((gone(), true));
        };
        if current.deleted {
            return Ok((gone(), true));
        }
        let resource = current.json()?;
        let Some(npi) = npi_of(&resource) else {
            return Ok((gone(), true));
        };
        let before = resource.clone();
        let mut put = |tx: &mut Tx<'_>, updated: Value| -> Result<StoredVersion, FhirError> {
            if updated == before {
                // Nothing to change: the current version stands.
                return Ok(StoredVersion::from_current(&current));
            }
            let stored = tx.put(resource_type, id, updated, "PUT")?;
            audit::record(tx, &nppes_author(), &stored, Activity::Update)?;
            Ok(stored)
        };
        let (_, applied) = apply(
            tx,
            reference,
            resource_type,
            id,
            resource.clone(),
            &npi,
            answer,
            &mut put,
        )
        .map_err(into_store)?;
        if let Some(job) = job {
            if !jobs::complete_in(tx, job)? {
                // Roll back: another worker owns the job now.
                return Err(StoreError::LeaseLost);
            }
        }
        Ok((
            SyncReport {
                outcome: applied.outcome.to_string(),
                changed: applied.changed,
                message: None,
            },
            true,
        ))
    });
    match result {
        Err(StoreError::LeaseLost) => Ok((gone(), false)),
        other => other,
    }
}

fn gone() -> SyncReport {
    SyncReport {
        outcome: "skipped".into(),
        changed: vec![],
        message: Some("the provider is gone or has no valid NPI".into()),
    }
}

fn into_store(e: FhirError) -> StoreError {
    match e {
        FhirError::Store(s) => s,
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// NPI check digits on every write, and enrichment from NPPES inside the write.
pub struct NppesWriteHook {
    /// None when the NPPES integration is disabled: NPIs are still checked locally.
    pub reference: Option<Reference>,
}

impl WriteHook for NppesWriteHook {
    fn check(&self, resource_type: &str, resource: &Value) -> Result<(), FhirError> {
        if !is_nppes_type(resource_type) {
            return Ok(());
        }
        let issues: Vec<Issue> = npis_in(resource)
            .into_iter()
            .filter_map(|(index, value)| {
                Npi::parse(&value).err().map(|e| {
                    Issue::error("value", e.to_string()).at(format!("{resource_type}.identifier[{index}].value"))
                })
            })
            .collect();
        if issues.is_empty() {
            Ok(())
        } else {
            Err(FhirError::Unprocessable(issues))
        }
    }

    fn store(
        &self,
        tx: &mut Tx<'_>,
        resource_type: &str,
        id: &str,
        resource: Value,
        put: Put<'_>,
    ) -> Result<StoredVersion, FhirError> {
        let (Some(reference), true) = (&self.reference, is_nppes_type(resource_type)) else {
            return put(tx, resource);
        };
        let Some(npi) = npi_of(&resource) else {
            return put(tx, resource);
        };
        let backend = tx.backend();
        match cache::get(tx.connection(), backend, npi.as_str(), reference.cache_ttl_ms)? {
            Some(answer) => Ok(apply(tx, reference, resource_type, id, resource, &npi, &answer, put)?.0),
            None => {
                // NPPES did not answer in time: store now, enrich when it answers.
                let stored = put(tx, resource)?;
                jobs::enqueue(
                    tx,
                    &NewJob::new(ENRICH_JOB, json!({"resourceType": resource_type, "id": id}))
                        .dedupe(format!("{ENRICH_JOB}:{resource_type}/{id}")),
                )?;
                Ok(stored)
            }
        }
    }
}
