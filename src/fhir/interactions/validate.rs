//! `$validate` at type and instance level: every issue the server would raise on a write,
//! without writing anything. <https://hl7.org/fhir/R4/resource-operation-validate.html>

use serde_json::Value;

use super::super::outcome::{operation_outcome, Issue};
use super::super::{FhirError, FhirRequest, FhirResponse, FhirServer};

/// The resource to check: the body itself, or the `resource` parameter of a Parameters body.
fn resource_and_parameters(body: Option<Value>) -> Result<(Option<Value>, Option<String>, Option<String>), FhirError> {
    let Some(body) = body else {
        return Ok((None, None, None));
    };
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Ok((Some(body), None, None));
    }
    let mut resource = None;
    let mut mode = None;
    let mut profile = None;
    for p in body["parameter"].as_array().into_iter().flatten() {
        match p["name"].as_str() {
            Some("resource") => resource = p.get("resource").cloned(),
            Some("mode") => mode = p["valueCode"].as_str().map(str::to_string),
            Some("profile") => {
                profile = p["valueUri"]
                    .as_str()
                    .or(p["valueCanonical"].as_str())
                    .map(str::to_string)
            }
            _ => {}
        }
    }
    Ok((resource, mode, profile))
}

pub fn validate(
    server: &FhirServer,
    resource_type: &str,
    id: Option<&str>,
    request: FhirRequest,
) -> Result<FhirResponse, FhirError> {
    let (resource, body_mode, body_profile) = resource_and_parameters(request.body.clone())?;
    let mode = request
        .param("mode")
        .map(str::to_string)
        .or(body_mode)
        .unwrap_or_else(|| "create".into());
    let profile = request.param("profile").map(str::to_string).or(body_profile);
    let mut issues: Vec<Issue> = Vec::new();
    match mode.as_str() {
        "create" | "update" => {
            let Some(resource) = resource else {
                return Err(FhirError::invalid(
                    Issue::error("required", "$validate needs a resource in the body").at(resource_type),
                ));
            };
            if mode == "update" {
                let body_id = resource.get("id").and_then(Value::as_str);
                match (id, body_id) {
                    (Some(url_id), Some(b)) if url_id != b => issues.push(
                        Issue::error(
                            "invalid",
                            format!("the id in the body ({b}) differs from the id in the URL ({url_id})"),
                        )
                        .at(format!("{resource_type}.id")),
                    ),
                    (_, None) => issues.push(
                        Issue::error("required", "an update must carry the resource's id")
                            .at(format!("{resource_type}.id")),
                    ),
                    _ => {}
                }
            }
            let report = server.validator.validate(
                resource_type,
                &resource,
                server.settings.require_plan_net,
                profile.as_deref(),
            );
            issues.extend(report.structure);
            issues.extend(report.profile);
        }
        "delete" => {
            let Some(id) = id else {
                return Err(FhirError::bad_parameter(
                    "mode",
                    "mode=delete needs an instance: POST /Type/id/$validate",
                ));
            };
            if server.store.read(resource_type, id)?.is_none_or(|c| c.deleted) {
                issues.push(
                    Issue::error("not-found", format!("{resource_type}/{id} does not exist"))
                        .at(format!("{resource_type}.id")),
                );
            }
        }
        other => {
            return Err(FhirError::bad_parameter(
                "mode",
                format!("mode must be create, update or delete, not '{other}'"),
            ))
        }
    }
    if issues.is_empty() {
        issues.push(Issue::information("informational", "no issues found"));
    }
    Ok(FhirResponse::ok(operation_outcome(&issues)))
}
