//! OperationOutcome: the one shape every error, warning and informational answer takes.
//! <https://hl7.org/fhir/R4/operationoutcome.html>

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// One `OperationOutcome.issue`. `code` is from <https://hl7.org/fhir/R4/valueset-issue-type.html>.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub severity: Severity,
    pub code: &'static str,
    pub diagnostics: String,
    /// FHIRPath locations of the element at fault, e.g. `Practitioner.name[0].family`.
    pub expression: Vec<String>,
}

impl Issue {
    pub fn error(code: &'static str, diagnostics: impl Into<String>) -> Issue {
        Issue {
            severity: Severity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: vec![],
        }
    }

    pub fn warning(code: &'static str, diagnostics: impl Into<String>) -> Issue {
        Issue {
            severity: Severity::Warning,
            code,
            diagnostics: diagnostics.into(),
            expression: vec![],
        }
    }

    pub fn information(code: &'static str, diagnostics: impl Into<String>) -> Issue {
        Issue {
            severity: Severity::Information,
            code,
            diagnostics: diagnostics.into(),
            expression: vec![],
        }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Issue {
        self.expression.push(expression.into());
        self
    }

    /// Re-roots the issue's paths under a containing element, e.g. a Bundle entry.
    pub fn under(mut self, prefix: &str) -> Issue {
        if self.expression.is_empty() {
            self.expression.push(prefix.to_string());
        } else {
            for e in &mut self.expression {
                // `Practitioner.name[0]` inside `Bundle.entry[2].resource` reads
                // `Bundle.entry[2].resource.name[0]`.
                let tail = e.split_once('.').map(|(_, rest)| rest);
                *e = match tail {
                    Some(rest) => format!("{prefix}.{rest}"),
                    None => prefix.to_string(),
                };
            }
        }
        self
    }

    fn to_json(&self) -> Value {
        let mut issue = json!({
            "severity": self.severity.as_str(),
            "code": self.code,
            "diagnostics": self.diagnostics,
        });
        if !self.expression.is_empty() {
            issue["expression"] = json!(self.expression);
        }
        issue
    }
}

/// Builds an OperationOutcome resource from issues.
pub fn operation_outcome(issues: &[Issue]) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": issues.iter().map(Issue::to_json).collect::<Vec<_>>(),
    })
}
