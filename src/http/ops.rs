//! The operations API beside the FHIR endpoints: integration health, Prometheus metrics,
//! alerts, NUCC taxonomy translation, and syncing one provider with an integration.
//! Errors are FHIR OperationOutcomes like everywhere else, rendered by the same code.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{auth, render_error, AppState};
use crate::fhir::format::Format;
use crate::fhir::outcome::Issue;
use crate::fhir::types::is_valid_id;
use crate::fhir::{FhirError, FhirRequest, Method};
use crate::integrations::adapter::{IntegrationError, ProviderRef};
use crate::integrations::nppes::npis_in;
use crate::jobs::worker::blocking;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/integrations/health").route(web::get().to(health)));
    cfg.service(web::resource("/api/v1/integrations/{name}/sync").route(web::post().to(sync)));
    cfg.service(web::resource("/api/v1/alerts").route(web::get().to(alerts)));
    cfg.service(web::resource("/api/v1/nppes/search").route(web::get().to(nppes_search)));
    cfg.service(web::resource("/api/v1/taxonomy").route(web::get().to(taxonomy_search)));
    cfg.service(web::resource("/api/v1/taxonomy/{code}").route(web::get().to(taxonomy_code)));
    cfg.service(web::resource("/metrics").route(web::get().to(metrics)));
}

fn json_response(status: actix_web::http::StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body.to_string())
}

fn ok(body: &Value) -> HttpResponse {
    json_response(actix_web::http::StatusCode::OK, body)
}

fn error(req: &HttpRequest, e: &FhirError) -> HttpResponse {
    render_error(req, e, Format::Json, false)
}

/// `GET /api/v1/integrations/health`: the overall status and each enabled integration's.
async fn health(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let names: Vec<String> = state
        .integrations
        .registry
        .all()
        .iter()
        .map(|a| a.name().to_string())
        .collect();
    let store = state.fhir.store.clone();
    match blocking(move || crate::ops::health::report(&store, &names)).await {
        Ok(body) => ok(&body),
        Err(e) => error(&req, &FhirError::from(e)),
    }
}

/// `GET /metrics`: Prometheus text exposition.
async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::ops::metrics::render())
}

/// Who may read operations data: whoever may search the directory.
async fn authorize_read(req: &HttpRequest, state: &AppState) -> Result<(), FhirError> {
    auth::check_ip(req, state)?;
    let mut probe = FhirRequest::new(Method::Get, "Practitioner");
    auth::authorize(req, state, &mut probe).await
}

/// `GET /api/v1/alerts[?kind=]`: open alerts, oldest first.
async fn alerts(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(e) = authorize_read(&req, &state).await {
        return error(&req, &e);
    }
    let kind = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("kind").cloned());
    let alerts = state.integrations.alerts.clone();
    match blocking(move || alerts.open(kind.as_deref())).await {
        Ok(list) => ok(&json!({ "alerts": list.iter().map(|a| a.to_json()).collect::<Vec<_>>() })),
        Err(e) => error(&req, &FhirError::from(e)),
    }
}

fn taxonomy_json(
    t: &crate::integrations::nppes::NuccTaxonomy,
    codes: &crate::integrations::nppes::NuccCodeSet,
) -> Value {
    json!({
        "system": crate::integrations::nppes::NUCC_SYSTEM,
        "code": t.code,
        "display": codes.display(&t.code),
        "grouping": t.grouping,
        "classification": t.classification,
        "specialization": t.specialization,
        "section": t.section,
    })
}

/// `GET /api/v1/taxonomy/{code}`: a NUCC code's display, classification and specialization.
async fn taxonomy_code(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let codes = &state.integrations.codes;
    match codes.lookup(&path) {
        Some(t) => ok(&taxonomy_json(t, codes)),
        None => error(
            &req,
            &FhirError::NotKnown(format!(
                "{} is not a code of the NUCC taxonomy {}",
                path.as_str(),
                codes.version()
            )),
        ),
    }
}

/// `GET /api/v1/taxonomy?text=family+nurse`: the codes whose names match, best first.
async fn taxonomy_search(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let query = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let Some(text) = query.get("text").filter(|t| !t.trim().is_empty()) else {
        return error(
            &req,
            &FhirError::bad_parameter("text", "give the words to look for: ?text=family nurse"),
        );
    };
    let codes = &state.integrations.codes;
    let found: Vec<Value> = codes
        .find(text)
        .into_iter()
        .take(50)
        .map(|t| taxonomy_json(t, codes))
        .collect();
    ok(&json!({ "version": codes.version(), "text": text, "codes": found }))
}

/// `GET /api/v1/nppes/search?last_name=SMITH&state=GA[&limit=N]`: the NPI Registry's answer,
/// through the same limits and breaker as every other NPPES call. The registry's refusals
/// (e.g. a state alone) come back as a 400 OperationOutcome naming the parameter.
async fn nppes_search(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    use crate::integrations::nppes::{RegistryError, SearchCriteria};
    use crate::integrations::resilience::GuardError;
    if let Err(e) = authorize_read(&req, &state).await {
        return error(&req, &e);
    }
    let Some(nppes) = &state.integrations.nppes else {
        return error(
            &req,
            &FhirError::NotKnown("the NPPES integration is not enabled".into()),
        );
    };
    let q = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let get = |name: &str| q.get(name).filter(|v| !v.trim().is_empty()).cloned();
    let criteria = SearchCriteria {
        first_name: get("first_name"),
        last_name: get("last_name"),
        organization_name: get("organization_name"),
        taxonomy_description: get("taxonomy_description"),
        city: get("city"),
        state: get("state"),
        postal_code: get("postal_code"),
        enumeration_type: get("enumeration_type"),
        country_code: get("country_code"),
        address_purpose: get("address_purpose"),
    };
    let limit = match get("limit").map(|l| l.parse::<usize>()) {
        None => 200,
        Some(Ok(n)) if (1..=1200).contains(&n) => n,
        Some(_) => return error(&req, &FhirError::bad_parameter("limit", "limit must be 1 to 1200")),
    };
    match nppes.search(&criteria, limit).await {
        Ok(records) => ok(&json!({
            "resultCount": records.len(),
            "results": records.iter().map(|r| r.raw.clone()).collect::<Vec<_>>(),
        })),
        Err(GuardError::Failed(RegistryError::Refused(errors))) => {
            let issues = errors
                .iter()
                .map(|e| {
                    let issue = Issue::error("invalid", e.to_string());
                    match &e.field {
                        Some(field) if field != "generic" => issue.at(field.clone()),
                        _ => issue,
                    }
                })
                .collect();
            error(&req, &FhirError::Invalid(issues))
        }
        Err(e) => error(
            &req,
            &FhirError::Upstream {
                message: format!("NPPES: {e}"),
                retry_after: e.retry_in().map(|d| d.as_secs().max(1)),
            },
        ),
    }
}

/// `POST /api/v1/integrations/{name}/sync?provider=Practitioner/123`: checks one provider
/// against the integration now and applies what it says (the same work as its jobs).
async fn sync(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    match sync_provider(&req, &path, &state).await {
        Ok(body) => ok(&body),
        Err(e) => error(&req, &e),
    }
}

async fn sync_provider(req: &HttpRequest, name: &str, state: &AppState) -> Result<Value, FhirError> {
    auth::check_ip(req, state)?;
    let query = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let provider = query
        .get("provider")
        .ok_or_else(|| FhirError::bad_parameter("provider", "name the provider: ?provider=Practitioner/123"))?;
    let (resource_type, id) = provider
        .split_once('/')
        .filter(|(t, id)| matches!(*t, "Practitioner" | "Organization") && is_valid_id(id))
        .ok_or_else(|| {
            FhirError::bad_parameter("provider", "provider must be Practitioner/{id} or Organization/{id}")
        })?;
    // Syncing changes the provider's record: it needs the right to write it.
    let mut probe = FhirRequest::new(Method::Put, &format!("{resource_type}/{id}"));
    auth::authorize(req, state, &mut probe).await?;
    let adapter = state
        .integrations
        .registry
        .get(name)
        .ok_or_else(|| FhirError::NotKnown(format!("no integration named {name} is enabled on this server")))?;
    let store = state.fhir.store.clone();
    let (t, i) = (resource_type.to_string(), id.to_string());
    let current = blocking(move || store.read(&t, &i)).await?;
    let current = current.filter(|c| !c.deleted).ok_or_else(|| FhirError::NotFound {
        resource_type: resource_type.to_string(),
        id: id.to_string(),
    })?;
    let resource = current.json()?;
    let npi = npis_in(&resource).into_iter().next().map(|(_, v)| v);
    let provider = ProviderRef {
        resource_type: resource_type.to_string(),
        id: id.to_string(),
        npi,
    };
    match adapter.sync_provider(&provider).await {
        Ok(report) => Ok(json!({ "integration": name, "provider": provider.reference(), "result": report })),
        Err(e) => Err(integration_error(e)),
    }
}

fn integration_error(e: IntegrationError) -> FhirError {
    match e {
        IntegrationError::Unavailable { reason, retry_in, .. } => FhirError::Upstream {
            message: reason,
            retry_after: retry_in.map(|d| d.as_secs().max(1)),
        },
        IntegrationError::Store(s) => FhirError::Store(s),
        other => FhirError::Unprocessable(vec![Issue::error("business-rule", other.to_string())]),
    }
}
