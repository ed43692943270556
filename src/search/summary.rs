//! Which top-level elements `_summary=true` keeps: those the R4 StructureDefinitions mark
//! `isSummary`, read from the R4 StructureDefinitions.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

#[derive(Debug, Default)]
pub struct SummaryElements {
    by_type: BTreeMap<String, BTreeSet<String>>,
}

impl SummaryElements {
    pub fn new(definitions: &crate::validation::definitions::Definitions, types: &[&str]) -> SummaryElements {
        let mut by_type = BTreeMap::new();
        for sd in &definitions.structure_definitions {
            let Some(name) = sd.get("type").and_then(Value::as_str) else {
                continue;
            };
            if !types.contains(&name) || sd.get("derivation").and_then(Value::as_str) == Some("constraint") {
                continue;
            }
            let mut elements = BTreeSet::new();
            for element in sd["snapshot"]["element"].as_array().into_iter().flatten() {
                let path = element["path"].as_str().unwrap_or_default();
                let Some(rest) = path.strip_prefix(&format!("{name}.")) else {
                    continue;
                };
                if !rest.contains('.') && element["isSummary"] == Value::Bool(true) {
                    // `value[x]` is stored as `valueString` etc.; summary keeps them all.
                    elements.insert(rest.trim_end_matches("[x]").to_string());
                }
            }
            by_type.insert(name.to_string(), elements);
        }
        SummaryElements { by_type }
    }

    pub fn of(&self, resource_type: &str) -> Vec<String> {
        self.by_type
            .get(resource_type)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}
