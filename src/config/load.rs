//! Reading, merging and environment substitution: YAML text to a checked [`Config`].

use std::fmt;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use super::Config;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    /// Not YAML; the message has the line and column.
    #[error("{}: {source}", file.display())]
    Syntax { file: PathBuf, source: serde_norway::Error },
    /// An unknown key, a value of the wrong type or a malformed `${...}`, in `origin` (a file,
    /// or the files merged).
    #[error("{origin}: {key}: {message}")]
    Key {
        origin: String,
        key: String,
        message: String,
    },
    #[error("{}", join(.0))]
    MissingVariables(Vec<MissingVariable>),
    #[error("{}", join(.0))]
    Invalid(Vec<Problem>),
}

/// A `${VAR}` without a default, unset, in a section that is enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVariable {
    pub key: String,
    pub variable: String,
}

impl fmt::Display for MissingVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} needs environment variable {}, which is not set",
            self.key, self.variable
        )
    }
}

/// A value that parsed but is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join("; ")
}

impl Config {
    /// Loads `paths` in order, later files overlaying earlier ones; no path gives the defaults.
    pub fn load(paths: &[PathBuf]) -> Result<Config, ConfigError> {
        let mut sources = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                file: path.clone(),
                source,
            })?;
            sources.push((path.clone(), text));
        }
        let sources: Vec<(&Path, &str)> = sources.iter().map(|(p, t)| (p.as_path(), t.as_str())).collect();
        Config::from_sources(&sources, &|name| std::env::var(name).ok())
    }

    /// [`Config::load`] on texts already read, with `env` standing for the environment.
    pub fn from_sources(
        sources: &[(&Path, &str)],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut merged = Value::Mapping(Mapping::new());
        for (file, text) in sources {
            let tree = parse(file, text)?;
            // Checked file by file first so that an unknown key or a wrong type names the file
            // it is in; substitution cannot change a type (it only rewrites strings).
            let origin = file.display().to_string();
            substitute(
                &mut tree.clone(),
                &mut Vec::new(),
                &|_| Some(String::new()),
                &mut Vec::new(),
            )
            .map_err(|(key, message)| ConfigError::Key {
                origin: origin.clone(),
                key,
                message,
            })?;
            typed(without_nulls(tree.clone()), &origin)?;
            merge(&mut merged, tree);
        }
        // Substituted after merging, so a variable that an overlay replaced is not needed.
        let mut missing = Vec::new();
        substitute(&mut merged, &mut Vec::new(), env, &mut missing).map_err(|(key, message)| ConfigError::Key {
            origin: "the merged configuration".to_string(),
            key,
            message,
        })?;
        let mut config = typed(without_nulls(merged), "the merged configuration")?;
        let missing: Vec<MissingVariable> = missing
            .into_iter()
            .filter(|(path, _)| config.enabled_at(path))
            .map(|(path, variable)| MissingVariable {
                key: display_path(&path),
                variable,
            })
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError::MissingVariables(missing));
        }
        config.validate().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// The effective configuration as YAML, every secret shown as `***`.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).expect("the configuration serializes: it has only string keys")
    }

    /// Whether the section holding `path` is in use: a variable missing from a disabled
    /// integration or sink is not an error, since nothing will read it.
    fn enabled_at(&self, path: &[Segment]) -> bool {
        let keys: Vec<&str> = path
            .iter()
            .map(|segment| match segment {
                Segment::Key(key) => key.as_str(),
                Segment::Index(_) => "",
            })
            .collect();
        match keys.as_slice() {
            ["integrations", "nppes", ..] => self.integrations.nppes.enabled,
            ["integrations", "caqh", ..] => self.integrations.caqh.enabled,
            ["integrations", "payers", name, ..] => self.integrations.payers.get(*name).is_some_and(|p| p.enabled),
            ["alerts", "sinks", "log", ..] => self.alerts.sinks.log.enabled,
            ["alerts", "sinks", "webhook", ..] => self.alerts.sinks.webhook.as_ref().is_some_and(|w| w.enabled),
            _ => true,
        }
    }
}

fn parse(file: &Path, text: &str) -> Result<Value, ConfigError> {
    let syntax = |source| ConfigError::Syntax {
        file: file.to_path_buf(),
        source,
    };
    let mut tree: Value = serde_norway::from_str(text).map_err(syntax)?;
    // `<<: *anchor` merge keys, handy for payers that share settings.
    tree.apply_merge().map_err(syntax)?;
    Ok(match tree {
        // An empty file, or one with only comments.
        Value::Null => Value::Mapping(Mapping::new()),
        tree => tree,
    })
}

fn typed(tree: Value, origin: &str) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(tree).map_err(|error| {
        let key = match error.path().iter().next() {
            None => "(top level)".to_string(),
            Some(_) => error.path().to_string(),
        };
        ConfigError::Key {
            origin: origin.to_string(),
            key,
            message: error.into_inner().to_string(),
        }
    })
}

/// Mappings merge key by key; anything else in `overlay` replaces what `base` has, except an
/// empty value (`caqh:` with everything under it commented out), which changes nothing.
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (_, Value::Null) => {}
        (Value::Mapping(base), Value::Mapping(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// An empty value means "the default", for sections and single keys alike.
fn without_nulls(tree: Value) -> Value {
    match tree {
        Value::Mapping(mapping) => Value::Mapping(
            mapping
                .into_iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| (key, without_nulls(value)))
                .collect(),
        ),
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(without_nulls).collect()),
        tree => tree,
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Like serde_path_to_error's: `a.b[0].c`.
fn display_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(key) => key.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => "?".to_string(),
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in every string value (keys are left alone).
/// An unset variable without a default becomes empty and is recorded in `missing` with its
/// path; whether that matters depends on the section, known only once typed.
fn substitute(
    tree: &mut Value,
    path: &mut Vec<Segment>,
    env: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<(Vec<Segment>, String)>,
) -> Result<(), (String, String)> {
    match tree {
        Value::String(text) => {
            let mut unset = Vec::new();
            *text = expand(text, env, &mut unset).map_err(|message| (display_path(path), message))?;
            missing.extend(unset.into_iter().map(|variable| (path.clone(), variable)));
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                path.push(Segment::Index(index));
                substitute(item, path, env, missing)?;
                path.pop();
            }
        }
        Value::Mapping(mapping) => {
            for (key, value) in mapping.iter_mut() {
                path.push(Segment::Key(key_text(key)));
                substitute(value, path, env, missing)?;
                path.pop();
            }
        }
        Value::Tagged(tagged) => substitute(&mut tagged.value, path, env, missing)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// One string's substitution. `$${` stands for a literal `${`. As in the shell, `:-` also
/// applies when the variable is set but empty. Messages never quote the text: it may be a secret.
fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>, unset: &mut Vec<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(reference) = after.strip_prefix("${") {
            let end = reference
                .find('}')
                .ok_or_else(|| "a `${` without its closing `}`".to_string())?;
            let (name, default) = match reference[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&reference[..end], None),
            };
            if !is_variable_name(name) {
                return Err(
                    "`${...}` must hold an environment variable name (letters, digits and `_`), then \
                            optionally `:-default`"
                        .to_string(),
                );
            }
            match (env(name), default) {
                (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => unset.push(name.to_string()),
            }
            rest = &reference[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}
