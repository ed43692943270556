//! Which top-level elements `_summary=true` keeps: those the R4 StructureDefinitions mark
//! `isSummary`, read from `profiles/r4/profiles-resources.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

#[derive(Debug, Default)]
pub struct SummaryElements {
    by_type: BTreeMap<String, BTreeSet<String>>,
}

impl SummaryElements {
    pub fn load(profiles: &Path, types: &[&str]) -> Result<SummaryElements, String> {
        let path = profiles.join("r4/profiles-resources.json");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bundle: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut by_type = BTreeMap::new();
        for entry in bundle.get("entry").and_then(Value::as_array).into_iter().flatten() {
            let sd = &entry["resource"];
            let Some(name) = sd.get("type").and_then(Value::as_str) else { continue };
            if sd.get("resourceType").and_then(Value::as_str) != Some("StructureDefinition") || !types.contains(&name) {
                continue;
            }
            let mut elements = BTreeSet::new();
            for element in sd["snapshot"]["element"].as_array().into_iter().flatten() {
                let path = element["path"].as_str().unwrap_or_default();
                let Some(rest) = path.strip_prefix(&format!("{name}.")) else { continue };
                if !rest.contains('.') && element["isSummary"] == Value::Bool(true) {
                    // `value[x]` is stored as `valueString` etc.; summary keeps them all.
                    elements.insert(rest.trim_end_matches("[x]").to_string());
                }
            }
            by_type.insert(name.to_string(), elements);
        }
        Ok(SummaryElements { by_type })
    }

    pub fn of(&self, resource_type: &str) -> Vec<String> {
        self.by_type.get(resource_type).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}
