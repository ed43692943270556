//! FHIR's two wire formats. Resources live as JSON inside the server; XML is converted at the
//! edge by fhirbolt's R4 model (strict parsing, FHIR element order on output).

use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::Value;

use super::error::FhirError;
use super::outcome::Issue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    pub fn mime(self) -> &'static str {
        match self {
            Format::Json => "application/fhir+json",
            Format::Xml => "application/fhir+xml",
        }
    }

    /// Reads a MIME type or a `_format` value (`json`, `xml`, `application/fhir+json`, …).
    pub fn from_mime(value: &str) -> Option<Format> {
        let essence = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "json" | "application/fhir+json" | "application/json" | "application/json+fhir" => {
                Some(Format::Json)
            }
            "xml"
            | "application/fhir+xml"
            | "application/xml"
            | "application/xml+fhir"
            | "text/xml" => Some(Format::Xml),
            _ => None,
        }
    }
}

fn strict() -> Option<DeserializationConfig> {
    Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    })
}

/// Parses a request body into FHIR JSON. JSON is only checked to be JSON here (structure is
/// validation's job); XML must be a valid R4 resource to be converted at all.
pub fn parse_body(bytes: &[u8], format: Format) -> Result<Value, FhirError> {
    match format {
        Format::Json => serde_json::from_slice::<Value>(bytes).map_err(|e| {
            FhirError::invalid(
                Issue::error("structure", format!("the body is not valid JSON: {e}"))
                    .at("Resource"),
            )
        }),
        Format::Xml => {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                FhirError::invalid(
                    Issue::error("structure", "the XML body is not UTF-8").at("Resource"),
                )
            })?;
            let resource: Resource = fhirbolt::xml::from_str(text, strict()).map_err(|e| {
                FhirError::invalid(
                    Issue::error(
                        "structure",
                        format!("the body is not a valid FHIR R4 XML resource: {e}"),
                    )
                    .at("Resource"),
                )
            })?;
            fhirbolt::json::to_json_value(resource, None)
                .map_err(|e| FhirError::Internal(format!("XML to JSON conversion failed: {e}")))
        }
    }
}

/// Checks that JSON reads as an R4 resource under fhirbolt's strict rules; returns the
/// parser's message when it does not.
pub fn strict_json_check(resource: &Value) -> Result<(), String> {
    fhirbolt::json::from_json_value::<Resource>(resource.clone(), strict())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Renders FHIR JSON in the requested format.
pub fn render(resource: &Value, format: Format, pretty: bool) -> Result<Vec<u8>, FhirError> {
    match format {
        Format::Json if pretty => {
            Ok(serde_json::to_vec_pretty(resource).expect("JSON values serialise"))
        }
        Format::Json => Ok(serde_json::to_vec(resource).expect("JSON values serialise")),
        Format::Xml => {
            // Lax: what we serve was validated on the way in; do not fail a read on a nicety.
            let lax = Some(DeserializationConfig {
                mode: DeserializationMode::Lax,
            });
            let model: Resource =
                fhirbolt::json::from_json_value(resource.clone(), lax).map_err(|e| {
                    FhirError::Internal(format!("stored JSON does not convert to XML: {e}"))
                })?;
            fhirbolt::xml::to_string(&model, None)
                .map(String::into_bytes)
                .map_err(|e| FhirError::Internal(format!("XML serialisation failed: {e}")))
        }
    }
}
