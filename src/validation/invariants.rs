//! FHIRPath invariants (`constraint.expression` of StructureDefinitions), evaluated by the
//! server's FHIRPath engine (`crate::fhirpath`).

use std::sync::Arc;

use serde_json::Value;

use crate::fhirpath::FhirPath;

/// Decides whether an invariant holds on a value (`$this`) inside a resource (`%resource`).
pub trait Invariants: Send + Sync {
    /// Ok(false) when it is broken; Err when the engine cannot evaluate it (logged, not blamed
    /// on the client).
    fn holds(&self, expression: &str, resource: &Arc<Value>, this: &Value) -> Result<bool, String>;
}

impl Invariants for FhirPath {
    fn holds(&self, expression: &str, resource: &Arc<Value>, this: &Value) -> Result<bool, String> {
        let compiled = self.compile(expression)?;
        let values = self.evaluate(&compiled, resource, Some(this))?;
        // An invariant holds unless it evaluates to false; empty means "does not apply".
        Ok(!matches!(values.as_slice(), [Value::Bool(false)]))
    }
}

impl Invariants for Arc<FhirPath> {
    fn holds(&self, expression: &str, resource: &Arc<Value>, this: &Value) -> Result<bool, String> {
        self.as_ref().holds(expression, resource, this)
    }
}
