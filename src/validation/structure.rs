//! Structural validation: is this JSON an R4 resource of the expected type at all?
//! Errors carry the element's FHIRPath location (`Practitioner.name[0].given[1]`).

use std::collections::HashMap;
use std::path::Path;

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde_json::Value;

use crate::fhir::outcome::Issue;
use crate::fhir::{format, types};

pub struct StructureValidator {
    by_type: HashMap<&'static str, Validator>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not JSON: {source}")]
    Parse { path: String, source: serde_json::Error },
    #[error("fhir.schema.json does not compile for {resource_type}: {message}")]
    Compile { resource_type: String, message: String },
}

impl StructureValidator {
    /// Compiles one validator per supported type from `fhir.schema.json`.
    pub fn load(schema_path: &Path) -> Result<StructureValidator, LoadError> {
        let path = schema_path.display().to_string();
        let text = std::fs::read_to_string(schema_path).map_err(|source| LoadError::Read {
            path: path.clone(),
            source,
        })?;
        let mut schema: Value = serde_json::from_str(&text).map_err(|source| LoadError::Parse { path, source })?;
        // The root is a oneOf over every resource type, whose errors say only "not valid under
        // any schema"; validating against the one definition we expect gives precise paths.
        let root = schema.as_object_mut().expect("fhir.schema.json is an object");
        root.remove("oneOf");
        root.remove("discriminator");
        root.remove("id");
        root.remove("$id");
        // Medplum's schema adds its own resource types, which refer to definitions it does
        // not ship (`Resource`, `integer64`); none of ours use them, but the compiler resolves
        // every reference, so the missing ones are declared as accepting anything.
        let mut referenced = Vec::new();
        collect_refs(&Value::Object(root.clone()), &mut referenced);
        if let Some(Value::Object(definitions)) = root.get_mut("definitions") {
            for name in referenced {
                definitions.entry(name).or_insert_with(|| serde_json::json!({}));
            }
        }
        let mut by_type = HashMap::new();
        for resource_type in types::SUPPORTED_TYPES {
            let mut typed = schema.clone();
            typed["$ref"] = Value::String(format!("#/definitions/{resource_type}"));
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft6)
                .should_validate_formats(false)
                .build(&typed)
                .map_err(|e| LoadError::Compile {
                    resource_type: resource_type.to_string(),
                    message: e.to_string(),
                })?;
            by_type.insert(resource_type, validator);
        }
        Ok(StructureValidator { by_type })
    }

    /// Every structural problem of `resource`, expected to be a `resource_type`.
    pub fn validate(&self, resource_type: &str, resource: &Value) -> Vec<Issue> {
        let Some(object) = resource.as_object() else {
            return vec![
                Issue::error("structure", "the body must be a JSON object holding one resource").at(resource_type),
            ];
        };
        match object.get("resourceType") {
            Some(Value::String(t)) if t == resource_type => {}
            Some(Value::String(t)) => {
                return vec![Issue::error(
                    "invalid",
                    format!("resourceType is {t} but this endpoint takes {resource_type}"),
                )
                .at(format!("{resource_type}.resourceType"))];
            }
            _ => {
                return vec![
                    Issue::error("required", "resourceType is missing").at(format!("{resource_type}.resourceType"))
                ];
            }
        }
        let Some(validator) = self.by_type.get(resource_type) else {
            return vec![Issue::error(
                "not-supported",
                format!("resource type {resource_type} is not supported here"),
            )];
        };
        let mut issues: Vec<Issue> = validator
            .iter_errors(resource)
            .flat_map(|error| issues_of(resource_type, &error))
            .collect();
        issues.dedup();
        if issues.is_empty() {
            json_rules(resource, resource_type, &mut issues);
        }
        if issues.is_empty() {
            if let Err(message) = format::strict_json_check(resource) {
                issues.push(
                    Issue::error("structure", format!("not a valid R4 {resource_type}: {message}")).at(resource_type),
                );
            }
        }
        issues
    }
}

/// FHIR JSON's own rules (ele-1 for JSON): no empty objects, arrays or strings and no nulls.
fn json_rules(value: &Value, loc: &str, issues: &mut Vec<Issue>) {
    let mut flag =
        |message: &str, at: &str| issues.push(Issue::error("structure", message.to_string()).at(at.to_string()));
    match value {
        Value::Object(map) if map.is_empty() => flag(
            "ele-1: an element must have a value or children; this one is empty",
            loc,
        ),
        Value::Array(items) if items.is_empty() => flag("an array must not be empty; leave the element out", loc),
        Value::String(s) if s.is_empty() => flag("a string must not be empty; leave the element out", loc),
        Value::Null => flag(
            "null is not a FHIR value (except inside primitive extension arrays)",
            loc,
        ),
        _ => {}
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                // `_given: [null, {…}]` uses null to line up with its primitive array.
                if k.starts_with('_') {
                    if let Value::Array(items) = v {
                        for (i, item) in items.iter().enumerate().filter(|(_, item)| !item.is_null()) {
                            json_rules(item, &format!("{loc}.{k}[{i}]"), issues);
                        }
                        continue;
                    }
                }
                json_rules(v, &format!("{loc}.{k}"), issues);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                json_rules(item, &format!("{loc}[{i}]"), issues);
            }
        }
        _ => {}
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                if let Some(name) = r.strip_prefix("#/definitions/") {
                    out.push(name.to_string());
                }
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn issues_of(resource_type: &str, error: &jsonschema::ValidationError<'_>) -> Vec<Issue> {
    let at = fhirpath_of(resource_type, &error.instance_path().to_string());
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| Issue::error("structure", format!("unknown element '{name}'")).at(format!("{at}.{name}")))
            .collect(),
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            vec![Issue::error("required", format!("missing required element '{name}'")).at(format!("{at}.{name}"))]
        }
        _ => vec![Issue::error("structure", format!("invalid value: {error}")).at(at)],
    }
}

/// `/name/0/given/1` under `Practitioner` → `Practitioner.name[0].given[1]`.
pub fn fhirpath_of(resource_type: &str, pointer: &str) -> String {
    let mut path = resource_type.to_string();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.bytes().all(|b| b.is_ascii_digit()) && !segment.is_empty() {
            path.push_str(&format!("[{segment}]"));
        } else {
            path.push('.');
            path.push_str(&segment);
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::fhirpath_of;

    #[test]
    fn json_pointers_read_as_fhirpath() {
        assert_eq!(
            fhirpath_of("Practitioner", "/name/0/given/1"),
            "Practitioner.name[0].given[1]"
        );
        assert_eq!(fhirpath_of("Location", ""), "Location");
    }
}
