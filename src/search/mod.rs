//! Search: which index rows a resource produces on write, and how query parameters select
//! resources from them. Today it knows `_id` and `identifier` (what conditional create and
//! update need); every query is answered from the index tables, never by scanning JSON.

use serde_json::Value;

use crate::fhir::outcome::Issue;
use crate::fhir::FhirError;
use crate::store::{IndexToken, StoreError, Tx};

/// Parameters that steer the result, not the match.
pub const RESULT_PARAMETERS: [&str; 5] = ["_count", "_format", "_pretty", "_cursor", "_total"];

/// The parameters a type can be searched by, as advertised in the CapabilityStatement.
pub const SUPPORTED_PARAMETERS: [(&str, &str, &str); 2] = [
    (
        "_id",
        "token",
        "http://hl7.org/fhir/SearchParameter/Resource-id",
    ),
    (
        "identifier",
        "token",
        "http://hl7.org/fhir/SearchParameter/Organization-identifier",
    ),
];

/// Index rows for a resource about to be stored.
pub fn index_tokens(resource: &Value) -> Vec<IndexToken> {
    let mut tokens = Vec::new();
    if let Some(identifiers) = resource.get("identifier").and_then(Value::as_array) {
        for identifier in identifiers {
            if let Some(value) = identifier.get("value").and_then(Value::as_str) {
                tokens.push(IndexToken {
                    param: "identifier".into(),
                    system: identifier
                        .get("system")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    code: value.to_string(),
                });
            }
        }
    }
    tokens
}

/// One token value: `code`, `system|code`, `|code` or `system|`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenValue {
    pub system: Option<String>,
    pub code: Option<String>,
}

impl TokenValue {
    fn parse(raw: &str) -> TokenValue {
        match raw.split_once('|') {
            None => TokenValue {
                system: None,
                code: Some(raw.to_string()),
            },
            Some((system, code)) => TokenValue {
                system: Some(system.to_string()),
                code: (!code.is_empty()).then(|| code.to_string()),
            },
        }
    }
}

/// A parsed search: every parameter must match (AND), any value of one parameter may (OR).
#[derive(Debug, Default)]
pub struct Criteria {
    pub ids: Vec<Vec<String>>,
    pub identifiers: Vec<Vec<TokenValue>>,
    /// Parameters we do not know, reported back as warnings.
    pub ignored: Vec<String>,
}

impl Criteria {
    pub fn parse(query: &[(String, String)]) -> Result<Criteria, FhirError> {
        let mut criteria = Criteria::default();
        for (name, value) in query {
            let values = || value.split(',').map(str::to_string).collect::<Vec<_>>();
            match name.as_str() {
                "_id" => criteria.ids.push(values()),
                "identifier" => criteria
                    .identifiers
                    .push(value.split(',').map(TokenValue::parse).collect()),
                n if RESULT_PARAMETERS.contains(&n) => {}
                n => criteria.ignored.push(n.to_string()),
            }
        }
        Ok(criteria)
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.identifiers.is_empty()
    }

    /// Conditional interactions must never ignore a criterion: that would match too much.
    pub fn require_all_known(&self, header_or_url: &str) -> Result<(), FhirError> {
        if let Some(name) = self.ignored.first() {
            return Err(FhirError::invalid(
                Issue::error(
                    "not-supported",
                    format!("search parameter '{name}' is not supported in a conditional request"),
                )
                .at(header_or_url.to_string()),
            ));
        }
        if self.is_empty() {
            return Err(FhirError::invalid(
                Issue::error(
                    "required",
                    "a conditional request needs at least one search parameter",
                )
                .at(header_or_url.to_string()),
            ));
        }
        Ok(())
    }

    pub fn ignored_warnings(&self) -> Vec<Issue> {
        self.ignored
            .iter()
            .map(|n| {
                Issue::warning(
                    "not-supported",
                    format!("search parameter '{n}' is not supported and was ignored"),
                )
                .at(n.clone())
            })
            .collect()
    }

    /// Ids of live resources matching every criterion, in id order.
    pub fn matching_ids(
        &self,
        tx: &mut Tx<'_>,
        resource_type: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut result: Option<Vec<String>> = None;
        let mut narrow = |ids: Vec<String>| {
            result = Some(match result.take() {
                None => ids,
                Some(prev) => prev.into_iter().filter(|id| ids.contains(id)).collect(),
            });
        };
        for any_of in &self.ids {
            let mut ids = Vec::new();
            for id in any_of {
                if tx.read(resource_type, id)?.is_some_and(|c| !c.deleted) {
                    ids.push(id.clone());
                }
            }
            narrow(ids);
        }
        for any_of in &self.identifiers {
            let mut ids = Vec::new();
            for token in any_of {
                ids.extend(tx.find_by_token(
                    resource_type,
                    "identifier",
                    token.system.as_deref(),
                    token.code.as_deref(),
                )?);
            }
            ids.sort();
            ids.dedup();
            narrow(ids);
        }
        Ok(result.unwrap_or_default())
    }
}
