//! The one FHIRPath engine of the server: `tlq-fhirpath`, over FHIR JSON, with the R4 type
//! definitions from profiles/ (no network) so that choice types resolve
//! (`value.ofType(CodeableConcept)`). Search uses it to extract index values from
//! SearchParameter expressions; validation to test invariants. Compiled expressions are kept.
//! Plain paths (every search expression of the directory's types) are also compiled as a
//! [`Navigation`] and walked over the JSON directly: the engine copies the resource first.
//!
//! Why this crate: of the FHIRPath crates on crates.io it is the one that builds on our
//! toolchain, works on `serde_json::Value` without copying it into a model, and gets every
//! Plan-Net search expression and the Plan-Net invariants right (rh-fhirpath loses
//! `Resource.id` and choice types; octofhir's needs a newer rustc). Pinned: it is young.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tlq_fhir_context::FhirContext;
use tlq_fhirpath::vm::Plan;
use tlq_fhirpath::{CompileOptions, Context, Engine};

use crate::validation::definitions::Definitions;

mod navigation;
pub use navigation::Navigation;

/// The R4 StructureDefinitions, served to the engine from memory.
struct LocalDefinitions {
    by_url: HashMap<String, Arc<Value>>,
}

impl FhirContext for LocalDefinitions {
    fn get_resource_by_url(&self, url: &str, _version: Option<&str>) -> tlq_fhir_context::Result<Option<Arc<Value>>> {
        Ok(self.by_url.get(url).cloned())
    }
}

/// A compiled expression: the engine's plan, and the same expression as a plain navigation when
/// it is one.
#[derive(Clone)]
pub struct Compiled {
    plan: Arc<Plan>,
    navigation: Option<Arc<Navigation>>,
}

impl Compiled {
    /// The values a plain-path expression selects in `resource`, borrowed; `None` when the
    /// expression needs the engine ([`FhirPath::evaluate`]).
    pub fn navigate<'a>(&self, resource: &'a Value) -> Option<Vec<&'a Value>> {
        self.navigation.as_ref().map(|n| n.select(resource))
    }

    /// The plain navigation this expression is on resources of `resource_type`, if it is one.
    pub fn navigation_for(&self, resource_type: &str) -> Option<Navigation> {
        self.navigation.as_ref().map(|n| n.for_type(resource_type))
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compiled")
    }
}

pub struct FhirPath {
    engine: Engine,
    plans: Mutex<HashMap<String, Compiled>>,
}

impl FhirPath {
    pub fn new(definitions: &Definitions) -> FhirPath {
        let by_url = definitions
            .structure_definitions
            .iter()
            .filter_map(|sd| {
                sd.get("url")
                    .and_then(Value::as_str)
                    .map(|url| (url.to_string(), sd.clone()))
            })
            .collect();
        FhirPath {
            engine: Engine::new(Arc::new(LocalDefinitions { by_url }), None),
            plans: Mutex::new(HashMap::new()),
        }
    }

    pub fn compile(&self, expression: &str) -> Result<Compiled, String> {
        if let Some(plan) = self.plans.lock().expect("plan cache").get(expression) {
            return Ok(plan.clone());
        }
        let plan = self
            .engine
            .compile_with_options(
                &without_trace(expression),
                CompileOptions {
                    base_type: None,
                    strict: false,
                },
            )
            .map(|plan| Compiled {
                plan,
                navigation: Navigation::parse(expression).map(Arc::new),
            })
            .map_err(|e| e.to_string())?;
        self.plans
            .lock()
            .expect("plan cache")
            .insert(expression.to_string(), plan.clone());
        Ok(plan)
    }

    /// The values `compiled` selects, with `resource` as `%resource` and `this` (or the
    /// resource) as the focus.
    pub fn evaluate(
        &self,
        compiled: &Compiled,
        resource: &Arc<Value>,
        this: Option<&Value>,
    ) -> Result<Vec<Value>, String> {
        if let (None, Some(values)) = (this, compiled.navigate(resource)) {
            return Ok(values.into_iter().cloned().collect());
        }
        self.evaluate_with_engine(compiled, resource, this)
    }

    /// [`FhirPath::evaluate`], always with the engine.
    pub fn evaluate_with_engine(
        &self,
        compiled: &Compiled,
        resource: &Arc<Value>,
        this: Option<&Value>,
    ) -> Result<Vec<Value>, String> {
        let root = tlq_fhirpath::Value::from_json_root(resource.clone());
        let mut context = Context::new(root);
        if let Some(this) = this {
            // Element-level expressions are evaluated with the element as $this; making it the
            // root instead trips the engine on names equal to the type (`extension` on Extension).
            context = context.push_this(tlq_fhirpath::Value::from_json(this.clone()));
        }
        let result = self
            .engine
            .evaluate(&compiled.plan, &context)
            .map_err(|e| e.to_string())?;
        Ok(result.iter().filter_map(tlq_fhirpath::ToJson::to_json).collect())
    }
}

/// `expression` without its `.trace(…)` calls. `trace` returns its input unchanged, so the
/// meaning stays; but the engine prints every traced value to stderr, and R4's dom-3 (every
/// DomainResource) traces, which flooded the log with hundreds of thousands of lines per load.
pub(crate) fn without_trace(expression: &str) -> std::borrow::Cow<'_, str> {
    const CALL: &str = ".trace(";
    if !expression.contains(CALL) {
        return std::borrow::Cow::Borrowed(expression);
    }
    let mut out = String::with_capacity(expression.len());
    let mut rest = expression;
    while let Some(start) = rest.find(CALL) {
        out.push_str(&rest[..start]);
        let args = &rest[start + CALL.len()..];
        // Skip to the matching parenthesis, ignoring parentheses inside string literals.
        let (mut depth, mut quoted, mut end) = (1usize, false, args.len());
        let mut chars = args.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if quoted => {
                    chars.next();
                }
                '\'' => quoted = !quoted,
                '(' if !quoted => depth += 1,
                ')' if !quoted => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &args[end..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod trace_tests {
    use super::without_trace;

    #[test]
    fn trace_calls_are_removed_and_nothing_else() {
        assert_eq!(
            without_trace("contained.where(x.not()).trace('unmatched', id).empty()"),
            "contained.where(x.not()).empty()"
        );
        assert_eq!(without_trace("a.trace('a)b', f(c)).b.trace('x')"), "a.b");
        assert_eq!(without_trace("name.exists()"), "name.exists()");
    }
}
