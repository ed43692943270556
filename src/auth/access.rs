//! Who may do what: the access rule, decided before a request reaches `fhir::handle`.
//!
//! Rule: reads and searches are public unless the server requires tokens for them; every
//! write needs a valid token whose scopes cover each resource type it writes (POST needs `c`,
//! PUT `u` or `c`, DELETE `d`). A batch or transaction is judged as a whole: each entry adds
//! what it needs, so a transaction touching one type outside the scopes is refused entirely
//! and nothing of it is written. In open-writes mode writes need nothing.
//!
//! A request that needs no token may still carry one: a valid token then names the caller in
//! the audit trail and counts against the client's rate limit; a bad one is ignored.

use serde_json::Value;

use super::scopes::{Action, Scopes};
use crate::fhir::types::is_read_only;
use crate::fhir::{Actor, FhirError, FhirRequest, Method, Route};

/// What one part of a request does to one resource type; any of `actions` will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub resource_type: String,
    pub actions: &'static [Action],
}

impl Need {
    fn new(resource_type: &str, actions: &'static [Action]) -> Need {
        Need {
            resource_type: resource_type.to_string(),
            actions,
        }
    }

    /// The narrowest v2 scope that would allow it, for error messages and `WWW-Authenticate`.
    fn scope(&self) -> String {
        let letter = self.actions.last().map_or('r', |a| a.letter());
        format!("system/{}.{letter}", self.resource_type)
    }
}

/// Everything a request needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub writes: Vec<Need>,
    pub reads: Vec<Need>,
    /// A write whose resource type cannot be told (a malformed Bundle or entry URL): it needs
    /// a valid token, and the REST layer then refuses it.
    pub unnamed_write: bool,
}

impl Needs {
    pub fn is_write(&self) -> bool {
        !self.writes.is_empty() || self.unnamed_write
    }

    fn add(&mut self, method: Method, path: &str, body: Option<&Value>) {
        let operation = path.rsplit('/').next().filter(|s| s.starts_with('$'));
        let Ok(route) = Route::parse(path) else {
            if method != Method::Get && operation.is_none() {
                self.unnamed_write = true;
            }
            return;
        };
        let resource_type = route.resource_type().map(str::to_string);
        match (method, &route, operation) {
            // $validate checks a resource and stores nothing: a read.
            (_, _, Some("$validate")) => {
                if let Some(t) = &resource_type {
                    self.reads.push(Need::new(t, &[Action::Read]));
                }
            }
            (Method::Get, Route::Metadata | Route::System, _) => {}
            (Method::Get, Route::Type(t), _) | (_, Route::TypeSearch(t), _) => {
                self.reads.push(Need::new(t, &[Action::Search]))
            }
            (Method::Get, _, _) => {
                if let Some(t) = &resource_type {
                    self.reads.push(Need::new(t, &[Action::Read]));
                }
            }
            (Method::Post, Route::System, _) => self.add_bundle(body),
            // The REST layer answers 405 to any write of a server-only type.
            (_, _, _) if resource_type.as_deref().is_some_and(is_read_only) => {}
            (Method::Post, _, _) => self.write(resource_type, &[Action::Create]),
            // An update may create (update-as-create), so either permission will do.
            (Method::Put, _, _) => self.write(resource_type, &[Action::Create, Action::Update]),
            (Method::Delete, _, _) => self.write(resource_type, &[Action::Delete]),
        }
    }

    fn write(&mut self, resource_type: Option<String>, actions: &'static [Action]) {
        match resource_type {
            Some(t) => self.writes.push(Need::new(&t, actions)),
            None => self.unnamed_write = true,
        }
    }

    fn add_bundle(&mut self, body: Option<&Value>) {
        let entries = body
            .filter(|b| b.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
            .and_then(|b| b.get("entry"));
        let entries = match entries {
            None => {
                // Not a Bundle, or one without entries: no type to name, still a write.
                self.unnamed_write = true;
                return;
            }
            Some(Value::Array(entries)) => entries,
            Some(_) => {
                self.unnamed_write = true;
                return;
            }
        };
        for entry in entries {
            let request = entry.get("request");
            let method = request
                .and_then(|r| r.get("method"))
                .and_then(Value::as_str)
                .and_then(Method::parse);
            let url = request.and_then(|r| r.get("url")).and_then(Value::as_str);
            match (method, url) {
                (Some(method), Some(url)) => {
                    let path = url.split_once('?').map_or(url, |(path, _)| path);
                    // A Bundle inside a Bundle is not something the REST layer runs.
                    if matches!(Route::parse(path), Ok(Route::System)) {
                        self.unnamed_write = true;
                    } else {
                        self.add(method, path, entry.get("resource"));
                    }
                }
                _ => self.unnamed_write = true,
            }
        }
    }
}

/// What a request needs, from its method, path and (for a Bundle) body.
pub fn needs_of(request: &FhirRequest) -> Needs {
    let mut needs = Needs::default();
    needs.add(request.method, &request.path, request.body.as_ref());
    needs
}

/// The client a valid token belongs to, and what the token allows.
#[derive(Debug, Clone)]
pub struct Principal {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Scopes,
}

/// What the request presented.
#[derive(Debug, Clone)]
pub enum Credential {
    None,
    /// A token that is unknown, expired, revoked or malformed; the reason is safe to log and
    /// to send back (it never contains the token).
    Invalid {
        reason: &'static str,
        client_id: Option<String>,
    },
    Valid(Principal),
}

/// The access rules in force (see `fhir::AccessPolicy`).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub open_writes: bool,
    pub reads_require_token: bool,
}

/// Decides a request: the actor to record when it may go on, or why not.
pub fn decide(needs: &Needs, credential: &Credential, policy: Policy) -> Result<Actor, FhirError> {
    let guarded_writes = needs.is_write() && !policy.open_writes;
    let guarded_reads = !needs.reads.is_empty() && policy.reads_require_token;
    let principal = match credential {
        Credential::Valid(principal) => Some(principal),
        _ => None,
    };
    if !guarded_writes && !guarded_reads {
        return Ok(principal.map_or(Actor::Anonymous, actor_of));
    }
    let principal = match credential {
        Credential::Valid(principal) => principal,
        Credential::None => {
            let what = if guarded_writes { "a write" } else { "a read" };
            return Err(FhirError::Unauthorized {
                reason: format!(
                    "{what} needs a bearer token (SMART Backend Services; see /.well-known/smart-configuration)"
                ),
                token_presented: false,
            });
        }
        Credential::Invalid { reason, .. } => {
            return Err(FhirError::Unauthorized {
                reason: format!("the bearer token is not valid: {reason}"),
                token_presented: true,
            })
        }
    };
    let mut checked: Vec<&Need> = Vec::new();
    if guarded_writes {
        checked.extend(&needs.writes);
    }
    if guarded_reads {
        checked.extend(&needs.reads);
    }
    let mut needed: Vec<String> = Vec::new();
    for need in checked {
        let allowed = need
            .actions
            .iter()
            .any(|a| principal.scopes.allows(&need.resource_type, *a));
        if !allowed && !needed.contains(&need.scope()) {
            needed.push(need.scope());
        }
    }
    if needed.is_empty() {
        Ok(actor_of(principal))
    } else {
        Err(FhirError::Forbidden { needed })
    }
}

fn actor_of(principal: &Principal) -> Actor {
    Actor::Client {
        id: principal.client_id.clone(),
        name: principal.client_name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(method: Method, path: &str, body: Option<Value>) -> FhirRequest {
        let mut r = FhirRequest::new(method, path);
        r.body = body;
        r
    }

    fn client(scopes: &str) -> Credential {
        Credential::Valid(Principal {
            client_id: "c1".into(),
            client_name: "Acme".into(),
            scopes: Scopes::parse(scopes),
        })
    }

    const CLOSED: Policy = Policy {
        open_writes: false,
        reads_require_token: false,
    };

    #[test]
    fn each_method_needs_its_permission() {
        let needs = needs_of(&request(Method::Post, "Practitioner", None));
        assert_eq!(needs.writes, vec![Need::new("Practitioner", &[Action::Create])]);
        let needs = needs_of(&request(Method::Put, "Location/1", None));
        assert_eq!(
            needs.writes,
            vec![Need::new("Location", &[Action::Create, Action::Update])]
        );
        let needs = needs_of(&request(Method::Delete, "Endpoint/1", None));
        assert_eq!(needs.writes, vec![Need::new("Endpoint", &[Action::Delete])]);
        let needs = needs_of(&request(Method::Get, "Endpoint", None));
        assert!(!needs.is_write());
        assert_eq!(needs.reads, vec![Need::new("Endpoint", &[Action::Search])]);
        let needs = needs_of(&request(Method::Post, "Practitioner/$validate", None));
        assert!(!needs.is_write());
        let needs = needs_of(&request(Method::Post, "Location/_search", None));
        assert!(!needs.is_write());
        assert_eq!(needs.reads, vec![Need::new("Location", &[Action::Search])]);
        assert!(!needs_of(&request(Method::Get, "metadata", None)).is_write());
    }

    #[test]
    fn a_bundle_needs_what_each_entry_needs() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "POST", "url": "Practitioner"}},
            {"request": {"method": "PUT", "url": "Location?identifier=x|1"}},
            {"request": {"method": "DELETE", "url": "Endpoint/9"}},
            {"request": {"method": "GET", "url": "Organization/2"}},
        ]});
        let needs = needs_of(&request(Method::Post, "", Some(bundle)));
        let types: Vec<&str> = needs.writes.iter().map(|n| n.resource_type.as_str()).collect();
        assert_eq!(types, ["Practitioner", "Location", "Endpoint"]);
        assert_eq!(needs.reads, vec![Need::new("Organization", &[Action::Read])]);
        let malformed = json!({"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"url": "x"}}]});
        assert!(needs_of(&request(Method::Post, "", Some(malformed))).unnamed_write);
    }

    #[test]
    fn writes_need_a_token_with_the_scope_for_every_type() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "POST", "url": "Practitioner"}},
            {"request": {"method": "POST", "url": "Location"}},
        ]});
        let needs = needs_of(&request(Method::Post, "", Some(bundle)));
        assert!(matches!(
            decide(&needs, &Credential::None, CLOSED),
            Err(FhirError::Unauthorized {
                token_presented: false,
                ..
            })
        ));
        let invalid = Credential::Invalid {
            reason: "expired",
            client_id: None,
        };
        assert!(matches!(
            decide(&needs, &invalid, CLOSED),
            Err(FhirError::Unauthorized {
                token_presented: true,
                ..
            })
        ));
        match decide(&needs, &client("system/Practitioner.write"), CLOSED) {
            Err(FhirError::Forbidden { needed }) => assert_eq!(needed, ["system/Location.c"]),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(&needs, &client("system/Practitioner.c system/Location.*"), CLOSED).unwrap(),
            Actor::Client {
                id: "c1".into(),
                name: "Acme".into()
            }
        );
    }

    #[test]
    fn an_update_may_be_allowed_by_create_or_update() {
        let needs = needs_of(&request(Method::Put, "Location/1", None));
        assert!(decide(&needs, &client("system/Location.c"), CLOSED).is_ok());
        assert!(decide(&needs, &client("system/Location.u"), CLOSED).is_ok());
        assert!(decide(&needs, &client("system/Location.d"), CLOSED).is_err());
    }

    #[test]
    fn reads_are_public_unless_the_policy_says_otherwise() {
        let needs = needs_of(&request(Method::Get, "Practitioner/1", None));
        assert_eq!(decide(&needs, &Credential::None, CLOSED).unwrap(), Actor::Anonymous);
        let private = Policy {
            open_writes: false,
            reads_require_token: true,
        };
        assert!(decide(&needs, &Credential::None, private).is_err());
        assert!(decide(&needs, &client("system/Practitioner.write"), private).is_err());
        assert!(decide(&needs, &client("system/*.read"), private).is_ok());
        assert!(decide(&needs, &client("system/Practitioner.rs"), private).is_ok());
    }

    #[test]
    fn open_writes_accept_anyone_and_still_name_a_known_client() {
        let open = Policy {
            open_writes: true,
            reads_require_token: false,
        };
        let needs = needs_of(&request(Method::Post, "Practitioner", None));
        assert_eq!(decide(&needs, &Credential::None, open).unwrap(), Actor::Anonymous);
        let bad = Credential::Invalid {
            reason: "unknown",
            client_id: None,
        };
        assert_eq!(decide(&needs, &bad, open).unwrap(), Actor::Anonymous);
        assert!(matches!(
            decide(&needs, &client(""), open).unwrap(),
            Actor::Client { .. }
        ));
    }

    #[test]
    fn provenance_writes_are_left_to_the_rest_layer_to_refuse() {
        let needs = needs_of(&request(Method::Post, "Provenance", None));
        assert!(!needs.is_write());
    }
}
