//! Profile validation: a resource against the StructureDefinition snapshots it claims (the
//! Plan-Net profiles, the R4 base definitions beneath them, and the extensions it carries).
//!
//! The walk follows the snapshot's element tree over the JSON: for each element, the values at
//! its path are counted against min/max, compared with fixed and pattern values, checked
//! against required (error) and extensible (warning) bindings, tested with the element's
//! invariants, and walked into — through the profile's own children where it constrains them,
//! otherwise through the base definition of the element's datatype (so `per-1` on every
//! Period and the base bindings of ContactPoint apply everywhere). Slices are selected by the
//! discriminators Plan-Net uses (`value:url`, `pattern:$this`, `value:$this`) and counted and
//! walked as elements of their own. Extensions are checked against their own definitions:
//! value types, nested extensions, and the contexts they may appear in.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::invariants::Invariants;
use super::terminology::{Membership, Terminology};
use crate::fhir::outcome::Issue;

/// A StructureDefinition's snapshot, indexed for the walk.
struct Snapshot {
    url: String,
    /// The resource or datatype it constrains.
    type_name: String,
    elements: Vec<Value>,
    by_id: HashMap<String, usize>,
    /// element id → ids of its direct, unsliced children
    children: HashMap<String, Vec<String>>,
    /// element id → ids of its slices
    slices: HashMap<String, Vec<String>>,
    /// Where an extension may be used (`context[].expression`).
    context: Vec<String>,
}

impl Snapshot {
    fn new(sd: &Value) -> Option<Snapshot> {
        let elements: Vec<Value> = sd.get("snapshot")?.get("element")?.as_array()?.clone();
        let mut by_id = HashMap::new();
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        let mut slices: HashMap<String, Vec<String>> = HashMap::new();
        for (i, e) in elements.iter().enumerate() {
            let id = e.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            by_id.insert(id.clone(), i);
            let last_dot = id.rfind('.');
            let last_colon = id.rfind(':');
            match (last_dot, last_colon) {
                (_, Some(c)) if last_dot.is_none_or(|d| c > d) => {
                    slices.entry(id[..c].to_string()).or_default().push(id.clone());
                }
                (Some(d), _) => children.entry(id[..d].to_string()).or_default().push(id.clone()),
                _ => {}
            }
        }
        let context = sd
            .get("context")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("expression").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        Some(Snapshot {
            url: sd.get("url").and_then(Value::as_str).unwrap_or_default().to_string(),
            type_name: sd.get("type").and_then(Value::as_str).unwrap_or_default().to_string(),
            elements,
            by_id,
            children,
            slices,
            context,
        })
    }

    fn element(&self, id: &str) -> Option<&Value> {
        self.by_id.get(id).map(|i| &self.elements[*i])
    }

    fn root_id(&self) -> &str {
        self.elements
            .first()
            .and_then(|e| e.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

pub struct ProfileValidator {
    by_url: HashMap<String, Arc<Snapshot>>,
    /// Base R4 definitions by type name (`Period`, `Practitioner`, …).
    by_type: HashMap<String, Arc<Snapshot>>,
    terminology: Terminology,
    invariants: Box<dyn Invariants>,
}

/// Invariants checked natively, or not at all: `ele-1` and `ext-1` are structural rules the
/// walk checks itself; `dom-3` (contained resources referenced) is moot, as we take no
/// contained resources' references apart here.
const NATIVE_OR_SKIPPED: [&str; 3] = ["ele-1", "ext-1", "dom-3"];

const PLAN_NET: &str = "http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/";

fn max_of(e: &Value) -> Option<usize> {
    match e.get("max").and_then(Value::as_str) {
        Some("*") | None => None,
        Some(n) => n.parse().ok(),
    }
}

fn min_of(e: &Value) -> usize {
    e.get("min").and_then(Value::as_u64).unwrap_or(0) as usize
}

fn type_codes(e: &Value) -> Vec<String> {
    e.get("type")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("code").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// `fixedUri`, `patternIdentifier`, … of an element: (is_pattern, value).
fn fixed_or_pattern(e: &Value) -> Option<(bool, &Value)> {
    e.as_object()?.iter().find_map(|(k, v)| {
        if k.starts_with("fixed") && k.len() > 5 {
            Some((false, v))
        } else if k.starts_with("pattern") && k.len() > 7 {
            Some((true, v))
        } else {
            None
        }
    })
}

/// Whether `value` holds everything `pattern` has (arrays: every pattern item matched by one).
fn contains_pattern(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::Object(v), Value::Object(p)) => p
            .iter()
            .all(|(k, pv)| v.get(k).is_some_and(|vv| contains_pattern(vv, pv))),
        (Value::Array(v), Value::Array(p)) => p.iter().all(|pv| v.iter().any(|vv| contains_pattern(vv, pv))),
        (v, p) => v == p,
    }
}

fn last_segment(id: &str) -> &str {
    id.rsplit('.').next().unwrap_or(id)
}

/// The values at `name` under `node`, with the type a choice element's key names.
fn values_at<'a>(node: &'a Value, name: &str) -> Vec<(String, &'a Value, Option<String>)> {
    let Some(object) = node.as_object() else { return vec![] };
    let mut out = Vec::new();
    let mut push = |key: &str, v: &'a Value, ty: Option<String>| match v {
        Value::Array(items) => out.extend(items.iter().map(|i| (key.to_string(), i, ty.clone()))),
        v => out.push((key.to_string(), v, ty)),
    };
    if let Some(stem) = name.strip_suffix("[x]") {
        for (k, v) in object {
            if let Some(t) = k.strip_prefix(stem).filter(|t| t.starts_with(char::is_uppercase)) {
                push(k, v, Some(t.to_string()));
            }
        }
    } else if let Some(v) = object.get(name) {
        push(name, v, None);
    }
    out
}

struct Walk<'a> {
    validator: &'a ProfileValidator,
    resource: Arc<Value>,
    issues: Vec<Issue>,
}

impl ProfileValidator {
    /// The value sets the profiles bind to (also what integrations check codes against).
    pub fn terminology(&self) -> &Terminology {
        &self.terminology
    }

    pub fn load(
        profiles: &Path,
        definitions: &super::definitions::Definitions,
        invariants: Box<dyn Invariants>,
    ) -> Result<ProfileValidator, String> {
        let mut by_url = HashMap::new();
        let mut by_type = HashMap::new();
        for sd in &definitions.structure_definitions {
            if let Some(snapshot) = Snapshot::new(sd) {
                let snapshot = Arc::new(snapshot);
                if let Some(t) = sd.get("type").and_then(Value::as_str) {
                    if sd.get("derivation").and_then(Value::as_str) != Some("constraint") {
                        by_type.insert(t.to_string(), snapshot.clone());
                    }
                }
                by_url.insert(snapshot.url.clone(), snapshot);
            }
        }
        let dir = profiles.join("plan-net");
        for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("StructureDefinition-"))
            {
                let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                let sd: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                if let Some(snapshot) = Snapshot::new(&sd) {
                    by_url.insert(snapshot.url.clone(), Arc::new(snapshot));
                }
            }
        }
        Ok(ProfileValidator {
            by_url,
            by_type,
            terminology: Terminology::load(profiles)?,
            invariants,
        })
    }

    pub fn knows(&self, profile: &str) -> bool {
        self.by_url.contains_key(profile.split('|').next().unwrap_or(profile))
    }

    /// Every issue of `resource` against the profile `url` (which must be known).
    pub fn validate(&self, resource: &Value, url: &str) -> Vec<Issue> {
        let Some(snapshot) = self.by_url.get(url.split('|').next().unwrap_or(url)) else {
            return vec![Issue::error("not-supported", format!("profile {url} is not known here")).at("meta.profile")];
        };
        let mut walk = Walk {
            validator: self,
            resource: Arc::new(resource.clone()),
            issues: vec![],
        };
        let root = snapshot.root_id().to_string();
        let loc = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("Resource")
            .to_string();
        if let Some(e) = snapshot.element(&root) {
            walk.constraints(e, resource, &loc);
        }
        walk.node(snapshot, &root, resource, &loc, &loc);

        let mut issues = walk.issues;
        issues.dedup();
        issues
    }
}

impl Walk<'_> {
    fn error(&mut self, code: &'static str, at: &str, message: String) {
        self.issues.push(Issue::error(code, message).at(at.to_string()));
    }

    /// The children of element `id` of `snapshot` over `node`, found at `loc`; `path` is the
    /// element path without indices (for extension contexts).
    fn node(&mut self, snapshot: &Snapshot, id: &str, node: &Value, loc: &str, path: &str) {
        let Some(children) = snapshot.children.get(id) else {
            return;
        };
        for child_id in children {
            let Some(child) = snapshot.element(child_id) else {
                continue;
            };
            let name = last_segment(child_id);
            let values = values_at(node, name);
            let max = max_of(child);
            let shown = name.trim_end_matches("[x]");
            let at = format!("{loc}.{shown}");
            if values.len() < min_of(child) {
                self.error(
                    "required",
                    &at,
                    format!(
                        "{} requires at least {} {shown}, found {}",
                        snapshot_name(snapshot),
                        min_of(child),
                        values.len()
                    ),
                );
            }
            if let Some(max) = max {
                if values.len() > max {
                    let what = if max == 0 {
                        format!("{shown} is not allowed here")
                    } else {
                        format!("at most {max} {shown} allowed, found {}", values.len())
                    };
                    self.error("structure", &at, format!("{}: {what}", snapshot_name(snapshot)));
                }
            }
            let many = max != Some(1) || values.len() > 1;
            let child_path = format!("{path}.{shown}");
            for (i, (key, value, ty)) in values.iter().enumerate() {
                let at = if many {
                    format!("{loc}.{key}[{i}]")
                } else {
                    format!("{loc}.{key}")
                };
                self.value(snapshot, child_id, child, value, ty.as_deref(), &at, &child_path, path);
            }
            if let Some(slices) = snapshot.slices.get(child_id) {
                self.slices(snapshot, child, slices, &values, &at, &child_path);
            }
        }
    }

    #[expect(clippy::too_many_arguments, reason = "the walk's position")]
    fn value(
        &mut self,
        snapshot: &Snapshot,
        id: &str,
        element: &Value,
        value: &Value,
        chosen: Option<&str>,
        at: &str,
        path: &str,
        parent_path: &str,
    ) {
        let types = type_codes(element);
        if let Some(chosen) = chosen {
            if !types.iter().any(|t| t.eq_ignore_ascii_case(chosen)) {
                self.error(
                    "structure",
                    at,
                    format!("type {chosen} is not allowed here; allowed: {}", types.join(", ")),
                );
                return;
            }
        }
        if let Some((is_pattern, expected)) = fixed_or_pattern(element) {
            let ok = if is_pattern {
                contains_pattern(value, expected)
            } else {
                value == expected
            };
            if !ok {
                let kind = if is_pattern { "pattern" } else { "fixed value" };
                self.error("value", at, format!("must match the {kind} {expected}"));
            }
        }
        self.binding(element, value, at);
        self.constraints(element, value, at);
        self.primitive(&types, chosen, value, at);
        self.reference_target(element, value, at);
        let name = last_segment(id);
        if name == "extension" || name == "modifierExtension" {
            let parent_id = id.rsplit_once('.').map(|(p, _)| p).unwrap_or(id);
            let parent_types = snapshot.element(parent_id).map(type_codes).unwrap_or_default();
            self.extension(value, at, parent_path, &parent_types);
        }
        let ty = chosen
            .map(str::to_string)
            .or_else(|| types.first().cloned())
            .unwrap_or_default();
        let datatype = self
            .validator
            .by_type
            .get(&ty)
            .cloned()
            .filter(|_| ty.starts_with(char::is_uppercase));
        if snapshot.children.contains_key(id) {
            // Constrained here; the datatype's own invariants (per-1, cpt-2, …) still apply.
            if let Some(base) = &datatype {
                if let Some(e) = base.element(base.root_id()) {
                    self.constraints(e, value, at);
                }
            }
            self.node(snapshot, id, value, at, path);
        } else if ty.starts_with(char::is_uppercase) && ty != "Extension" && ty != "Resource" {
            // Not constrained here: the datatype's own definition applies.
            let key = if ty == "BackboneElement" || ty == "Element" {
                String::new()
            } else {
                ty.clone()
            };
            if let Some(base) = self.validator.by_type.get(&key).cloned() {
                let root = base.root_id().to_string();
                if let Some(e) = base.element(&root) {
                    self.constraints(e, value, at);
                }
                self.node(&base, &root, value, at, &ty);
            }
        }
    }

    fn slices(
        &mut self,
        snapshot: &Snapshot,
        sliced: &Value,
        slices: &[String],
        values: &[(String, &Value, Option<String>)],
        at: &str,
        path: &str,
    ) {
        let discriminators: Vec<(String, String)> = sliced["slicing"]["discriminator"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                (
                    d["type"].as_str().unwrap_or_default().to_string(),
                    d["path"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        for slice_id in slices {
            let Some(slice) = snapshot.element(slice_id) else {
                continue;
            };
            let slice_name = slice.get("sliceName").and_then(Value::as_str).unwrap_or_default();
            let matched: Vec<(usize, &Value)> = values
                .iter()
                .enumerate()
                .filter(|(_, (_, v, _))| {
                    discriminators
                        .iter()
                        .all(|(kind, dpath)| self.matches_slice(snapshot, slice_id, slice, kind, dpath, v))
                })
                .map(|(i, (_, v, _))| (i, *v))
                .collect();
            if discriminators.iter().any(|(kind, _)| kind == "type") {
                continue;
            }
            if matched.len() < min_of(slice) {
                self.error(
                    "required",
                    at,
                    format!(
                        "slice '{slice_name}' requires at least {}, found {}",
                        min_of(slice),
                        matched.len()
                    ),
                );
            }
            if let Some(max) = max_of(slice) {
                if matched.len() > max {
                    self.error(
                        "structure",
                        at,
                        format!("slice '{slice_name}' allows at most {max}, found {}", matched.len()),
                    );
                }
            }
            for (i, v) in matched {
                let key = &values[i].0;
                let item_at = format!(
                    "{}[{i}]",
                    at.rsplit_once('.')
                        .map(|(p, _)| format!("{p}.{key}"))
                        .unwrap_or_else(|| at.to_string())
                );
                // The slice's own pattern, constraints and constrained children (for a complex
                // extension's slice, the cardinality of its parts).
                self.constraints(slice, v, &item_at);
                if let Some((true, pattern)) = fixed_or_pattern(slice) {
                    if !contains_pattern(v, pattern) {
                        self.error("value", &item_at, format!("must match the pattern {pattern}"));
                    }
                }
                self.binding(slice, v, &item_at);
                if snapshot.children.contains_key(slice_id.as_str()) {
                    self.node(snapshot, slice_id, v, &item_at, path);
                }
            }
        }
    }

    fn matches_slice(
        &self,
        snapshot: &Snapshot,
        slice_id: &str,
        slice: &Value,
        kind: &str,
        dpath: &str,
        value: &Value,
    ) -> bool {
        match (kind, dpath) {
            ("value", "url") => {
                let profile = slice["type"][0]["profile"][0].as_str();
                let fixed = snapshot
                    .element(&format!("{slice_id}.url"))
                    .and_then(|u| u.get("fixedUri"))
                    .and_then(Value::as_str);
                let url = value.get("url").and_then(Value::as_str);
                url.is_some() && (url == profile || url == fixed)
            }
            (_, "$this") => match fixed_or_pattern(slice) {
                Some((_, pattern)) => contains_pattern(value, pattern),
                // A value discriminator on a bound element selects by the slice's ValueSet.
                None => slice["binding"]["valueSet"].as_str().is_some_and(|vs| {
                    codes_of(value)
                        .iter()
                        .any(|(s, c)| self.validator.terminology.contains(vs, s.as_deref(), c) == Membership::Member)
                }),
            },
            ("type", _) => true,
            _ => false,
        }
    }

    /// An extension against its own definition, and where it may be used.
    fn extension(&mut self, extension: &Value, at: &str, parent_path: &str, parent_types: &[String]) {
        let Some(url) = extension.get("url").and_then(Value::as_str) else {
            self.error("required", at, "an extension must have a url".into());
            return;
        };
        let has_value = extension
            .as_object()
            .is_some_and(|o| o.keys().any(|k| k.starts_with("value")));
        let has_children = extension.get("extension").is_some();
        if has_value == has_children {
            self.error(
                "invariant",
                at,
                "ext-1: an extension has either a value or nested extensions, not both and not neither".into(),
            );
        }
        let Some(definition) = self.validator.by_url.get(url).cloned() else {
            if url.starts_with(PLAN_NET) {
                self.error(
                    "structure",
                    &format!("{at}.url"),
                    format!("{url} is not an extension Plan-Net defines"),
                );
            }
            return;
        };
        if !definition.context.is_empty() {
            let parent_type = parent_path.rsplit('.').next().unwrap_or(parent_path);
            let allowed = definition.context.iter().any(|c| {
                c == parent_path
                    || c == parent_type
                    || parent_types.iter().any(|t| t == c)
                    || c == "Element"
                    || c == "Resource"
                    || c == "DomainResource"
                    || parent_path.ends_with(&format!(".{c}"))
            });
            if !allowed {
                self.error(
                    "structure",
                    at,
                    format!(
                        "extension {url} may be used on {} but not on {parent_path}",
                        definition.context.join(", ")
                    ),
                );
            }
        }
        let root = definition.root_id().to_string();
        if let Some(e) = definition.element(&root) {
            self.constraints(e, extension, at);
        }
        self.node(&definition, &root, extension, at, "Extension");
    }

    /// What JSON Schema's patterns let through: impossible dates, out-of-range integers.
    fn primitive(&mut self, types: &[String], chosen: Option<&str>, value: &Value, at: &str) {
        let ty = chosen
            .map(|c| c.to_string())
            .or_else(|| (types.len() == 1).then(|| types[0].clone()))
            .unwrap_or_default();
        match (ty.to_ascii_lowercase().as_str(), value) {
            ("date" | "datetime" | "instant", Value::String(s)) if crate::search::date::range(s).is_none() => {
                self.error("value", at, format!("'{s}' is not a valid {ty}"));
            }
            ("positiveint", Value::Number(n)) if n.as_i64().is_none_or(|n| n < 1) => {
                self.error("value", at, format!("{n} is not a positiveInt (1 or more)"));
            }
            ("unsignedint", Value::Number(n)) if n.as_i64().is_none_or(|n| n < 0) => {
                self.error("value", at, format!("{n} is not an unsignedInt (0 or more)"));
            }
            _ => {}
        }
    }

    /// A literal reference must point at a type the element allows (`targetProfile`).
    fn reference_target(&mut self, element: &Value, value: &Value, at: &str) {
        let Some(reference) = value.get("reference").and_then(Value::as_str) else {
            return;
        };
        let (target_type, _) = crate::search::index::split_reference(reference);
        if target_type.is_empty() {
            return;
        }
        let allowed: Vec<String> = element["type"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["code"] == "Reference")
            .flat_map(|t| t["targetProfile"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| {
                p.as_str()
                    .and_then(|p| self.validator.by_url.get(p))
                    .map(|s| s.type_name.clone())
            })
            .collect();
        if !allowed.is_empty() && !allowed.iter().any(|t| t == &target_type || t == "Resource") {
            self.error(
                "structure",
                &format!("{at}.reference"),
                format!(
                    "{target_type} is not a type this reference may point at ({})",
                    allowed.join(", ")
                ),
            );
        }
    }

    fn binding(&mut self, element: &Value, value: &Value, at: &str) {
        let Some(binding) = element.get("binding") else { return };
        let strength = binding.get("strength").and_then(Value::as_str).unwrap_or_default();
        let Some(value_set) = binding.get("valueSet").and_then(Value::as_str) else {
            return;
        };
        if !matches!(strength, "required" | "extensible") || !self.validator.terminology.knows(value_set) {
            return;
        }
        let codes = codes_of(value);
        if codes.is_empty() {
            return;
        }
        let results: Vec<Membership> = codes
            .iter()
            .map(|(s, c)| self.validator.terminology.contains(value_set, s.as_deref(), c))
            .collect();
        if results.contains(&Membership::Member) || results.contains(&Membership::Unknown) {
            return;
        }
        let shown = codes
            .iter()
            .map(|(s, c)| s.as_ref().map_or(c.clone(), |s| format!("{s}|{c}")))
            .collect::<Vec<_>>()
            .join(", ");
        let message = format!("{shown} is not in the {strength} value set {value_set}");
        if strength == "required" {
            self.error("code-invalid", at, message);
        } else {
            self.issues
                .push(Issue::warning("code-invalid", message).at(at.to_string()));
        }
    }

    fn constraints(&mut self, element: &Value, value: &Value, at: &str) {
        for c in element
            .get("constraint")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = c.get("key").and_then(Value::as_str).unwrap_or_default();
            let Some(expression) = c.get("expression").and_then(Value::as_str) else {
                continue;
            };
            if NATIVE_OR_SKIPPED.contains(&key) {
                continue;
            }
            let severity = c.get("severity").and_then(Value::as_str).unwrap_or("error");
            match self.validator.invariants.holds(expression, &self.resource, value) {
                Ok(true) => {}
                Ok(false) => {
                    let human = c.get("human").and_then(Value::as_str).unwrap_or(expression);
                    let message = format!("{key}: {human}");
                    if severity == "error" {
                        self.error("invariant", at, message);
                    } else {
                        self.issues
                            .push(Issue::warning("invariant", message).at(at.to_string()));
                    }
                }
                Err(why) => tracing::debug!(invariant = key, error = %why, "invariant not evaluated"),
            }
        }
    }
}

/// The (system, code) pairs a code, Coding or CodeableConcept carries.
fn codes_of(value: &Value) -> Vec<(Option<String>, String)> {
    let coding = |c: &Value| {
        c.get("code").and_then(Value::as_str).map(|code| {
            (
                c.get("system").and_then(Value::as_str).map(str::to_string),
                code.to_string(),
            )
        })
    };
    match value {
        Value::String(code) => vec![(None, code.clone())],
        Value::Object(o) if o.contains_key("coding") => o["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(coding)
            .collect(),
        Value::Object(o) if o.contains_key("code") => coding(value).into_iter().collect(),
        _ => vec![],
    }
}

fn snapshot_name(snapshot: &Snapshot) -> String {
    snapshot.url.rsplit('/').next().unwrap_or(&snapshot.url).to_string()
}
