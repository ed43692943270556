//! `providercard import`: loading FHIR resources from files through the same checks and
//! versioning as the REST API. A resource whose content is already stored is left alone, so
//! importing the same files twice writes nothing the second time.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::fhir::interactions::update;
use crate::fhir::{FhirError, FhirRequest, FhirServer, Method};

#[derive(Debug, Default)]
pub struct ImportReport {
    pub written: usize,
    pub unchanged: usize,
    pub failed: usize,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} written, {} unchanged, {} failed",
            self.written, self.unchanged, self.failed
        )
    }
}

fn json_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            for entry in std::fs::read_dir(path)? {
                let p = entry?.path();
                if p.extension().is_some_and(|e| e == "json") {
                    files.push(p);
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    Ok(files)
}

/// The content that matters when comparing versions: all but `meta.versionId`/`lastUpdated`.
fn without_version(resource: &Value) -> Value {
    let mut r = resource.clone();
    if let Some(meta) = r.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("versionId");
        meta.remove("lastUpdated");
        if meta.is_empty() {
            r.as_object_mut().expect("a resource is an object").remove("meta");
        }
    }
    r
}

pub fn fhir_files(server: &FhirServer, paths: &[PathBuf]) -> anyhow::Result<ImportReport> {
    let mut report = ImportReport::default();
    for file in json_files(paths)? {
        match import_one(server, &file) {
            Ok(true) => report.written += 1,
            Ok(false) => report.unchanged += 1,
            Err(error) => {
                report.failed += 1;
                tracing::warn!(file = %file.display(), error = %describe(&error), "not imported");
            }
        }
    }
    Ok(report)
}

fn describe(error: &FhirError) -> String {
    error
        .issues()
        .iter()
        .map(|i| format!("{} ({})", i.diagnostics, i.expression.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn import_one(server: &FhirServer, file: &Path) -> Result<bool, FhirError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| FhirError::Internal(format!("reading {}: {e}", file.display())))?;
    let resource: Value = serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| {
        FhirError::invalid(crate::fhir::outcome::Issue::error(
            "structure",
            format!("not JSON: {e}"),
        ))
    })?;
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let id = resource
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    crate::fhir::Route::parse(&format!("{resource_type}/{id}"))?;
    let mut request = FhirRequest::new(Method::Put, &format!("{resource_type}/{id}"));
    request.body = Some(resource);
    let prepared = update::prepare_update(server, &resource_type, &id, request)?;
    server.store.write(|tx| {
        if let Some(current) = tx.read(&resource_type, &id)? {
            let stored: Option<Value> = current.content.as_deref().and_then(|c| serde_json::from_str(c).ok());
            if !current.deleted && stored.as_ref().map(without_version) == Some(without_version(&prepared.resource)) {
                return Ok(false);
            }
        }
        update::run(tx, &prepared).map(|_| true)
    })
}
