//! Plain path navigation, evaluated directly on the JSON without the engine.
//!
//! Every search parameter of the directory's resource types is a union of paths such as
//! `Practitioner.name.family`, `Organization.name | Organization.alias`,
//! `PractitionerRole.telecom.where(system='phone')` or
//! `Practitioner.extension.where(url='…').value`. The engine evaluates those correctly but
//! copies the whole resource into its own values first, which made search indexing most of a
//! bulk import's work. Expressions in this small subset are compiled here as well and walked
//! over borrowed JSON; anything else (functions, operators, `resolve()`, `as`) is left to the
//! engine. A test checks both give the same values for every search parameter.

use serde_json::Value;

/// `path ('|' path)*`, each path a type name or first field followed by steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Navigation {
    paths: Vec<Path>,
}

#[derive(Debug, Clone, PartialEq)]
struct Path {
    /// `Practitioner` in `Practitioner.name`; `None` when the path starts at a field.
    root_type: Option<String>,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// A child element (arrays flattened, as FHIRPath does).
    Field(String),
    /// `where(field = 'literal')`.
    WhereEquals { field: String, literal: String },
}

impl Navigation {
    /// The navigation `expression` is, or `None` when it uses anything beyond plain paths.
    pub fn parse(expression: &str) -> Option<Navigation> {
        let mut paths = Vec::new();
        for term in split_top_level(expression.trim(), '|')? {
            let term = strip_parens(term.trim());
            if term.contains('|') {
                // A parenthesised union inside a union: parse it as a whole.
                paths.extend(Navigation::parse(term)?.paths);
            } else {
                paths.push(Path::parse(term)?);
            }
        }
        (!paths.is_empty()).then_some(Navigation { paths })
    }

    /// Whether it selects nothing anywhere (no path at all).
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The paths that can start at a resource of `resource_type`: two parameters whose
    /// navigations agree here select the same values in every such resource.
    pub fn for_type(&self, resource_type: &str) -> Navigation {
        let paths = self
            .paths
            .iter()
            .filter(|p| p.starts_at(resource_type))
            .cloned()
            .collect();
        Navigation { paths }
    }

    /// The field `other` selects in each value this navigation selects, when that is all it
    /// does (`Practitioner.address.city` is the `city` of `Practitioner.address`).
    pub fn field_of_each<'a>(&self, other: &'a Navigation) -> Option<&'a str> {
        if self.paths.is_empty() || self.paths.len() != other.paths.len() {
            return None;
        }
        let mut field = None;
        for (mine, theirs) in self.paths.iter().zip(&other.paths) {
            let (Some(Step::Field(last)), Some(prefix)) = (theirs.steps.last(), theirs.steps.split_last().map(|s| s.1))
            else {
                return None;
            };
            if mine.root_type != theirs.root_type || mine.steps != prefix || field.is_some_and(|f| f != last) {
                return None;
            }
            field = Some(last.as_str());
        }
        field
    }

    /// The values the expression selects in `resource`, in order, repeats removed (`|` is a
    /// union).
    pub fn select<'a>(&self, resource: &'a Value) -> Vec<&'a Value> {
        let resource_type = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default();
        let mut out: Vec<&'a Value> = Vec::new();
        for path in &self.paths {
            if !path.starts_at(resource_type) {
                continue;
            }
            let mut focus = vec![resource];
            for step in &path.steps {
                focus = step.apply(&focus);
                if focus.is_empty() {
                    break;
                }
            }
            for value in focus {
                if self.paths.len() == 1 || !out.contains(&value) {
                    out.push(value);
                }
            }
        }
        out
    }
}

impl Path {
    fn starts_at(&self, resource_type: &str) -> bool {
        match &self.root_type {
            None => true,
            Some(t) => t == resource_type || t == "Resource" || t == "DomainResource",
        }
    }

    fn parse(text: &str) -> Option<Path> {
        let parts = split_top_level(text, '.')?;
        let (first, rest) = parts.split_first()?;
        if !is_identifier(first) {
            return None;
        }
        let mut steps = Vec::with_capacity(parts.len());
        let root_type = if first.starts_with(|c: char| c.is_ascii_uppercase()) {
            Some(first.to_string())
        } else {
            steps.push(Step::Field(first.to_string()));
            None
        };
        for part in rest {
            steps.push(Step::parse(part)?);
        }
        Some(Path { root_type, steps })
    }
}

impl Step {
    fn parse(text: &str) -> Option<Step> {
        if is_identifier(text) {
            // Names of functions and keywords are not fields.
            return (!matches!(text, "where" | "as" | "is" | "and" | "or" | "not" | "resolve"))
                .then(|| Step::Field(text.to_string()));
        }
        let inner = text.strip_prefix("where(")?.strip_suffix(')')?;
        let (field, literal) = inner.split_once('=')?;
        let (field, literal) = (field.trim(), literal.trim());
        let literal = literal.strip_prefix('\'')?.strip_suffix('\'')?;
        if !is_identifier(field) || literal.contains(['\'', '\\']) {
            return None;
        }
        Some(Step::WhereEquals {
            field: field.to_string(),
            literal: literal.to_string(),
        })
    }

    fn apply<'a>(&self, focus: &[&'a Value]) -> Vec<&'a Value> {
        let mut out = Vec::new();
        match self {
            Step::Field(name) => {
                for item in focus {
                    let Some(object) = item.as_object() else { continue };
                    let child = object.get(name.as_str()).or_else(|| choice(object, name));
                    match child {
                        Some(Value::Array(items)) => out.extend(items.iter().filter(|v| !v.is_null())),
                        Some(Value::Null) | None => {}
                        Some(value) => out.push(value),
                    }
                }
            }
            Step::WhereEquals { field, literal } => {
                out.extend(
                    focus
                        .iter()
                        .filter(|item| item.get(field.as_str()).and_then(Value::as_str) == Some(literal.as_str())),
                );
            }
        }
        out
    }
}

/// `value` on an extension names its choice element (`valuePeriod`, `valueReference`, …).
/// Only `value` is resolved so: other choice elements do not appear in search paths.
fn choice<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    if name != "value" {
        return None;
    }
    object.iter().find_map(|(key, value)| {
        key.strip_prefix("value")
            .filter(|suffix| suffix.starts_with(|c: char| c.is_ascii_uppercase()))
            .map(|_| value)
    })
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `(a | b)` → `a | b`, when the parentheses enclose the whole text.
fn strip_parens(text: &str) -> &str {
    match text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        Some(inner) if split_top_level(inner, ')').is_some_and(|parts| parts.len() == 1) => inner.trim(),
        _ => text,
    }
}

/// Splits at `separator` outside parentheses and string literals; `None` when they do not
/// balance.
fn split_top_level(text: &str, separator: char) -> Option<Vec<&str>> {
    let (mut parts, mut depth, mut quoted, mut start) = (Vec::new(), 0i32, false, 0);
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            c if c == separator && !quoted && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if depth != 0 || quoted {
        return None;
    }
    parts.push(&text[start..]);
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn select(expression: &str, resource: &Value) -> Vec<Value> {
        let navigation = Navigation::parse(expression).unwrap_or_else(|| panic!("not a navigation: {expression}"));
        navigation.select(resource).into_iter().cloned().collect()
    }

    #[test]
    fn paths_start_at_their_type_and_flatten_arrays() {
        let practitioner = json!({
            "resourceType": "Practitioner", "id": "p1",
            "name": [{"family": "Kim", "given": ["Ann", "B"]}, {"family": "Lee"}],
        });
        assert_eq!(
            select("Practitioner.name.given", &practitioner),
            vec![json!("Ann"), json!("B")]
        );
        assert_eq!(select("Resource.id", &practitioner), vec![json!("p1")]);
        assert_eq!(
            select("Patient.name.family | Practitioner.name.family", &practitioner),
            vec![json!("Kim"), json!("Lee")]
        );
        assert!(select("Patient.name", &practitioner).is_empty());
    }

    #[test]
    fn a_navigation_one_field_further_is_recognised() {
        let of = |e: &str| Navigation::parse(e).unwrap().for_type("Practitioner");
        let address = of("Patient.address | Practitioner.address");
        assert_eq!(address.field_of_each(&of("Practitioner.address.city")), Some("city"));
        assert_eq!(address.field_of_each(&of("Practitioner.address.period.start")), None);
        assert_eq!(address.field_of_each(&of("Practitioner.name.family")), None);
        assert_eq!(address.field_of_each(&of("Practitioner.address")), None);
        let two = of("Practitioner.name | Practitioner.address");
        assert_eq!(
            two.field_of_each(&of("Practitioner.name.text | Practitioner.address.text")),
            Some("text")
        );
        assert_eq!(
            two.field_of_each(&of("Practitioner.name.text | Practitioner.address.city")),
            None
        );
    }

    #[test]
    fn where_filters_and_extension_values_resolve_their_choice() {
        let role = json!({
            "resourceType": "PractitionerRole",
            "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}],
            "extension": [{"url": "http://x/period", "valuePeriod": {"start": "2020"}}],
        });
        assert_eq!(
            select("PractitionerRole.telecom.where(system='email')", &role),
            vec![json!({"system": "email", "value": "a@b"})]
        );
        assert_eq!(
            select("PractitionerRole.extension.where(url='http://x/period').value", &role),
            vec![json!({"start": "2020"})]
        );
    }

    #[test]
    fn a_union_drops_repeats() {
        let organization = json!({"resourceType": "Organization", "name": "A", "alias": ["A", "B"]});
        assert_eq!(select("name | alias", &organization), vec![json!("A"), json!("B")]);
        assert_eq!(
            select("(Organization.name | Organization.alias)", &organization),
            vec![json!("A"), json!("B")]
        );
    }

    #[test]
    fn anything_beyond_paths_is_left_to_the_engine() {
        for expression in [
            "Practitioner.name.exists()",
            "PractitionerRole.location.resolve()",
            "Observation.value as Quantity",
            "(Observation.value as CodeableConcept).text",
            "a.where(b = 'c' and d = 'e')",
            "a.where(b.exists())",
            "a = 'b'",
            "a[0]",
            "name | ",
        ] {
            assert_eq!(Navigation::parse(expression), None, "{expression}");
        }
    }
}
