//! FHIRPath invariants (`constraint.expression` of StructureDefinitions), evaluated by the
//! `tlq-fhirpath` engine over FHIR JSON. The engine gets the R4 type definitions from
//! profiles/ (no network), which it needs for choice types (`value.ofType(CodeableConcept)`).
//! Compiled expressions are cached: the same few dozen invariants run on every write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tlq_fhir_context::FhirContext;
use tlq_fhirpath::vm::Plan;
use tlq_fhirpath::{CompileOptions, Context, Engine};

/// Decides whether an invariant holds on a value (`$this`) inside a resource (`%resource`).
pub trait Invariants: Send + Sync {
    /// Ok(false) when it is broken; Err when the engine cannot evaluate it (logged, not blamed
    /// on the client).
    fn holds(&self, expression: &str, resource: &Arc<Value>, this: &Value) -> Result<bool, String>;
}

/// The R4 StructureDefinitions, served to the engine from memory.
struct LocalDefinitions {
    by_url: HashMap<String, Arc<Value>>,
}

impl FhirContext for LocalDefinitions {
    fn get_resource_by_url(&self, url: &str, _version: Option<&str>) -> tlq_fhir_context::Result<Option<Arc<Value>>> {
        Ok(self.by_url.get(url).cloned())
    }
}

pub struct FhirPathInvariants {
    engine: Engine,
    plans: Mutex<HashMap<String, Arc<Plan>>>,
}

impl FhirPathInvariants {
    pub fn new(definitions: &super::definitions::Definitions) -> FhirPathInvariants {
        let by_url = definitions
            .structure_definitions
            .iter()
            .filter_map(|sd| sd.get("url").and_then(Value::as_str).map(|url| (url.to_string(), sd.clone())))
            .collect();
        let engine = Engine::new(Arc::new(LocalDefinitions { by_url }), None);
        FhirPathInvariants { engine, plans: Mutex::new(HashMap::new()) }
    }

    fn plan(&self, expression: &str) -> Result<Arc<Plan>, String> {
        if let Some(plan) = self.plans.lock().expect("plan cache").get(expression) {
            return Ok(plan.clone());
        }
        let plan = self
            .engine
            .compile_with_options(
                expression,
                CompileOptions {
                    base_type: None,
                    strict: false,
                },
            )
            .map_err(|e| e.to_string())?;
        self.plans
            .lock()
            .expect("plan cache")
            .insert(expression.to_string(), plan.clone());
        Ok(plan)
    }
}

impl Invariants for FhirPathInvariants {
    fn holds(&self, expression: &str, resource: &Arc<Value>, this: &Value) -> Result<bool, String> {
        let plan = self.plan(expression)?;
        let root = tlq_fhirpath::Value::from_json_root(resource.clone());
        let context = Context::new(root).push_this(tlq_fhirpath::Value::from_json(this.clone()));
        let result = self.engine.evaluate(&plan, &context).map_err(|e| e.to_string())?;
        // An invariant holds unless it evaluates to false; empty means "does not apply".
        let values: Vec<Value> = result.iter().filter_map(tlq_fhirpath::ToJson::to_json).collect();
        Ok(!matches!(values.as_slice(), [Value::Bool(false)]))
    }
}
