//! FHIRPath, as far as search parameter expressions need it.
//!
//! Supported: paths from the resource (`Practitioner.name.family`; a leading type name only
//! applies to that type, `Resource`/`DomainResource` to all), unions (`a | b`), parentheses,
//! choice elements (`value` finds `valueReference`, …), `where(field = 'literal')`,
//! `where(resolve() is Type)`, `ofType(T)`, `as(T)` and the `as T` operator. An expression
//! using anything else is refused when parsed, so its parameter is reported as unsupported
//! instead of being indexed wrongly.

use serde_json::Value;

/// A parsed expression: a union of paths.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    paths: Vec<Vec<Step>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// A type name at the start of a path: the rest applies only to that type.
    Root(String),
    Child(String),
    WhereEquals(String, String),
    WhereResolveIs(String),
    OfType(String),
}

/// One value an expression selects, with its type when a choice element told it.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub value: &'a Value,
    pub type_hint: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Dot,
    Open,
    Close,
    Pipe,
    Equals,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '.' => {
                tokens.push(Token::Dot);
                i += 1
            }
            '(' => {
                tokens.push(Token::Open);
                i += 1
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1
            }
            '|' => {
                tokens.push(Token::Pipe);
                i += 1
            }
            '=' => {
                tokens.push(Token::Equals);
                i += 1
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    s.push(chars[i]);
                    i += 1;
                }
                if i >= chars.len() {
                    return Err("unterminated string".into());
                }
                i += 1;
                tokens.push(Token::Str(s));
            }
            c if c.is_alphanumeric() || c == '_' || c == '`' => {
                let mut s = String::new();
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '`') {
                    if chars[i] != '`' {
                        s.push(chars[i]);
                    }
                    i += 1;
                }
                tokens.push(Token::Ident(s));
            }
            other => return Err(format!("'{other}' is not supported")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn expect(&mut self, t: Token) -> Result<(), String> {
        match self.next() {
            Some(found) if found == t => Ok(()),
            found => Err(format!("expected {t:?}, found {found:?}")),
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Ident(s)) => Ok(s),
            found => Err(format!("expected a name, found {found:?}")),
        }
    }

    /// union := path ('|' path)*
    fn union(&mut self) -> Result<Vec<Vec<Step>>, String> {
        let mut paths = self.path()?;
        while self.peek() == Some(&Token::Pipe) {
            self.next();
            paths.extend(self.path()?);
        }
        Ok(paths)
    }

    /// path := (ident | '(' union ')') ('.' step)* ('as' Type)?
    fn path(&mut self) -> Result<Vec<Vec<Step>>, String> {
        let mut paths: Vec<Vec<Step>> = match self.peek() {
            Some(Token::Open) => {
                self.next();
                let inner = self.union()?;
                self.expect(Token::Close)?;
                inner
            }
            _ => {
                let name = self.ident()?;
                let first = if name.starts_with(char::is_uppercase) {
                    Step::Root(name)
                } else {
                    Step::Child(name)
                };
                vec![vec![first]]
            }
        };
        loop {
            match self.peek() {
                Some(Token::Dot) => {
                    self.next();
                    let step = self.step()?;
                    for p in &mut paths {
                        p.push(step.clone());
                    }
                }
                Some(Token::Ident(kw)) if kw == "as" => {
                    self.next();
                    let ty = self.ident()?;
                    for p in &mut paths {
                        p.push(Step::OfType(ty.clone()));
                    }
                }
                _ => return Ok(paths),
            }
        }
    }

    fn step(&mut self) -> Result<Step, String> {
        let name = self.ident()?;
        if self.peek() != Some(&Token::Open) {
            return Ok(Step::Child(name));
        }
        self.next();
        let step = match name.as_str() {
            "where" => {
                let first = self.ident()?;
                if first == "resolve" {
                    self.expect(Token::Open)?;
                    self.expect(Token::Close)?;
                    match self.ident()?.as_str() {
                        "is" => Step::WhereResolveIs(self.ident()?),
                        other => return Err(format!("where(resolve() {other} …) is not supported")),
                    }
                } else {
                    self.expect(Token::Equals)?;
                    match self.next() {
                        Some(Token::Str(literal)) => Step::WhereEquals(first, literal),
                        found => return Err(format!("where() compares with a string literal, found {found:?}")),
                    }
                }
            }
            "ofType" | "as" => Step::OfType(self.ident()?),
            other => return Err(format!("function {other}() is not supported")),
        };
        self.expect(Token::Close)?;
        Ok(step)
    }
}

impl Expression {
    pub fn parse(text: &str) -> Result<Expression, String> {
        let mut parser = Parser {
            tokens: tokenize(text)?,
            at: 0,
        };
        let paths = parser.union()?;
        if parser.at < parser.tokens.len() {
            return Err(format!("unexpected {:?}", parser.tokens[parser.at]));
        }
        Ok(Expression { paths })
    }

    /// The values the expression selects from `resource`, a `resource_type`.
    pub fn evaluate<'a>(&self, resource_type: &str, resource: &'a Value) -> Vec<Node<'a>> {
        let mut out = Vec::new();
        for path in &self.paths {
            let mut nodes = vec![Node {
                value: resource,
                type_hint: None,
            }];
            for step in path {
                nodes = apply(step, resource_type, nodes);
            }
            out.extend(nodes);
        }
        out
    }
}

fn push_all<'a>(out: &mut Vec<Node<'a>>, value: &'a Value, type_hint: Option<String>) {
    match value {
        Value::Array(items) => out.extend(items.iter().map(|v| Node {
            value: v,
            type_hint: type_hint.clone(),
        })),
        v => out.push(Node { value: v, type_hint }),
    }
}

fn apply<'a>(step: &Step, resource_type: &str, nodes: Vec<Node<'a>>) -> Vec<Node<'a>> {
    let mut out = Vec::new();
    match step {
        Step::Root(name) => {
            if name == resource_type || name == "Resource" || name == "DomainResource" {
                return nodes;
            }
            // A lower-case-first name cannot be a root; an upper-case one for another type
            // selects nothing here.
            return vec![];
        }
        Step::Child(name) => {
            for node in nodes {
                let Some(object) = node.value.as_object() else { continue };
                if let Some(v) = object.get(name) {
                    push_all(&mut out, v, None);
                    continue;
                }
                // A choice element: `value` finds `valueReference`, `valueString`, …
                for (key, v) in object {
                    if let Some(suffix) = key.strip_prefix(name.as_str()) {
                        if suffix.starts_with(char::is_uppercase) {
                            push_all(&mut out, v, Some(suffix.to_string()));
                        }
                    }
                }
            }
        }
        Step::WhereEquals(field, literal) => {
            out = nodes
                .into_iter()
                .filter(|n| n.value.get(field).and_then(Value::as_str) == Some(literal.as_str()))
                .collect();
        }
        Step::WhereResolveIs(ty) => {
            out = nodes
                .into_iter()
                .filter(|n| {
                    let reference = n.value.get("reference").and_then(Value::as_str).unwrap_or_default();
                    super::index::split_reference(reference).0 == *ty
                })
                .collect();
        }
        Step::OfType(ty) => {
            out = nodes
                .into_iter()
                .filter(|n| n.type_hint.as_ref().is_none_or(|hint| hint.eq_ignore_ascii_case(ty)))
                .collect();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(expression: &str, resource_type: &str, resource: &Value) -> Vec<Value> {
        Expression::parse(expression)
            .unwrap()
            .evaluate(resource_type, resource)
            .into_iter()
            .map(|n| n.value.clone())
            .collect()
    }

    #[test]
    fn paths_unions_and_filters_select_what_the_spec_says() {
        let role = json!({
            "resourceType": "PractitionerRole",
            "extension": [
                {"url": "http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/network-reference", "valueReference": {"reference": "Organization/net"}},
                {"url": "other", "valueString": "x"}
            ],
            "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}]
        });
        let network = "PractitionerRole.extension.where(url='http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/network-reference').value";
        assert_eq!(
            values(network, "PractitionerRole", &role),
            vec![json!({"reference": "Organization/net"})]
        );
        let phones = "Patient.telecom.where(system='phone') | PractitionerRole.telecom.where(system='phone')";
        assert_eq!(
            values(phones, "PractitionerRole", &role),
            vec![json!({"system": "phone", "value": "1"})]
        );
        assert!(values("Practitioner.telecom", "PractitionerRole", &role).is_empty());
        let plan = json!({"resourceType": "InsurancePlan", "name": "Gold", "alias": ["Au"]});
        assert_eq!(
            values("name | alias", "InsurancePlan", &plan),
            vec![json!("Gold"), json!("Au")]
        );
        let provenance = json!({"occurredDateTime": "2024-01-01", "target": [{"reference": "Patient/1"}, {"reference": "Practitioner/2"}]});
        assert_eq!(
            values("(Provenance.occurred.ofType(dateTime))", "Provenance", &provenance),
            vec![json!("2024-01-01")]
        );
        assert_eq!(
            values(
                "Provenance.target.where(resolve() is Patient)",
                "Provenance",
                &provenance
            ),
            vec![json!({"reference": "Patient/1"})]
        );
    }

    #[test]
    fn anything_else_is_refused_when_parsed() {
        assert!(Expression::parse("Location.position.distance(1)").is_err());
        assert!(Expression::parse("a + b").is_err());
    }
}
