//! What a resource puts in the search index: each search parameter's expression is evaluated
//! over the resource and the values found become rows of the index table for its type.

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use super::date;
use super::registry::{ParamType, Registry, SearchParam};
use crate::store::{IndexRow, Indexer};

/// Lower case, accents removed: how string search compares (`Müller` finds `muller`).
pub fn normalize(text: &str) -> String {
    text.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
}

impl Indexer for Registry {
    fn index_rows(&self, resource_type: &str, resource: &Value) -> Vec<IndexRow> {
        let mut rows = Vec::new();
        // The engine's copy of the resource, made only if some expression is not a plain path.
        let mut root = None;
        for param in self.of_type(resource_type).filter(|p| p.writes_rows()) {
            if let Some(values) = param.expression.navigate(resource) {
                values.into_iter().for_each(|v| rows_of(param, v, &mut rows));
                continue;
            }
            let root = root.get_or_insert_with(|| std::sync::Arc::new(resource.clone()));
            match self.fhirpath.evaluate_with_engine(&param.expression, root, None) {
                Ok(values) => values.iter().for_each(|v| rows_of(param, v, &mut rows)),
                Err(error) => tracing::warn!(parameter = %param.code, %error, "search parameter not indexed"),
            }
        }
        rows
    }

    fn parameters(&self) -> Vec<(String, String)> {
        self.types()
            .flat_map(|resource_type| {
                self.of_type(resource_type)
                    .filter(|p| p.writes_rows())
                    .map(move |p| (resource_type.to_string(), p.code.clone()))
            })
            .collect()
    }
}

fn text_of(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).map(normalize).unwrap_or_default()
}

/// An extension stands for its value (`extension.where(url=…)` expressions end at it).
fn unwrap_extension(value: &Value) -> Option<&Value> {
    let object = value.as_object()?;
    object.get("url")?;
    object.iter().find_map(|(k, v)| {
        k.strip_prefix("value")
            .filter(|t| t.starts_with(char::is_uppercase))
            .map(|_| v)
    })
}

fn rows_of(param: &SearchParam, value: &Value, rows: &mut Vec<IndexRow>) {
    let code = || param.code.clone();
    if let Some(inner) = unwrap_extension(value) {
        return rows_of(param, inner, rows);
    }
    match (param.kind, value) {
        (ParamType::Token, Value::String(s)) => rows.push(IndexRow::Token {
            param: code(),
            system: String::new(),
            code: s.clone(),
            text: String::new(),
        }),
        (ParamType::Token, Value::Bool(b)) => rows.push(IndexRow::Token {
            param: code(),
            system: String::new(),
            code: b.to_string(),
            text: String::new(),
        }),
        (ParamType::Token, Value::Object(o)) => {
            if let Some(codings) = o.get("coding").and_then(Value::as_array) {
                // CodeableConcept
                let concept_text = text_of(o.get("text"));
                for coding in codings {
                    if let Some(c) = coding.get("code").and_then(Value::as_str) {
                        let display = text_of(coding.get("display"));
                        rows.push(IndexRow::Token {
                            param: code(),
                            system: coding
                                .get("system")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            code: c.to_string(),
                            text: if display.is_empty() {
                                concept_text.clone()
                            } else {
                                display
                            },
                        });
                    }
                }
                if codings.is_empty() && !concept_text.is_empty() {
                    rows.push(IndexRow::Token {
                        param: code(),
                        system: String::new(),
                        code: String::new(),
                        text: concept_text,
                    });
                }
            } else if o.contains_key("text") && !o.contains_key("value") && !o.contains_key("code") {
                rows.push(IndexRow::Token {
                    param: code(),
                    system: String::new(),
                    code: String::new(),
                    text: text_of(o.get("text")),
                });
            } else {
                // Coding (code), Identifier and ContactPoint (value): system|code.
                let c = o.get("code").or_else(|| o.get("value")).and_then(Value::as_str);
                if let Some(c) = c {
                    let text = text_of(o.get("display")).to_string();
                    let text = if text.is_empty() {
                        text_of(o.get("type").and_then(|t| t.get("text")))
                    } else {
                        text
                    };
                    rows.push(IndexRow::Token {
                        param: code(),
                        system: o.get("system").and_then(Value::as_str).unwrap_or_default().to_string(),
                        code: c.to_string(),
                        text,
                    });
                }
            }
        }
        (ParamType::String, Value::String(s)) => rows.push(IndexRow::String {
            param: code(),
            norm: normalize(s),
            exact: s.clone(),
        }),
        (ParamType::String, Value::Object(o)) => {
            // HumanName, Address and the like: every part a person would type.
            for (key, value) in o {
                if matches!(
                    key.as_str(),
                    "use" | "type" | "system" | "url" | "id" | "extension" | "period"
                ) || param.parts.iter().any(|part| part.field == *key)
                {
                    continue;
                }
                let strings: Vec<&str> = match value {
                    Value::String(s) => vec![s],
                    Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                for s in strings {
                    rows.push(IndexRow::String {
                        param: code(),
                        norm: normalize(s),
                        exact: s.to_string(),
                    });
                }
            }
        }
        (ParamType::Reference, Value::Object(o)) => {
            if let Some(reference) = o.get("reference").and_then(Value::as_str) {
                let (target_type, target_id) = split_reference(reference);
                rows.push(IndexRow::Reference {
                    param: code(),
                    target_type,
                    target_id,
                    url: reference.to_string(),
                });
            }
        }
        (ParamType::Reference, Value::String(canonical)) => {
            let (target_type, target_id) = split_reference(canonical);
            rows.push(IndexRow::Reference {
                param: code(),
                target_type,
                target_id,
                url: canonical.clone(),
            });
        }
        (ParamType::Date, Value::String(s)) => {
            if let Some((low, high)) = date::range(s) {
                rows.push(IndexRow::Date {
                    param: code(),
                    low,
                    high,
                });
            }
        }
        (ParamType::Date, Value::Object(o)) => {
            // Period: an open end reaches to the end of time.
            let start = o
                .get("start")
                .and_then(Value::as_str)
                .and_then(date::range)
                .map(|r| r.0);
            let end = o.get("end").and_then(Value::as_str).and_then(date::range).map(|r| r.1);
            if start.is_some() || end.is_some() {
                rows.push(IndexRow::Date {
                    param: code(),
                    low: start.unwrap_or_else(|| date::MIN.to_string()),
                    high: end.unwrap_or_else(|| date::MAX.to_string()),
                });
            }
        }
        (ParamType::Uri, Value::String(s)) => rows.push(IndexRow::Uri {
            param: code(),
            uri: s.clone(),
        }),
        (ParamType::Number, Value::Number(n)) => {
            if let Some(value) = n.as_f64() {
                rows.push(IndexRow::Number {
                    param: code(),
                    value,
                    system: String::new(),
                    code: String::new(),
                });
            }
        }
        _ => {}
    }
}

/// `Practitioner/123`, `Practitioner/123/_history/2` or `https://x/fhir/Practitioner/123` →
/// (`Practitioner`, `123`); anything else → empty type and id (matched by URL only).
pub fn split_reference(reference: &str) -> (String, String) {
    let path = reference.split('?').next().unwrap_or_default();
    let path = match path.find("/_history/") {
        Some(i) => &path[..i],
        None => path,
    };
    let mut parts = path.rsplit('/');
    match (parts.next(), parts.next()) {
        (Some(id), Some(ty)) if ty.starts_with(|c: char| c.is_ascii_uppercase()) && !id.is_empty() => {
            (ty.to_string(), id.to_string())
        }
        _ => (String::new(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_type_and_id() {
        assert_eq!(split_reference("Practitioner/1"), ("Practitioner".into(), "1".into()));
        assert_eq!(
            split_reference("https://x.org/fhir/Location/a-b/_history/3"),
            ("Location".into(), "a-b".into())
        );
        assert_eq!(split_reference("#contained"), (String::new(), String::new()));
    }

    #[test]
    fn strings_compare_without_case_or_accents() {
        assert_eq!(normalize("Müller-Lüdenscheidt"), "muller-ludenscheidt");
    }
}
