//! The audit trail: every write stores, in the same store transaction, a Provenance saying who
//! wrote which version, when, and from where. A write and its Provenance commit together or
//! not at all, so the trail has neither gaps nor entries for writes that did not happen.
//! <https://hl7.org/fhir/R4/provenance.html>
//!
//! - `target`: the versioned reference of what was written (`Practitioner/1/_history/2`).
//! - `recorded`: the transaction's instant, the same as the version's `meta.lastUpdated`.
//! - `activity`: CREATE, UPDATE or DELETE from the HL7 v3 DataOperation code system.
//! - `agent`: one, of type `author`, whose `who.display` names the client (or says that
//!   nobody was identified in open-writes mode) and whose `who.identifier` carries the
//!   client id.
//! - The peer's network address is an extension on that agent. R4 has no element for it on
//!   Provenance (AuditEvent has `agent.network.address`, but an AuditEvent cannot point at
//!   the version it is about the way `Provenance.target` does), and `agent.onBehalfOf` must
//!   reference a Practitioner, Organization or the like, not an address. An extension is the
//!   valid R4 way to say it, and readers that do not know it can ignore it.

use serde_json::{json, Value};

use super::request::{Actor, FhirRequest};
use crate::store::{StoreError, StoredVersion, Tx};

/// `Provenance.agent.extension` url for the peer's network address (a logical URI: the
/// server defines it and nothing needs to resolve it).
pub const NETWORK_ADDRESS_EXTENSION: &str = "urn:providercard:fhir:extension:network-address";

/// `Identifier.system` of the backend client ids in `agent.who.identifier`.
pub const CLIENT_ID_SYSTEM: &str = "urn:providercard:fhir:client-id";

/// Who wrote: what a checked write carries into its store transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub actor: Actor,
    pub source_address: Option<String>,
}

impl Author {
    pub fn of(request: &FhirRequest) -> Author {
        Author {
            actor: request.actor.clone(),
            source_address: request.source_address.clone(),
        }
    }
}

/// What a write did to its target, as HL7 v3 DataOperation names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Create,
    Update,
    Delete,
}

impl Activity {
    fn code(self) -> (&'static str, &'static str) {
        match self {
            Activity::Create => ("CREATE", "create"),
            Activity::Update => ("UPDATE", "revise"),
            Activity::Delete => ("DELETE", "delete"),
        }
    }
}

/// The Provenance of one written version.
pub fn provenance(author: &Author, written: &StoredVersion, activity: Activity) -> Value {
    let (code, display) = activity.code();
    let mut who = json!({"display": author.actor.display()});
    if let Actor::Client { id, .. } = &author.actor {
        who["identifier"] = json!({"system": CLIENT_ID_SYSTEM, "value": id});
    }
    let mut agent = json!({
        "type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "code": "author",
            "display": "Author",
        }]},
        "who": who,
    });
    if let Some(address) = &author.source_address {
        agent["extension"] = json!([{"url": NETWORK_ADDRESS_EXTENSION, "valueString": address}]);
    }
    json!({
        "resourceType": "Provenance",
        "target": [{"reference": format!(
            "{}/{}/_history/{}",
            written.resource_type, written.id, written.version_id
        )}],
        "recorded": written.last_updated,
        "activity": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
            "code": code,
            "display": display,
        }]},
        "agent": [agent],
    })
}

/// Stores the Provenance of `written` inside the write's own transaction.
pub fn record(tx: &mut Tx<'_>, author: &Author, written: &StoredVersion, activity: Activity) -> Result<(), StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    tx.put("Provenance", &id, provenance(author, written, activity), "POST")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written() -> StoredVersion {
        StoredVersion {
            seq: 7,
            resource_type: "Practitioner".into(),
            id: "ann".into(),
            version_id: 3,
            last_updated: "2026-11-24T10:00:00.000Z".into(),
            method: "PUT".into(),
            deleted: false,
            content: None,
        }
    }

    #[test]
    fn a_provenance_names_the_version_the_client_and_the_address() {
        let author = Author {
            actor: Actor::Client {
                id: "c-1".into(),
                name: "Acme Health Plan".into(),
            },
            source_address: Some("192.0.2.7".into()),
        };
        let p = provenance(&author, &written(), Activity::Update);
        assert_eq!(p["target"][0]["reference"], "Practitioner/ann/_history/3");
        assert_eq!(p["recorded"], "2026-11-24T10:00:00.000Z");
        assert_eq!(p["activity"]["coding"][0]["code"], "UPDATE");
        let agent = &p["agent"][0];
        assert_eq!(agent["type"]["coding"][0]["code"], "author");
        assert_eq!(agent["who"]["identifier"]["value"], "c-1");
        assert_eq!(agent["who"]["display"], "Acme Health Plan (client c-1)");
        assert_eq!(agent["extension"][0]["valueString"], "192.0.2.7");
    }

    #[test]
    fn an_anonymous_write_says_so() {
        let author = Author {
            actor: Actor::Anonymous,
            source_address: None,
        };
        let p = provenance(&author, &written(), Activity::Create);
        assert_eq!(p["agent"][0]["who"]["display"], "anonymous (open-writes mode)");
        assert!(p["agent"][0].get("extension").is_none());
        assert!(p["agent"][0]["who"].get("identifier").is_none());
    }
}
