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
        let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "json" | "application/fhir+json" | "application/json" | "application/json+fhir" => Some(Format::Json),
            "xml" | "application/fhir+xml" | "application/xml" | "application/xml+fhir" | "text/xml" => {
                Some(Format::Xml)
            }
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
        Format::Json => {
            let value = serde_json::from_slice::<Value>(bytes).map_err(|e| {
                FhirError::invalid(Issue::error("structure", format!("the body is not valid JSON: {e}")).at("Resource"))
            })?;
            reject_duplicate_keys(bytes).map_err(|e| {
                FhirError::invalid(
                    Issue::error("structure", format!("the body is not valid FHIR JSON: {e}")).at("Resource"),
                )
            })?;
            Ok(value)
        }
        Format::Xml => {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                FhirError::invalid(Issue::error("structure", "the XML body is not UTF-8").at("Resource"))
            })?;
            let parsed =
                std::panic::catch_unwind(|| fhirbolt::xml::from_str::<Resource>(text, strict())).map_err(|_| {
                    FhirError::invalid(
                        Issue::error("structure", "the body is not a valid FHIR R4 XML resource").at("Resource"),
                    )
                })?;
            let resource: Resource = parsed.map_err(|e| {
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
    let resource = resource.clone();
    // fhirbolt 0.4 panics on some malformed input (an empty array, for one); a panic is the
    // client's malformed body, not our failure.
    std::panic::catch_unwind(move || fhirbolt::json::from_json_value::<Resource>(resource, strict()))
        .map_err(|_| "the resource could not be read as R4".to_string())?
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Rejects JSON objects that repeat a property: serde_json would keep only the last one,
/// silently changing what the client sent.
pub fn reject_duplicate_keys(bytes: &[u8]) -> Result<(), String> {
    use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
    struct Check;
    impl<'de> serde::de::DeserializeSeed<'de> for Check {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(Check)
        }
    }
    impl<'de> Visitor<'de> for Check {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(serde::de::Error::custom(format!(
                        "property '{key}' appears twice in one object"
                    )));
                }
                map.next_value_seed(Check)?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Check)?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde::de::DeserializeSeed::deserialize(Check, &mut de).map_err(|e| e.to_string())
}

/// Renders FHIR JSON in the requested format.
pub fn render(resource: &Value, format: Format, pretty: bool) -> Result<Vec<u8>, FhirError> {
    match format {
        Format::Json if pretty => Ok(serde_json::to_vec_pretty(resource).expect("JSON values serialise")),
        Format::Json => Ok(serde_json::to_vec(resource).expect("JSON values serialise")),
        Format::Xml => {
            // Lax: what we serve was validated on the way in; do not fail a read on a nicety.
            let lax = Some(DeserializationConfig {
                mode: DeserializationMode::Lax,
            });
            let model: Resource = fhirbolt::json::from_json_value(resource.clone(), lax)
                .map_err(|e| FhirError::Internal(format!("stored JSON does not convert to XML: {e}")))?;
            fhirbolt::xml::to_string(&model, None)
                .map(String::into_bytes)
                .map_err(|e| FhirError::Internal(format!("XML serialisation failed: {e}")))
        }
    }
}
