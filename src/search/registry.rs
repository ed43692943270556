//! The search parameters this server knows, read from SearchParameter resources under
//! `profiles/`: every `SearchParameter-*.json` file found there (the Plan-Net IG's, and any
//! dropped in later) and the R4 core Bundle `profiles/r4/search-parameters.json`. Where the IG
//! and the core define the same code for a type, the IG's wins (it is the profile's meaning).
//! Nothing here is written per resource type.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::fhirpath::{Compiled, FhirPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Token,
    String,
    Reference,
    Date,
    Uri,
    Number,
    Quantity,
    Composite,
    Special,
}

impl ParamType {
    fn parse(s: &str) -> Option<ParamType> {
        Some(match s {
            "token" => ParamType::Token,
            "string" => ParamType::String,
            "reference" => ParamType::Reference,
            "date" => ParamType::Date,
            "uri" => ParamType::Uri,
            "number" => ParamType::Number,
            "quantity" => ParamType::Quantity,
            "composite" => ParamType::Composite,
            "special" => ParamType::Special,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::Token => "token",
            ParamType::String => "string",
            ParamType::Reference => "reference",
            ParamType::Date => "date",
            ParamType::Uri => "uri",
            ParamType::Number => "number",
            ParamType::Quantity => "quantity",
            ParamType::Composite => "composite",
            ParamType::Special => "special",
        }
    }

    /// Whether the index and the planner can answer this type.
    pub fn is_searchable(self) -> bool {
        !matches!(self, ParamType::Composite | ParamType::Special | ParamType::Quantity)
    }
}

#[derive(Debug, Clone)]
pub struct SearchParam {
    pub code: String,
    pub url: String,
    pub kind: ParamType,
    pub expression: Compiled,
    pub expression_text: String,
    /// Reference targets (types a reference may point at).
    pub targets: Vec<String>,
    /// Where search finds its values.
    pub stored: Stored,
    /// Fields of this string parameter's values that another parameter of the type indexes on
    /// its own (`address`'s `city` is all `address-city` selects): written once, under the
    /// other's code, and read from there by this parameter's searches.
    pub parts: Vec<Part>,
}

/// A field of each value of a string parameter whose index rows are another parameter's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub field: String,
    /// The code the field's rows are stored under.
    pub code: String,
}

/// Where search finds a parameter's values. Every index row is written, read back and rebuilt
/// on each import; rows that repeat what is already stored are not written at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Index rows under this code: the parameter's own, or those of another parameter of the
    /// same type that selects the same values on this resource type (Practitioner's
    /// `phonetic` and `name` are both `Practitioner.name`).
    Rows(String),
    /// `_id` (`Resource.id`): the `resources` table's id.
    ResourceId,
    /// `_lastUpdated` (`Resource.meta.lastUpdated`): the `resources` table's `last_updated`,
    /// which the store stamps into `meta.lastUpdated`.
    LastUpdated,
}

impl SearchParam {
    /// The code its index rows are stored under, when it has rows.
    pub fn rows_code(&self) -> Option<&str> {
        match &self.stored {
            Stored::Rows(code) => Some(code),
            Stored::ResourceId | Stored::LastUpdated => None,
        }
    }

    /// Every code a search of this parameter reads rows of: its own rows' and its parts'.
    pub fn row_codes(&self) -> Vec<&str> {
        let parts = self.parts.iter().map(|p| p.code.as_str());
        self.rows_code().into_iter().chain(parts).collect()
    }

    /// Whether indexing a resource writes rows for this parameter (its own code's).
    pub fn writes_rows(&self) -> bool {
        self.rows_code() == Some(self.code.as_str())
    }
}

pub struct Registry {
    /// Evaluates the parameters' expressions.
    pub fhirpath: std::sync::Arc<FhirPath>,
    /// resource type → code → parameter
    by_type: BTreeMap<String, BTreeMap<String, SearchParam>>,
    /// Parameters that could not be used, with why (reported at start-up).
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
}

impl Registry {
    /// Loads the parameters of `types` from the profiles folder.
    pub fn load(
        profiles: &Path,
        types: &[&str],
        fhirpath: std::sync::Arc<FhirPath>,
    ) -> Result<Registry, RegistryError> {
        let mut registry = Registry {
            fhirpath,
            by_type: BTreeMap::new(),
            skipped: Vec::new(),
        };
        let core = profiles.join("r4/search-parameters.json");
        let bundle = read_json(&core)?;
        for entry in bundle.get("entry").and_then(Value::as_array).into_iter().flatten() {
            if let Some(resource) = entry.get("resource") {
                registry.add(resource, types);
            }
        }
        // Files are added after the core Bundle so that an IG's definition replaces the core's.
        let mut files = Vec::new();
        collect_files(profiles, &mut files).map_err(|e| RegistryError::Read {
            path: profiles.display().to_string(),
            message: e.to_string(),
        })?;
        files.sort();
        for file in files {
            registry.add(&read_json(&file)?, types);
        }
        registry.share_rows();
        registry.index_parts_once();
        Ok(registry)
    }

    /// Lets a parameter use the rows of an earlier one (by code) of the same type whose
    /// expression is the same plain navigation on that resource type. References keep their
    /// own rows: `_include` and `_revinclude` read them by the parameter's own code.
    fn share_rows(&mut self) {
        for (resource_type, params) in &mut self.by_type {
            let mut leaders: Vec<(ParamType, crate::fhirpath::Navigation, String)> = Vec::new();
            for param in params.values_mut() {
                let Some(navigation) = param.expression.navigation_for(resource_type) else {
                    continue;
                };
                if param.kind == ParamType::Reference || param.rows_code().is_none() || navigation.is_empty() {
                    continue;
                }
                match leaders
                    .iter()
                    .find(|(kind, n, _)| *kind == param.kind && *n == navigation)
                {
                    Some((_, _, leader)) => param.stored = Stored::Rows(leader.clone()),
                    None => leaders.push((param.kind, navigation, param.code.clone())),
                }
            }
        }
    }

    /// Finds the [`Part`]s of string parameters over HumanName and Address: Practitioner's
    /// `name` reads `family` and `given` rows, Location's `address` those of `address-city`,
    /// `address-state`, `address-postalcode` and `address-country`. At a million providers that
    /// is two fifths of the string rows a bulk import wrote and indexed twice.
    fn index_parts_once(&mut self) {
        for (resource_type, params) in &mut self.by_type {
            let strings: Vec<(String, String, crate::fhirpath::Navigation)> = params
                .values()
                .filter(|p| p.kind == ParamType::String)
                .filter_map(|p| {
                    let navigation = p.expression.navigation_for(resource_type)?;
                    Some((p.code.clone(), p.rows_code()?.to_string(), navigation))
                })
                .collect();
            let parts_of = |code: &str| -> Vec<Part> {
                let Some((_, _, whole)) = strings.iter().find(|(c, rows, _)| c == code && rows == code) else {
                    return Vec::new();
                };
                let mut parts: Vec<Part> = Vec::new();
                for (_, rows, navigation) in &strings {
                    match whole.field_of_each(navigation) {
                        Some(field) if rows != code && !parts.iter().any(|p| p.field == field) => parts.push(Part {
                            field: field.to_string(),
                            code: rows.clone(),
                        }),
                        _ => {}
                    }
                }
                parts
            };
            for param in params.values_mut().filter(|p| p.kind == ParamType::String) {
                // A parameter sharing another's rows reads that one's parts too.
                if let Some(rows) = param.rows_code().map(str::to_string) {
                    param.parts = parts_of(&rows);
                }
            }
        }
    }

    fn add(&mut self, resource: &Value, types: &[&str]) {
        let text = |k: &str| resource.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let code = text("code");
        let url = text("url");
        let Some(kind) = ParamType::parse(&text("type")) else {
            return;
        };
        let bases: Vec<&str> = resource
            .get("base")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let applies: Vec<&str> = if bases.iter().any(|b| *b == "Resource" || *b == "DomainResource") {
            types.to_vec()
        } else {
            bases.iter().copied().filter(|b| types.contains(b)).collect()
        };
        if applies.is_empty() || code.is_empty() {
            return;
        }
        let expression_text = text("expression");
        if !kind.is_searchable() || expression_text.is_empty() {
            for t in applies {
                self.skipped
                    .push(format!("{t}:{code} ({} parameters are not supported)", kind.as_str()));
            }
            return;
        }
        let expression = match self.fhirpath.compile(&expression_text) {
            Ok(e) => e,
            Err(message) => {
                self.skipped.push(format!("{code} ({url}): {message}"));
                return;
            }
        };
        let targets = resource
            .get("target")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        let stored = match (code.as_str(), expression_text.as_str()) {
            ("_id", "Resource.id") => Stored::ResourceId,
            ("_lastUpdated", "Resource.meta.lastUpdated") => Stored::LastUpdated,
            _ => Stored::Rows(code.clone()),
        };
        let param = SearchParam {
            code: code.clone(),
            url,
            kind,
            expression,
            expression_text,
            targets,
            stored,
            parts: Vec::new(),
        };
        for t in applies {
            self.by_type
                .entry(t.to_string())
                .or_default()
                .insert(code.clone(), param.clone());
        }
    }

    pub fn get(&self, resource_type: &str, code: &str) -> Option<&SearchParam> {
        self.by_type.get(resource_type)?.get(code)
    }

    /// The resource types that have parameters.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.by_type.keys().map(String::as_str)
    }

    /// Every parameter of a type, by code.
    pub fn of_type(&self, resource_type: &str) -> impl Iterator<Item = &SearchParam> {
        self.by_type.get(resource_type).into_iter().flat_map(|m| m.values())
    }
}

fn read_json(path: &Path) -> Result<Value, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|e| RegistryError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| RegistryError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "example") {
                collect_files(&path, out)?;
            }
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("SearchParameter-") && n.ends_with(".json"))
        {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use serde_json::Value;

    use super::{ParamType, Registry, Stored};
    use crate::fhir::types::SEARCHABLE_TYPES;
    use crate::fhirpath::FhirPath;
    use crate::validation::definitions::Definitions;

    /// Search indexing walks plain paths itself instead of asking the engine (see
    /// `fhirpath::navigation`): for every search parameter and every IG example, both agree.
    #[test]
    fn plain_path_navigation_selects_what_the_engine_selects() {
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let definitions = Definitions::load(&profiles).unwrap();
        let fhirpath = Arc::new(FhirPath::new(&definitions));
        let registry = Registry::load(&profiles, &SEARCHABLE_TYPES, fhirpath.clone()).unwrap();
        let mut examples = Vec::new();
        for entry in std::fs::read_dir(profiles.join("plan-net/example")).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            examples.push(Arc::new(serde_json::from_str::<Value>(&text).unwrap()));
        }
        let (mut compared, mut engine_only) = (0, Vec::new());
        for resource_type in SEARCHABLE_TYPES {
            for param in registry.of_type(resource_type) {
                let of_type = examples.iter().filter(|e| e["resourceType"] == resource_type);
                for example in of_type {
                    let Some(navigated) = param.expression.navigate(example) else {
                        engine_only.push(format!("{resource_type}.{}: {}", param.code, param.expression_text));
                        break;
                    };
                    let by_engine = fhirpath.evaluate_with_engine(&param.expression, example, None).unwrap();
                    let navigated: Vec<Value> = navigated.into_iter().cloned().collect();
                    assert_eq!(
                        navigated, by_engine,
                        "{resource_type}.{} ({}) on {}",
                        param.code, param.expression_text, example["id"]
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 1_000, "only {compared} comparisons");
        // The directory's own types never need the engine to be indexed.
        assert_eq!(engine_only, Vec::<String>::new());
    }

    /// A string parameter over HumanName or Address reads the rows of the parameters that
    /// index its parts (`address` matches a city as `address-city` does) instead of writing
    /// them again; the parts it alone covers (lines, text, prefixes) stay its own rows.
    #[test]
    fn name_and_address_parameters_read_their_parts_from_the_parameters_that_index_them() {
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let definitions = Definitions::load(&profiles).unwrap();
        let registry = Registry::load(&profiles, &SEARCHABLE_TYPES, Arc::new(FhirPath::new(&definitions))).unwrap();
        let parts = |t: &str, code: &str| {
            let mut parts: Vec<String> = registry
                .get(t, code)
                .unwrap()
                .parts
                .iter()
                .map(|p| format!("{} -> {}", p.field, p.code))
                .collect();
            parts.sort();
            parts
        };
        assert_eq!(parts("Practitioner", "name"), ["family -> family", "given -> given"]);
        // `phonetic` shares `name`'s rows, and so its parts.
        assert_eq!(
            parts("Practitioner", "phonetic"),
            ["family -> family", "given -> given"]
        );
        let address = [
            "city -> address-city",
            "country -> address-country",
            "postalCode -> address-postalcode",
            "state -> address-state",
        ];
        for t in ["InsurancePlan", "Location", "Organization", "Practitioner"] {
            assert_eq!(parts(t, "address"), address, "{t}");
        }
        assert_eq!(parts("Practitioner", "family"), Vec::<String>::new());

        let practitioner = serde_json::json!({
            "resourceType": "Practitioner", "id": "p1", "meta": {"lastUpdated": "2026-01-01T00:00:00.000Z"},
            "name": [{"family": "Oakley", "given": ["Ann", "Bea"], "prefix": ["Dr."]}],
            "address": [{"line": ["1 Main St"], "city": "Dayton", "state": "OH", "postalCode": "45402"}]
        });
        let mut written: Vec<String> = crate::store::Indexer::index_rows(&registry, "Practitioner", &practitioner)
            .iter()
            .filter_map(|row| match row {
                crate::store::IndexRow::String { param, exact, .. } => Some(format!("{param}: {exact}")),
                _ => None,
            })
            .collect();
        written.sort();
        assert_eq!(
            written,
            [
                "address-city: Dayton",
                "address-postalcode: 45402",
                "address-state: OH",
                "address: 1 Main St",
                "family: Oakley",
                "given: Ann",
                "given: Bea",
                "name: Dr.",
            ]
        );
    }

    /// Index rows are written once per value: a parameter that selects what another of its
    /// type selects reads that one's rows, and `_id` / `_lastUpdated` are the `resources`
    /// table's own columns.
    #[test]
    fn parameters_that_select_the_same_values_share_their_rows() {
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let definitions = Definitions::load(&profiles).unwrap();
        let registry = Registry::load(&profiles, &SEARCHABLE_TYPES, Arc::new(FhirPath::new(&definitions))).unwrap();
        let stored = |t: &str, code: &str| registry.get(t, code).unwrap().stored.clone();
        assert_eq!(stored("Practitioner", "phonetic"), Stored::Rows("name".into()));
        assert_eq!(stored("Practitioner", "name"), Stored::Rows("name".into()));
        // Organization's `name` is `name | alias`, its `phonetic` only `name`: not the same.
        assert_eq!(stored("Organization", "phonetic"), Stored::Rows("phonetic".into()));
        assert_eq!(stored("Location", "_id"), Stored::ResourceId);
        assert_eq!(stored("Location", "_lastUpdated"), Stored::LastUpdated);
        let mut shared = Vec::new();
        for resource_type in SEARCHABLE_TYPES {
            for param in registry.of_type(resource_type) {
                if let Stored::Rows(code) = &param.stored {
                    if *code != param.code {
                        assert_ne!(
                            param.kind,
                            ParamType::Reference,
                            "_include reads a reference's own rows"
                        );
                        let leader = registry.get(resource_type, code).unwrap();
                        assert_eq!(leader.kind, param.kind);
                        assert!(leader.writes_rows());
                        shared.push(format!("{resource_type}.{} -> {code}", param.code));
                    }
                }
            }
        }
        assert!(
            shared.contains(&"Practitioner.phonetic -> name".to_string()),
            "{shared:?}"
        );
        let practitioner = serde_json::json!({
            "resourceType": "Practitioner", "id": "p1", "meta": {"lastUpdated": "2026-01-01T00:00:00.000Z"},
            "name": [{"family": "Oakley", "given": ["Ann"]}]
        });
        let written: Vec<String> = crate::store::Indexer::index_rows(&registry, "Practitioner", &practitioner)
            .iter()
            .map(|row| format!("{row:?}"))
            .collect();
        assert!(written.iter().any(|row| row.contains("\"family\"")), "{written:?}");
        for code in ["phonetic", "_id", "_lastUpdated"] {
            assert!(
                !written.iter().any(|row| row.contains(&format!("\"{code}\""))),
                "{code}: {written:?}"
            );
        }
    }
}
