//! Parsing a search's query parameters into criteria and result controls.
//! <https://hl7.org/fhir/R4/search.html>
//!
//! Rules: repeated parameters AND, comma-separated values OR. An unknown parameter or modifier
//! is reported as a warning and ignored, or refused under `Prefer: handling=strict`; a
//! malformed value is always a 400 naming the parameter.

use super::registry::{ParamType, Registry, SearchParam};
use crate::fhir::outcome::Issue;
use crate::fhir::FhirError;

/// Parameters that steer the result, not the match.
pub const RESULT_PARAMETERS: [&str; 11] = [
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_summary",
    "_elements",
    "_total",
    "_format",
    "_pretty",
    "_cursor",
    "_since",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modifier {
    None,
    Not,
    Text,
    Exact,
    Contains,
    Missing,
    Below,
    Above,
    /// `:Type` on a reference
    Type,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

/// One condition on the resources of a type.
#[derive(Debug, Clone)]
pub enum Criterion {
    /// A parameter over the index: any of `values` matches.
    Param {
        param: SearchParam,
        modifier: Modifier,
        type_modifier: Option<String>,
        values: Vec<String>,
    },
    /// `param:missing=true|false`
    Missing { param: SearchParam, missing: bool },
    /// `ref.chained=…`: the resource refers, through `param`, to a `target_type` matching `inner`.
    Chain {
        param: SearchParam,
        target_types: Vec<String>,
        inner: Box<Criterion>,
    },
    /// `_has:Source:param:…`: some `source_type` referring to it through `param` matches `inner`.
    Has {
        source_type: String,
        param: SearchParam,
        inner: Box<Criterion>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    True,
    Count,
    Data,
    Text,
    False,
}

#[derive(Debug, Clone)]
pub struct SortKey {
    pub param: String,
    /// The codes its index rows are stored under (`param`'s own or the one it shares, and its
    /// parts').
    pub row_codes: Vec<String>,
    pub kind: Option<ParamType>,
    pub descending: bool,
}

#[derive(Debug, Clone)]
pub struct Include {
    pub source_type: String,
    /// The reference parameter, or `*` for every reference.
    pub param: String,
    pub target_type: Option<String>,
    pub iterate: bool,
}

#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub resource_type: String,
    pub criteria: Vec<Criterion>,
    pub count: i64,
    pub sort: Vec<SortKey>,
    pub includes: Vec<Include>,
    pub revincludes: Vec<Include>,
    pub summary: Summary,
    pub elements: Option<Vec<String>>,
    pub total: bool,
    pub cursor: Option<Vec<String>>,
    pub warnings: Vec<Issue>,
}

pub struct Limits {
    pub default_count: i64,
    pub max_count: i64,
}

fn bad(name: &str, message: impl Into<String>) -> FhirError {
    FhirError::bad_parameter(name, message)
}

pub fn parse(
    registry: &Registry,
    resource_type: &str,
    query: &[(String, String)],
    limits: &Limits,
    strict: bool,
) -> Result<SearchQuery, FhirError> {
    let mut q = SearchQuery {
        resource_type: resource_type.to_string(),
        criteria: vec![],
        count: limits.default_count,
        sort: vec![],
        includes: vec![],
        revincludes: vec![],
        summary: Summary::False,
        elements: None,
        total: true,
        cursor: None,
        warnings: vec![],
    };
    let unknown = |q: &mut SearchQuery, name: &str, why: String| -> Result<(), FhirError> {
        if strict {
            Err(FhirError::invalid(
                Issue::error("not-supported", why).at(name.to_string()),
            ))
        } else {
            q.warnings
                .push(Issue::warning("not-supported", format!("{why}; it was ignored")).at(name.to_string()));
            Ok(())
        }
    };
    for (name, value) in query {
        match name.as_str() {
            "_count" => {
                let n = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| bad("_count", format!("_count must be a whole number, not '{value}'")))?;
                q.count = n.min(limits.max_count);
            }
            "_sort" => {
                for key in value.split(',').filter(|k| !k.is_empty()) {
                    let (descending, code) = match key.strip_prefix('-') {
                        Some(code) => (true, code),
                        None => (false, key),
                    };
                    let (kind, row_codes) = match code {
                        "_id" | "_lastUpdated" => (None, vec![code.to_string()]),
                        _ => match registry.get(resource_type, code) {
                            Some(p)
                                if matches!(
                                    p.kind,
                                    ParamType::String | ParamType::Date | ParamType::Token | ParamType::Uri
                                ) =>
                            {
                                (Some(p.kind), p.row_codes().into_iter().map(str::to_string).collect())
                            }
                            _ => return Err(bad("_sort", format!("cannot sort {resource_type} by '{code}'"))),
                        },
                    };
                    q.sort.push(SortKey {
                        param: code.to_string(),
                        row_codes,
                        kind,
                        descending,
                    });
                }
                if q.sort.len() > 3 {
                    return Err(bad("_sort", "at most three sort keys are supported"));
                }
            }
            "_include" | "_revinclude" | "_include:iterate" | "_revinclude:iterate" => {
                let iterate = name.ends_with(":iterate");
                let include = parse_include(registry, name, value, iterate)?;
                if name.starts_with("_include") {
                    q.includes.push(include);
                } else {
                    q.revincludes.push(include);
                }
            }
            "_summary" => {
                q.summary = match value.as_str() {
                    "true" => Summary::True,
                    "count" => Summary::Count,
                    "data" => Summary::Data,
                    "text" => Summary::Text,
                    "false" => Summary::False,
                    _ => {
                        return Err(bad(
                            "_summary",
                            format!("_summary must be true, false, count, data or text, not '{value}'"),
                        ))
                    }
                };
            }
            "_elements" => {
                q.elements = Some(
                    value
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "_total" => {
                q.total = match value.as_str() {
                    "none" => false,
                    "accurate" | "estimate" => true,
                    _ => {
                        return Err(bad(
                            "_total",
                            format!("_total must be none, estimate or accurate, not '{value}'"),
                        ))
                    }
                };
            }
            "_cursor" => {
                let keys: Vec<String> = serde_json::from_str(value)
                    .map_err(|_| bad("_cursor", "the paging cursor is not one this server made"))?;
                if keys.len() != 4 {
                    return Err(bad("_cursor", "the paging cursor is not one this server made"));
                }
                q.cursor = Some(keys);
            }
            n if RESULT_PARAMETERS.contains(&n) => {}
            _ => match parse_criterion(registry, resource_type, name, value)? {
                Ok(criterion) => q.criteria.push(criterion),
                Err(why) => unknown(&mut q, name, why)?,
            },
        }
    }
    // Withdrawn records (see fhir::withdrawal) are not part of the public directory: a search
    // returns them only when it asks about tags itself.
    if !query.iter().any(|(name, _)| name.starts_with("_tag")) {
        if let Some(tag) = registry.get(resource_type, "_tag") {
            q.criteria.push(Criterion::Param {
                param: tag.clone(),
                modifier: Modifier::Not,
                type_modifier: None,
                values: vec![crate::fhir::withdrawal::excluded_tag()],
            });
        }
    }
    Ok(q)
}

fn parse_include(registry: &Registry, name: &str, value: &str, iterate: bool) -> Result<Include, FhirError> {
    let parts: Vec<&str> = value.split(':').collect();
    if value == "*" {
        return Ok(Include {
            source_type: "*".into(),
            param: "*".into(),
            target_type: None,
            iterate,
        });
    }
    let (source_type, param, target_type) = match parts.as_slice() {
        [t, p] => (*t, *p, None),
        [t, p, target] => (*t, *p, Some(target.to_string())),
        _ => {
            return Err(bad(
                name,
                format!("{name} must be Type:parameter[:TargetType], not '{value}'"),
            ))
        }
    };
    if param != "*" {
        match registry.get(source_type, param) {
            Some(p) if p.kind == ParamType::Reference => {}
            _ => {
                return Err(bad(
                    name,
                    format!("{source_type}:{param} is not a reference search parameter"),
                ))
            }
        }
    }
    Ok(Include {
        source_type: source_type.to_string(),
        param: param.to_string(),
        target_type,
        iterate,
    })
}

fn modifier_of(text: &str) -> Option<Modifier> {
    Some(match text {
        "" => Modifier::None,
        "not" => Modifier::Not,
        "text" => Modifier::Text,
        "exact" => Modifier::Exact,
        "contains" => Modifier::Contains,
        "missing" => Modifier::Missing,
        "below" => Modifier::Below,
        "above" => Modifier::Above,
        t if t.starts_with(char::is_uppercase) => Modifier::Type,
        _ => return None,
    })
}

fn allowed(kind: ParamType, modifier: Modifier) -> bool {
    use Modifier::*;
    match modifier {
        None | Missing => true,
        Not | Text => kind == ParamType::Token,
        Exact | Contains => kind == ParamType::String,
        Below | Above => kind == ParamType::Uri,
        Type => kind == ParamType::Reference,
    }
}

/// Outer Err: a malformed value (400). Inner Err: an unknown parameter or modifier (warning).
fn parse_criterion(
    registry: &Registry,
    resource_type: &str,
    name: &str,
    value: &str,
) -> Result<Result<Criterion, String>, FhirError> {
    if let Some(rest) = name.strip_prefix("_has:") {
        // _has:Source:param:rest
        let mut parts = rest.splitn(3, ':');
        let (Some(source), Some(param_code), Some(inner_name)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(name, "_has must read _has:Type:parameter:criterion"));
        };
        let Some(param) = registry
            .get(source, param_code)
            .filter(|p| p.kind == ParamType::Reference)
        else {
            return Ok(Err(format!(
                "{source}:{param_code} is not a reference search parameter"
            )));
        };
        if !param.targets.is_empty() && !param.targets.iter().any(|t| t == resource_type) {
            return Ok(Err(format!("{source}:{param_code} does not refer to {resource_type}")));
        }
        let param = param.clone();
        return Ok(
            parse_criterion(registry, source, inner_name, value)?.map(|inner| Criterion::Has {
                source_type: source.to_string(),
                param,
                inner: Box::new(inner),
            }),
        );
    }
    let (head, chain) = match name.split_once('.') {
        Some((head, chain)) => (head, Some(chain)),
        None => (name, None),
    };
    let (code, modifier_text) = head.split_once(':').unwrap_or((head, ""));
    let Some(param) = registry.get(resource_type, code) else {
        return Ok(Err(format!("{resource_type} has no search parameter '{code}'")));
    };
    let Some(modifier) = modifier_of(modifier_text) else {
        return Ok(Err(format!("modifier ':{modifier_text}' is not supported")));
    };
    if !allowed(param.kind, modifier) {
        return Ok(Err(format!(
            "modifier ':{modifier_text}' does not apply to {} parameter '{code}'",
            param.kind.as_str()
        )));
    }
    let type_modifier = (modifier == Modifier::Type).then(|| modifier_text.to_string());
    if let Some(chain) = chain {
        if param.kind != ParamType::Reference {
            return Ok(Err(format!("'{code}' is not a reference, so it cannot be chained")));
        }
        let target_types: Vec<String> = match &type_modifier {
            Some(t) => vec![t.clone()],
            None => param.targets.clone(),
        };
        let mut inner = None;
        let mut why = String::new();
        let mut reachable = Vec::new();
        for target in &target_types {
            match parse_criterion(registry, target, chain, value)? {
                Ok(c) => {
                    inner.get_or_insert(c);
                    reachable.push(target.clone());
                }
                Err(w) => why = w,
            }
        }
        // The chained criterion is parsed per target type; types without that parameter drop
        // out. The index keys rows by parameter code, so one parsed criterion serves them all.
        return Ok(match inner {
            Some(inner) => Ok(Criterion::Chain {
                param: param.clone(),
                target_types: reachable,
                inner: Box::new(inner),
            }),
            None => Err(why),
        });
    }
    if modifier == Modifier::Missing {
        let missing = match value {
            "true" => true,
            "false" => false,
            _ => return Err(bad(name, format!(":missing takes true or false, not '{value}'"))),
        };
        return Ok(Ok(Criterion::Missing {
            param: param.clone(),
            missing,
        }));
    }
    let values: Vec<String> = split_values(value);
    for v in &values {
        check_value(param.kind, name, v)?;
    }
    Ok(Ok(Criterion::Param {
        param: param.clone(),
        modifier,
        type_modifier,
        values,
    }))
}

/// Splits on commas not escaped with `\`.
fn split_values(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in value.chars() {
        match (escaped, c) {
            (false, '\\') => escaped = true,
            (false, ',') => out.push(String::new()),
            (_, c) => {
                escaped = false;
                out.last_mut().expect("one value").push(c);
            }
        }
    }
    out
}

pub fn split_prefix(value: &str) -> (Prefix, &str) {
    let prefixes = [
        ("eq", Prefix::Eq),
        ("ne", Prefix::Ne),
        ("gt", Prefix::Gt),
        ("lt", Prefix::Lt),
        ("ge", Prefix::Ge),
        ("le", Prefix::Le),
        ("sa", Prefix::Sa),
        ("eb", Prefix::Eb),
        ("ap", Prefix::Ap),
    ];
    for (text, prefix) in prefixes {
        if let Some(rest) = value.strip_prefix(text) {
            return (prefix, rest);
        }
    }
    (Prefix::Eq, value)
}

fn check_value(kind: ParamType, name: &str, value: &str) -> Result<(), FhirError> {
    match kind {
        ParamType::Date => {
            let (_, rest) = split_prefix(value);
            if super::date::range(rest).is_none() {
                return Err(bad(name, format!("'{value}' is not a date search value (an optional prefix eq, ne, gt, lt, ge, le, sa, eb or ap, then a date such as 2024-01-31 or 2024-01-31T12:00:00Z)")));
            }
        }
        ParamType::Number => {
            let (_, rest) = split_prefix(value);
            if rest.parse::<f64>().is_err() {
                return Err(bad(name, format!("'{value}' is not a number search value")));
            }
        }
        _ => {
            if value.is_empty() {
                return Err(bad(
                    name,
                    "an empty search value matches nothing; leave the parameter out instead",
                ));
            }
        }
    }
    Ok(())
}
