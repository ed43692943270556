//! The R4 StructureDefinitions (`profiles/r4/profiles-types.json` and
//! `profiles-resources.json`), read once at start-up and shared by everything that needs
//! them: the profile validator, the FHIRPath engine, `_summary`. They are large (37 MB); reading
//! them once matters.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

pub struct Definitions {
    /// Every StructureDefinition of both Bundles.
    pub structure_definitions: Vec<Arc<Value>>,
}

impl Definitions {
    pub fn load(profiles: &Path) -> Result<Definitions, String> {
        let mut structure_definitions = Vec::new();
        for bundle in ["r4/profiles-types.json", "r4/profiles-resources.json"] {
            let path = profiles.join(bundle);
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut bundle: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let entries = bundle
                .get_mut("entry")
                .and_then(Value::as_array_mut)
                .map(std::mem::take)
                .unwrap_or_default();
            for mut entry in entries {
                let resource = entry.get_mut("resource").map(Value::take).unwrap_or_default();
                if resource.get("resourceType").and_then(Value::as_str) == Some("StructureDefinition") {
                    structure_definitions.push(Arc::new(resource));
                }
            }
        }
        Ok(Definitions { structure_definitions })
    }
}
