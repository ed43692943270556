//! Code membership in the ValueSets shipped in profiles/: the Plan-Net IG's and the R4 core's
//! (`valuesets.json`, `v3-codesystems.json`). A ValueSet that includes whole code systems we
//! hold is expanded from them; one that relies on a system we do not hold (or on filters)
//! cannot be checked here and says so, rather than rejecting good codes.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Member,
    NotMember,
    /// The ValueSet or part of it cannot be expanded here.
    Unknown,
}

#[derive(Default)]
pub struct Terminology {
    value_sets: HashMap<String, Value>,
    /// code system URL → its codes
    code_systems: HashMap<String, BTreeSet<String>>,
}

fn canonical(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

fn collect_codes(concepts: &Value, out: &mut BTreeSet<String>) {
    for c in concepts.as_array().into_iter().flatten() {
        if let Some(code) = c.get("code").and_then(Value::as_str) {
            out.insert(code.to_string());
        }
        if let Some(nested) = c.get("concept") {
            collect_codes(nested, out);
        }
    }
}

impl Terminology {
    pub fn load(profiles: &Path) -> Result<Terminology, String> {
        let mut t = Terminology::default();
        for bundle in ["r4/valuesets.json", "r4/v3-codesystems.json"] {
            let path = profiles.join(bundle);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let bundle: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            for entry in bundle.get("entry").and_then(Value::as_array).into_iter().flatten() {
                t.add(&entry["resource"]);
            }
        }
        let dir = profiles.join("plan-net");
        for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with("ValueSet-") || name.starts_with("CodeSystem-") {
                let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                t.add(&serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?);
            }
        }
        Ok(t)
    }

    fn add(&mut self, resource: &Value) {
        let Some(url) = resource.get("url").and_then(Value::as_str) else {
            return;
        };
        match resource.get("resourceType").and_then(Value::as_str) {
            Some("ValueSet") => {
                self.value_sets.insert(url.to_string(), resource.clone());
            }
            Some("CodeSystem") => {
                // Only complete code systems can say a code is not theirs.
                if resource.get("content").and_then(Value::as_str) == Some("complete") {
                    let mut codes = BTreeSet::new();
                    collect_codes(&resource["concept"], &mut codes);
                    self.code_systems.insert(url.to_string(), codes);
                }
            }
            _ => {}
        }
    }

    pub fn knows(&self, value_set: &str) -> bool {
        self.value_sets.contains_key(canonical(value_set))
    }

    /// Whether `system|code` (system None: any) is in the ValueSet.
    pub fn contains(&self, value_set: &str, system: Option<&str>, code: &str) -> Membership {
        self.contains_depth(canonical(value_set), system, code, 0)
    }

    fn contains_depth(&self, value_set: &str, system: Option<&str>, code: &str, depth: usize) -> Membership {
        let Some(vs) = self.value_sets.get(value_set) else {
            return Membership::Unknown;
        };
        if depth > 8 {
            return Membership::Unknown;
        }
        if let Some(expansion) = vs
            .get("expansion")
            .and_then(|e| e.get("contains"))
            .and_then(Value::as_array)
        {
            let hit = expansion.iter().any(|c| {
                c.get("code").and_then(Value::as_str) == Some(code)
                    && system.is_none_or(|s| c.get("system").and_then(Value::as_str) == Some(s))
            });
            return if hit { Membership::Member } else { Membership::NotMember };
        }
        let mut unknown = false;
        for include in vs["compose"]["include"].as_array().into_iter().flatten() {
            let include_system = include.get("system").and_then(Value::as_str);
            let system_matches = match (system, include_system) {
                (Some(s), Some(i)) => s == i,
                _ => true,
            };
            let nested: Vec<&str> = include
                .get("valueSet")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !nested.is_empty() {
                // Every nested ValueSet must contain it (intersection), as the spec says.
                let results: Vec<Membership> = nested
                    .iter()
                    .map(|n| self.contains_depth(canonical(n), system, code, depth + 1))
                    .collect();
                if results.iter().all(|m| *m == Membership::Member) {
                    return Membership::Member;
                }
                unknown |= results.contains(&Membership::Unknown);
                continue;
            }
            if !system_matches {
                continue;
            }
            if let Some(concepts) = include.get("concept").and_then(Value::as_array) {
                if concepts
                    .iter()
                    .any(|c| c.get("code").and_then(Value::as_str) == Some(code))
                {
                    return Membership::Member;
                }
            } else if include.get("filter").is_some() {
                unknown = true;
            } else if include_system == Some("urn:ietf:bcp:13") {
                // MIME types: no code list, but a grammar (type/subtype[;parameters]).
                if is_mime_type(code) {
                    return Membership::Member;
                }
            } else if let Some(codes) = include_system.and_then(|s| self.code_systems.get(s)) {
                if codes.contains(code) {
                    return Membership::Member;
                }
            } else {
                unknown = true;
            }
        }
        if unknown {
            Membership::Unknown
        } else {
            Membership::NotMember
        }
    }
}

fn is_mime_type(code: &str) -> bool {
    let essence = code.split(';').next().unwrap_or_default().trim();
    let token = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c));
    matches!(essence.split_once('/'), Some((t, s)) if token(t) && token(s))
}
