//! SMART system scopes: what a backend client may do to which resource types.
//! <https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html>
//!
//! Both forms are understood: v1 `system/Type.read | .write | .*` and v2
//! `system/Type.cruds` (any of c, r, u, d, s, in that order). `Type` may be `*`. v1 `write`
//! is v2 `cud`, `read` is `rs`, `*` is all five. Anything else (user/patient scopes, v2
//! scopes with query parameters, `openid`, …) grants nothing here.

use std::fmt;

/// One permission of SMART v2: create, read, update, delete, search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Action {
    const ALL: [Action; 5] = [
        Action::Create,
        Action::Read,
        Action::Update,
        Action::Delete,
        Action::Search,
    ];

    fn bit(self) -> u8 {
        match self {
            Action::Create => 1,
            Action::Read => 2,
            Action::Update => 4,
            Action::Delete => 8,
            Action::Search => 16,
        }
    }

    /// The v2 letter: `c`, `r`, `u`, `d` or `s`.
    pub fn letter(self) -> char {
        match self {
            Action::Create => 'c',
            Action::Read => 'r',
            Action::Update => 'u',
            Action::Delete => 'd',
            Action::Search => 's',
        }
    }
}

/// A set of actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actions(u8);

impl Actions {
    pub fn of(actions: &[Action]) -> Actions {
        Actions(actions.iter().fold(0, |bits, a| bits | a.bit()))
    }

    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }

    /// v1 `read`/`write`/`*`, or v2 letters in c-r-u-d-s order without repeats.
    fn parse(permissions: &str) -> Option<Actions> {
        use Action::*;
        match permissions {
            "read" => return Some(Actions::of(&[Read, Search])),
            "write" => return Some(Actions::of(&[Create, Update, Delete])),
            "*" => return Some(Actions::of(&Action::ALL)),
            "" => return None,
            _ => {}
        }
        let mut next = 0;
        let mut actions = Actions::default();
        for letter in permissions.chars() {
            let at = Action::ALL[next..].iter().position(|a| a.letter() == letter)?;
            actions.0 |= Action::ALL[next + at].bit();
            next += at + 1;
        }
        Some(actions)
    }
}

/// One system scope this server understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// None for `*`, every type.
    pub resource_type: Option<String>,
    pub actions: Actions,
    /// The scope as it was written, which is what a token grants back.
    pub text: String,
}

impl Scope {
    /// A `system/…` scope, or None for anything this server does not grant.
    pub fn parse(text: &str) -> Option<Scope> {
        let rest = text.strip_prefix("system/")?;
        let (resource_type, permissions) = rest.split_once('.')?;
        let resource_type = match resource_type {
            "*" => None,
            t if !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric()) => Some(t.to_string()),
            _ => return None,
        };
        Some(Scope {
            resource_type,
            actions: Actions::parse(permissions)?,
            text: text.to_string(),
        })
    }

    fn applies_to(&self, resource_type: &str) -> bool {
        self.resource_type.as_deref().is_none_or(|t| t == resource_type)
    }
}

/// The scopes a client holds or a token grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Every system scope in a space-separated list; the others are left out.
    pub fn parse(text: &str) -> Scopes {
        let mut scopes: Vec<Scope> = Vec::new();
        for scope in text.split_whitespace().filter_map(Scope::parse) {
            if !scopes.iter().any(|s| s.text == scope.text) {
                scopes.push(scope);
            }
        }
        Scopes(scopes)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether these scopes allow `action` on `resource_type`.
    pub fn allows(&self, resource_type: &str, action: Action) -> bool {
        self.0
            .iter()
            .any(|s| s.applies_to(resource_type) && s.actions.contains(action))
    }

    /// Whether every action of `scope` is allowed, for every type it names.
    fn covers(&self, scope: &Scope) -> bool {
        scope.actions.iter().all(|action| {
            self.0.iter().any(|held| {
                held.actions.contains(action)
                    && match (&held.resource_type, &scope.resource_type) {
                        (None, _) => true,
                        (Some(held), Some(asked)) => held == asked,
                        (Some(_), None) => false,
                    }
            })
        })
    }

    /// What a token may grant when a client holding `self` asks for `asked`: each asked scope
    /// that the held scopes cover whole, as it was asked. An asked scope covered only in part
    /// is left out rather than silently narrowed.
    pub fn grant(&self, asked: &str) -> Scopes {
        let asked = Scopes::parse(asked);
        Scopes(asked.0.into_iter().filter(|s| self.covers(s)).collect())
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<&str> = self.0.iter().map(|s| s.text.as_str()).collect();
        f.write_str(&texts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    #[test]
    fn v1_and_v2_forms_say_the_same_thing() {
        let v1 = Scopes::parse("system/Practitioner.write");
        let v2 = Scopes::parse("system/Practitioner.cud");
        for action in [Create, Update, Delete] {
            assert!(v1.allows("Practitioner", action));
            assert!(v2.allows("Practitioner", action));
        }
        for action in [Read, Search] {
            assert!(!v1.allows("Practitioner", action));
            assert!(!v2.allows("Practitioner", action));
        }
        assert!(!v1.allows("Location", Create));
        let all = Scopes::parse("system/*.*");
        assert!(all.allows("Location", Delete) && all.allows("Endpoint", Search));
        let read = Scopes::parse("system/*.read");
        assert!(read.allows("Location", Read) && read.allows("Location", Search));
        assert!(!read.allows("Location", Update));
    }

    #[test]
    fn v2_letters_must_come_in_order_once() {
        assert!(Scope::parse("system/Location.cruds").is_some());
        assert!(Scope::parse("system/Location.rs").is_some());
        assert!(Scope::parse("system/Location.d").is_some());
        for bad in [
            "system/Location.sc",
            "system/Location.cc",
            "system/Location.x",
            "system/Location.",
            "system/.read",
            "patient/Location.read",
            "user/*.*",
            "openid",
            "system/Location.rs?active=true",
        ] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_grant_is_what_was_asked_and_is_held() {
        let held = Scopes::parse("system/Practitioner.write system/Location.c system/*.read");
        let granted = held.grant(
            "system/Practitioner.write system/Location.cu system/Location.c \
             system/Organization.read system/*.write launch",
        );
        assert_eq!(
            granted.to_string(),
            "system/Practitioner.write system/Location.c system/Organization.read"
        );
        let wide = Scopes::parse("system/*.write");
        assert_eq!(
            wide.grant("system/Practitioner.u system/*.cud").to_string(),
            "system/Practitioner.u system/*.cud"
        );
        assert!(held.grant("system/Endpoint.write").is_empty());
    }

    #[test]
    fn a_scope_may_be_covered_by_several_held_ones() {
        let held = Scopes::parse("system/Location.c system/*.ud");
        assert_eq!(held.grant("system/Location.write").to_string(), "system/Location.write");
    }
}
